package server

import (
	"sync"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Pipelined puts.
//
// A client pushing its outbox sends many puts without waiting for each
// answer. Handled one at a time, each would wait for its own disk sync
// before the reader looked at the next. Instead the reader starts the
// append and reads on; an acker goroutine answers the puts in the order
// they came, each once it is durable. Appends started in order are stored
// in order, and puts waiting together share a group commit; the acker
// answers the puts a commit ended together in one acks frame.
//
// Before any other request the reader waits until every put before it is
// answered, so other requests see the connection's puts done, as if each
// put had been handled alone. The acker exists only while puts are
// pending, so an idle connection has none.

// Bounds on the puts one connection may have waiting for the disk: the
// client's window (client pushes 64 at a time), and bytes, so that a
// client pipelining large blobs holds a bounded amount of relay memory.
const (
	maxPendingPuts      = 64
	maxPendingPutsBytes = 4 << 20
)

// putPipe is a connection's puts waiting for their answer.
type putPipe struct {
	mu      sync.Mutex
	pending []*pendingPut // guarded by mu; in arrival order; nil when empty
	bytes   int           // guarded by mu; blob bytes in pending
	running bool          // guarded by mu; an acker goroutine is running
	changed chan struct{} // guarded by mu; closed when pending shrinks or the acker stops
}

type pendingPut struct {
	r      *request
	start  time.Time // when the reader took the put, for the ack latency metric
	p      *PendingAppend
	stored bool // guarded by putPipe.mu; its result is known, and the store counts it

	// The append's result, set by the acker once it is known.
	seq uint64
	id  protocol.BlobID
	dup bool
	err error
}

// changedLocked returns a channel closed at the next change.
func (pp *putPipe) changedLocked() <-chan struct{} {
	if pp.changed == nil {
		pp.changed = make(chan struct{})
	}
	return pp.changed
}

func (pp *putPipe) signalLocked() {
	if pp.changed != nil {
		close(pp.changed)
		pp.changed = nil
	}
}

// startPut starts r's append and queues it for the acker, first waiting
// while the connection is at its bound of pending puts.
func (c *conn) startPut(r *request, start time.Time) {
	pp := &c.puts
	pp.mu.Lock()
	for len(pp.pending) > 0 && (len(pp.pending) >= maxPendingPuts || pp.bytes+len(r.Blob) > maxPendingPutsBytes) {
		ch := pp.changedLocked()
		pp.mu.Unlock()
		<-ch // the acker always moves on: each append ends, with or without error
		pp.mu.Lock()
	}
	pp.bytes += len(r.Blob) // reserved before unlocking
	pp.mu.Unlock()
	// Started outside the lock: starting may wait for the store (while it
	// closes, say), and the acker must be free to move on meanwhile. Only
	// the reader starts puts, so they start in the order they are queued.
	pa := c.s.cfg.Store.StartAppend(c.ctx, r.Journal, r.Blob)
	pp.mu.Lock()
	pp.pending = append(pp.pending, &pendingPut{r: r, start: start, p: pa})
	spawn := !pp.running
	pp.running = true
	pp.mu.Unlock()
	if spawn {
		go c.ackLoop()
	}
}

// ackLoop answers pending puts in order until there are none. It waits
// for the oldest put's append, then answers it together with the puts
// right behind it whose appends have ended too (one group commit ends
// many at once): their acks share one frame.
func (c *conn) ackLoop() {
	pp := &c.puts
	for {
		pp.mu.Lock()
		if len(pp.pending) == 0 {
			pp.running = false
			pp.pending = nil
			pp.signalLocked()
			pp.mu.Unlock()
			return
		}
		next := pp.pending[0]
		pp.mu.Unlock()

		next.p.Wait()
		pp.mu.Lock()
		n := 1
		for n < len(pp.pending) && pp.pending[n].p.Ready() {
			n++
		}
		batch := pp.pending[:n:n] // startPut appends only past it
		// The store counts these blobs in their journals' usage from
		// now on: the quota must not count them again as waiting (an
		// answer may reach the client, and its next put, before the
		// put leaves the pipe).
		for _, p := range batch {
			p.stored = true
			p.seq, p.id, p.dup, p.err = p.p.Wait() // known: at once
		}
		// Puts with none behind them are answered on the spot when the
		// connection is idle; otherwise their answer is queued for the
		// writer, which sends acks queued together as one frame.
		alone := len(pp.pending) == n
		pp.mu.Unlock()
		c.answerPuts(batch, alone)

		pp.mu.Lock()
		for i, p := range batch {
			pp.bytes -= len(p.r.Blob)
			pp.pending[i] = nil
		}
		pp.pending = pp.pending[n:]
		pp.signalLocked()
		pp.mu.Unlock()
	}
}

// waitPuts waits until every pending put has been answered and the acker
// has stopped.
func (c *conn) waitPuts() {
	pp := &c.puts
	pp.mu.Lock()
	for pp.running {
		ch := pp.changedLocked()
		pp.mu.Unlock()
		<-ch
		pp.mu.Lock()
	}
	pp.mu.Unlock()
}

// pendingBytes returns the blob bytes of j's puts on this connection that
// wait for the disk: they are not in the store's usage count yet, and the
// journal quota must see them (see checkPutLimits).
func (c *conn) pendingBytes(j protocol.JournalID) int64 {
	pp := &c.puts
	pp.mu.Lock()
	defer pp.mu.Unlock()
	var n int64
	for _, p := range pp.pending {
		if p.r.Journal == j && !p.stored {
			n += int64(len(p.r.Blob))
		}
	}
	return n
}

// putsIdle reports whether no put waits for its answer, and returns a
// channel closed at the next change of the pipe. A put's answer is
// written or queued before the put leaves the pipe.
func (c *conn) putsIdle() (bool, <-chan struct{}) {
	pp := &c.puts
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if !pp.running {
		return true, nil
	}
	return false, pp.changedLocked()
}
