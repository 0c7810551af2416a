package crypto

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
)

func TestFileKey(t *testing.T) {
	secret := []byte("secret key material")
	f, err := SealKeyFile(rand.Reader, []byte("correct horse"), secret, TestingKDF)
	if err != nil {
		t.Fatal(err)
	}
	got, key, err := OpenKeyFileKey(f, []byte("correct horse"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open = %q, %v", got, err)
	}
	if bytes.Contains(f, key[:]) {
		t.Fatal("the key file holds its own file key")
	}
	got, err = OpenKeyFileWithKey(f, key)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open with key = %q, %v", got, err)
	}

	if _, k, err := OpenKeyFileKey(f, []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) || k != nil {
		t.Fatalf("wrong passphrase: key %v, %v", k, err)
	}
	// Every bit of the key matters.
	for i := range key {
		bad := *key
		bad[i] ^= 0x01
		if _, err := OpenKeyFileWithKey(f, &bad); !errors.Is(err, ErrWrongFileKey) {
			t.Fatalf("key with byte %d flipped: %v", i, err)
		}
	}
	// The same passphrase re-sealed (a new salt) needs a new key.
	f2, err := SealKeyFile(rand.Reader, []byte("correct horse"), secret, TestingKDF)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyFileWithKey(f2, key); !errors.Is(err, ErrWrongFileKey) {
		t.Fatalf("old key on a re-sealed file: %v", err)
	}
	if _, err := OpenKeyFileWithKey([]byte("{}"), key); !errors.Is(err, ErrBadKeyFile) {
		t.Fatalf("empty file: %v", err)
	}
	// A file with out-of-bounds parameters is refused, key or not.
	var kf map[string]any
	json.Unmarshal(f, &kf)
	kf["params"] = KDFParams{Time: 1000, MemoryKiB: 8192, Threads: 1}
	b, _ := json.Marshal(kf)
	if _, err := OpenKeyFileWithKey(b, key); !errors.Is(err, ErrBadKeyFile) {
		t.Fatalf("out-of-bounds params: %v", err)
	}
}
