package crypto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func TestBulkKey(t *testing.T) {
	var storage [32]byte
	for i := range storage {
		storage[i] = byte(i)
	}
	k, err := NewBulkKey(&storage, "kintsugi checkpoint v1")
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("a checkpoint piece")
	// Zero randomness gives a fixed output: the derivation and the layout
	// must not change, or every checkpoint on disk stops opening. The
	// vector was computed apart from this code: HKDF-SHA-256 with Python's
	// hmac, HChaCha20 by hand (draft-irtf-cfrg-xchacha) and pyca
	// cryptography's ChaCha20-Poly1305.
	sealed, err := k.Seal(bytes.NewReader(make([]byte, 24)), []byte("prefix"), plain)
	if err != nil {
		t.Fatal(err)
	}
	const want = "707265666978000000000000000000000000000000000000000000000000b9ff853b307a4908e8c7553d9212badc22f51f2e1017285e9071d4140e64603d3759"
	if got := hex.EncodeToString(sealed); got != want {
		t.Errorf("sealed = %s\nwant     %s", got, want)
	}
	got, err := k.AppendOpen([]byte("x"), sealed[len("prefix"):])
	if err != nil || string(got) != "x"+string(plain) {
		t.Fatalf("open: %q %v", got, err)
	}
	// Any change is refused, never misread.
	box := sealed[len("prefix"):]
	for i := range box {
		bad := bytes.Clone(box)
		bad[i] ^= 1
		if _, err := k.AppendOpen(nil, bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	if _, err := k.AppendOpen(nil, box[:BulkOverhead-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("cut short: %v", err)
	}
	// Another use, or another storage key, is another key.
	other, _ := NewBulkKey(&storage, "kintsugi something else v1")
	if _, err := other.AppendOpen(nil, box); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opened under another use: %v", err)
	}
	storage[0] ^= 1
	third, _ := NewBulkKey(&storage, "kintsugi checkpoint v1")
	if _, err := third.AppendOpen(nil, box); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opened under another storage key: %v", err)
	}
}
