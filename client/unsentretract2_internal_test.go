package client

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// A push cut right after the retraction (sent ahead of the
// entries it names) leaves the partner holding the retraction without its
// target and the entry written between. The partner must then see the
// tombstone, nothing changed or waiting, no sticky notice, and the gap
// must heal on the author's next sync.
func TestUnsentPushCutAfterItsRetractionHeals(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj, sj := pairedOn(t, relay)
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	x, err := aj.Write(Payload{Kind: KindEntry, Text: "raw words"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aj.Write(Payload{Kind: KindEntry, Text: "calmer now"}); err != nil {
		t.Fatal(err)
	}
	r, target, err := aj.Retract(x.Short)
	if err != nil || target.Synced {
		t.Fatalf("retract: %v", err)
	}
	// The first put of the push only: the retraction.
	var first *stored
	var raw []byte
	aj.withLock(func() error {
		out, _ := aj.unsentRetracted(aj.outbox())
		first, raw = out[0], aj.raw(out[0])
		return nil
	})
	if first.Chain.String() != r.ID {
		t.Fatalf("the push does not start with the retraction")
	}
	c, err := aj.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := c.request(ctx, func(id uint64) any {
		return &protocol.Put{Type: protocol.TypePut, ID: id, Journal: aj.id, Blob: raw}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := aj.withLock(func() error { return aj.appendRecords(record(recAcked, seqBytes(ok.Seq), first.ID[:])) }); err != nil {
		t.Fatal(err)
	}
	c.Close()

	if _, err := sj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := sj.Status()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sam meanwhile: missing %+v unreadable %d changed %d notices %+v", st.Missing, st.Unreadable, st.Changed, st.Notices)
	if st.Changed != 0 || st.Unreadable != 0 || len(st.Notices) != 0 {
		t.Fatalf("sam meanwhile: %+v", st)
	}
	es, _ := sj.Entries()
	tomb := false
	for _, e := range es {
		if strings.Contains(e.Text, "raw") {
			t.Fatal("sam reads the words")
		}
		tomb = tomb || (e.ID == r.ID && !e.Hidden)
	}
	if !tomb {
		t.Fatal("sam is not shown the tombstone meanwhile")
	}

	// Alex's own status meanwhile.
	ast, err := aj.Status()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("alex meanwhile: outbox %d missing %+v notices %+v", ast.Outbox, ast.Missing, ast.Notices)

	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for who, j := range map[string]*Journal{"alex": aj, "sam": sj} {
		st, err := j.Status()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Missing) != 0 || st.Unreadable != 0 || st.Changed != 0 || st.Outbox != 0 || len(st.Notices) != 0 {
			t.Fatalf("%s after the next syncs: %+v", who, st)
		}
	}
}

// An entry handed to the relay whose ok was lost, then retracted:
// the next push sends its kept copy, and a pull before the purge (an
// older relay without purge, a failed purge, a watcher) brings the whole
// copy back at its own position. The author's device must not say the
// relay replayed something.
func TestUnsentLostOkThenPullIsNoReplay(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj, _ := pairedOn(t, relay)
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	y, err := aj.Write(Payload{Kind: KindEntry, Text: "sent, and the ok never came"})
	if err != nil {
		t.Fatal(err)
	}
	// Handed to the relay, which stored it; the push gave up before its ok.
	pushWithoutOk(t, relay, aj, y.ID)
	if _, _, err := aj.Retract(y.Short); err != nil {
		t.Fatal(err)
	}
	c, err := aj.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	x := &exchange{j: aj, c: c}
	if _, err := x.push(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := x.pull(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := aj.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Notices {
		if n.Kind == NoticeRelayReplayed {
			t.Fatalf("alex is told the relay replayed something: %+v", st.Notices)
		}
	}
}

// The two copies of an entry its author device retracted (whole, and kept
// to its own slot) may stand at two positions on that device without a
// replay notice; nothing else may: the retraction itself, another entry
// of this device, or the kept copy of an entry it did not retract, at a
// new position, is still a replay.
func TestUnsentBothCopiesHideNoOtherReplay(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj, _ := pairedOn(t, relay)
	kept, err := aj.Write(Payload{Kind: KindEntry, Text: "still meant"})
	if err != nil {
		t.Fatal(err)
	}
	y, err := aj.Write(Payload{Kind: KindEntry, Text: "taken back"})
	if err != nil {
		t.Fatal(err)
	}
	r, target, err := aj.Retract(y.Short)
	if err != nil || target.Synced {
		t.Fatalf("retract: %v", err)
	}
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	keptOf := func(id string) []byte {
		k, err := protocol.KeepSlots(rawOf(t, aj, id), crypto.KeyID(aj.ownBox))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	seq := uint64(1000)
	replayed := func(blob []byte) bool {
		t.Helper()
		if unreadKind(mustStatus(t, aj), NoticeRelayReplayed) {
			if err := aj.Acknowledge(string(NoticeRelayReplayed)); err != nil {
				t.Fatal(err)
			}
		}
		seq++
		if _, err := aj.receive(&protocol.Blob{Journal: aj.id, Seq: seq, Blob: blob}); err != nil {
			t.Fatal(err)
		}
		st, err := aj.Status()
		if err != nil {
			t.Fatal(err)
		}
		return unreadKind(st, NoticeRelayReplayed)
	}
	if replayed(rawOf(t, aj, y.ID)) || replayed(keptOf(y.ID)) {
		t.Fatal("a copy of the retracted entry at a new position is called a replay")
	}
	if !replayed(rawOf(t, aj, kept.ID)) {
		t.Fatal("another entry of this device at a new position is not called a replay")
	}
	if !replayed(keptOf(kept.ID)) {
		t.Fatal("the kept copy of an entry not retracted, at a new position, is not called a replay")
	}
	if !replayed(rawOf(t, aj, r.ID)) {
		t.Fatal("the retraction at a new position is not called a replay")
	}
}

// A push killed between handing its puts to the relay and recording their
// oks leaves them named (the sending file, written before the puts): a
// later retract says the entry may have been sent, until a pull shows the
// relay holds it (then it was sent), and an ok recorded empties the file.
func TestUnsentKilledPushLeavesATrace(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj, _ := pairedOn(t, relay)
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	y, err := aj.Write(Payload{Kind: KindEntry, Text: "handed over, then the process died"})
	if err != nil {
		t.Fatal(err)
	}
	// What push does up to the put, and no further.
	hold, err := aj.holdSending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := aj.withLock(func() error { return hold.handOver(aj, []string{y.ID}) }); err != nil {
		t.Fatal(err)
	}
	c, err := aj.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.request(ctx, func(id uint64) any {
		return &protocol.Put{Type: protocol.TypePut, ID: id, Journal: aj.id, Blob: rawOf(t, aj, y.ID)}
	}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	hold.release() // killed: the kernel drops the lock, nothing is recorded

	if how, err := aj.RetractSending(&y); err != nil || how != MaybeSent {
		t.Fatalf("after a killed push: %v, %v", how, err)
	}
	// A pull shows the relay holds it: sent.
	c, err = aj.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := (&exchange{j: aj, c: c}).pull(ctx); err != nil {
		t.Fatal(err)
	}
	if how, err := aj.RetractSending(&y); err != nil || how != Sent {
		t.Fatalf("after a pull that brought it: %v, %v", how, err)
	}
	// The next push finds nothing left to name: the file is emptied.
	z, err := aj.Write(Payload{Kind: KindEntry, Text: "sent whole"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(aj.sendingPath()); err != nil || fi.Size() != 0 {
		t.Fatalf("the sending file after every ok: %v, %v", fi, err)
	}
	if how, err := aj.RetractSending(&z); err != nil || how != Sent {
		t.Fatalf("after its ok: %v, %v", how, err)
	}
}

// A push waiting for another process's window gives up when its context
// ends (Ctrl-C, a timeout) instead of waiting on the lock for ever.
func TestHoldSendingHonoursTheContext(t *testing.T) {
	t.Parallel()
	aj, _ := pairedOn(t, servertest.NewServer(t))
	hold, err := aj.holdSending(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer hold.release()
	// flock(2) locks belong to an open file: a second open conflicts,
	// in this process as in another.
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if _, err := aj.holdSending(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting with an ended context: %v", err)
	}
}

// The sent head is the newest acknowledged blob of this device's chain
// with every one below it held here acknowledged too: a push cut after a
// retraction sent ahead of the entries it names has not sent a whole
// chain up to the retraction.
func TestSentHeadNeedsEveryLowerSeqAcknowledged(t *testing.T) {
	t.Parallel()
	var me, other [32]byte
	me[0], other[0] = 1, 2
	blob := func(author [32]byte, seq, relaySeq uint64) *stored {
		s := &stored{Header: protocol.Header{Author: author, Seq: seq}, RelaySeq: relaySeq, Local: author == me}
		s.Chain[0], s.Chain[1] = byte(seq), author[0]
		return s
	}
	// Seq 1 sent; 2 and 3 (the retracted entry and one after it) not
	// yet; 4 (their retraction, sent first) acknowledged.
	order := []*stored{blob(me, 1, 5), blob(other, 1, 6), blob(me, 2, 0), blob(me, 3, 0), blob(me, 4, 7)}
	if seq, head := sentHeadOf(order, me); seq != 1 || head != order[0].Chain {
		t.Fatalf("cut after the retraction: head at seq %d, want 1", seq)
	}
	order[2].RelaySeq, order[3].RelaySeq = 8, 9
	if seq, head := sentHeadOf(order, me); seq != 4 || head != order[4].Chain {
		t.Fatalf("all sent: head at seq %d, want 4", seq)
	}
}

// Retract finds its target again under the lock: a revision another
// process wrote after the target was first found is named by the
// retraction too (else it would go out whole and stay readable), and a
// retraction written meanwhile is found.
func TestRetractNamesARevisionWrittenMeanwhile(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	aj, _ := pairedOn(t, relay)
	x, err := aj.Write(Payload{Kind: KindEntry, Text: "first words"})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := aj.ownTarget(x.Short)
	if err != nil {
		t.Fatal(err)
	}
	rev, _, err := aj.Revise(x.Short, Payload{Text: "second words, written meanwhile"})
	if err != nil {
		t.Fatal(err)
	}
	var now *Entry
	if err := aj.withLock(func() error { now, err = aj.refreshTarget(stale); return err }); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(now.Revisions, rev.ID) {
		t.Fatalf("the target found again names revisions %v, not %s", now.Revisions, rev.ID)
	}
	if _, _, err := aj.Retract(x.Short); err != nil {
		t.Fatal(err)
	}
	if err := aj.withLock(func() error { _, err := aj.refreshTarget(stale); return err }); !errors.Is(err, ErrRetracted) {
		t.Fatalf("a target retracted meanwhile: %v", err)
	}
}
