// Package server is the Kintsugi relay: it authenticates devices, keeps each
// journal's append-only log of blobs and pushes new blobs to subscribers.
//
// The relay stores only what clients send it, which is ciphertext behind a
// small clear header ([protocol.ParseHeader]); it checks the header's shape,
// journal and author but never interprets blob bodies, and it never logs
// blob bytes, invite tokens or invite packets.
//
// A [Server] is an [http.Handler] serving the WebSocket endpoint
// [protocol.Path], the relay information document [protocol.InfoPath] and
// the /healthz and /readyz probes; [Server.MetricsHandler] serves its
// Prometheus metrics on a listener of the caller's choosing.
//
// # Limits
//
// Every resource a client can claim is bounded (see [Config]): message and
// blob size, requests per connection and puts per journal (token buckets),
// bytes per journal, connections in total, per client address and not
// yet authenticated (the oldest of which make room for new ones),
// subscriptions per connection, time to authenticate, ping deadlines and a
// byte-bounded send queue. A limit hit is answered with a machine-readable
// code and a sentence, with a retry hint for rates, and counted in the
// limit_rejections_total metric; everyone else is served as before.
//
// # Connections
//
// Each connection has one reader
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
// connection costs only its reader and writer. When several relays share
// one store, the store's [ChangeFeed] tells each relay what the others
// stored, and it wakes its subscriptions the same way (changes.go).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Config configures a [Server]. The zero value of every field but Store
// selects the documented default; for the limits, a negative value turns
// the limit off where the field says so. The Server reads Config only in
// [New]; changing it afterwards has no effect.
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

	// SendTimeout is how long a connection may go without its client
	// taking any bytes while its send queue is full. Past that the client
	// is taken to have stopped reading: the connection is closed with a
	// policy-violation close frame. Progress is counted in bytes the
	// client's side acknowledged (on Linux; elsewhere bytes written, in
	// steps of 16 KiB), not in whole messages, so a client that reads a
	// large message slowly but steadily is never cut off by this (a single
	// frame is bounded by a separate write deadline of max(10s,
	// 2×PingInterval)). Only the connection's own goroutines ever wait on
	// its queue: the hub's notifications never block. Default: 5s.
	SendTimeout time.Duration

	// SendQueueBytes bounds the bytes waiting in one connection's send
	// queue. A subscription sends its next blob only when the queue has
	// room, so a client that reads slowly holds at most this much relay
	// memory; one that stops reading for SendTimeout is closed as above.
	// Default: DefaultSendQueueBytes.
	SendQueueBytes int

	// InviteMaxTTL is the longest an invite may stay valid. Default: 7 days.
	InviteMaxTTL time.Duration

	// Now returns the current time; tests set it to move the clock. It
	// judges invite expiry and refills the rate limits' buckets.
	// Default: time.Now.
	Now func() time.Time

	// Limits (limits.go). A limit hit is answered with an error code and
	// a sentence (and, for rates, a retry hint); the connection stays open
	// and every other connection is served as before.

	// RequestRate is how many requests per second one connection may send,
	// sustained, and RequestBurst how many it may send at once. A request
	// over the limit is answered rate-limited with retry_after_ms. A
	// client's pings count too: one over the limit gets no pong. A
	// connection that keeps sending regardless is closed once, over about
	// the last 10 s, more than 256 of its requests and pings were refused
	// and they were more than a quarter of all it sent (refusalGuard).
	// Negative RequestRate: no limit.
	// Default: DefaultRequestRate, DefaultRequestBurst.
	RequestRate  float64
	RequestBurst int

	// JournalPutRate is how many new blobs per second one journal may take
	// from all its devices together, sustained, and JournalPutBurst how
	// many at once. A put over the limit is answered rate-limited with
	// retry_after_ms. A put of a blob the journal already holds (a resend)
	// is never refused by it. Negative JournalPutRate: no limit.
	// Default: DefaultJournalPutRate, DefaultJournalPutBurst.
	JournalPutRate  float64
	JournalPutBurst int

	// JournalQuota is how many bytes of blobs one journal may hold. A put
	// that would take the journal past it is answered quota-exceeded; a
	// resend of a blob the journal holds is not. The check happens before
	// the store write and counts the connection's own puts still waiting
	// for the disk, so puts to one journal from several connections at
	// once may overshoot by what the others have waiting (a pipeline of
	// at most 64 blobs or 4 MiB each), and, for a store that several
	// relays share, by what the others stored in the moment its usage
	// count lags ([Store.JournalUsage]). Negative: no quota.
	// Default: DefaultJournalQuota.
	JournalQuota int64

	// MaxSubscriptions bounds the journals one connection may subscribe
	// to. Negative: no limit. Default: DefaultMaxSubscriptions.
	MaxSubscriptions int

	// MaxConns bounds the WebSocket connections open at once, counted from
	// the upgrade request (so unauthenticated ones count). Past it, the
	// oldest connection that has not authenticated yet is closed to make
	// room (see MaxUnauthConns); if every connection has authenticated,
	// the upgrade is refused with HTTP 503 and a too-many-connections
	// body. Negative: no limit. Default: DefaultMaxConns.
	MaxConns int

	// MaxUnauthConns bounds the connections that have not authenticated
	// yet. Past it, or past MaxConns, a new connection takes the place of
	// the oldest one still waiting to authenticate, which gets a
	// too-many-connections error and close code 1013 (try again later),
	// so a flood of idle sockets cannot keep real clients out until the
	// auth timeout. A connection whose upgrade is still being written
	// cannot be closed this way; if every unauthenticated one is such,
	// the upgrade is refused with HTTP 503. Negative: no limit.
	// Default: DefaultMaxUnauthConns.
	MaxUnauthConns int

	// MaxConnsPerAddress bounds the connections open at once from one
	// client address: an IPv4 address or an IPv6 /64. Past it, an upgrade
	// is refused with HTTP 429 and a too-many-connections body. Clients on
	// loopback are not counted per address (behind a reverse proxy that
	// does not forward the client's address, every client looks like the
	// proxy). Negative: no limit. Default: DefaultMaxConnsPerAddress.
	MaxConnsPerAddress int

	// TrustedProxies lists the peers whose X-Forwarded-For header the
	// relay believes: for a connection from one of them, the client
	// address (for logs and MaxConnsPerAddress) is the rightmost address
	// in X-Forwarded-For that is not itself a trusted proxy (an entry may
	// carry a port). An entry there that is not an address ("unknown")
	// makes the client unknown: all such clients share one address's
	// allowance. From any other peer the header is ignored. The first
	// WebSocket request from a trusted proxy without the header is
	// logged as a warning. nil selects the default, loopback
	// (127.0.0.0/8 and ::1): a reverse proxy on the same host. An empty,
	// non-nil slice trusts no one.
	TrustedProxies []netip.Prefix

	// AllowedOrigins is the Origin policy. Native clients send no Origin
	// header and are always allowed; a request with an Origin (a browser)
	// is refused with HTTP 403 and an origin-not-allowed body unless its
	// origin (scheme://host[:port]) is listed here. "*" allows every
	// origin. Default: none.
	AllowedOrigins []string

	// HandshakeTimeout bounds writing the WebSocket upgrade response.
	// (Reading the request is bounded by the http.Server's
	// ReadHeaderTimeout; after the upgrade, AuthTimeout and the ping
	// deadlines bound the connection, since the upgrade clears the
	// http.Server's deadlines.) Default: DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// Version is the software version the info document reports.
	// Default: "devel".
	Version string

	// MaxProtocolVersion is the newest protocol version the relay speaks
	// (docs/protocol.md §20): protocol.Version, or protocol.Version1 to
	// speak only version 1 (to see how clients fare with an older relay,
	// or to step back from version 2). Clients that offer version 2 then
	// speak version 1. Default: protocol.Version.
	MaxProtocolVersion int

	// ReadNewBlobsFromStore makes subscriptions read every new blob back
	// from the store instead of being handed the blob that was just put.
	// The two are the same for every store that keeps the [Store]
	// contract, so a real relay leaves it off; a test store that shows
	// subscribers another log than it stores, on purpose, turns it on
	// (servertest.Liar).
	ReadNewBlobsFromStore bool
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

	// A person writes a few entries a day; a device catching up after
	// weeks offline sends a few hundred puts at once. These let that
	// through untouched and stop one connection or journal from taking
	// a large share of the relay.
	DefaultRequestRate        = 100
	DefaultRequestBurst       = 1000
	DefaultJournalPutRate     = 50
	DefaultJournalPutBurst    = 1000
	DefaultJournalQuota       = 1 << 30 // 1 GiB: about a million entries
	DefaultMaxSubscriptions   = 64
	DefaultMaxConns           = 10000
	DefaultMaxUnauthConns     = 1000
	DefaultMaxConnsPerAddress = 64
	DefaultHandshakeTimeout   = 10 * time.Second
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
	cfg       Config // defaults applied; read-only after New
	relayID   string // read-only after New
	log       *slog.Logger
	upgrader  websocket.Upgrader // read-only after New
	hub       hub
	pinger    pinger // pings every connection
	devices   deviceConns
	metrics   *metrics        // read-only after New
	journals  journalLimiters // per-journal put rate
	counter   connCounter     // connections in total, per address and unauthenticated
	refusals  logSampler      // logging of refused connections
	unauthLog logSampler      // logging of connections that end before authenticating

	noXFFWarned atomic.Bool // a trusted proxy without X-Forwarded-For was logged
	storeDown   atomic.Bool // the last readiness check failed (info.go)

	// directPushes counts pushed blobs written by the goroutine that
	// announced them, not by a connection's writer (conn.pushDirect).
	// For tests.
	directPushes atomic.Int64
	// writersRunning and writersStarted count connection writer
	// goroutines running and started (conn.writer). For tests.
	writersRunning atomic.Int64
	writersStarted atomic.Int64
	pumpsRunning   atomic.Int64 // subscription pumps running (conn.pump); for tests
	// readBuffersLent counts connections holding a read buffer
	// (conn.waitReadable). For tests.
	readBuffersLent atomic.Int64

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
	if cfg.MaxProtocolVersion == 0 {
		cfg.MaxProtocolVersion = protocol.Version
	}
	if cfg.MaxProtocolVersion < protocol.Version1 || cfg.MaxProtocolVersion > protocol.Version {
		return nil, fmt.Errorf("max protocol version %d is outside %d..%d", cfg.MaxProtocolVersion, protocol.Version1, protocol.Version)
	}
	if err := applyLimitDefaults(&cfg); err != nil {
		return nil, err
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
		metrics:   newMetrics(cfg.Store),
		journals:  journalLimiters{rate: cfg.JournalPutRate, burst: cfg.JournalPutBurst},
		counter:   connCounter{max: cfg.MaxConns, maxUnauth: cfg.MaxUnauthConns, maxPerAddr: cfg.MaxConnsPerAddress},
		closeDone: make(chan struct{}),
	}
	var subprotocols []string // newest first: Upgrade picks the first the client offers
	for v := cfg.MaxProtocolVersion; v >= protocol.Version1; v-- {
		subprotocols = append(subprotocols, protocol.SubprotocolOf(v))
	}
	s.upgrader = websocket.Upgrader{
		Subprotocols: subprotocols,
		// serveWebSocket applies the Origin policy before upgrading, to
		// answer with its own code and count the refusal.
		CheckOrigin:      func(*http.Request) bool { return true },
		HandshakeTimeout: cfg.HandshakeTimeout,
		// Per-connection buffers, sized for many idle connections: a
		// small read buffer (larger frames are read straight into the
		// message), which hijacker provides, and write buffers lent from
		// a pool only while a message is being written.
		WriteBufferPool: &writeBufferPool,
	}
	s.hub.direct = !cfg.ReadNewBlobsFromStore
	s.pinger.init(cfg.PingInterval)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if feed, ok := cfg.Store.(ChangeFeed); ok {
		// Other relays share the store: hear of what they change, until
		// Close.
		feed.WatchChanges(s.ctx, watcher{s})
	}
	return s, nil
}

