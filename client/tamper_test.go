package client

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

func pairedJournals(t *testing.T) (aj, sj *Journal) {
	t.Helper()
	return pairedOn(t, servertest.NewServer(t))
}

// pairedOn pairs two fresh accounts through relay, and lets the inviter
// learn of the join.
func pairedOn(t *testing.T, relay *servertest.Server) (aj, sj *Journal) {
	t.Helper()
	ctx := testCtx(t)
	aj, err := testAccount(t, "alex").CreateJournal(ctx, relay.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := aj.Invite(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	sj, err = testAccount(t, "sam").Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { aj.Close(); sj.Close() })
	return aj, sj
}

func entryTexts(t *testing.T, j *Journal) []string {
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

// putRaw stores a blob on the relay as j's device, bypassing the outbox.
func putRaw(t *testing.T, j *Journal, blob []byte) error {
	t.Helper()
	c, err := dialRelay(context.Background(), j.relay, j.acct.keys, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.request(context.Background(), func(n uint64) any {
		return &protocol.Put{Type: protocol.TypePut, ID: n, Journal: j.id, Blob: blob}
	})
	return err
}

func TestTamperedBlobChangesNothing(t *testing.T) {
	t.Parallel()
	aj, sj := pairedJournals(t)
	ctx := context.Background()
	e, err := sj.Write(Payload{Kind: KindEntry, Text: "real words"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	before := entryTexts(t, aj)

	var raw []byte
	sj.withLock(func() error {
		for _, s := range sj.order {
			if s.Chain.String() == e.ID {
				raw = bytes.Clone(sj.raw(s))
			}
		}
		return nil
	})
	tampered := bytes.Clone(raw)
	tampered[len(tampered)-3] ^= 0x20
	if err := putRaw(t, sj, tampered); err != nil {
		t.Fatalf("relay refused a well-formed blob: %v", err)
	}
	// Replaying the genuine blob is idempotent at the relay.
	if err := putRaw(t, sj, raw); err != nil {
		t.Fatal(err)
	}
	r, err := aj.Sync(ctx)
	if err != nil {
		t.Fatalf("sync after tampering: %v", err)
	}
	if len(r.New) != 0 {
		t.Fatalf("tampered blob surfaced as an entry: %+v", r.New)
	}
	after := entryTexts(t, aj)
	if len(after) != len(before) || after[len(after)-1] != "real words" {
		t.Fatalf("entries changed: %q -> %q", before, after)
	}
	st, _ := aj.Status()
	// It carries a slot for this device that does not open to it: it
	// was changed on the way, and is named so, not as not readable yet.
	if st.Changed != 1 || st.Unreadable != 0 {
		t.Fatalf("status: changed %d, unreadable %d; want 1 changed", st.Changed, st.Unreadable)
	}
	if got := unread(st); len(got) != 1 || got[0].Kind != NoticeRelayChanged || got[0].Count != 1 {
		t.Fatalf("notices: %+v", got)
	}
	// The forgery copies the header of Sam's real entry, but it does not
	// authenticate, so it must not raise a false fork or gap.
	if len(st.Missing) != 0 {
		t.Fatalf("an unauthenticated forgery raised %v", st.Missing)
	}
}

func TestRelayMisbehaviourOnReceive(t *testing.T) {
	t.Parallel()
	aj, sj := pairedJournals(t)
	ctx := context.Background()
	if _, err := sj.Write(Payload{Kind: KindEntry, Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	sj.Sync(ctx)
	aj.Sync(ctx)
	before := entryTexts(t, aj)

	var good []byte
	var goodSeq uint64
	aj.withLock(func() error {
		for _, s := range aj.order {
			if s.Header.Kind == protocol.KindEntry {
				good, goodSeq = bytes.Clone(aj.raw(s)), s.RelaySeq
			}
		}
		return nil
	})
	var other protocol.JournalID
	other[0] = 1
	if _, err := aj.receive(&protocol.Blob{Journal: other, Seq: 99, Blob: good}); !errors.Is(err, ErrRelayMisbehaved) {
		t.Fatalf("blob for another journal: %v", err)
	}
	// A blob whose header names another journal is set aside with a warning.
	moved := bytes.Clone(good)
	moved[2] ^= 1
	if n, err := aj.receive(&protocol.Blob{Journal: aj.id, Seq: 100, Blob: moved}); err != nil || n != 0 {
		t.Fatalf("moved blob: new=%d err=%v", n, err)
	}
	// Truncated.
	if n, err := aj.receive(&protocol.Blob{Journal: aj.id, Seq: 101, Blob: good[:50]}); err != nil || n != 0 {
		t.Fatalf("truncated blob: new=%d err=%v", n, err)
	}
	// Replayed at an old position, and at a new one.
	if n, err := aj.receive(&protocol.Blob{Journal: aj.id, Seq: goodSeq, Blob: good}); err != nil || n != 0 {
		t.Fatalf("replayed blob: new=%d err=%v", n, err)
	}
	if n, err := aj.receive(&protocol.Blob{Journal: aj.id, Seq: 102, Blob: good}); err != nil || n != 0 {
		t.Fatalf("replayed blob at a new position: new=%d err=%v", n, err)
	}
	after := entryTexts(t, aj)
	if len(after) != len(before) {
		t.Fatalf("entries changed: %q -> %q", before, after)
	}
	st, _ := aj.Status()
	// The moved and the truncated blob: one notice, counted twice; the
	// replay at a new position: one of its own.
	if got := unread(st); len(got) != 2 || got[0].Kind != NoticeRelayBadItem || got[0].Count != 2 || got[0].Position != 101 ||
		got[1].Kind != NoticeRelayReplayed || got[1].Count != 1 || got[1].Position != 102 {
		t.Fatalf("blobs set aside were not recorded as two notices: %+v", got)
	}
}

// A torn record at the end of the log (a crash mid-append) is cut off and
// everything before it survives.
func TestTornLogTail(t *testing.T) {
	t.Parallel()
	aj, _ := pairedJournals(t)
	if _, err := aj.Write(Payload{Kind: KindEntry, Text: "kept"}); err != nil {
		t.Fatal(err)
	}
	rec := record(recWritten, []byte("partial"))
	if _, err := aj.log.WriteAt(rec[:len(rec)-2], aj.offset); err != nil {
		t.Fatal(err)
	}
	j2, err := aj.acct.OpenJournal(aj.id)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if got := entryTexts(t, j2); len(got) != 1 || got[0] != "kept" {
		t.Fatalf("after a torn tail: %q", got)
	}
	if _, err := j2.Write(Payload{Kind: KindEntry, Text: "and more"}); err != nil {
		t.Fatal(err)
	}
	if got := entryTexts(t, aj); len(got) != 2 {
		t.Fatalf("first process sees %q", got)
	}
}

// TestSendErrorNamesEntry: when the relay refuses to store an entry (here
// the journal is over its quota), the error names the entry by the id
// the person knows it by (its chain id, as log and show print it), not
// by the blob id the relay deduplicates by.
func TestSendErrorNamesEntry(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServerWithConfig(t, server.Config{JournalQuota: 16 << 10})
	aj, _ := pairedOn(t, relay)
	e, err := aj.Write(Payload{Kind: KindEntry, Text: strings.Repeat("too much to keep ", 2000)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = aj.Sync(testCtx(t))
	if err == nil {
		t.Fatal("sync of an entry over the journal's quota succeeded")
	}
	if !strings.Contains(err.Error(), "send "+e.Short+":") {
		t.Fatalf("sync error %q does not name entry %s", err, e.Short)
	}
	s := aj.chainOfHex(e.ID)
	if s == nil || s.ID == s.Chain {
		t.Fatal("the entry's blob id and chain id should differ for this test to mean anything")
	}
}
