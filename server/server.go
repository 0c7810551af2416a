// Package server is the Kintsugi relay: it authenticates devices, keeps each
// journal's append-only log of blobs and pushes new blobs to subscribers.
//
// The relay stores only what clients send it, which is ciphertext behind a
// small clear header ([protocol.ParseHeader]); it checks the header's shape,
// journal and author but never interprets blob bodies, and it never logs
// blob bytes, invite tokens or invite packets.
//
// A [Server] is an [http.Handler] serving the WebSocket endpoint
// [protocol.Path] and a /healthz probe. Each connection has one reader
// goroutine, which authenticates the device and handles requests in order,
// and one writer goroutine, the only one that writes to the socket.
// Everything a connection sends (replies, subscription pushes) goes through
// its bounded send queue. Puts are pipelined: the reader starts each
// append and reads on, and an acker goroutine, present only while puts
// wait for the disk, answers them in order; appends waiting together share
// one commit (group commit). Subscriptions are pull-based: when its journal
// grows, a subscription is kicked and a pump goroutine, present only while
// there is something to send, reads the store after its cursor, so nothing
// outside a connection ever waits on that connection and an idle
// connection costs only its reader and writer.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Config configures a [Server]. The zero value of every field but Store
// selects the documented default. The Server reads Config only in [New];
// changing it afterwards has no effect.
type Config struct {
	// Store holds the relay's data. Required. The Server does not close it:
	// the caller owns the store and closes it after [Server.Close].
	Store Store

	// Logger receives connection and request logs. Default: discard.
	Logger *slog.Logger

	// RelayID is the id sent in Hello and signed by devices; at most 255
	// bytes. Default: the store's persisted id ([Store.RelayID]).
	RelayID string

	// MaxBlobSize is the largest blob accepted, in bytes; at most
	// protocol.MaxBlobSize. Default: DefaultMaxBlobSize.
	MaxBlobSize int

	// AuthTimeout bounds the time from connecting to a valid Auth.
	// Default: 10s.
	AuthTimeout time.Duration

	// PingInterval is how often the relay pings each connection; a
	// connection that sends nothing, not even a pong, for twice this long is
	// closed. Default: 30s.
	PingInterval time.Duration

	// SendQueue is the number of outgoing messages buffered per connection.
	// Default: 256.
	SendQueue int

	// SendTimeout is how long a connection may go without the writer
	// finishing a single frame while its send queue is full. Past that the
	// client is taken to have stopped reading: the connection is closed with
	// a policy-violation close frame. A client that is slow but still
	// reading is never cut off by this (a single frame is bounded by a
	// separate write deadline of max(10s, 2×PingInterval)). Only the
	// connection's own goroutines ever wait on its queue: the hub's
	// notifications never block. Default: 5s.
	SendTimeout time.Duration

	// SendQueueBytes bounds the bytes waiting in one connection's send
	// queue. A subscription sends its next blob only when the queue has
	// room, so a client that reads slowly holds at most this much relay
	// memory; one that stops reading for SendTimeout is closed as above.
	// Default: DefaultSendQueueBytes.
	SendQueueBytes int

	// InviteMaxTTL is the longest an invite may stay valid. Default: 7 days.
	InviteMaxTTL time.Duration

	// Now returns the current time; tests set it to move the clock.
	// Default: time.Now.
	Now func() time.Time
}

// Defaults for [Config].
const (
	// DefaultMaxBlobSize is one byte under protocol.MaxBlobSize. Badger
	// moves values of 1 MiB and more to its value log, whose sync errors it
	// only logs; keeping every blob below that keeps every acknowledged
	// blob in the write-ahead log, whose sync errors fail the write. Real
	// entries are far smaller (crypto.MaxPayload is 512 KiB).
	DefaultMaxBlobSize = protocol.MaxBlobSize - 1

	DefaultAuthTimeout  = 10 * time.Second
	DefaultPingInterval = 30 * time.Second
	DefaultSendQueue    = 256
	DefaultSendTimeout  = 5 * time.Second
	// DefaultSendQueueBytes is 8 MiB: a few of the largest blobs.
	DefaultSendQueueBytes = 8 << 20
	DefaultInviteMaxTTL   = 7 * 24 * time.Hour
)

// readBufferSize is each connection's read buffer. Frames larger than
// it are read straight into the message, so it costs a second read call
// for a 1 KiB put's frame and saves 3 KB on every idle connection.
const readBufferSize = 1024

// writeBufferPool lends connections their write buffers (gorilla's
// default size, 4 KB) for the time of one write.
var writeBufferPool sync.Pool

