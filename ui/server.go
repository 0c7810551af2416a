package ui

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
)

// DefaultIdleLock is how long the server stays unlocked without a request
// from the person when [Config.IdleLock] is zero: the length of an
// unlocked session that `kintsugi unlock` starts by default.
const DefaultIdleLock = 30 * time.Minute

// PageSize is how many entries a timeline page shows.
const PageSize = 50

// Keys is how the server gets the person's account. The command provides
// it: the unlock agent and the key file belong to it.
type Keys interface {
	// Agent returns the account the unlock agent holds, or nil when there
	// is no unlocked session.
	Agent(ctx context.Context) *client.Account
	// Passphrase opens the key file with passphrase, which the caller
	// wipes after.
	Passphrase(passphrase []byte) (*client.Account, error)
	// LockAgent ends the unlock agent's session, if there is one.
	LockAgent(ctx context.Context)
}

// Entries looks entries up by their full id; a [*client.Reader] is one.
type Entries interface {
	Get(id string) (client.Entry, bool)
}

// Config configures a [Server]. Keys and Open are required.
type Config struct {
	// Keys unlocks the account.
	Keys Keys
	// Open opens the journal to show, once unlocked. The server closes it
	// when it locks or stops.
	Open func(*client.Account) (*client.Journal, error)
	// Describe words an error for a person: one lowercase sentence and a
	// hint, as the command line says it. Nil uses the error's text.
	Describe func(error) (msg, hint string)
	// Head words what an entry is ("You asked (open)", "Sam answered your
	// question 1a2b3c4d · feeling hope (6/10)"), as the command line does,
	// looking up what it refers to in byID; ok false means the entry is
	// shown through another one and is left out. Nil uses a plain
	// "NAME wrote" line.
	Head func(en client.Entry, byID Entries) (head string, ok bool)
	// Notes returns what the timeline should say besides its entries, as
	// `kintsugi log` says it under its listing: items the journal knows of
	// but has not received, entries held back until a changed safety
	// number is confirmed. Nil says nothing.
	Notes func(j *client.Journal) []string
	// Export makes `kintsugi export`'s file of the entries q chooses
	// from j, in format (markdown, json or html), for the person named by,
	// and says how many entries it holds. Nil leaves export out.
	Export func(by string, j *client.Journal, q client.Query, format string) ([]byte, int, error)
	// Sentence words a notice as `kintsugi status` does. Nil uses its
	// kind.
	Sentence func(client.Notice) string
	// Feelings are the feelings the write page offers to pick, and the
	// timeline's feeling filter.
	Feelings []string
	// Kinds are the kinds of entry the timeline's filter offers.
	Kinds []string
	// IdleLock is how long the server stays unlocked without a request
	// from the person; zero means [DefaultIdleLock].
	IdleLock time.Duration
	// Logger receives what the server notes (never an entry, a key or a
	// passphrase); nil discards.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now. Tests move it to see the idle
	// lock.
	Now func() time.Time
}

// ErrNotLoopback: [CheckListen] was given an address other people could
// reach.
var ErrNotLoopback = errors.New("not a loopback address")

// CheckListen checks that addr ("HOST:PORT") names a loopback address: an
// IP address on the loopback network or "localhost". An empty host would
// listen on every interface, so it is refused too.
func CheckListen(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is %w", addr, ErrNotLoopback)
}

// Server serves one person's journal to their own browser. Build it with
// [New].
type Server struct {
	// Static after New: the configuration, the listener, the one-time
	// token, the address, and the Host values that reach it.
	cfg   Config
	ln    net.Listener
	token string
	ip    string
	port  string
	hosts map[string]bool

	hub *hub // live updates

	mu        sync.Mutex
	tokenUsed bool   // the one-time token was used
	session   string // the session cookie's value, "" until then
	csrf      string // the session's form token
	lastSeen  time.Time
	open      *opened // nil while locked
}

// opened is what the server holds while it is unlocked.
type opened struct {
	acct      *client.Account
	j         *client.Journal
	stop      context.CancelFunc // ends the watch
	done      chan struct{}      // closed when the watch has ended
	connected bool               // the watch is connected and caught up (guarded by Server.mu)
	down      bool               // the watch's last attempt failed (guarded by Server.mu)
	stopped   error              // why the watch gave up, if it did (guarded by Server.mu)
	use       sync.RWMutex       // read-held by each request using j; lock takes it to close j
}

