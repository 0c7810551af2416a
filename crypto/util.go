package crypto

import (
	"crypto/sha256"
	"errors"
	"io"

	"golang.org/x/crypto/curve25519"
)

func publicFromPrivate(priv *[32]byte) ([32]byte, error) {
	var pub [32]byte
	p, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		return pub, errors.New("box private key is not valid")
	}
	copy(pub[:], p)
	return pub, nil
}

func randomBytes(rand io.Reader, b []byte) error {
	_, err := io.ReadFull(rand, b)
	return err
}

func sha256Concat(parts ...[]byte) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
