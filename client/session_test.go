package client_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
)

func TestUnlockWithKey(t *testing.T) {
	t.Parallel()
	a := newAccount(t, "Alex")
	got, key, err := client.UnlockKey(a.Home, []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Alex" || !bytes.Equal(got.Identity.Public, a.Identity.Public) {
		t.Fatalf("UnlockKey opened %q", got.Name)
	}
	b, err := client.UnlockWithKey(a.Home, key)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "Alex" || !bytes.Equal(b.Identity.Public, a.Identity.Public) || b.Device.BoxPublic != a.Device.BoxPublic {
		t.Fatal("the session key opened a different identity")
	}

	if _, k, err := client.UnlockKey(a.Home, []byte("wrong")); !errors.Is(err, crypto.ErrWrongPassphrase) || k != nil {
		t.Fatalf("wrong passphrase: key %v, %v", k, err)
	}
	if _, _, err := client.UnlockKey(client.Home{Dir: filepath.Join(t.TempDir(), "none")}, []byte(pass)); !errors.Is(err, client.ErrNoHome) {
		t.Fatalf("no home: %v", err)
	}
	if _, err := client.UnlockWithKey(client.Home{Dir: filepath.Join(t.TempDir(), "none")}, key); !errors.Is(err, client.ErrNoHome) {
		t.Fatalf("no home: %v", err)
	}

	// After a passphrase change the old session key opens nothing.
	if err := client.ChangePassphrase(a.Home, []byte(pass), []byte("new one"), crypto.TestingKDF); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UnlockWithKey(a.Home, key); !errors.Is(err, crypto.ErrWrongFileKey) {
		t.Fatalf("old key after passphrase change: %v", err)
	}
}
