package crypto

import (
	"crypto/hkdf"
	"crypto/sha256"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// BulkKey seals large local files (the client's checkpoint) with
// XChaCha20-Poly1305, about three times as fast as secretbox here. Its key
// is derived from the storage key with HKDF-SHA-256 (RFC 5869) and a label
// naming the use, so it never seals anything [Seal] does. Nonces are
// random; 24 bytes leave no practical chance of a repeat.
type BulkKey struct {
	aead interface {
		Seal(dst, nonce, plaintext, additionalData []byte) []byte
		Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	}
}

// BulkOverhead is what [BulkKey.Seal] adds: the nonce and the tag.
const BulkOverhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

// NewBulkKey derives the key for use (a label such as "kintsugi
// checkpoint v1") from a 32-byte storage key.
func NewBulkKey(storage *[32]byte, use string) (*BulkKey, error) {
	k, err := hkdf.Key(sha256.New, storage[:], nil, use, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, err
	}
	return &BulkKey{aead: aead}, nil
}

// Seal returns nonce (24) || XChaCha20-Poly1305(plain), appended to dst.
func (k *BulkKey) Seal(rand io.Reader, dst, plain []byte) ([]byte, error) {
	var nonce [chacha20poly1305.NonceSizeX]byte
	if err := randomBytes(rand, nonce[:]); err != nil {
		return nil, err
	}
	return k.aead.Seal(append(dst, nonce[:]...), nonce[:], plain, nil), nil
}

// AppendOpen opens what [BulkKey.Seal] made, appending the plaintext to
// dst. It returns [ErrCorrupt] for anything that does not authenticate.
func (k *BulkKey) AppendOpen(dst, sealed []byte) ([]byte, error) {
	if len(sealed) < BulkOverhead {
		return nil, ErrCorrupt
	}
	nonce, box := sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:]
	out, err := k.aead.Open(dst, nonce, box, nil)
	if err != nil {
		return nil, ErrCorrupt
	}
	return out, nil
}
