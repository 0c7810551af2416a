package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// Tests of pings and timeouts run the relay inside a synctest bubble,
// over in-memory connections (net.Pipe), so that minutes of pings pass in
// virtual time, at once and exactly: goroutines blocked on a pipe, a
// bubbled channel or timer are durably blocked, and the bubble's clock
// jumps to the next timer. Nothing here touches the network or a store.

// noStore is a Store for relays that never reach their store: any call
// panics, so a test that does fails loudly.
type noStore struct{ server.Store }

// pipeListener is a net.Listener whose connections are net.Pipe pairs,
// made by dial.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial is a websocket.Dialer's NetDialContext: the client's end of a new
// pipe whose other end the listener accepts.
func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, relay := net.Pipe()
	select {
	case l.conns <- relay:
		return newSockConn(client), nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// sockConn is the client's end of a pipe with a receive buffer, as a
// socket has: a pipe's write waits for the other end to read, so without
// it a client that reads nothing would block the relay's pings, which a
// socket's buffers absorb.
type sockConn struct {
	net.Conn             // the pipe's end; writes go straight to it
	in       chan []byte // what the relay wrote, filled by fill; closed at the end
	rest     []byte      // the part of a chunk not read yet; owned by Read
	mu       sync.Mutex  // guards deadline
	deadline time.Time   // read deadline
}

func newSockConn(c net.Conn) *sockConn {
	s := &sockConn{Conn: c, in: make(chan []byte, 1024)}
	go s.fill()
	return s
}

func (s *sockConn) fill() {
	defer close(s.in)
	for {
		b := make([]byte, 4096)
		n, err := s.Conn.Read(b)
		if n > 0 {
			s.in <- b[:n]
		}
		if err != nil {
			return
		}
	}
}

func (s *sockConn) Read(b []byte) (int, error) {
	if len(s.rest) == 0 {
		s.mu.Lock()
		d := s.deadline
		s.mu.Unlock()
		var timeout <-chan time.Time
		if !d.IsZero() {
			t := time.NewTimer(time.Until(d))
			defer t.Stop()
			timeout = t.C
		}
		select {
		case p, ok := <-s.in:
			if !ok {
				return 0, io.EOF
			}
			s.rest = p
		case <-timeout:
			return 0, os.ErrDeadlineExceeded
		}
	}
	n := copy(b, s.rest)
	s.rest = s.rest[n:]
	return n, nil
}

func (s *sockConn) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadline = t
	return nil
}

func (s *sockConn) SetDeadline(t time.Time) error {
	_ = s.SetReadDeadline(t)
	return s.Conn.SetWriteDeadline(t)
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// bubbleRelay is a relay served over a pipeListener inside the current
// bubble. It is stopped by the test's cleanup, inside the bubble.
type bubbleRelay struct {
	ln    *pipeListener
	logs  *logRecorder
	relay *server.Server
}

func newBubbleRelay(t *testing.T, cfg server.Config) *bubbleRelay {
	t.Helper()
	logs := &logRecorder{}
	cfg.Store, cfg.RelayID, cfg.JournalQuota, cfg.Logger = noStore{}, "bubble", -1, slog.New(logs)
	relay, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln := newPipeListener()
	hs := &http.Server{Handler: relay}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		if err := relay.Close(context.Background()); err != nil {
			t.Errorf("close relay: %v", err)
		}
		_ = hs.Close()
	})
	return &bubbleRelay{ln: ln, logs: logs, relay: relay}
}

const bubbleURL = "ws://relay.test" + protocol.Path

// dialRaw connects without authenticating.
func (b *bubbleRelay) dialRaw(t *testing.T) *servertest.Client {
	t.Helper()
	return servertest.DialRawWith(t, &websocket.Dialer{NetDialContext: b.ln.dial}, bubbleURL, nil)
}

// dial connects and authenticates a fresh device.
func (b *bubbleRelay) dial(t *testing.T) *servertest.Client {
	t.Helper()
	c := b.dialRaw(t)
	if err := c.Authenticate(servertest.NewKey(t)); err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return c
}

// closed returns the reasons logged for connections that ended.
func (b *bubbleRelay) closed() []string {
	return slices.Concat(b.logs.reasons("connection closed"), b.logs.reasons("connection closed before authenticating"))
}

