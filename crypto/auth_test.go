package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// TestSignAuth checks that a keyring answers a challenge with a signature
// over the protocol's auth message by the device's signing key, and that a
// bare AuthKey signs the same bytes.
func TestSignAuth(t *testing.T) {
	d, err := NewDevice(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := NewKeyring(d)
	challenge := bytes.Repeat([]byte{7}, protocol.ChallengeSize)
	sig := k.SignAuth("relay-1", challenge)
	if !bytes.Equal(k.SignPublic(), d.SignPublic) {
		t.Fatal("SignPublic is not the device's signing key")
	}
	if !ed25519.Verify(d.SignPublic, protocol.AuthMessage("relay-1", challenge), sig) {
		t.Fatal("signature does not verify over the auth message")
	}
	if ed25519.Verify(d.SignPublic, protocol.AuthMessage("relay-2", challenge), sig) {
		t.Fatal("signature verifies for another relay id")
	}
	bare := AuthKey(d.SignPrivate)
	if !bytes.Equal(bare.SignPublic(), d.SignPublic) || !bytes.Equal(bare.SignAuth("relay-1", challenge), sig) {
		t.Fatal("AuthKey signs differently from the keyring")
	}
}
