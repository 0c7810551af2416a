package server

import (
	"container/list"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Which limit refused something, for logs and the limit label of the
// rejections metric.
const (
	limitRequestRate     = "request_rate"
	limitJournalPutRate  = "journal_put_rate"
	limitJournalQuota    = "journal_quota"
	limitConns           = "max_connections"
	limitConnsPerAddress = "max_connections_per_address"
	limitUnauthConns     = "max_unauthenticated_connections"
	limitOrigin          = "origin"
	limitSize            = "size"
	limitMessageSize     = "message_size"
	limitAuthTimeout     = "auth_timeout"
	limitSlowReader      = "slow_reader"
	limitSubscriptions   = "subscriptions"
)

// A connection whose requests keep being refused as rate-limited is
// closed once, over about the last refusalWindow, it has had more than
// minRefusals refused and the refused make up more than a quarter of
// what it sent (requests and pings). A client that keeps sending after
// being asked to wait costs the relay a decode and a reply per request
// for nothing, and one that paces itself just above the rate would never
// have a long run of refusals in a row. minRefusals is above the
// reference client's pipeline of 64 puts, whose resends it spaces at the
// relay's rate, so a client that pipelines and then waits is never
// closed.
const (
	refusalWindow = 10 * time.Second
	minRefusals   = 256
)

// refusalGuard counts a connection's admitted and refused requests over
// a sliding window (two fixed windows, the older weighted by how much of
// it is still inside refusalWindow). Owned by the connection's reader.
type refusalGuard struct {
	start     time.Time // start of the current fixed window
	cur, prev requestCounts
	logged    bool // the first refusal has been logged at info
}

type requestCounts struct{ admitted, refused int }

// note records a request admitted or refused at now and reports whether
// the connection is to be closed.
func (g *refusalGuard) note(now time.Time, refused bool) (closeConn bool) {
	switch d := now.Sub(g.start); {
	case g.start.IsZero() || d >= 2*refusalWindow || d < 0:
		g.start, g.prev, g.cur = now, requestCounts{}, requestCounts{}
	case d >= refusalWindow:
		g.start, g.prev, g.cur = g.start.Add(refusalWindow), g.cur, requestCounts{}
	}
	if !refused {
		g.cur.admitted++
		return false
	}
	g.cur.refused++
	w := 1 - float64(now.Sub(g.start))/float64(refusalWindow)
	ref := float64(g.cur.refused) + w*float64(g.prev.refused)
	all := ref + float64(g.cur.admitted) + w*float64(g.prev.admitted)
	return ref > minRefusals && ref > all/4
}

// newLimiter returns a token bucket for r per second with burst b, or nil
// (no limit) when r is negative.
func newLimiter(r float64, b int) *rate.Limiter {
	if r < 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(r), b)
}

// take takes one token from l at now. If there is none, it returns how long
// until there will be one. A nil limiter always allows.
func take(l *rate.Limiter, now time.Time) (wait time.Duration, ok bool) {
	if l == nil || l.AllowN(now, 1) {
		return 0, true
	}
	missing := 1 - l.TokensAt(now)
	if l.Limit() <= 0 {
		return time.Hour, false
	}
	wait = time.Duration(math.Ceil(missing / float64(l.Limit()) * float64(time.Second)))
	return max(wait, time.Millisecond), false
}

// retryAfterMS rounds a wait up to whole milliseconds.
func retryAfterMS(d time.Duration) uint64 {
	return uint64((d + time.Millisecond - 1) / time.Millisecond)
}

// journalLimiters holds one put-rate bucket per journal that has had a put
// recently. Buckets that have refilled completely carry no information and
// are dropped when the map grows, so its size follows the number of
// journals being written to, not the number that exist.
type journalLimiters struct {
	rate  float64 // Config.JournalPutRate; negative: no limit. Static.
	burst int     // Config.JournalPutBurst. Static.

	mu    sync.Mutex
	m     map[protocol.JournalID]*rate.Limiter // guarded by mu
	sweep int                                  // sweep when len(m) reaches this; guarded by mu
}

const journalLimiterSweep = 1024

// take takes one put token for j at now; see [take].
func (jl *journalLimiters) take(j protocol.JournalID, now time.Time) (time.Duration, bool) {
	if jl.rate < 0 {
		return 0, true
	}
	jl.mu.Lock()
	defer jl.mu.Unlock()
	if jl.m == nil {
		jl.m = make(map[protocol.JournalID]*rate.Limiter)
		jl.sweep = journalLimiterSweep
	}
	l := jl.m[j]
	if l == nil {
		if len(jl.m) >= jl.sweep {
			for k, v := range jl.m {
				if v.TokensAt(now) >= float64(jl.burst) {
					delete(jl.m, k)
				}
			}
			jl.sweep = max(journalLimiterSweep, 2*len(jl.m))
		}
		l = newLimiter(jl.rate, jl.burst)
		jl.m[j] = l
	}
	return take(l, now)
}

