package client

import (
	"errors"
	"os"
	"path/filepath"

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

// Is a push sending right now?
//
// A push holds an exclusive flock(2) on HOME/journals/ID/sending while a
// window of puts is on its way: from choosing the bytes until the relay's
// acknowledgements are recorded (exchange.push). Retract tries the lock
// without waiting: held, an entry not yet acknowledged may be on its way.

// sendingPath is the file a push holds while puts are on their way.
func (j *Journal) sendingPath() string { return filepath.Join(j.dir, "sending") }

// holdSending waits for, and takes, the sending lock. The caller calls
// release once the window's acknowledgements are recorded.
func (j *Journal) holdSending() (release func(), err error) {
	f, err := os.OpenFile(j.sendingPath(), os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing drops the lock
}

// sendingNow reports whether a push on this home (any process) has puts
// on their way now. When it cannot tell, it says so: true.
func (j *Journal) sendingNow() bool {
	f, err := os.OpenFile(j.sendingPath(), os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return true
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil
}