// Server is a Kintsugi relay. Create it with [New], serve it with an
// [http.Server] and stop it with [Server.Close].
type Server struct {
	cfg      Config // defaults applied; read-only after New
	relayID  string // read-only after New
	log      *slog.Logger
	upgrader websocket.Upgrader // read-only after New
	hub      hub

	ctx    context.Context    // canceled by Close; parent of every connection's context
	cancel context.CancelFunc // called once by Close

	mu     sync.Mutex     // guards closed and conns.Add against Close
	closed bool           // set by Close; guarded by mu
	conns  sync.WaitGroup // one per connection handler

	closeOnce sync.Once
	closeDone chan struct{} // closed when every connection has ended
}

// New returns a relay serving cfg.Store. It reads the relay id from the
// store unless cfg.RelayID is set.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server config has no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBlobSize == 0 {
		cfg.MaxBlobSize = DefaultMaxBlobSize
	}
	if cfg.MaxBlobSize < protocol.HeaderSize || cfg.MaxBlobSize > protocol.MaxBlobSize {
		return nil, fmt.Errorf("max blob size %d is outside %d..%d", cfg.MaxBlobSize, protocol.HeaderSize, protocol.MaxBlobSize)
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = DefaultAuthTimeout
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = DefaultSendQueue
	}
	if cfg.SendQueueBytes <= 0 {
		cfg.SendQueueBytes = DefaultSendQueueBytes
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = DefaultSendTimeout
	}
	if cfg.InviteMaxTTL <= 0 {
		cfg.InviteMaxTTL = DefaultInviteMaxTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	id := cfg.RelayID
	if id == "" {
		var err error
		if id, err = cfg.Store.RelayID(context.Background()); err != nil {
			return nil, fmt.Errorf("read relay id: %w", err)
		}
	}
	if id == "" || len(id) > 255 {
		return nil, fmt.Errorf("relay id must be 1..255 bytes, not %d", len(id))
	}
	s := &Server{
		cfg:       cfg,
		relayID:   id,
		log:       cfg.Logger,
		closeDone: make(chan struct{}),
	}
	s.upgrader = websocket.Upgrader{
		Subprotocols:     []string{protocol.Subprotocol},
		CheckOrigin:      checkOrigin,
		HandshakeTimeout: 10 * time.Second,
		// Per-connection buffers, sized for many idle connections: a
		// small read buffer (larger frames are read straight into the
		// message), which hijacker provides, and write buffers lent from
		// a pool only while a message is being written.
		WriteBufferPool: &writeBufferPool,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// RelayID returns the id the relay sends in Hello.
func (s *Server) RelayID() string { return s.relayID }

// ServeHTTP serves the WebSocket endpoint protocol.Path and GET /healthz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	case protocol.Path:
		s.serveWebSocket(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "the relay is shutting down", http.StatusServiceUnavailable)
		return
	}
	s.conns.Add(1)
	s.mu.Unlock()
	handedOff := false
	defer func() {
		if !handedOff {
			s.conns.Done()
		}
	}()

	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "this endpoint speaks WebSocket only", http.StatusBadRequest)
		return
	}
	if !slices.Contains(websocket.Subprotocols(r), protocol.Subprotocol) {
		s.log.Info("connection refused: subprotocol missing", "remote", r.RemoteAddr)
		http.Error(w, "WebSocket subprotocol "+protocol.Subprotocol+" required", http.StatusBadRequest)
		return
	}
	hj := &hijacker{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(hj, r, nil)
	if err != nil {
		// Upgrade has already replied with an HTTP error.
		s.log.Info("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	// Serve the connection on a fresh goroutine and let this one, which
	// the HTTP server grew a deep stack on, end: an idle connection's
	// reader then holds only the small stack its read needs.
	c := newConn(s, ws, r.RemoteAddr)
	c.nc, c.br = hj.nc, hj.br
	handedOff = true
	go func() {
		defer s.conns.Done()
		c.serve()
	}()
}

// checkOrigin allows requests without an Origin header (native clients) and
// requests whose origin is the relay's own host.
func checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// Close stops the relay: it refuses new connections, sends every open
// connection an Error with code shutting-down and a going-away close frame,
// and waits until every connection goroutine has ended or ctx is done. A
// request in flight finishes its store operation first, so nothing
// acknowledged is lost. Close does not close the store. It is safe to call
// more than once; every call waits.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		go func() {
			s.conns.Wait()
			close(s.closeDone)
		}()
	})
	select {
	case <-s.closeDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("relay connections still open: %w", ctx.Err())
	}
}

// hub tracks subscriptions by journal so a new blob can wake them.
type hub struct {
	mu   sync.Mutex
	subs map[protocol.JournalID]map[*subscription]struct{} // guarded by mu
}

func (h *hub) add(s *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = make(map[protocol.JournalID]map[*subscription]struct{})
	}
	m := h.subs[s.journal]
	if m == nil {
		m = make(map[*subscription]struct{})
		h.subs[s.journal] = m
	}
	m[s] = struct{}{}
}

func (h *hub) remove(s *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.subs[s.journal]
	delete(m, s)
	if len(m) == 0 {
		delete(h.subs, s.journal)
	}
}
