package server

import (
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
	limitOrigin          = "origin"
	limitSize            = "size"
	limitMessageSize     = "message_size"
	limitAuthTimeout     = "auth_timeout"
	limitSlowReader      = "slow_reader"
	limitSubscriptions   = "subscriptions"
)

// maxLimitedInARow is how many requests in a row a connection may have
// refused as rate-limited before the relay closes it: a client that keeps
// sending after being asked to wait costs the relay a decode and a reply
// per request for nothing. It is above the reference client's pipeline of
// 64 puts, so a client that pipelines and then waits is never closed.
const maxLimitedInARow = 256

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

// connCounter counts open connections, in total and per client address.
type connCounter struct {
	max, maxPerAddr int // Config.MaxConns, Config.MaxConnsPerAddress; negative: no limit. Static.

	mu      sync.Mutex
	total   int            // guarded by mu
	perAddr map[string]int // guarded by mu
}

// admit counts a new connection from addr, or returns which limit refuses
// it. An empty addr (a loopback client) is counted only in the total.
func (cc *connCounter) admit(addr string) (release func(), limit string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.max >= 0 && cc.total >= cc.max {
		return nil, limitConns
	}
	if addr != "" && cc.maxPerAddr >= 0 && cc.perAddr[addr] >= cc.maxPerAddr {
		return nil, limitConnsPerAddress
	}
	cc.total++
	if addr != "" {
		if cc.perAddr == nil {
			cc.perAddr = make(map[string]int)
		}
		cc.perAddr[addr]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			cc.mu.Lock()
			defer cc.mu.Unlock()
			cc.total--
			if addr != "" {
				if cc.perAddr[addr]--; cc.perAddr[addr] <= 0 {
					delete(cc.perAddr, addr)
				}
			}
		})
	}, ""
}

// loopbackPrefixes is the default for Config.TrustedProxies.
var loopbackPrefixes = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// clientAddr returns the address of the client behind r: the TCP peer, or,
// when the peer is a trusted proxy, the address X-Forwarded-For names. The
// header is read right to left, skipping trusted proxies, so a client
// cannot choose its address by sending its own X-Forwarded-For through a
// proxy that appends to it. forwarded reports whether the header was used.
func clientAddr(r *http.Request, trusted []netip.Prefix) (addr netip.Addr, forwarded bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	addr = ap.Addr().Unmap()
	if !isTrusted(addr, trusted) {
		return addr, false
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for k := len(parts) - 1; k >= 0; k-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[k]))
			if err != nil {
				return addr, forwarded // a malformed hop ends the trusted chain
			}
			addr, forwarded = a.Unmap(), true
			if !isTrusted(addr, trusted) {
				return addr, true
			}
		}
	}
	return addr, forwarded
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
