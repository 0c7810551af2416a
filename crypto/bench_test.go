package crypto

import (
	"crypto/rand"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// BenchmarkSealEntry1KiB seals with a cold keyring (four X25519 operations).
func BenchmarkSealEntry1KiB(b *testing.B) {
	alice, bob := mustDevice(b, detRand(1)), mustDevice(b, detRand(2))
	h := testHeader(alice, protocol.KindEntry)
	msg := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, _, err := SealEntry(rand.Reader, alice, h, [][32]byte{alice.BoxPublic, bob.BoxPublic}, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeyringSealEntry1KiB seals with a warm keyring, as a client
// does for every entry after its first.
func BenchmarkKeyringSealEntry1KiB(b *testing.B) {
	alice, bob := mustDevice(b, detRand(1)), mustDevice(b, detRand(2))
	h := testHeader(alice, protocol.KindEntry)
	kr := NewKeyring(alice)
	msg := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, _, err := kr.SealEntry(rand.Reader, h, [][32]byte{alice.BoxPublic, bob.BoxPublic}, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenEntry1KiB opens with a warm Keyring, as a client does for
// every entry after the first from the same author.
func BenchmarkOpenEntry1KiB(b *testing.B) {
	alice, bob := mustDevice(b, detRand(1)), mustDevice(b, detRand(2))
	h := testHeader(alice, protocol.KindEntry)
	msg := make([]byte, 1024)
	blob, _, _ := SealEntry(rand.Reader, alice, h, [][32]byte{alice.BoxPublic, bob.BoxPublic}, msg)
	op := NewKeyring(bob)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := op.OpenEntry(blob, h.Journal, alice.BoxPublic); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnlockKeyFileDefault(b *testing.B) {
	f, _ := SealKeyFile(rand.Reader, []byte("pw"), []byte("secret"), DefaultKDF)
	for b.Loop() {
		if _, err := OpenKeyFile(f, []byte("pw")); err != nil {
			b.Fatal(err)
		}
	}
}
