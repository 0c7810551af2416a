package client

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Is a watcher sending?
//
// A `sync --watch` pushes whatever any process on the home writes within
// a moment (it polls the outbox), so a `write` next to it should say so
// rather than "on the next sync". The signal is a lock, not a pid file:
// while a watcher is connected and caught up it holds a shared flock(2)
// on HOME/journals/ID/watching. The kernel drops the lock when the
// watcher's connection ends or its process dies, however it dies, so a
// crashed watcher never leaves a stale "watching" behind, and checking
// costs one open and one non-blocking lock attempt.

// watchingPath is the file a connected watcher holds a shared lock on.
func (j *Journal) watchingPath() string { return filepath.Join(j.dir, "watching") }

// holdWatching takes the shared lock that says a watcher is connected.
// The caller calls release when the connection ends.
func (j *Journal) holdWatching() (release func(), err error) {
	f, err := os.OpenFile(j.watchingPath(), os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing drops the lock
}

// Watched reports whether a `sync --watch` on this home is connected to
// the relay now, so that what is written here is sent within a moment.
// It is a hint for what to tell the person: the watcher may lose its
// connection right after; what is written stays in the outbox either way.
func (j *Journal) Watched() bool {
	f, err := os.Open(j.watchingPath())
	if err != nil {
		return false // no watcher has run here yet, or none can be known
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true
	}
	if err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
	}
	return false
}

// Is a push sending right now, or did one hand something over unheard?
//
// A push holds an exclusive flock(2) on HOME/journals/ID/sending while a
// window of puts is on its way: from choosing the bytes until the relay's
// acknowledgements are recorded (exchange.push), so that two pushes
// never name their windows over each other.
//
// Before a window's puts go out, the push also appends their chain ids
// (hex, one a line) to that file and fsyncs it: a push killed, or cut
// off, between handing puts to the relay and recording their oks leaves
// them named there, and Retract says such an entry may have been sent.
// An id there stops counting once the relay acknowledges it (its ok, or
// the blob arriving through a pull: the log records its position). The
// file is emptied when everything it names is acknowledged; it is never
// replaced (a rename would split the lock), only appended to or
// truncated, so a crash can leave at most a torn last line, of a window
// none of whose puts went out yet. It holds no words, only the ids the
// log holds too.

// sendingPath is the file a push holds while puts are on their way.
func (j *Journal) sendingPath() string { return filepath.Join(j.dir, "sending") }

// sendingHold is the sending lock, taken.
type sendingHold struct {
	f        *os.File
	leftover bool // the file names ids from before this window not yet acknowledged
}

// holdSending waits for the sending lock (until ctx ends) and takes it.
// The caller calls release once the window's acknowledgements are
// recorded.
func (j *Journal) holdSending(ctx context.Context) (*sendingHold, error) {
	f, err := os.OpenFile(j.sendingPath(), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &sendingHold{f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// release drops the lock.
func (h *sendingHold) release() { h.f.Close() }

// handOver durably names ids (chain ids, hex) as on their way, before
// their puts go out: one append and one fsync. What the file named before
// and the relay has acknowledged since is dropped first. Call with the
// journal's lock held.
func (h *sendingHold) handOver(j *Journal, ids []string) error {
	b, err := os.ReadFile(h.f.Name())
	if err != nil {
		return err
	}
	named, whole := sendingNames(b)
	h.leftover = false
	for id := range named {
		if j.mayHoldUnheard(id) {
			h.leftover = true
			break
		}
	}
	if !h.leftover {
		whole, named = 0, nil
	}
	if whole < len(b) { // a torn last line is cut, or all of it
		if err := h.f.Truncate(int64(whole)); err != nil {
			return err
		}
	}
	b = b[:0]
	for _, id := range ids {
		if !named[id] {
			b = append(append(b, id...), '\n')
		}
	}
	if _, err := h.f.Write(b); err != nil {
		return err
	}
	return h.f.Sync()
}

// heard is called once the window's acknowledgements are recorded, all
// of them (all true): with nothing left from before, the file is emptied.
// It need not be durable: an id still named there once acknowledged
// counts for nothing.
func (h *sendingHold) heard(all bool) {
	if all && !h.leftover {
		_ = h.f.Truncate(0)
	}
}

// sendingNames parses the sending file's bytes b: the chain ids it names,
// and how many bytes its whole lines take (a torn last line is left out:
// none of its puts went out).
func sendingNames(b []byte) (named map[string]bool, whole int) {
	named = make(map[string]bool)
	for rest := b; ; {
		line, after, ok := bytes.Cut(rest, []byte{'\n'})
		if !ok {
			break
		}
		named[string(line)] = true
		rest = after
	}
	return named, bytes.LastIndexByte(b, '\n') + 1
}

// mayHoldUnheard reports whether this device's blob with chain id id
// (hex) was handed to the relay by a push that never heard its ok, and
// no ok or pull has shown the relay holds it since. Call with the lock
// held.
func (j *Journal) mayHoldUnheard(id string) bool {
	s := j.chainOfHex(id)
	return s != nil && s.Local && s.RelaySeq == 0
}

// handedUnheard returns the chain ids (hex) a push handed to the relay
// without hearing its ok since. When it cannot tell, it returns ok false.
// Call with the lock held.
func (j *Journal) handedUnheard() (ids map[string]bool, ok bool) {
	b, err := os.ReadFile(j.sendingPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, true
	}
	if err != nil {
		return nil, false
	}
	named, _ := sendingNames(b)
	for id := range named {
		if !j.mayHoldUnheard(id) {
			delete(named, id)
		}
	}
	return named, true
}
