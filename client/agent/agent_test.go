package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testKey is a key an agent under test holds.
var testKey = [KeySize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

// home returns a private directory with a short path (socket paths are
// limited in length).
func home(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ka")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// serving is an agent running in a goroutine.
type serving struct {
	s    *Server
	done chan error
}

// serve starts an agent for testKey in dir. The test fails if it is still
// serving at the end.
func serve(t *testing.T, dir string, s *Server) *serving {
	t.Helper()
	l, err := Listen(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Key = NewSecret(KeySize)
	copy(s.Key.Bytes(), testKey[:])
	if s.Expires.IsZero() {
		s.Expires = time.Now().Add(time.Hour)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sv := &serving{s: s, done: make(chan error, 1)}
	go func() { sv.done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		<-sv.done
	})
	return sv
}

// ended waits (bounded) for the agent to end, and checks that it cleaned
// up: no socket left, key wiped.
func (sv *serving) ended(t *testing.T, dir string) {
	t.Helper()
	select {
	case err := <-sv.done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		sv.done <- err // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("the agent is still serving")
	}
	if _, err := os.Lstat(SocketPath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
	if sv.s.Key.Bytes() != nil {
		t.Fatal("the key was not wiped")
	}
}

func TestKeyStatusLock(t *testing.T) {
	dir := home(t)
	expires := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	sv := serve(t, dir, &Server{Expires: expires})
	ctx := ctxFor(t)

	fi, err := os.Lstat(SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}

	key, err := Key(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if *key != testKey {
		t.Fatalf("key %x, want %x", key, testKey)
	}
	info, err := Status(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Expires.Equal(expires) || info.PID != os.Getpid() {
		t.Fatalf("status %+v, want expiry %v and pid %d", info, expires, os.Getpid())
	}

	if err := Lock(ctx, dir); err != nil {
		t.Fatal(err)
	}
	// The socket is gone as soon as Lock returns.
	if _, err := os.Lstat(SocketPath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket still there after Lock: %v", err)
	}
	sv.ended(t, dir)
	if _, err := Key(ctx, dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("key after lock: %v", err)
	}
	if err := Lock(ctx, dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("second lock: %v", err)
	}
}

// TestExpiresOnItsClock moves the agent's clock past its expiry: the next
// request gets nothing and the agent ends.
func TestExpiresOnItsClock(t *testing.T) {
	dir := home(t)
	var mu sync.Mutex
	now := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	sv := serve(t, dir, &Server{Expires: now.Add(30 * time.Minute), Now: clock})
	ctx := ctxFor(t)
	if _, err := Key(ctx, dir); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(29 * time.Minute)
	mu.Unlock()
	if _, err := Key(ctx, dir); err != nil {
		t.Fatalf("a minute before expiry: %v", err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if k, err := Key(ctx, dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("at expiry: key %x, %v", k, err)
	}
	sv.ended(t, dir)
}

// TestExpiresByItself: with nobody asking, the agent ends when its time
// is up.
func TestExpiresByItself(t *testing.T) {
	dir := home(t)
	sv := serve(t, dir, &Server{Expires: time.Now().Add(100 * time.Millisecond)})
	sv.ended(t, dir)
}

func TestEndsWhenSocketRemoved(t *testing.T) {
	dir := home(t)
	sv := serve(t, dir, &Server{CheckEvery: 10 * time.Millisecond})
	if err := os.Remove(SocketPath(dir)); err != nil {
		t.Fatal(err)
	}
	sv.ended(t, dir)
}

func TestStaleSocket(t *testing.T) {
	dir := home(t)
	ctx := ctxFor(t)
	stale := func() {
		t.Helper()
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: SocketPath(dir), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close()
	}
	stale()
	if _, err := Key(ctx, dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("key from a stale socket: %v", err)
	}
	if _, err := Status(ctx, dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("status from a stale socket: %v", err)
	}
	// Lock removes the stale socket.
	if err := Lock(ctx, dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("lock on a stale socket: %v", err)
	}
	if _, err := os.Lstat(SocketPath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale socket left: %v", err)
	}
	// A new agent replaces a stale socket.
	stale()
	serve(t, dir, &Server{})
	if _, err := Key(ctx, dir); err != nil {
		t.Fatal(err)
	}
}

func TestOneAgentPerHome(t *testing.T) {
	dir := home(t)
	sv := serve(t, dir, &Server{})
	if _, err := Listen(dir, 0); !errors.Is(err, ErrRunning) {
		t.Fatalf("second agent: %v", err)
	}
	// The live agent's socket survived the attempt.
	ctx := ctxFor(t)
	if _, err := Key(ctx, dir); err != nil {
		t.Fatal(err)
	}
	// Once the first has gone, a new one may start.
	if err := Lock(ctx, dir); err != nil {
		t.Fatal(err)
	}
	sv.ended(t, dir)
	l, err := Listen(dir, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

func TestListenRefuses(t *testing.T) {
	t.Run("home open to others", func(t *testing.T) {
		dir := home(t)
		if err := os.Chmod(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(dir, 0); !errors.Is(err, ErrHomeOpen) {
			t.Fatalf("Listen: %v", err)
		}
	})
	t.Run("not a socket in the way", func(t *testing.T) {
		dir := home(t)
		if err := os.WriteFile(SocketPath(dir), []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(dir, 0); err == nil || !strings.Contains(err.Error(), "is not a socket") {
			t.Fatalf("Listen: %v", err)
		}
		if b, _ := os.ReadFile(SocketPath(dir)); string(b) != "mine" {
			t.Fatal("the file in the way was changed")
		}
	})
	t.Run("path too long", func(t *testing.T) {
		dir := filepath.Join(home(t), strings.Repeat("d", 100))
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(dir, 0); !errors.Is(err, ErrPathTooLong) {
			t.Fatalf("Listen: %v", err)
		}
		if _, err := Key(ctxFor(t), dir); !errors.Is(err, ErrPathTooLong) {
			t.Fatalf("Key: %v", err)
		}
	})
}

// TestWireErrors speaks the wire format by hand: a request of another
// version or an unknown op gets its status code, and the agent keeps
// serving.
func TestWireErrors(t *testing.T) {
	dir := home(t)
	serve(t, dir, &Server{})
	for _, tc := range []struct {
		req  []byte
		want []byte
	}{
		{[]byte{2, opKey}, []byte{Version, statusBadVersion, 0}},
		{[]byte{0, opKey}, []byte{Version, statusBadVersion, 0}},
		{[]byte{Version, 'z'}, []byte{Version, statusBadOp, 0}},
		{[]byte{Version, opKey}, append([]byte{Version, statusOK, KeySize}, testKey[:]...)},
	} {
		c, err := net.Dial("unix", SocketPath(dir))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(tc.req)
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != string(tc.want) {
			t.Fatalf("request %x: reply %x, %v; want %x", tc.req, got, err, tc.want)
		}
	}
	// The agent still serves.
	if _, err := Key(ctxFor(t), dir); err != nil {
		t.Fatal(err)
	}
}

// TestAllowPeer checks the peer-uid rule directly: another user cannot be
// made to connect in a test without root.
func TestAllowPeer(t *testing.T) {
	self := uint32(os.Getuid())
	if err := allowPeer(self, self); err != nil {
		t.Fatalf("own uid refused: %v", err)
	}
	for _, other := range []uint32{self + 1, self ^ 1, 0, 65534} {
		if other == self {
			continue
		}
		if err := allowPeer(other, self); !errors.Is(err, ErrOtherUser) {
			t.Fatalf("uid %d admitted by uid %d: %v", other, self, err)
		}
	}
}

// TestPeerUID: the kernel's record of who connected is this process's uid.
func TestPeerUID(t *testing.T) {
	a, b, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := checkPeer(a); err != nil {
		t.Fatalf("own process refused: %v", err)
	}
}

func socketPair() (*net.UnixConn, *net.UnixConn, error) {
	dir, err := os.MkdirTemp("", "kp")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	c, err := net.DialUnix("unix", nil, ln.Addr().(*net.UnixAddr))
	if err != nil {
		return nil, nil, err
	}
	s, err := ln.AcceptUnix()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, s, nil
}

func TestSecret(t *testing.T) {
	s := NewSecret(KeySize)
	b := s.Bytes()
	if len(b) != KeySize {
		t.Fatalf("len %d", len(b))
	}
	for _, x := range b {
		if x != 0 {
			t.Fatal("a new secret is not zero")
		}
	}
	copy(b, testKey[:])
	if string(s.Bytes()) != string(testKey[:]) {
		t.Fatal("the secret does not hold what was written")
	}
	s.Wipe()
	if s.Bytes() != nil {
		t.Fatal("Bytes after Wipe")
	}
	s.Wipe() // idempotent
}

func TestStartFailures(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	// An agent that exits without a word, one that reports another agent,
	// and one that reports a failure: Start says so, and leaves no process.
	for _, tc := range []struct {
		script string
		want   string
	}{
		{"exit 0", "did not start"},
		{`printf '\001' >&4`, ErrRunning.Error()},
		{`printf '\002no room here' >&4`, "no room here"},
	} {
		_, err := Start(sh, []string{"sh", "-c", tc.script}, nil, &testKey, time.Now().Add(time.Hour))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want %q", tc.script, err, tc.want)
		}
	}
}
