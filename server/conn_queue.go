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
	ready  chan struct{} // capacity 1; signalled when a frame is added
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