// connCounter counts open connections, in total, per client address,
// and those that have not authenticated yet.
//
// Every connection starts unauthenticated, so a cap that refused new
// connections while the relay is full of unauthenticated ones would let a
// few hundred idle sockets keep every real client out until the auth
// timeout. Instead, when the total or the unauthenticated cap is reached,
// the oldest unauthenticated connection is closed to make room for the
// new one: to keep a real client out, a flood must then open connections
// faster than the client can authenticate (one round trip). Only when the
// relay is full of authenticated connections is a new one refused.
type connCounter struct {
	// Config.MaxConns, Config.MaxUnauthConns, Config.MaxConnsPerAddress;
	// negative: no limit. Static.
	max, maxUnauth, maxPerAddr int

	mu      sync.Mutex
	total   int            // guarded by mu
	perAddr map[string]int // guarded by mu
	waiting list.List      // of *connSlot not yet authenticated, oldest first; guarded by mu
}

// connSlot is one admitted connection's place in the counts.
type connSlot struct {
	cc   *connCounter
	addr string // addrKey of the client; "" is not counted per address

	// Guarded by cc.mu.
	elem     *list.Element // in cc.waiting until authenticated or released
	evict    func()        // closes the connection; nil until it can be closed
	released bool
}

// admit counts a new connection from addr, or returns which limit refuses
// it. An empty addr (a loopback client) is counted only in the total. If
// a cap is reached and an unauthenticated connection can be closed
// instead, admit takes its place and returns its evict function (to be
// called, without any lock, by the caller) and the limit that needed the
// room.
func (cc *connCounter) admit(addr string) (slot *connSlot, limit string, evict func()) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if addr != "" && cc.maxPerAddr >= 0 && cc.perAddr[addr] >= cc.maxPerAddr {
		return nil, limitConnsPerAddress, nil
	}
	switch {
	case cc.maxUnauth >= 0 && cc.waiting.Len() >= cc.maxUnauth:
		limit = limitUnauthConns
	case cc.max >= 0 && cc.total >= cc.max:
		limit = limitConns
	}
	if limit != "" {
		victim := cc.oldestEvictableLocked()
		if victim == nil {
			return nil, limit, nil
		}
		evict = victim.evict
		victim.releaseLocked()
	}
	cc.total++
	if addr != "" {
		if cc.perAddr == nil {
			cc.perAddr = make(map[string]int)
		}
		cc.perAddr[addr]++
	}
	slot = &connSlot{cc: cc, addr: addr}
	slot.elem = cc.waiting.PushBack(slot)
	return slot, limit, evict
}

func (cc *connCounter) oldestEvictableLocked() *connSlot {
	for e := cc.waiting.Front(); e != nil; e = e.Next() {
		if s := e.Value.(*connSlot); s.evict != nil {
			return s
		}
	}
	return nil
}

// canEvict makes the slot's connection one that admit may close while it
// is unauthenticated.
func (s *connSlot) canEvict(evict func()) {
	s.cc.mu.Lock()
	defer s.cc.mu.Unlock()
	s.evict = evict
}

// authenticated moves the slot out of the unauthenticated count. It
// returns false if the connection was closed to make room meanwhile.
func (s *connSlot) authenticated() bool {
	s.cc.mu.Lock()
	defer s.cc.mu.Unlock()
	if s.released {
		return false
	}
	if s.elem != nil {
		s.cc.waiting.Remove(s.elem)
		s.elem = nil
	}
	return true
}

// release gives the slot back. It may be called more than once.
func (s *connSlot) release() {
	s.cc.mu.Lock()
	defer s.cc.mu.Unlock()
	s.releaseLocked()
}

func (s *connSlot) releaseLocked() {
	if s.released {
		return
	}
	s.released = true
	cc := s.cc
	cc.total--
	if s.addr != "" {
		if cc.perAddr[s.addr]--; cc.perAddr[s.addr] <= 0 {
			delete(cc.perAddr, s.addr)
		}
	}
	if s.elem != nil {
		cc.waiting.Remove(s.elem)
		s.elem = nil
	}
}

// loopbackPrefixes is the default for Config.TrustedProxies.
var loopbackPrefixes = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// client is who a connection comes from, as far as the relay can tell.
type client struct {
	// addr is the client's address: the TCP peer, or, when the peer is a
	// trusted proxy, the address X-Forwarded-For names. Invalid when a
	// trusted proxy named something that is not an address (unknown).
	addr netip.Addr
	// unknown is what a trusted proxy wrote where the client's address
	// belongs when it is not an address ("unknown", "_hidden"), cut
	// short for logs; "" otherwise.
	unknown string
	// forwarded reports that addr or unknown came from X-Forwarded-For.
	forwarded bool
	// noHeader reports that the peer is a trusted proxy and sent no
	// X-Forwarded-For: every client behind it looks like the proxy.
	noHeader bool
}

