package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrHomeOpen: the home directory can be entered by other users, so a
// socket in it would not be private.
var ErrHomeOpen = errors.New("the kintsugi home can be opened by other users")

// Listener is a bound agent socket, and the lock that makes its agent the
// only one in its home.
type Listener struct {
	ln   *net.UnixListener
	lock *os.File
	path string
	fi   fs.FileInfo // the socket as bound, to notice it being removed or replaced
	once sync.Once
}

// Listen takes the home's agent lock, waiting up to wait for an agent
// that is exiting, removes a stale socket, and listens on a new one with
// mode 0600. It returns [ErrRunning] when a live agent keeps the lock, and
// [ErrHomeOpen] when dir is not private to its owner.
func Listen(dir string, wait time.Duration) (*Listener, error) {
	path := SocketPath(dir)
	if len(path) > maxSocketPath {
		return nil, ErrPathTooLong
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o", ErrHomeOpen, dir, perm)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			lock.Close()
			return nil, fmt.Errorf("lock %s: %w", lock.Name(), err)
		}
		if time.Now().After(deadline) {
			lock.Close()
			return nil, ErrRunning
		}
		time.Sleep(20 * time.Millisecond)
	}
	// We hold the lock, so no agent is alive here: a socket left is stale.
	if err := removeSocket(path); err != nil {
		lock.Close()
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		lock.Close()
		return nil, err
	}
	// Close must not remove a socket that is no longer ours.
	ln.SetUnlinkOnClose(false)
	l := &Listener{ln: ln, lock: lock, path: path}
	// The home is 0700, so nobody else can reach the socket in the instant
	// before this chmod.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	if l.fi, err = os.Lstat(path); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// removeSocket removes path if it is a socket, and refuses to touch
// anything else.
func removeSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s is in the way of the unlocked session's socket and is not a socket; move it elsewhere", path)
	}
	return os.Remove(path)
}

// removeStale removes the socket of dir if no live agent holds the lock.
func removeStale(dir string) {
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer lock.Close()
	if unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return // a live agent, perhaps just starting
	}
	removeSocket(SocketPath(dir))
}

// stillOurs reports whether the socket path still names our socket.
func (l *Listener) stillOurs() bool {
	fi, err := os.Lstat(l.path)
	return err == nil && os.SameFile(fi, l.fi)
}

// unlink removes the socket if it is still ours, so no new client finds it.
func (l *Listener) unlink() {
	if l.fi != nil && l.stillOurs() {
		os.Remove(l.path)
	}
}

// Close removes the socket if it is still ours, stops listening and
// releases the lock. It is idempotent.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.unlink()
		l.ln.Close()
		unix.Flock(int(l.lock.Fd()), unix.LOCK_UN)
		l.lock.Close()
	})
	return nil
}

// Server serves one key until it is locked, its time runs out, its
// context ends, or its socket is removed or replaced.
type Server struct {
	// Key is the file key; Serve wipes it when it returns.
	Key *Secret
	// Expires is when the session ends.
	Expires time.Time
	// Now is the clock requests are checked against; nil means time.Now.
	Now func() time.Time
	// CheckEvery is how often Serve checks that its socket is still in
	// place; zero means 5 seconds.
	CheckEvery time.Duration
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Serve answers requests on l, one connection at a time, and closes l and
// wipes the key when the session ends. It returns nil when the session
// ended as sessions do.
func (s *Server) Serve(ctx context.Context, l *Listener) error {
	defer s.Key.Wipe()
	defer l.Close()
	if !s.now().Before(s.Expires) {
		return nil
	}
	every := s.CheckEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		// Ends Accept when the session should end.
		defer close(watched)
		timer := time.NewTimer(s.Expires.Sub(s.now()))
		defer timer.Stop()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
			case <-timer.C:
			case <-tick.C:
				if l.stillOurs() {
					continue
				}
			}
			l.ln.Close()
			return
		}
	}()
	defer func() {
		cancel()
		<-watched
	}()
	failures := 0
	for {
		c, err := l.ln.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			// Out of file descriptors and the like: wait, then try again,
			// but do not spin for ever.
			if failures++; failures > 100 {
				return err
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		failures = 0
		if !s.handle(c, l) {
			return nil
		}
	}
}

// handle answers one connection. It returns false when the session ends.
func (s *Server) handle(c *net.UnixConn, l *Listener) bool {
	defer c.Close()
	if checkPeer(c) != nil {
		return true
	}
	if !s.now().Before(s.Expires) {
		return false
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	var req [2]byte
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return true
	}
	if req[0] != Version {
		reply(c, statusBadVersion, nil)
		return true
	}
	switch req[1] {
	case opKey:
		reply(c, statusOK, s.Key.Bytes())
	case opStatus:
		var p [12]byte
		binary.BigEndian.PutUint64(p[:], uint64(s.Expires.UnixMilli()))
		binary.BigEndian.PutUint32(p[8:], uint32(os.Getpid()))
		reply(c, statusOK, p[:])
	case opLock:
		l.unlink()
		reply(c, statusOK, nil)
		return false
	default:
		reply(c, statusBadOp, nil)
	}
	return true
}

func reply(c *net.UnixConn, status byte, payload []byte) {
	b := make([]byte, 3+len(payload))
	b[0], b[1], b[2] = Version, status, byte(len(payload))
	copy(b[3:], payload)
	c.Write(b)
	clear(b)
}
