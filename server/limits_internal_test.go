package server

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		peer      string
		xff       []string
		want      string
		forwarded bool
	}{
		{"203.0.113.9:4000", nil, "203.0.113.9", false},
		{"203.0.113.9:4000", []string{"198.51.100.1"}, "203.0.113.9", false}, // untrusted peer: header ignored
		{"127.0.0.1:4000", nil, "127.0.0.1", false},
		{"127.0.0.1:4000", []string{"198.51.100.1"}, "198.51.100.1", true},
		{"127.0.0.1:4000", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1", true},    // a forged left entry is skipped
		{"127.0.0.1:4000", []string{"198.51.100.1, 10.1.2.3"}, "198.51.100.1", true},   // through a second trusted hop
		{"127.0.0.1:4000", []string{"198.51.100.1", "10.1.2.3"}, "198.51.100.1", true}, // several headers
		{"127.0.0.1:4000", []string{"garbage, 10.1.2.3"}, "garbage", true},             // a trusted hop that names no address: unknown, not the proxy
		{"127.0.0.1:4000", []string{"unknown"}, "unknown", true},                       // a proxy that does not know its client
		{"127.0.0.1:4000", []string{"198.51.100.1:4444"}, "198.51.100.1", true},        // a hop with a port
		{"127.0.0.1:4000", []string{"[2001:db8::7]:4444"}, "2001:db8::7", true},        // IPv6 with a port
		{"127.0.0.1:4000", []string{"[2001:db8::7]"}, "2001:db8::7", true},             // IPv6 in brackets
		{"127.0.0.1:4000", []string{"6.6.6.6, 10.1.2.3:80"}, "6.6.6.6", true},          // a trusted hop with a port is skipped too
		{"127.0.0.1:4000", []string{"198.51.100.1, "}, "198.51.100.1", true},           // an empty entry is skipped
		{"127.0.0.1:4000", []string{"::ffff:198.51.100.1"}, "198.51.100.1", true},      // mapped IPv4
		{"[::1]:4000", []string{"2001:db8::1"}, "::1", false},                          // ::1 not in this trusted list
		{"127.0.0.1:4000", []string{"10.1.2.3"}, "10.1.2.3", true},                     // only trusted hops: the leftmost
	}
	for _, tt := range tests {
		r := &http.Request{RemoteAddr: tt.peer, Header: http.Header{}}
		for _, h := range tt.xff {
			r.Header.Add("X-Forwarded-For", h)
		}
		cl := clientAddr(r, trusted)
		got, fwd := cl.String(), cl.forwarded
		if got != tt.want || fwd != tt.forwarded {
			t.Errorf("peer %s, XFF %q: got %s (forwarded %v), want %s (%v)", tt.peer, tt.xff, got, fwd, tt.want, tt.forwarded)
		}
		if cl.unknown != "" && cl.key() != unknownKey {
			t.Errorf("peer %s, XFF %q: an unknown client counts as %q", tt.peer, tt.xff, cl.key())
		}
	}
	// A trusted peer that sends no header is noted; an untrusted one is not.
	if cl := clientAddr(&http.Request{RemoteAddr: "127.0.0.1:1", Header: http.Header{}}, trusted); !cl.noHeader {
		t.Error("a trusted proxy without X-Forwarded-For was not noticed")
	}
	if cl := clientAddr(&http.Request{RemoteAddr: "203.0.113.9:1", Header: http.Header{}}, trusted); cl.noHeader {
		t.Error("an untrusted peer without X-Forwarded-For was taken for a proxy")
	}
}

func TestAddrKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"203.0.113.9":          "203.0.113.9",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"127.0.0.1":            "",
		"::1":                  "",
	} {
		if got := addrKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("addrKey(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{900: "900 bytes", 1024: "1 KiB", 1536: "1.5 KiB", 1 << 30: "1 GiB", 600 << 10: "600 KiB", 1<<30 - 1: "1024 MiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// Idle journals' buckets are dropped as the map grows, so it tracks the
// journals being written to, not every journal there is.
func TestJournalLimitersForgetIdleJournals(t *testing.T) {
	t.Parallel()
	jl := journalLimiters{rate: 10, burst: 5}
	now := time.Unix(1000, 0)
	for i := range journalLimiterSweep {
		var j protocol.JournalID
		j[0], j[1] = byte(i), byte(i>>8)
		if _, ok := jl.take(j, now); !ok {
			t.Fatal("a fresh journal was refused")
		}
	}
	later := now.Add(time.Second) // every bucket has refilled
	if _, ok := jl.take(protocol.JournalID{0xff, 0xff}, later); !ok {
		t.Fatal("refused")
	}
	if len(jl.m) != 1 {
		t.Fatalf("%d buckets kept after a sweep, want 1", len(jl.m))
	}
	// A journal whose bucket is not full keeps it.
	busy := protocol.JournalID{0xff, 0xff}
	for range 4 {
		jl.take(busy, later)
	}
	if _, ok := jl.take(busy, later); ok {
		t.Fatal("a sixth put at once was allowed with burst 5")
	}
}

// BenchmarkPutLimits measures what the rate limits add to each put: one
// per-connection bucket and one per-journal bucket.
func BenchmarkPutLimits(b *testing.B) {
	conn := newLimiter(1e9, 1<<30)
	jl := journalLimiters{rate: 1e9, burst: 1 << 30}
	j := protocol.JournalID{1}
	now := time.Now()
	for b.Loop() {
		take(conn, now)
		jl.take(j, now)
	}
}

func TestLogSampler(t *testing.T) {
	t.Parallel()
	var ls logSampler
	t0 := time.Unix(5000, 0)
	if ok, n := ls.sample(t0); !ok || n != 0 {
		t.Fatalf("first event: %v %d", ok, n)
	}
	for range 3 {
		if ok, _ := ls.sample(t0.Add(time.Second)); ok {
			t.Fatal("logged twice within the interval")
		}
	}
	if ok, n := ls.sample(t0.Add(logSampleInterval)); !ok || n != 3 {
		t.Fatalf("after the interval: %v, %d not logged, want 3", ok, n)
	}
}

// The guard closes a connection when many of its requests, and a large
// share of them, were refused recently; not a client that is refused now
// and then, nor one whose refusals are spread over a long time.
func TestRefusalGuard(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	run := func(admitted, refused int, step time.Duration, rounds int) (closedAfter int) {
		var g refusalGuard
		now := t0
		n := 0
		for range rounds {
			for range admitted {
				if g.note(now, false) {
					t.Fatal("closed on an admitted request")
				}
			}
			for range refused {
				n++
				if g.note(now, true) {
					return n
				}
			}
			now = now.Add(step)
		}
		return 0
	}
	if n := run(1, 1, time.Millisecond, 1000); n != minRefusals+1 {
		t.Errorf("half refused: closed after %d refusals, want %d", n, minRefusals+1)
	}
	if n := run(4, 1, time.Millisecond, 1000); n != 0 {
		t.Errorf("a fifth refused: closed after %d refusals", n)
	}
	if n := run(0, 1, refusalWindow/100, 1000); n != 0 {
		t.Errorf("100 refusals per window: closed after %d", n)
	}
}