// New returns a server for cfg that will answer on ln, which must listen
// on a loopback address (it returns an error wrapping [ErrNotLoopback]
// otherwise). [Server.Serve] answers; closing is Serve's.
func New(cfg Config, ln net.Listener) (*Server, error) {
	if cfg.Keys == nil || cfg.Open == nil {
		return nil, errors.New("ui: Config.Keys and Config.Open are required")
	}
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return nil, fmt.Errorf("%s is %w", ln.Addr(), ErrNotLoopback)
	}
	if cfg.IdleLock <= 0 {
		cfg.IdleLock = DefaultIdleLock
	}
	pages() // parsed now, so that the first page is as quick as the rest
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Describe == nil {
		cfg.Describe = func(err error) (string, string) { return err.Error(), "" }
	}
	if cfg.Head == nil {
		cfg.Head = plainHead
	}
	if cfg.Sentence == nil {
		cfg.Sentence = func(n client.Notice) string { return string(n.Kind) }
	}
	s := &Server{cfg: cfg, ln: ln, token: randomToken(), hub: newHub()}
	s.ip, s.port = tcp.IP.String(), fmt.Sprint(tcp.Port)
	s.hosts = map[string]bool{
		net.JoinHostPort(s.ip, s.port):        true,
		net.JoinHostPort("localhost", s.port): true,
	}
	return s, nil
}

// randomToken returns 32 random bytes, base64url without padding.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// URL returns the one-time address to open.
func (s *Server) URL() string {
	return "http://" + net.JoinHostPort(s.ip, s.port) + "/?token=" + s.token
}

// Serve answers until ctx is done, then closes the listener, locks
// (closing the journal) and returns.
func (s *Server) Serve(ctx context.Context) error {
	ln := s.ln
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
	idle := make(chan struct{})
	idleCtx, stopIdle := context.WithCancel(ctx)
	go s.idleLoop(idleCtx, idle)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stopIdle()
	s.hub.close() // ends the event streams, so Shutdown need not wait on them
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(sctx)
	cancel()
	<-idle
	s.lock(false)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// idleLoop locks the server once it has been idle for IdleLock, so the
// keys leave memory even when no one comes back.
func (s *Server) idleLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	every := min(s.cfg.IdleLock/4, 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.lockIfIdle()
		}
	}
}

// lockIfIdle locks when the person has made no request for IdleLock.
func (s *Server) lockIfIdle() {
	s.mu.Lock()
	idle := s.open != nil && s.cfg.Now().Sub(s.lastSeen) >= s.cfg.IdleLock
	s.mu.Unlock()
	if idle {
		s.cfg.Logger.Info("locked after being idle")
		s.lock(false)
	}
}

// Handler returns the server's handler with every check in front.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(staticFS)))
	mux.HandleFunc("GET /{$}", s.timeline)
	mux.HandleFunc("GET /entry/{id}", s.entry)
	mux.HandleFunc("POST /entry/{id}/respond", s.respond)
	mux.HandleFunc("GET /questions", s.questions)
	mux.HandleFunc("POST /ask", s.ask)
	mux.HandleFunc("GET /feelings", s.feelings)
	mux.HandleFunc("GET /commitments", s.commitments)
	mux.HandleFunc("POST /commit", s.commit)
	mux.HandleFunc("GET /agreements", s.agreements)
	mux.HandleFunc("POST /agree", s.propose)
	mux.HandleFunc("GET /prompts", s.prompts)
	mux.HandleFunc("GET /reflect", s.reflectPage)
	mux.HandleFunc("POST /reflect", s.reflect)
	mux.HandleFunc("GET /export", s.exportPage)
	mux.HandleFunc("POST /export", s.export)
	mux.HandleFunc("GET /status", s.status)
	mux.HandleFunc("POST /status/read", s.markRead)
	mux.HandleFunc("GET /devices", s.devicesPage)
	mux.HandleFunc("POST /devices/link", s.linkDevice)
	mux.HandleFunc("POST /devices/revoke", s.revokeDevice)
	mux.HandleFunc("GET /verify", s.verifyPage)
	mux.HandleFunc("POST /verify", s.verify)
	mux.HandleFunc("GET /write", s.writePage)
	mux.HandleFunc("POST /write", s.write)
	mux.HandleFunc("GET /unlock", s.unlockPage)
	mux.HandleFunc("POST /unlock", s.unlock)
	mux.HandleFunc("POST /lock", s.lockPage)
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.problem(w, r, http.StatusNotFound, "there is no page here", "the timeline is where everything starts", true)
	})
	return s.guard(mux)
}