// RelayID returns the id the relay sends in Hello.
func (s *Server) RelayID() string { return s.relayID }

// ServeHTTP serves the WebSocket endpoint protocol.Path, the relay
// information document protocol.InfoPath, and the probes /healthz and
// /readyz. Metrics are served separately, by [Server.MetricsHandler].
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		s.serveHealthz(w, r)
	case "/readyz":
		s.serveReadyz(w, r)
	case protocol.InfoPath:
		s.serveInfo(w, r)
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
		refuseHTTP(w, http.StatusServiceUnavailable, protocol.CodeShuttingDown, connRetryAfter, "the relay is shutting down; reconnect later")
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
	cl := clientAddr(r, s.cfg.TrustedProxies)
	remote := r.RemoteAddr
	if cl.forwarded {
		remote = cl.String()
	}
	log := s.log.With("remote", remote)
	if cl.forwarded {
		log = log.With("proxy", r.RemoteAddr)
	}
	if cl.noHeader && s.noXFFWarned.CompareAndSwap(false, true) {
		s.log.Warn("a trusted proxy sent a request without X-Forwarded-For; if it is a reverse proxy, make it set the header, or every client behind it shares its address (a local tool connecting directly can be ignored)", "proxy", r.RemoteAddr)
	}
	if !slices.ContainsFunc(websocket.Subprotocols(r), func(p string) bool { return slices.Contains(s.upgrader.Subprotocols, p) }) {
		log.Info("connection refused: subprotocol missing")
		http.Error(w, "WebSocket subprotocol "+strings.Join(s.upgrader.Subprotocols, " or ")+" required", http.StatusBadRequest)
		return
	}
	if origin := r.Header.Get("Origin"); !originAllowed(origin, s.cfg.AllowedOrigins) {
		if ok, n := s.refusals.sample(time.Now()); ok {
			log.Info("connection refused: origin not allowed", "origin", truncate(origin, 100), "not_logged", n)
		}
		s.metrics.reject(string(protocol.CodeOriginNotAllowed), limitOrigin)
		refuseHTTP(w, http.StatusForbidden, protocol.CodeOriginNotAllowed, 0, "this relay does not accept connections from web pages at this origin")
		return
	}
	slot, limit, evict := s.counter.admit(cl.key())
	switch {
	case slot == nil && limit == limitConnsPerAddress:
		if ok, n := s.refusals.sample(time.Now()); ok {
			log.Info("connection refused: too many connections from this address", "max", s.cfg.MaxConnsPerAddress, "not_logged", n)
		}
		s.metrics.reject(string(protocol.CodeTooManyConnections), limit)
		refuseHTTP(w, http.StatusTooManyRequests, protocol.CodeTooManyConnections, connRetryAfter, "there are as many connections from your address as this relay allows; close some or try again later")
		return
	case slot == nil:
		if ok, n := s.refusals.sample(time.Now()); ok {
			log.Warn("connection refused: too many connections", "limit", limit, "max", s.cfg.MaxConns, "max_unauthenticated", s.cfg.MaxUnauthConns, "not_logged", n)
		}
		s.metrics.reject(string(protocol.CodeTooManyConnections), limit)
		refuseHTTP(w, http.StatusServiceUnavailable, protocol.CodeTooManyConnections, connRetryAfter, "this relay has as many connections as it allows; try again later")
		return
	case evict != nil:
		// An unauthenticated connection made room for this one.
		s.metrics.reject(string(protocol.CodeTooManyConnections), limit)
		evict()
	}
	defer func() {
		if !handedOff {
			slot.release()
		}
	}()
	hj := &hijacker{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(hj, r, nil)
	if err != nil {
		// Upgrade has already replied with an HTTP error.
		log.Info("websocket upgrade failed", "err", err)
		return
	}
	// The connection keeps hj (its progressConn is in it), but not the
	// HTTP server's response: through it, the request, its headers and
	// the HTTP connection's 4 KB read and write buffers, about 10 KB that
	// an idle connection would otherwise hold for its whole life.
	hj.ResponseWriter = nil
	// Serve the connection on a fresh goroutine and let this one, which
	// the HTTP server grew a deep stack on, end: an idle connection's
	// reader then holds only the small stack its read needs. The
	// connection keeps its place in the counts until it ends.
	c := newConn(s, ws, log, &hj.sent)
	c.nc, c.br, c.out, c.slot = hj.nc, hj.br, &hj.out, slot
	if c.br != nil {
		s.readBuffersLent.Add(1) // until the reader first waits
	}
	slot.canEvict(c.evict)
	handedOff = true
	go func() {
		defer s.conns.Done()
		defer slot.release()
		c.serve()
	}()
}

