package client_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// Sam loses every device and sets kintsugi up again: a new identity key.
// Alex's client must say so loudly, drop the verified mark, and seal
// nothing to the new key until Alex confirms the new safety number.
func TestPartnerIdentityChange(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	if err := aj.ConfirmVerified(); err != nil {
		t.Fatal(err)
	}
	write(t, sj, "sam's old words")
	mustSync(t, sj)
	write(t, aj, "alex before the change")
	mustSync(t, aj)
	oldNumber, _, err := aj.SafetyNumber()
	if err != nil {
		t.Fatal(err)
	}

	if _, _, err := aj.Invite(ctxFor(t), 0); !errors.Is(err, client.ErrBothHere) {
		t.Fatalf("a plain invite with both here: %v", err)
	}
	code, _, err := aj.InviteAgain(ctxFor(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	sam2 := newAccount(t, "sam")
	s2, err := sam2.Join(ctxFor(t), code)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	write(t, s2, "sam with new keys")
	mustSync(t, s2)

	mustSync(t, aj)
	st, err := aj.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Verified || !hasShown(st, client.NoticeIdentityChanged) {
		t.Fatalf("alex's status after the change: %+v", st)
	}
	newNumber, p, err := aj.SafetyNumber()
	if err != nil || p.Pending == nil || newNumber == oldNumber {
		t.Fatalf("safety number %q (was %q), member %+v, %v", newNumber, oldNumber, p, err)
	}
	if newNumber != crypto.SafetyNumber(sam2.Identity.Public, alex.Identity.Public) {
		t.Fatal("the new safety number is not the one sam's new device shows")
	}
	// Until confirmed: nothing is sealed to the new key, nothing from it
	// is shown, and the old key's words stay.
	e := write(t, aj, "written while unconfirmed")[0]
	mustSync(t, aj)
	if sealedTo(t, relay, aj.ID(), e.ID, sam2.Device.BoxPublic) {
		t.Fatal("alex sealed an entry to an unconfirmed new key")
	}
	got := texts(t, aj)
	if slices.Contains(got, "sam with new keys") || !slices.Contains(got, "sam's old words") {
		t.Fatalf("before confirming alex reads %q", got)
	}

	if err := aj.ConfirmVerified(); err != nil {
		t.Fatal(err)
	}
	mustSync(t, aj)
	got = texts(t, aj)
	if !slices.Contains(got, "sam with new keys") || !slices.Contains(got, "sam's old words") {
		t.Fatalf("after confirming alex reads %q", got)
	}
	st, err = aj.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Verified || len(shown(st)) != 0 || len(st.Missing) != 0 {
		t.Fatalf("alex's status after confirming: %+v", st)
	}
	// Alex's history is re-boxed for the new key; the old key gets nothing new.
	mustSync(t, s2)
	// Sam's old join, from before, is history on the new device, not a
	// late answer to an invite.
	if st, err := s2.Status(); err != nil || len(shown(st)) != 0 {
		t.Fatalf("sam's new device: %+v %v", st, err)
	}
	if got := texts(t, s2); !slices.Contains(got, "alex before the change") || !slices.Contains(got, "written while unconfirmed") {
		t.Fatalf("sam's new device reads %q", got)
	}
	e = write(t, aj, "after confirming")[0]
	mustSync(t, aj)
	if !sealedTo(t, relay, aj.ID(), e.ID, sam2.Device.BoxPublic) || sealedTo(t, relay, aj.ID(), e.ID, sam.Device.BoxPublic) {
		t.Fatal("after confirming, entries must be sealed to the new key only")
	}
}
