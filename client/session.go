package client

import (
	"errors"
	"io/fs"
	"os"

	"github.com/kintsugi-journal/kintsugi/crypto"
)

// An unlocked session (see package client/agent) keeps the key file's file
// key, never the passphrase: [UnlockKey] hands it out once, when the
// passphrase is checked, and [UnlockWithKey] opens the key file with it,
// skipping argon2id. The key file on disk stays the one source of the
// keys, so a re-sealed or replaced file is never opened by an old session.

// UnlockKey is [Unlock] that also returns the key file's file key. The
// caller clears the key when done with it.
func UnlockKey(home Home, passphrase []byte) (*Account, *[32]byte, error) {
	data, err := readKeyFile(home)
	if err != nil {
		return nil, nil, err
	}
	plain, key, err := crypto.OpenKeyFileKey(data, passphrase)
	if err != nil {
		return nil, nil, err
	}
	defer clear(plain)
	a, err := accountFromPlain(home, plain)
	if err != nil {
		clear(key[:])
		return nil, nil, err
	}
	return a, key, nil
}

// UnlockWithKey opens home's key file with a file key from [UnlockKey]. It
// returns an error wrapping [crypto.ErrWrongFileKey] when the file was
// re-sealed or replaced since the key was taken.
func UnlockWithKey(home Home, key *[32]byte) (*Account, error) {
	data, err := readKeyFile(home)
	if err != nil {
		return nil, err
	}
	plain, err := crypto.OpenKeyFileWithKey(data, key)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	return accountFromPlain(home, plain)
}

func readKeyFile(home Home) ([]byte, error) {
	data, err := os.ReadFile(home.KeyPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoHome
	}
	return data, err
}