// A connection that answers the relay's pings stays open however long it
// sends nothing else, and is still served.
func TestIdleConnectionAnsweringPingsStaysOpen(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newBubbleRelay(t, server.Config{PingInterval: 30 * time.Second})
		c := r.dial(t)
		frames := make(chan []byte)
		go func() {
			defer close(frames)
			for {
				_, data, err := c.WS.ReadMessage() // answers pings meanwhile
				if err != nil {
					return
				}
				frames <- data
			}
		}()
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := r.closed(); len(got) != 0 {
			t.Fatalf("connections closed: %q", got)
		}
		c.SendFrame([]byte(`{"type":"teleport","id":7}`))
		data, ok := <-frames
		if !ok {
			t.Fatal("the relay closed a connection that answered its pings")
		}
		if env, _ := protocol.Decode(data); env.Type != protocol.TypeError || env.ID != 7 {
			t.Fatalf("after an hour of pings the relay answered %s", data)
		}
	})
}

// Every connection is pinged every PingInterval, the first time one
// interval after it opened (less at most a sixteenth of it: connections
// share one timer wheel), and between pings no writer goroutine runs.
func TestPingsEveryIntervalFromOneTimer(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const interval = 30 * time.Second
		r := newBubbleRelay(t, server.Config{PingInterval: interval})
		var mu sync.Mutex
		pings := make([][]time.Time, 3)
		opened := make([]time.Time, 3)
		for i := range pings {
			time.Sleep(time.Duration(i) * 7 * time.Second) // at 0, 7 s and 21 s
			c := r.dial(t)
			opened[i] = time.Now()
			c.WS.SetPingHandler(func(data string) error {
				mu.Lock()
				pings[i] = append(pings[i], time.Now())
				mu.Unlock()
				return c.WS.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
			})
			go func() {
				for {
					if _, _, err := c.WS.ReadMessage(); err != nil {
						return
					}
				}
			}()
		}
		time.Sleep(5 * interval)
		synctest.Wait()
		if n := server.WritersRunning(r.relay); n != 0 {
			t.Errorf("%d writer goroutines run between pings", n)
		}
		mu.Lock()
		defer mu.Unlock()
		for i, p := range pings {
			if len(p) < 4 {
				t.Fatalf("connection %d got %d pings in 5 intervals", i, len(p))
			}
			if first := p[0].Sub(opened[i]); first > interval || first <= interval-interval/16 {
				t.Errorf("connection %d got its first ping %s after opening, want within %s before %s", i, first, interval/16, interval)
			}
			for k := 1; k < len(p); k++ {
				if d := p[k].Sub(p[k-1]); d != interval {
					t.Errorf("connection %d: pings %d and %d %s apart, want %s", i, k-1, k, d, interval)
				}
			}
		}
		if got := r.closed(); len(got) != 0 {
			t.Fatalf("connections closed: %q", got)
		}
	})
}

// A connection that answers no pings is closed two ping intervals after
// its last sign of life, not before, and the log says why; one that sends
// only pings of its own is closed the same way, and the log says that.
func TestSilentPeerIsClosedAfterTwoIntervals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		pings  bool
		reason string
	}{
		{"silent", false, "client sent nothing, not even a pong, for two ping intervals"},
		{"pings only", true, "client sent only pings (6) and answered none of the relay's for two ping intervals"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const interval = 30 * time.Second
				r := newBubbleRelay(t, server.Config{PingInterval: interval})
				c := r.dial(t) // then reads nothing, so answers no ping
				if tc.pings {
					go func() {
						for range 6 {
							if c.WS.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)) != nil {
								return
							}
							time.Sleep(interval / 3)
						}
					}()
				}
				time.Sleep(2*interval - time.Second)
				synctest.Wait()
				if got := r.closed(); len(got) != 0 {
					t.Fatalf("closed before two intervals: %q", got)
				}
				time.Sleep(2 * time.Second)
				synctest.Wait()
				if got := r.closed(); len(got) != 1 || got[0] != tc.reason {
					t.Fatalf("closed connections logged with %q, want %q", got, tc.reason)
				}
				if _, err := c.Read(); err == nil {
					t.Fatal("the relay sent a message instead of closing")
				}
			})
		})
	}
}

// A connection that does not authenticate within AuthTimeout gets
// auth-required and is closed, at that moment and not before.
func TestAuthTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const timeout = 10 * time.Second
		r := newBubbleRelay(t, server.Config{AuthTimeout: timeout})
		c := r.dialRaw(t)
		time.Sleep(timeout - time.Millisecond)
		synctest.Wait()
		if got := r.closed(); len(got) != 0 {
			t.Fatalf("closed before the auth timeout: %q", got)
		}
		e, err := readClosingError(t, c)
		if e.Code != protocol.CodeAuthRequired || closeCode(err) != websocket.ClosePolicyViolation || !strings.Contains(e.Message, "10s") {
			t.Fatalf("got %s %q, %v", e.Code, e.Message, err)
		}
	})
}
