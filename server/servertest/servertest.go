// Package servertest runs real Kintsugi relays for tests: a [server.Server]
// backed by a [server.BadgerStore] in a temporary directory, listening on
// 127.0.0.1 through httptest. It also has a small raw-protocol test
// [Client], a helper to build valid blobs, and a relay that lies to
// clients on purpose ([NewLyingServer], [Liar]).
//
// Everything here is for tests only: failures call t.Fatal, and every
// network read has a generous failsafe deadline so a broken test fails
// instead of hanging.
package servertest

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// Server is a running relay. Its methods must be called from the test
// goroutine.
type Server struct {
	t   testing.TB
	dir string        // the store's data directory; fixed
	cfg server.Config // as given, without Store
	url string        // http://127.0.0.1:port, fixed by the first start
	// wrap, when set, wraps each freshly opened store before the relay
	// gets it (see NewLyingServer).
	wrap func(server.Store) server.Store
	// open, when set, opens the store instead of a BadgerStore in dir
	// (see NewServerOn).
	open func() (server.Store, error)

	// Set while running, nil while stopped.
	relay  *server.Server
	store  *server.BadgerStore // backend, if it is one
	backed server.Store
	hs     *httptest.Server
}

// NewServer starts a relay with the default configuration. It is stopped
// when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	return NewServerWithConfig(t, server.Config{})
}

// NewServerWithConfig starts a relay with cfg, whose Store must be nil (the
// relay gets a fresh BadgerStore). A nil cfg.Logger logs to the test's
// output. It is stopped when the test ends.
func NewServerWithConfig(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	return newServer(t, cfg, nil)
}

// NewServerOn starts a relay with cfg on the store open returns, such as
// a PostgreSQL store; each Start opens it again (Stop closes it). cfg's
// Store must be nil. It is stopped when the test ends.
func NewServerOn(t testing.TB, cfg server.Config, open func() (server.Store, error)) *Server {
	t.Helper()
	if cfg.Store != nil {
		t.Fatal("servertest: config must not set Store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s := &Server{t: t, cfg: cfg, open: open}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

func newServer(t testing.TB, cfg server.Config, wrap func(server.Store) server.Store) *Server {
	t.Helper()
	if cfg.Store != nil {
		t.Fatal("servertest: config must not set Store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s := &Server{t: t, dir: t.TempDir(), cfg: cfg, wrap: wrap}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start starts a stopped relay again on the same data directory and the
// same address, so URLs handed out earlier keep working.
func (s *Server) Start() {
	s.t.Helper()
	if s.relay != nil {
		s.t.Fatal("servertest: relay already running")
	}
	addr := "127.0.0.1:0"
	if s.url != "" {
		addr = strings.TrimPrefix(s.url, "http://")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatalf("servertest: %v", err)
	}
	var st server.Store
	if s.open != nil {
		st, err = s.open()
	} else {
		st, err = server.OpenBadger(s.dir, s.cfg.Logger)
	}
	if err != nil {
		ln.Close()
		s.t.Fatalf("servertest: %v", err)
	}
	cfg := s.cfg
	cfg.Store = st
	if s.wrap != nil {
		cfg.Store = s.wrap(st)
		// A wrapper may show subscribers another log than it stores
		// (the Liar does): they read every blob from it.
		cfg.ReadNewBlobsFromStore = true
	}
	relay, err := server.New(cfg)
	if err != nil {
		st.Close()
		ln.Close()
		s.t.Fatalf("servertest: %v", err)
	}
	s.store, _ = st.(*server.BadgerStore)
	s.backed, s.relay = st, relay
	s.hs = &httptest.Server{Listener: ln, Config: &http.Server{Handler: relay, ReadHeaderTimeout: 10 * time.Second}}
	s.hs.Start()
	s.url = s.hs.URL
}

// URL returns the relay's base URL, http://127.0.0.1:port. It stays the
// same across Stop and Start.
func (s *Server) URL() string { return s.url }

// WebSocketURL returns the relay's WebSocket endpoint,
// ws://127.0.0.1:port/v1/ws.
func (s *Server) WebSocketURL() string {
	return "ws" + strings.TrimPrefix(s.url, "http") + protocol.Path
}

// Relay returns the running relay (nil while stopped).
func (s *Server) Relay() *server.Server { return s.relay }

// Store returns the running relay's real store (nil while stopped, or if
// it is not a BadgerStore). For a relay from NewLyingServer this is the
// honest store underneath the liar.
func (s *Server) Store() *server.BadgerStore { return s.store }

// Backend returns the running relay's real store, whatever it is (nil
// while stopped).
func (s *Server) Backend() server.Store { return s.backed }

// DataDir returns the store's data directory ("" for a relay from
// NewServerOn).
func (s *Server) DataDir() string { return s.dir }

// Close stops the relay for good; it is Stop, and safe to call more than
// once. The test's cleanup calls it too.
func (s *Server) Close() { s.Stop() }

// Stop stops the relay the way the daemon does: the relay sends every
// connection a shutting-down error and a going-away close frame and waits
// for requests in flight, then the HTTP server and the store close, so
// every acknowledged blob is on disk. Until Start, connecting fails. Stop
// on a stopped relay does nothing.
func (s *Server) Stop() {
	s.t.Helper()
	if s.relay == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.relay.Close(ctx); err != nil {
		s.t.Errorf("servertest: close relay: %v", err)
	}
	s.hs.Close()
	if err := s.backed.Close(); err != nil {
		s.t.Errorf("servertest: close store: %v", err)
	}
	s.relay, s.store, s.backed, s.hs = nil, nil, nil, nil
}

// Restart is Stop then Start: same data directory, same address. Open
// connections are closed.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}
