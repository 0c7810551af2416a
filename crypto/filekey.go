package crypto

import (
	"errors"

	"golang.org/x/crypto/nacl/secretbox"
)

// A key file's file key is the secretbox key argon2id derives from the
// passphrase and that file's salt. It opens that one key file, and no other
// (a re-sealed file has a fresh salt). An unlocked session holds the file
// key instead of the passphrase, so the passphrase, which a person may use
// elsewhere too, is never kept in memory, and a changed or replaced key file
// is never opened by a session started for the old one.

// ErrWrongFileKey means the key file is intact but the file key given does
// not open it: the file was re-sealed (a new passphrase) or replaced.
var ErrWrongFileKey = errors.New("that key does not open this key file")

// OpenKeyFileKey is [OpenKeyFile] that also returns the file key. The
// caller clears the key when done with it.
func OpenKeyFileKey(data, passphrase []byte) (secret []byte, key *[32]byte, err error) {
	kf, err := parseKeyFile(data)
	if err != nil {
		return nil, nil, err
	}
	key = deriveKey(passphrase, kf.Salt, kf.Params)
	secret, ok := secretbox.Open(nil, kf.Box, (*[24]byte)(kf.Nonce), key)
	if !ok {
		clear(key[:])
		return nil, nil, ErrWrongPassphrase
	}
	return secret, key, nil
}

// OpenKeyFileWithKey decrypts a key file with a file key from
// [OpenKeyFileKey], without running argon2id. It returns [ErrBadKeyFile]
// for a file it cannot parse and [ErrWrongFileKey] when key does not open
// it.
func OpenKeyFileWithKey(data []byte, key *[32]byte) ([]byte, error) {
	kf, err := parseKeyFile(data)
	if err != nil {
		return nil, err
	}
	secret, ok := secretbox.Open(nil, kf.Box, (*[24]byte)(kf.Nonce), key)
	if !ok {
		return nil, ErrWrongFileKey
	}
	return secret, nil
}
