package client

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// A retracted entry's ciphertext is dropped by the relay: later readers get
// only a purged record, which they account for in the author's chain.
func TestRetractionPurgesTheRelay(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj, sj := pairedOn(t, relay)
	x, err := aj.Write(Payload{Kind: KindEntry, Text: "words I want to take back"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := aj.Revise(x.Short, Payload{Text: "second thoughts, also taken back"}); err != nil {
		t.Fatal(err)
	}
	aj.Write(Payload{Kind: KindEntry, Text: "and something after"})
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	var blobID protocol.BlobID
	aj.withLock(func() error {
		for _, s := range aj.order {
			if s.Chain.String() == x.ID {
				raw, blobID = bytes.Clone(aj.raw(s)), s.ID
			}
		}
		return nil
	})
	// Sam may not purge Alex's blob.
	c, err := dialRelay(ctx, sj.relay, sj.acct.keys, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.request(ctx, func(n uint64) any {
		return &protocol.Purge{Type: protocol.TypePurge, ID: n, Journal: sj.id, BlobID: blobID[:], ChainID: blobID[:]}
	})
	c.Close()
	if !errors.Is(err, protocol.ErrInvalid) {
		t.Fatalf("partner purging: %v", err)
	}

	if _, _, err := aj.Retract(x.Short); err != nil {
		t.Fatal(err)
	}
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	stored, err := relay.Store().Read(ctx, aj.id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	purged := 0
	for _, b := range stored {
		if bytes.Equal(b.Blob, raw) {
			t.Fatal("the relay still serves the retracted ciphertext")
		}
		if b.Purged {
			purged++
			h, chain, err := protocol.ParsePurged(b.Blob)
			if err != nil || h.Author != aj.acct.Device.SignKey() || chain.IsZero() {
				t.Fatalf("purged record: %v %v", h, err)
			}
		}
	}
	if purged != 2 {
		t.Fatalf("%d purged records, want 2 (the entry and its revision)", purged)
	}

	// Sam syncs only now: the retraction shows, nothing is missing, and the
	// ciphertext never reaches Sam's disk.
	if _, err := sj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	es, _ := sj.Entries()
	var found bool
	for _, e := range es {
		if e.Text == "words I want to take back" || e.Text == "second thoughts, also taken back" {
			t.Fatal("sam reads the retracted words")
		}
		if e.Text == "and something after" {
			found = true
		}
	}
	if !found {
		t.Fatal("sam lost the entry after the retracted one")
	}
	st, _ := sj.Status()
	if len(st.Missing) != 0 || st.Unreadable != 0 {
		t.Fatalf("sam's status after a purge: %+v", st)
	}
	needle := raw[len(raw)-64:]
	filepath.WalkDir(sj.acct.Home.Dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); bytes.Contains(b, needle) {
				t.Errorf("%s holds the retracted ciphertext", path)
			}
		}
		return nil
	})
	// Purging again is not attempted, and would change nothing.
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// A relay that serves a real, unretracted entry as "purged" to hide it is
// caught: no retraction names it, so it counts as missing.
func TestForgedPurgeIsReportedMissing(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj, sj := pairedOn(t, relay)
	hidden, _ := aj.Write(Payload{Kind: KindEntry, Text: "the relay would rather you did not see this"})
	aj.Write(Payload{Kind: KindEntry, Text: "later"})
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var id, chain protocol.BlobID
	aj.withLock(func() error {
		for _, s := range aj.order {
			if s.Chain.String() == hidden.ID {
				id, chain = s.ID, s.Chain
			}
		}
		return nil
	})
	// The relay's operator purges it behind the author's back.
	if _, err := relay.Store().Purge(ctx, aj.id, id, aj.acct.Device.SignKey(), chain); err != nil {
		t.Fatal(err)
	}
	if _, err := sj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ := sj.Status()
	if len(st.Missing) != 1 {
		t.Fatalf("a forged purge went unnoticed: %+v", st)
	}
}
