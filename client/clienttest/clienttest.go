// Package clienttest holds the helpers that tests of package client share:
// accounts in a temporary home, a paired journal through a relay, syncing,
// writing and reading entries, and [Clean], the one check that a device's
// status shows nothing amiss. Each helper fails the test instead of
// returning an error. Only tests import it.
//
// Package client's own (internal) tests cannot import it, since it imports
// client; they keep the few helpers they need in their own files.
package clienttest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
)

// Passphrase is the passphrase of every account [NewAccount] makes.
const Passphrase = "a long passphrase nobody will guess"

// Timeout bounds the context of [Context]: a failsafe, not a measurement.
const Timeout = 60 * time.Second

// NewAccount creates an account named name, with device name-device, in a
// fresh home under the test's temporary directory. It uses the testing
// KDF, so it is fast.
func NewAccount(t testing.TB, name string) *client.Account {
	t.Helper()
	a, err := client.Init(client.Home{Dir: filepath.Join(t.TempDir(), name)}, name, name+"-device", []byte(Passphrase), crypto.TestingKDF)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Context returns a context that ends after [Timeout] or with the test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// Sync syncs j and fails the test if it fails.
func Sync(t testing.TB, j *client.Journal) *client.SyncResult {
	t.Helper()
	r, err := j.Sync(Context(t))
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return r
}

// Write writes each text as an entry of j.
func Write(t testing.TB, j *client.Journal, text ...string) []client.Entry {
	t.Helper()
	var out []client.Entry
	for _, s := range text {
		e, err := j.Write(client.Payload{Kind: client.KindEntry, Text: s})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// Texts returns the text of every entry j shows, in its order.
func Texts(t testing.TB, j *client.Journal) []string {
	t.Helper()
	es, err := j.Entries()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Text)
	}
	return out
}

// Pair creates a journal for a on the relay at relayURL, invites b and has
// b join. It returns both journals (closed when the test ends) and the
// invite code. a has not synced since b joined.
func Pair(t testing.TB, relayURL string, a, b *client.Account) (aj, bj *client.Journal, code string) {
	t.Helper()
	ctx := Context(t)
	aj, err := a.CreateJournal(ctx, relayURL, "our journal")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { aj.Close() })
	code, _, err = aj.Invite(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	bj, err = b.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bj.Close() })
	return aj, bj, code
}

// Status returns j's status.
func Status(t testing.TB, j *client.Journal) client.Status {
	t.Helper()
	st, err := j.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Clean fails the test unless who's journal j is settled and whole: no
// entry missing, no notice showing, nothing unreadable, and nothing waiting in
// the outbox. So after a sync it shows that the device has everything the
// relay has and the relay everything the device wrote. (Two copies once
// disagreed on the outbox; every caller holds with it, so it is checked.)
func Clean(t testing.TB, who string, j *client.Journal) {
	t.Helper()
	st := Status(t, j)
	var unread []client.Notice
	for _, n := range st.Notices {
		if !n.Acknowledged {
			unread = append(unread, n)
		}
	}
	if len(st.Missing) != 0 || len(unread) != 0 || st.Unreadable != 0 || st.Outbox != 0 {
		t.Fatalf("%s's status is not clean: missing %+v, notices %+v, unreadable %d, outbox %d", who, st.Missing, unread, st.Unreadable, st.Outbox)
	}
}
