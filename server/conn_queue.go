package server

import "sync"

// sendQueue is a connection's send queue: the messages waiting for its
// writer, in order. Its buffer is allocated as messages arrive and dropped
// once the writer has emptied it, so the queue of an idle connection takes
// no memory (a channel of Config.SendQueue frames would hold 12 KB per
// connection whether or not anything is ever queued).
type sendQueue struct {
	mu     sync.Mutex
	frames []frame       // guarded by mu; the front ones are being written (writeRun) or next
	space  chan struct{} // guarded by mu; closed when a frame leaves; nil until someone waits
	ready  chan struct{} // capacity 1; signalled when a frame is added while the writer runs

	// writing is the connection's write token: set while a goroutine
	// may write messages to the connection, the writer goroutine or a
	// goroutine writing a push, a ping or a put's answer itself
	// (claimIdle). There is a
	// writer goroutine only while there is something to write: whoever
	// gives work to a connection whose token is free takes the token and
	// starts one (start); whoever holds the token gives it back only
	// when there is no work left, under mu, so no work is left behind.
	// Work is a queued frame, a ping due, the rest of a frame partly
	// written, or the end of the connection.
	writing bool
	pingDue bool        // guarded by mu: a ping is to be written
	start   func()      // static: starts a writer goroutine, which holds the token
	ended   func() bool // static: whether the connection is ending (its context is canceled)
}

// init sets the queue up: start starts a writer goroutine for it, and
// ended reports whether the connection is ending.
func (q *sendQueue) init(start func(), ended func() bool) {
	q.ready = make(chan struct{}, 1)
	q.start, q.ended = start, ended
}

// wakeLocked makes sure a writer will look at the queue after the caller
// unlocks mu, and reports whether the caller must start one (it has taken
// the token for it).
func (q *sendQueue) wakeLocked() (start bool) {
	if q.writing {
		return false
	}
	q.writing = true
	return true
}

// wake starts a writer, or signals the running one.
func (q *sendQueue) wake() {
	q.mu.Lock()
	start := q.wakeLocked()
	q.mu.Unlock()
	q.started(start)
}

// started starts a writer if start, or else signals the one running.
func (q *sendQueue) started(start bool) {
	if start {
		q.start()
		return
	}
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// push adds f if fewer than limit frames are queued. Otherwise it returns
// false and a channel that is closed once a frame has left the queue.
func (q *sendQueue) push(f frame, limit int) (bool, <-chan struct{}) {
	q.mu.Lock()
	if len(q.frames) >= limit {
		ch := q.spaceLocked()
		q.mu.Unlock()
		return false, ch
	}
	q.frames = append(q.frames, f)
	start := q.wakeLocked()
	q.mu.Unlock()
	q.started(start)
	return true, nil
}

// pushIfRoom adds f if fewer than limit frames are queued, calling added
// first (under the queue's lock, so before the writer can see f), and
// reports whether it did.
func (q *sendQueue) pushIfRoom(f frame, limit int, added func()) bool {
	q.mu.Lock()
	if len(q.frames) >= limit {
		q.mu.Unlock()
		return false
	}
	added()
	q.frames = append(q.frames, f)
	start := q.wakeLocked()
	q.mu.Unlock()
	q.started(start)
	return true
}

// left returns a channel that is closed once a frame has left the queue.
func (q *sendQueue) left() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.spaceLocked()
}

func (q *sendQueue) spaceLocked() chan struct{} {
	if q.space == nil {
		q.space = make(chan struct{})
	}
	return q.space
}

// frontRun appends to run the front frame, followed by the frames right
// behind it that merge with it into one frame of at most limit bytes (see
// mergeKey); nothing when the queue is empty. The frames stay queued
// until popN.
func (q *sendQueue) frontRun(run []frame, limit int) []frame {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.frames) == 0 {
		return run
	}
	first := &q.frames[0]
	run = append(run, *first)
	if header, ok := mergeKey(first); ok {
		size := len(first.data)
		for i := 1; i < len(q.frames); i++ {
			next := &q.frames[i]
			if !mergesWith(first, next, header) || size+len(next.data)-header > limit {
				break
			}
			size += len(next.data) - header
			run = append(run, *next)
		}
	}
	return run
}

// pop removes the front frame and wakes whoever waits for space.
func (q *sendQueue) pop() { q.popN(1) }

// popN removes the n frames at the front and wakes whoever waits for
// space.
func (q *sendQueue) popN(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.frames[:n])
	q.frames = q.frames[n:]
	if len(q.frames) == 0 {
		q.frames = nil // let the buffer go
	}
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
}

// len returns the number of queued frames.
func (q *sendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.frames)
}

// claimIdle takes the write token if nothing is queued and nobody writes,
// and reports whether it did. The caller writes, without waiting, and
// gives the token back with releaseDirect.
func (q *sendQueue) claimIdle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.writing || len(q.frames) > 0 {
		return false
	}
	q.writing = true
	return true
}

// releaseDirect gives back the token an announcer took with claimIdle,
// first queueing f if it is not nil (it was not written) and noting a
// ping due if ping (it was not written). If there is work, the token
// goes to a new writer instead: partial says the socket took only part
// of a frame.
func (q *sendQueue) releaseDirect(f *frame, ping, partial bool) {
	q.mu.Lock()
	if f != nil {
		q.frames = append(q.frames, *f)
	}
	q.pingDue = q.pingDue || ping
	start := partial || q.pingDue || len(q.frames) > 0 || q.ended()
	q.writing = start
	q.mu.Unlock()
	if start {
		q.start()
	}
}

// releaseIdle gives the writer's token back and reports true, if there is
// no work; the writer goroutine then ends. The writer has flushed
// everything it wrote.
func (q *sendQueue) releaseIdle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pingDue || len(q.frames) > 0 || q.ended() {
		return false
	}
	q.writing = false
	return true
}

// notePing notes that a ping is due and makes sure a writer writes it.
func (q *sendQueue) notePing() {
	q.mu.Lock()
	q.pingDue = true
	start := q.wakeLocked()
	q.mu.Unlock()
	q.started(start)
}

// takePing reports whether a ping is due, and clears it.
func (q *sendQueue) takePing() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	due := q.pingDue
	q.pingDue = false
	return due
}