// connRetryAfter is the Retry-After hint on a refused connection.
const connRetryAfter = 10 * time.Second

// applyLimitDefaults fills the zero limits of cfg with their defaults and
// checks the rest.
func applyLimitDefaults(cfg *Config) error {
	if cfg.RequestRate == 0 {
		cfg.RequestRate = DefaultRequestRate
	}
	if cfg.RequestBurst <= 0 {
		cfg.RequestBurst = DefaultRequestBurst
	}
	if cfg.JournalPutRate == 0 {
		cfg.JournalPutRate = DefaultJournalPutRate
	}
	if cfg.JournalPutBurst <= 0 {
		cfg.JournalPutBurst = DefaultJournalPutBurst
	}
	if cfg.JournalQuota == 0 {
		cfg.JournalQuota = DefaultJournalQuota
	}
	if cfg.MaxSubscriptions == 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxUnauthConns == 0 {
		cfg.MaxUnauthConns = DefaultMaxUnauthConns
	}
	if cfg.MaxConnsPerAddress == 0 {
		cfg.MaxConnsPerAddress = DefaultMaxConnsPerAddress
	}
	if cfg.TrustedProxies == nil {
		cfg.TrustedProxies = loopbackPrefixes
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Version == "" {
		cfg.Version = "devel"
	}
	for _, o := range cfg.AllowedOrigins {
		if err := CheckOrigin(o); err != nil {
			return err
		}
	}
	return nil
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
	// heads holds, for each journal in subs, the highest sequence number
	// the hub has woken its subscriptions for (announced here or
	// reported by the store's change feed); guarded by mu. Reports of
	// other relays' appends at or below it wake no one (changes.go).
	heads map[protocol.JournalID]uint64
	// fetching holds, for each journal a fetcher goroutine is reading
	// other relays' blobs of, the sequence number it reads up to;
	// guarded by mu (changes.go).
	fetching map[protocol.JournalID]uint64

	// direct is set unless Config.ReadNewBlobsFromStore is: the store's
	// Read returns what Append stored ([Store.Read]), so announce may
	// hand a new blob to subscribers itself. Read-only after New.
	direct bool
}

// add registers s, whose journal's last sequence number was last just
// before; s reads everything up to there itself.
func (h *hub) add(s *subscription, last uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = make(map[protocol.JournalID]map[*subscription]struct{})
		h.heads = make(map[protocol.JournalID]uint64)
	}
	m := h.subs[s.journal]
	if m == nil {
		m = make(map[*subscription]struct{})
		h.subs[s.journal] = m
		// The journal's first subscription: nothing up to last needs a
		// wake-up. (With others, heads stays theirs: they may not have
		// been woken for all of it yet.)
		h.heads[s.journal] = last
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
		delete(h.heads, s.journal)
	}
}
