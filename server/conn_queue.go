package server

import (
	"context"
	"sync"
)

// sendQueue is a connection's send queue: the messages waiting for its
// writer, in order. Its buffer is allocated as messages arrive and dropped
// once the writer has emptied it, so the queue of an idle connection takes
// no memory (a channel of Config.SendQueue frames would hold 12 KB per
// connection whether or not anything is ever queued).
type sendQueue struct {
	mu     sync.Mutex
	frames []frame       // guarded by mu; the front ones are being written (writeRun) or next
	space  chan struct{} // guarded by mu; closed when a frame leaves; nil until someone waits
	ready  chan struct{} // capacity 1; signalled when a frame is added, and when an announcer gives back the write token with work left

	// writing is the connection's write token: set while a goroutine
	// writes messages to the connection, the writer (claim) or an
	// announcer writing a push itself (claimIdle). Guarded by mu.
	writing bool
}

func (q *sendQueue) init() { q.ready = make(chan struct{}, 1) }

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
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
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
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
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

// claim takes the write token for the writer and reports whether it did.
// If an announcer holds it, it signals ready when it gives it back with
// work left (see releaseDirect), and the writer tries again.
func (q *sendQueue) claim() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.writing {
		return false
	}
	q.writing = true
	return true
}

// claimIdle takes the write token if nothing is queued and nobody writes,
// and reports whether it did.
func (q *sendQueue) claimIdle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.writing || len(q.frames) > 0 {
		return false
	}
	q.writing = true
	return true
}

// releaseIfEmpty gives the write token back if nothing is queued and
// reports whether it did. The writer calls it once it has written
// everything, so that a frame queued meanwhile is not left behind.
func (q *sendQueue) releaseIfEmpty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.frames) > 0 {
		return false
	}
	q.writing = false
	return true
}

// release gives the write token back.
func (q *sendQueue) release() {
	q.mu.Lock()
	q.writing = false
	q.mu.Unlock()
}

// releaseDirect gives back the write token an announcer took with
// claimIdle, first queueing f if it is not nil (it was not written), and
// signals ready when the writer has work: something queued, the rest of
// a frame to write (partial), or the end of the connection (ctx), for
// which the writer may be waiting for the token. ctx is looked at under
// the lock, after any claim that failed because the announcer held it.
func (q *sendQueue) releaseDirect(f *frame, partial bool, ctx context.Context) {
	q.mu.Lock()
	if f != nil {
		q.frames = append(q.frames, *f)
	}
	q.writing = false
	wake := partial || len(q.frames) > 0 || ctx.Err() != nil
	q.mu.Unlock()
	if wake {
		q.signal()
	}
}

// signal wakes the writer.
func (q *sendQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}
