package client

import (
	"os"
	"testing"

	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// A write of the sending file cut short (disk full, or a power loss
// before its fsync) leaves a torn last line. The next push appends its
// window after it; the first id of that window must still be named, or a
// push cut off before its oks leaves that entry unnamed and retract says
// it was never sent while the relay may hold it whole.
func TestTornSendingLineDoesNotSwallowTheNextID(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj, _ := pairedOn(t, relay)
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	y, err := aj.Write(Payload{Kind: KindEntry, Text: "handed over after a torn write"})
	if err != nil {
		t.Fatal(err)
	}
	// What a cut-short append leaves: part of an id, no newline.
	if err := os.WriteFile(aj.sendingPath(), []byte(y.ID[:20]), 0o600); err != nil {
		t.Fatal(err)
	}
	// The next push names its window, and is then killed before any ok.
	hold, err := aj.holdSending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := aj.withLock(func() error { return hold.handOver(aj, []string{y.ID}) }); err != nil {
		t.Fatal(err)
	}
	hold.release()
	if how, err := aj.RetractSending(&y); err != nil || how != MaybeSent {
		b, _ := os.ReadFile(aj.sendingPath())
		t.Fatalf("handed over after a torn line: %v, %v; the file holds %q", how, err, b)
	}
}

// A put the relay keeps refusing (quota-exceeded, rate-limited) is handed
// over again by every push, and a watcher pushes every few seconds. The
// sending file must not grow with each attempt: an id already named
// needs naming once.
func TestSendingFileDoesNotGrowPerAttempt(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj, _ := pairedOn(t, relay)
	y, err := aj.Write(Payload{Kind: KindEntry, Text: "refused by a full relay"})
	if err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		fi, err := os.Stat(aj.sendingPath())
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	var first int64
	for i := range 10 {
		hold, err := aj.holdSending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := aj.withLock(func() error { return hold.handOver(aj, []string{y.ID}) }); err != nil {
			t.Fatal(err)
		}
		hold.heard(false) // refused: no ok
		hold.release()
		if i == 0 {
			first = size()
		}
	}
	if got := size(); got != first {
		t.Fatalf("after 10 refused pushes of one entry the sending file holds %d bytes, after one %d", got, first)
	}
}

// A push that holds the sending lock but has not yet chosen its window's
// bytes plans again after a retraction (ownSeq changed) and sends the
// entry kept; one that chose them named them in the sending file first.
// So while the lock is merely held, an entry not named there has not been
// handed to the relay, and retract need not say it may have reached the
// partner. (Documents a false "may have reached"; fails on main.)
func TestHeldLockAloneIsNotMaybeSent(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj, _ := pairedOn(t, relay)
	y, err := aj.Write(Payload{Kind: KindEntry, Text: "not on its way"})
	if err != nil {
		t.Fatal(err)
	}
	hold, err := aj.holdSending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.release()
	if how, err := aj.RetractSending(&y); err != nil || how != NotSent {
		t.Fatalf("with the lock held and nothing named: %v, %v", how, err)
	}
}