// unknownKey is the per-address key shared by every client whose trusted
// proxy did not name its address: together they get one address's
// allowance, rather than the unlimited one of the proxy's loopback.
const unknownKey = "unknown"

// clientAddr returns who the client behind r is. The X-Forwarded-For
// header of a trusted proxy is read right to left, skipping trusted
// proxies, so a client cannot choose its address by sending its own
// X-Forwarded-For through a proxy that appends to it. A hop may carry a
// port (192.0.2.7:4711, [2001:db8::7]:4711), as some proxies write.
func clientAddr(r *http.Request, trusted []netip.Prefix) client {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return client{}
	}
	cl := client{addr: ap.Addr().Unmap()}
	if !isTrusted(cl.addr, trusted) {
		return cl
	}
	hops := r.Header.Values("X-Forwarded-For")
	if len(hops) == 0 {
		cl.noHeader = true
		return cl
	}
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for k := len(parts) - 1; k >= 0; k-- {
			hop := strings.TrimSpace(parts[k])
			if hop == "" {
				continue
			}
			a, ok := parseHop(hop)
			if !ok {
				// A trusted proxy did not say who its client is: the
				// client is unknown, not the proxy.
				return client{unknown: truncate(hop, 40), forwarded: true}
			}
			cl = client{addr: a, forwarded: true}
			if !isTrusted(a, trusted) {
				return cl
			}
		}
	}
	return cl
}

// parseHop reads one X-Forwarded-For entry: an address, with or without a
// port, IPv6 with or without brackets.
func parseHop(h string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr().Unmap(), true
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		if a, err := netip.ParseAddr(h[1 : len(h)-1]); err == nil && a.Is6() {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// key is what the per-address connection limit counts cl by.
func (cl client) key() string {
	if cl.unknown != "" {
		return unknownKey
	}
	return addrKey(cl.addr)
}

// String is the client's address for logs.
func (cl client) String() string {
	if cl.unknown != "" {
		return cl.unknown
	}
	return cl.addr.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrKey is what the per-address connection limit counts by: an IPv4
// address, or an IPv6 /64 (one home or device usually has a whole /64).
// Loopback clients get "": they are the relay's own host (a reverse
// proxy that does not say who its client is, or a local tool) and are not
// limited per address.
func addrKey(a netip.Addr) string {
	if !a.IsValid() || a.IsLoopback() {
		return ""
	}
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// originAllowed applies the Origin policy: a request without an Origin
// header (native clients) is allowed; one with an Origin only if it is in
// allowed (compared as scheme://host[:port], case-insensitively), or
// allowed holds "*".
func originAllowed(origin string, allowed []string) bool {
	if origin == "" {
		return true
	}
	o := normalizeOrigin(origin)
	for _, a := range allowed {
		if a == "*" || (o != "" && normalizeOrigin(a) == o) {
			return true
		}
	}
	return false
}

// normalizeOrigin returns scheme://host[:port] in lower case, or "" for
// something that is not an origin.
func normalizeOrigin(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// CheckOrigin reports whether s is an origin that an AllowedOrigins entry
// can match ("*", or scheme://host[:port]), for validating configuration.
func CheckOrigin(s string) error {
	if s == "*" || normalizeOrigin(s) != "" {
		return nil
	}
	return fmt.Errorf("%q is not an origin: write it as scheme://host[:port], for example https://journal.example.org", s)
}

// refuseHTTP answers a request refused before the WebSocket upgrade with
// status, a Retry-After header when retry is set, and a short body that
// starts with the machine-readable code.
func refuseHTTP(w http.ResponseWriter, status int, code protocol.Code, retry time.Duration, msg string) {
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "%s: %s\n", code, msg)
}

// humanBytes writes n bytes for people: 1 GiB, 1.5 MiB, 1500 bytes.
func humanBytes(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size {
			v := strconv.FormatFloat(float64(n)/float64(u.size), 'f', 1, 64)
			return strings.TrimSuffix(v, ".0") + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// logSampler lets a refusal that can come in floods (connection attempts)
// be logged at most once per interval, with a count of those not logged,
// so an attack on the relay cannot also fill its disk with logs.
type logSampler struct {
	last       atomic.Int64 // unix nanoseconds of the last logged event
	suppressed atomic.Int64 // events not logged since
}

const logSampleInterval = 10 * time.Second

// sample reports whether to log an event now and, if so, how many were
// left unlogged before it.
func (ls *logSampler) sample(now time.Time) (log bool, suppressed int64) {
	last := ls.last.Load()
	if now.UnixNano()-last < int64(logSampleInterval) || !ls.last.CompareAndSwap(last, now.UnixNano()) {
		ls.suppressed.Add(1)
		return false, 0
	}
	return true, ls.suppressed.Swap(0)
}