// cookieName is the session cookie's name. Cookies are not kept apart by
// port, so it names the port: two `kintsugi ui` (two homes) open in one
// browser keep their own sessions.
func (s *Server) cookieName() string { return "kintsugi_" + s.port }

// guard applies the checks every request passes (see the package
// comment) and the headers every response carries.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		if !s.hosts[strings.ToLower(r.Host)] {
			// Not our name: a DNS name rebound to 127.0.0.1, or a request
			// meant for another server. Nothing about the journal, not
			// even the kind words page.
			http.Error(w, "kintsugi: this address is not the one kintsugi ui printed", http.StatusMisdirectedRequest)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !s.sameOrigin(o, r.Header.Get("Sec-Fetch-Site")) {
			s.problem(w, r, http.StatusForbidden, "this page was asked for by another web site, so kintsugi refused", "open the address `kintsugi ui` printed, in its own tab", false)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/static/") {
			next.ServeHTTP(w, r) // the style sheet and script hold nothing private
			return
		}
		if tok := r.URL.Query().Get("token"); tok != "" {
			s.useToken(w, r, tok)
			return
		}
		if !s.hasSession(r) {
			s.problem(w, r, http.StatusForbidden, "this page needs the link `kintsugi ui` printed", "each link works once, in one browser. If you already used it, or it came from somewhere else, stop `kintsugi ui` (Ctrl-C) and start it again for a fresh link", false)
			return
		}
		if r.Method == http.MethodPost && !s.checkCSRF(r) {
			s.problem(w, r, http.StatusForbidden, "this form was not sent from a kintsugi page, so nothing was done", "go back to the timeline and try again from there", false)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// sameOrigin reports whether an Origin header names this server. Under
// Referrer-Policy: no-referrer a browser sends "Origin: null" with the
// page's own form posts; null is accepted only when the browser also says
// (Sec-Fetch-Site, which no page can set) that the request comes from
// this origin.
func (s *Server) sameOrigin(origin, fetchSite string) bool {
	if origin == "null" {
		return fetchSite == "same-origin"
	}
	u, err := url.Parse(origin)
	return err == nil && u.Scheme == "http" && s.hosts[strings.ToLower(u.Host)] && u.Path == ""
}

// useToken turns the one-time token into the session cookie, once.
func (s *Server) useToken(w http.ResponseWriter, r *http.Request, tok string) {
	s.mu.Lock()
	ok := !s.tokenUsed && subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) == 1
	if ok {
		s.tokenUsed = true
		s.session, s.csrf = randomToken(), randomToken()
		s.lastSeen = s.cfg.Now()
	}
	session := s.session
	s.mu.Unlock()
	if !ok {
		s.problem(w, r, http.StatusForbidden, "this link has been used already, or it is not the one `kintsugi ui` printed", "each link works once, in one browser. Stop `kintsugi ui` (Ctrl-C) and start it again for a fresh link", false)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: session, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// hasSession reports whether r carries the session cookie.
func (s *Server) hasSession(r *http.Request) bool {
	c, err := r.Cookie(s.cookieName())
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.session != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(s.session)) == 1
}

// checkCSRF reports whether a POST carries the session's form token. The
// unlock form is read by unlock itself (its body holds the passphrase,
// which must not become a string), so its token is checked there.
func (s *Server) checkCSRF(r *http.Request) bool {
	if r.URL.Path == "/unlock" {
		return true
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxForm)
	return s.csrfOK(r.PostFormValue("csrf"))
}

// csrfOK compares a form's token with the session's, in constant time.
func (s *Server) csrfOK(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.csrf != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) == 1
}

// maxForm bounds a form's body: an entry's text and a little more.
const maxForm = 1 << 20
