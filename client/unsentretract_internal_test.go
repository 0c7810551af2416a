package client

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// An entry written and retracted before it was ever sent goes out kept to
// its author's own slot, with its revision, and its retraction goes first:
// no bytes on the relay carry a slot for any other device. The partner
// holds its chain position and nothing it can open, sees the
// tombstone and the entry written after it, and nothing is counted as
// changed or waiting on either side, whether the partner synced before
// the purge (holding bytes it cannot open) or after.
func TestUnsentRetractionIsKeptToItsAuthor(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj, sj := pairedOn(t, relay)
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	x, err := aj.Write(Payload{Kind: KindEntry, Text: "raw words, never to be sent"})
	if err != nil {
		t.Fatal(err)
	}
	rev, _, err := aj.Revise(x.Short, Payload{Text: "raw words, revised, never sent either"})
	if err != nil {
		t.Fatal(err)
	}
	after, err := aj.Write(Payload{Kind: KindEntry, Text: "calmer now"})
	if err != nil {
		t.Fatal(err)
	}
	r, target, err := aj.Retract(x.Short)
	if err != nil || target.Synced {
		t.Fatalf("retract: %v, target synced %v", err, target != nil && target.Synced)
	}

	// What the relay stores, before the purge.
	c, err := aj.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ex := &exchange{j: aj, c: c}
	if n, err := ex.push(ctx); err != nil || n != 4 {
		t.Fatalf("push: %d, %v", n, err)
	}
	before, err := relay.Store().Read(ctx, aj.id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	own := crypto.KeyID(aj.acct.Device.BoxPublic)
	var order []string
	for _, b := range before {
		if b.Purged || protocol.Kind(b.Blob[1]) != protocol.KindEntry {
			continue
		}
		e, err := protocol.ParseEntry(b.Blob)
		if err != nil {
			t.Fatal(err)
		}
		id := protocol.ChainID(b.Blob).String()
		switch id {
		case x.ID, rev.ID:
			if len(e.Recipients) != 1 || e.Recipients[0].KeyID != own {
				t.Fatalf("the relay holds %s with %d slots, want alex's own only", id[:8], len(e.Recipients))
			}
		case after.ID, r.ID:
			if len(e.Recipients) < 2 {
				t.Fatalf("the relay holds %s with %d slots", id[:8], len(e.Recipients))
			}
		default:
			continue
		}
		order = append(order, id)
	}
	if strings.Join(order, " ") != strings.Join([]string{r.ID, x.ID, rev.ID, after.ID}, " ") {
		t.Fatalf("the relay stored %d of them, or not the retraction first", len(order))
	}
	// Sam syncs between the puts and the purge: Sam holds the entry and
	// its revision, and can open neither.
	if _, err := sj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	sam := crypto.KeyID(sj.acct.Device.BoxPublic)
	held := 0
	sj.withLock(func() error {
		for _, s := range sj.order {
			if s.Chain.String() != x.ID && s.Chain.String() != rev.ID {
				continue
			}
			held++
			e, err := protocol.ParseEntry(sj.raw(s))
			if err != nil {
				t.Fatal(err)
			}
			for _, rc := range e.Recipients {
				if rc.KeyID == sam {
					t.Fatalf("sam holds %s with a slot for sam", s.Chain.String()[:8])
				}
			}
			if sj.openedOf(s.Chain) != nil {
				t.Fatalf("sam opened %s", s.Chain.String()[:8])
			}
		}
		return nil
	})
	if held != 2 {
		t.Fatalf("sam holds %d of the two, want both (their chain positions)", held)
	}
	if err := ex.purgeRetracted(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	stored, err := relay.Store().Read(ctx, aj.id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	purged := 0
	for _, b := range stored {
		if b.Purged {
			purged++
		}
	}
	if purged != 2 {
		t.Fatalf("%d purged records, want 2", purged)
	}

	if _, err := sj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for who, j := range map[string]*Journal{"sam": sj, "alex": aj} {
		es, err := j.Entries()
		if err != nil {
			t.Fatal(err)
		}
		var tomb, calm bool
		for _, e := range es {
			if strings.Contains(e.Text, "raw words") || len(e.History) > 0 {
				t.Fatalf("%s is shown the retracted words", who)
			}
			tomb = tomb || (e.ID == x.ID && e.Retracted != nil) || (e.ID == r.ID && !e.Hidden)
			calm = calm || e.Text == "calmer now"
		}
		if !tomb || !calm {
			t.Fatalf("%s: tombstone %v, later entry %v", who, tomb, calm)
		}
		st, err := j.Status()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Missing) != 0 || st.Unreadable != 0 || st.Changed != 0 || st.Outbox != 0 || len(st.Notices) != 0 {
			t.Fatalf("%s's status: %+v", who, st)
		}
	}
	// Purging again is not attempted, and would change nothing.
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// Retract says an entry may have been sent when a push on this home has
// named it as on its way, or when one handed it to the relay and failed
// before the relay's ok came (the relay may hold it whole). Either way it goes
// out kept to this device from then on, and purge asks for both copies.
func TestRetractSaysMaybeSent(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj, sj := pairedOn(t, relay)
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	// Puts on their way in another process (the lock is the signal).
	x, err := aj.Write(Payload{Kind: KindEntry, Text: "written while a push was sending"})
	if err != nil {
		t.Fatal(err)
	}
	// Asked first, nothing is sending: the prompt would say not sent.
	if how, err := aj.RetractSending(&x); err != nil || how != NotSent {
		t.Fatalf("before a push: %v, %v", how, err)
	}
	hold, err := aj.holdSending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Then a push names it as on its way, as it does under the journal's
	// lock before its puts go out: Retract's rule says so, asked or done.
	if err := aj.withLock(func() error { return hold.handOver(aj, []string{x.ID}) }); err != nil {
		t.Fatal(err)
	}
	if how, err := aj.RetractSending(&x); err != nil || how != MaybeSent {
		t.Fatalf("while a push is sending: %v, %v", how, err)
	}
	_, target, err := aj.Retract(x.Short)
	hold.release()
	if err != nil || !target.Synced || target.Sending != MaybeSent {
		t.Fatalf("retract while sending: %v, %+v", err, target)
	}

	// Handed to the relay, and the push gave up before its ok.
	y, err := aj.Write(Payload{Kind: KindEntry, Text: "sent, and the ok never came"})
	if err != nil {
		t.Fatal(err)
	}
	// Handed to the relay, which stored it; the push gave up before its ok.
	pushWithoutOk(t, relay, aj, y.ID)
	if _, target, err = aj.Retract(y.Short); err != nil || target.Sending != MaybeSent {
		t.Fatalf("retract after a lost ok: %v, synced %v", err, target != nil && target.Synced)
	}
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	stored, err := relay.Store().Read(ctx, aj.id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range stored {
		if !b.Purged && (protocol.ChainID(b.Blob).String() == x.ID || protocol.ChainID(b.Blob).String() == y.ID) {
			t.Fatalf("the relay still serves a copy of %s", protocol.ChainID(b.Blob).String()[:8])
		}
	}
	purged := 0
	for _, b := range stored {
		if b.Purged {
			purged++
		}
	}
	// x kept (never whole); y whole (the lost ok) and kept.
	if purged != 3 {
		t.Fatalf("%d purged records, want 3", purged)
	}
	for who, j := range map[string]*Journal{"alex": aj, "sam": sj} {
		st, err := j.Status()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: notices %+v missing %+v unreadable %d changed %d", who, st.Notices, st.Missing, st.Unreadable, st.Changed)
	}
}

// rawOf returns the bytes j holds for chain id id, as written.
func rawOf(t *testing.T, j *Journal, id string) []byte {
	t.Helper()
	var raw []byte
	j.withLock(func() error {
		for _, s := range j.order {
			if s.Chain.String() == id {
				raw = j.raw(s)
				break
			}
		}
		return nil
	})
	if raw == nil {
		t.Fatalf("%s is not held", id[:8])
	}
	return raw
}

// pushWithoutOk pushes j's outbox on a context that is already over, so
// that the push fails before it records any ok, and waits until the relay
// has stored the entry with chain id id all the same: a put whose ok was
// lost.
func pushWithoutOk(t *testing.T, relay *servertest.Server, j *Journal, id string) {
	t.Helper()
	ctx := testCtx(t)
	c, err := j.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := (&exchange{j: j, c: c}).push(gone); err == nil {
		t.Fatal("a push whose oks never came succeeded")
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ok, err := relay.Store().HasBlob(ctx, j.id, protocol.IDOf(rawOf(t, j, id))); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the relay did not store the put within 30s")
		}
	}
}
