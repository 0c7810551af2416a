package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// The change feed ([server.ChangeFeed]) of a backend that several relays
// share: what one store appends or removes is reported to a watcher of
// another store on the same database.

// feedWait bounds the wait for a report: a failsafe, not a measurement.
const feedWait = 30 * time.Second

// recorder is a ChangeWatcher that keeps what it is told.
type recorder struct {
	watched []protocol.JournalID

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at each report
	heads   map[protocol.JournalID]uint64
	removed map[[32]byte]bool
	resyncs int
}

func newRecorder(watched ...protocol.JournalID) *recorder {
	return &recorder{watched: watched, changed: make(chan struct{}), heads: map[protocol.JournalID]uint64{}, removed: map[[32]byte]bool{}}
}

func (r *recorder) report(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn()
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) JournalGrew(j protocol.JournalID, seq uint64) {
	r.report(func() { r.heads[j] = max(r.heads[j], seq) })
}

func (r *recorder) DevicesRemoved(devices [][32]byte) {
	r.report(func() {
		for _, d := range devices {
			r.removed[d] = true
		}
	})
}

func (r *recorder) ResyncAll()                    { r.report(func() { r.resyncs++ }) }
func (r *recorder) Watched() []protocol.JournalID { return slices.Clone(r.watched) }

// await waits until ok holds of what r was told, failing t after feedWait.
func (r *recorder) await(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.After(feedWait)
	for {
		r.mu.Lock()
		done, ch := ok(), r.changed
		r.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("the change feed did not report %s", what)
		}
	}
}

func testChangeFeed(t *testing.T, b Backend) {
	if !b.SharedDatabase {
		t.Skipf("%s is not shared by several relays (Backend.SharedDatabase is false): it needs no change feed", b.Name)
	}
	db := b.NewDatabase(t)
	a, other := b.open(t, db), b.open(t, db)
	feed, ok := other.Store.(server.ChangeFeed)
	if !ok {
		t.Fatalf("%s is shared by several relays but has no change feed (server.ChangeFeed): a put on one relay would not reach subscribers on another", b.Name)
	}
	owner, laptop := newDevice(), newDevice()
	j := newJournalWith(t, a, owner)
	rec := newRecorder(j)
	wctx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	feed.WatchChanges(wctx, rec)

	// Each append is covered: by its journal's new head, or by a resync
	// reported after it was readable.
	for i := range 3 {
		r := rec.snapshot()
		seq, _, _, err := a.Append(ctx(t), j, blob(j, owner, fmt.Sprint("reported to the other store ", i)))
		if err != nil {
			t.Fatal(err)
		}
		rec.await(t, "an append made through another store", func() bool {
			return rec.heads[j] >= seq || rec.resyncs > r
		})
	}

	addDevice(t, a, j, owner, laptop)
	if err := a.RemoveDevice(ctx(t), j, owner, laptop); err != nil {
		t.Fatal(err)
	}
	rec.await(t, "a device removed through another store", func() bool { return rec.removed[laptop] })
}

// snapshot returns how many resyncs r was told of so far.
func (r *recorder) snapshot() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resyncs
}
