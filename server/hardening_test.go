package server_test

import (
	"bufio"
	"context"
	stdjson "encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// newClock returns a settable clock at the current time.
func newClock() *clock {
	var c clock
	c.Set(time.Now())
	return &c
}

// A connection over its request rate gets rate-limited with a retry hint
// and stays open; other connections are not affected; once its bucket
// refills it is served again.
func TestRequestRateLimit(t *testing.T) {
	t.Parallel()
	clk := newClock()
	srv := servertest.NewServerWithConfig(t, server.Config{Now: clk.Now, RequestRate: 2, RequestBurst: 3})
	c := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	for range 3 {
		servertest.MustOK(t, c.Create(servertest.NewJournalID()))
	}
	e := wantError(t, c.Create(servertest.NewJournalID()), protocol.CodeRateLimited)
	if e.RetryAfterMS != 500 {
		t.Errorf("retry_after_ms %d, want 500 (one token at 2 a second)", e.RetryAfterMS)
	}
	if !strings.Contains(e.Message, "try again in 500ms") {
		t.Errorf("message %q does not say when to try again", e.Message)
	}
	// A malformed request with an id counts too, and is refused the same way.
	id := c.NextID()
	c.SendFrame([]byte(`{"type":"put","id":` + strconv.FormatUint(id, 10) + `,"journal":"zz"}`))
	wantError(t, c.Reply(id), protocol.CodeRateLimited)

	// Someone else is served as usual.
	other := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	servertest.MustOK(t, other.Create(servertest.NewJournalID()))

	clk.Advance(500 * time.Millisecond)
	servertest.MustOK(t, c.Create(servertest.NewJournalID()))
	wantError(t, c.Create(servertest.NewJournalID()), protocol.CodeRateLimited)
	if got := metricValue(t, srv, `kintsugi_relay_limit_rejections_total{code="rate-limited",limit="request_rate"}`); got != 3 {
		t.Errorf("request_rate rejections metric %v, want 3", got)
	}
}

// A client that keeps sending after being told to wait is closed, with a
// connection-level rate-limited error.
func TestRateLimitedFloodIsClosed(t *testing.T) {
	t.Parallel()
	clk := newClock()
	srv := servertest.NewServerWithConfig(t, server.Config{Now: clk.Now, RequestRate: 1, RequestBurst: 1})
	c := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	// One request is served, 256 are refused (the most the relay answers
	// within its window when most requests are refused), and the next
	// closes the connection. Sending no more than
	// that keeps unread requests from turning the close into a reset.
	const n = 1 + 256 + 1
	for range n {
		c.Send(&protocol.Create{Type: protocol.TypeCreate, ID: c.NextID(), Journal: servertest.NewJournalID()})
	}
	var last protocol.Error
	replies := 0
	for {
		data, err := c.Read()
		if err != nil {
			if code := closeCode(err); code != websocket.ClosePolicyViolation {
				t.Fatalf("closed with %v, want policy violation", err)
			}
			break
		}
		last = protocol.Error{}
		if err := protocol.DecodeAs(data, &last); err != nil {
			t.Fatal(err)
		}
		replies++
	}
	if last.ID != 0 || last.Code != protocol.CodeRateLimited || replies != n {
		t.Fatalf("after %d replies the last was %+v; want %d replies, the last a connection-level rate-limited", replies, last, n)
	}
	servertest.MustOK(t, servertest.Dial(t, srv.WebSocketURL(), c.Key).Create(servertest.NewJournalID()))
}

// Puts to one journal share a rate, whichever device sends them; a resend
// of a stored blob is never refused by it; other journals are unaffected.
func TestJournalPutRate(t *testing.T) {
	t.Parallel()
	clk := newClock()
	srv := servertest.NewServerWithConfig(t, server.Config{Now: clk.Now, JournalPutRate: 4, JournalPutBurst: 2})
	a := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	b := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	j := servertest.NewJournalID()
	servertest.MustOK(t, a.Create(j))
	invite(t, a, j, b)
	ca := servertest.Chain{Journal: j, Author: a.Device}
	cb := servertest.Chain{Journal: j, Author: b.Device}
	first := ca.Next("1")
	servertest.MustOK(t, a.Put(j, first))
	servertest.MustOK(t, b.Put(j, cb.Next("1")))
	second := ca.Next("2")
	e := wantError(t, a.Put(j, second), protocol.CodeRateLimited)
	if e.RetryAfterMS != 250 {
		t.Errorf("retry_after_ms %d, want 250", e.RetryAfterMS)
	}
	wantError(t, b.Put(j, cb.Next("2")), protocol.CodeRateLimited)
	if ok := servertest.MustOK(t, a.Put(j, first)); !ok.Duplicate || ok.Seq != 1 {
		t.Fatalf("resend of a stored blob: %+v", ok)
	}
	// Another journal, another bucket.
	j2 := servertest.NewJournalID()
	servertest.MustOK(t, b.Create(j2))
	c2 := servertest.Chain{Journal: j2, Author: b.Device}
	servertest.MustOK(t, b.Put(j2, c2.Next("x")))

	clk.Advance(250 * time.Millisecond)
	if ok := servertest.MustOK(t, a.Put(j, second)); ok.Seq != 3 {
		t.Fatalf("put after the wait got seq %d, want 3", ok.Seq)
	}
}

// A journal at its quota refuses new blobs with quota-exceeded, keeps
// answering resends, and counts what it holds durably; a purge frees room.
func TestJournalQuota(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServerWithConfig(t, server.Config{JournalQuota: 1000})
	c := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	j := servertest.NewJournalID()
	servertest.MustOK(t, c.Create(j))
	ch := servertest.Chain{Journal: j, Author: c.Device}
	body := strings.Repeat("x", 300-protocol.HeaderSize-32-protocol.NonceSize)
	var blobs [][]byte
	for range 3 {
		b := ch.Next(body)
		if len(b) != 300 {
			t.Fatalf("test blob is %d bytes", len(b))
		}
		blobs = append(blobs, b)
		servertest.MustOK(t, c.Put(j, b))
	}
	over := ch.Next(body) // 1200 > 1000
	e := wantError(t, c.Put(j, over), protocol.CodeQuotaExceeded)
	if !strings.Contains(e.Message, "900 bytes of a 1000 bytes limit") {
		t.Errorf("message %q does not say how full the journal is", e.Message)
	}
	if ok := servertest.MustOK(t, c.Put(j, blobs[2])); !ok.Duplicate {
		t.Fatal("a resend was not answered as a duplicate")
	}
	// Others are not affected.
	d := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	j2 := servertest.NewJournalID()
	servertest.MustOK(t, d.Create(j2))
	servertest.MustOK(t, d.Put(j2, (&servertest.Chain{Journal: j2, Author: d.Device}).Next(body)))

	// The count survives a restart.
	srv.Restart()
	c = servertest.Dial(t, srv.WebSocketURL(), c.Key)
	wantError(t, c.Put(j, over), protocol.CodeQuotaExceeded)

	// A purged blob leaves its purged record (123 bytes as stored), so
	// purging two of the 300-byte blobs makes room for another.
	id := c.NextID()
	bid := protocol.IDOf(blobs[0])
	c.Send(&protocol.Purge{Type: protocol.TypePurge, ID: id, Journal: j, BlobID: bid[:], ChainID: bid[:]})
	servertest.MustOK(t, c.Reply(id))
	id = c.NextID()
	bid = protocol.IDOf(blobs[1])
	c.Send(&protocol.Purge{Type: protocol.TypePurge, ID: id, Journal: j, BlobID: bid[:], ChainID: bid[:]})
	servertest.MustOK(t, c.Reply(id))
	// Now 123+123+300 = 546 bytes are held; 300 more fit.
	servertest.MustOK(t, c.Put(j, over))
	if got := metricValue(t, srv, `kintsugi_relay_limit_rejections_total{code="quota-exceeded",limit="journal_quota"}`); got != 1 {
		t.Errorf("quota rejections metric after restart %v, want 1", got)
	}
}

// A relay full of connections that have not authenticated closes the
// oldest of them to make room for a new one, which can then log in;
// connections past MaxConns are refused before the upgrade, with 503 and
// a too-many-connections body, only when every open one has logged in.
func TestMaxConns(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServerWithConfig(t, server.Config{MaxConns: 3})
	a := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	idle1 := servertest.DialRaw(t, srv.WebSocketURL())
	idle2 := servertest.DialRaw(t, srv.WebSocketURL())
	b := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t)) // idle1 makes room
	e, err := readClosingError(t, idle1)
	if e.Code != protocol.CodeTooManyConnections || closeCode(err) != websocket.CloseTryAgainLater {
		t.Fatalf("the oldest unauthenticated connection got %s %q, %v", e.Code, e.Message, err)
	}
	servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t)) // idle2 makes room
	if e, _ := readClosingError(t, idle2); e.Code != protocol.CodeTooManyConnections {
		t.Fatalf("the second unauthenticated connection got %s", e.Code)
	}
	resp, body := servertest.Refused(t, srv.WebSocketURL(), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(body, "too-many-connections: ") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("refusal: %s, Retry-After %q, body %q", resp.Status, resp.Header.Get("Retry-After"), body)
	}
	servertest.MustOK(t, a.Create(servertest.NewJournalID()))
	servertest.MustOK(t, b.Create(servertest.NewJournalID()))
	if got := metricValue(t, srv, `kintsugi_relay_limit_rejections_total{code="too-many-connections",limit="max_connections"}`); got != 3 {
		t.Errorf("max_connections rejections metric %v, want 3 (two closed to make room, one refused)", got)
	}
}

// At most MaxUnauthConns connections wait to authenticate at once: the
// oldest makes room for a new one, even with room in the total.
func TestMaxUnauthConns(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServerWithConfig(t, server.Config{MaxUnauthConns: 2})
	var idle []*servertest.Client
	for range 2 {
		idle = append(idle, servertest.DialRaw(t, srv.WebSocketURL()))
	}
	c := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	if e, _ := readClosingError(t, idle[0]); e.Code != protocol.CodeTooManyConnections {
		t.Fatalf("the oldest unauthenticated connection got %s", e.Code)
	}
	// Authenticated connections no longer count against the cap.
	more := servertest.DialRaw(t, srv.WebSocketURL())
	servertest.MustOK(t, c.Create(servertest.NewJournalID()))
	if err := more.Authenticate(servertest.NewKey(t)); err != nil {
		t.Fatalf("a connection within the cap could not log in: %v", err)
	}
	if err := idle[1].Authenticate(servertest.NewKey(t)); err != nil {
		t.Fatalf("a connection within the cap could not log in: %v", err)
	}
	if got := metricValue(t, srv, `kintsugi_relay_limit_rejections_total{code="too-many-connections",limit="max_unauthenticated_connections"}`); got != 1 {
		t.Errorf("max_unauthenticated_connections rejections metric %v, want 1", got)
	}
}

// Connections per client address are limited by the address X-Forwarded-For
// names when the peer is a trusted proxy (loopback by default); IPv6
// addresses count by /64; loopback clients are not limited per address.
func TestMaxConnsPerAddress(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServerWithConfig(t, server.Config{MaxConnsPerAddress: 1})
	xff := func(addr string) http.Header { return http.Header{"X-Forwarded-For": {addr}} }
	d := &websocket.Dialer{}
	servertest.DialRawWith(t, d, srv.WebSocketURL(), xff("203.0.113.7"))
	resp, body := servertest.Refused(t, srv.WebSocketURL(), xff("203.0.113.7"))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.HasPrefix(body, "too-many-connections: ") {
		t.Fatalf("refusal: %s %q", resp.Status, body)
	}
	// A client cannot escape by prepending its own X-Forwarded-For: the
	// relay reads the rightmost untrusted address.
	servertest.Refused(t, srv.WebSocketURL(), xff("198.51.100.1, 203.0.113.7"))
	servertest.DialRawWith(t, d, srv.WebSocketURL(), xff("203.0.113.8"))
	servertest.DialRawWith(t, d, srv.WebSocketURL(), xff("2001:db8:1:2::1"))
	servertest.Refused(t, srv.WebSocketURL(), xff("2001:db8:1:2::2"))
	// Loopback itself is not limited.
	servertest.DialRaw(t, srv.WebSocketURL())
	servertest.DialRaw(t, srv.WebSocketURL())
	if got := metricValue(t, srv, `kintsugi_relay_limit_rejections_total{code="too-many-connections",limit="max_connections_per_address"}`); got != 3 {
		t.Errorf("per-address rejections metric %v, want 3", got)
	}

	// With no trusted proxy the header is ignored: every test connection
	// is then a loopback client.
	srv2 := servertest.NewServerWithConfig(t, server.Config{MaxConnsPerAddress: 1, TrustedProxies: []netip.Prefix{}})
	servertest.DialRawWith(t, d, srv2.WebSocketURL(), xff("203.0.113.7"))
	servertest.DialRawWith(t, d, srv2.WebSocketURL(), xff("203.0.113.7"))
}

// Native clients send no Origin and are accepted; browsers' Origins are
// accepted only when listed.
func TestOriginPolicy(t *testing.T) {
	t.Parallel()
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }
	d := &websocket.Dialer{}

	srv := servertest.NewServer(t)
	servertest.DialRaw(t, srv.WebSocketURL())
	for _, o := range []string{"https://evil.example", srv.URL(), "null"} {
		resp, body := servertest.Refused(t, srv.WebSocketURL(), origin(o))
		if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(body, "origin-not-allowed: ") {
			t.Fatalf("origin %s: %s %q", o, resp.Status, body)
		}
	}

	srv = servertest.NewServerWithConfig(t, server.Config{AllowedOrigins: []string{"https://journal.example.org"}})
	servertest.DialRaw(t, srv.WebSocketURL())
	servertest.DialRawWith(t, d, srv.WebSocketURL(), origin("https://journal.example.org"))
	servertest.DialRawWith(t, d, srv.WebSocketURL(), origin("HTTPS://Journal.Example.org"))
	servertest.Refused(t, srv.WebSocketURL(), origin("http://journal.example.org"))
	servertest.Refused(t, srv.WebSocketURL(), origin("https://journal.example.org:8443"))

	srv = servertest.NewServerWithConfig(t, server.Config{AllowedOrigins: []string{"*"}})
	servertest.DialRawWith(t, d, srv.WebSocketURL(), origin("https://anything.example"))

	if _, err := server.New(server.Config{Store: srv.Store(), AllowedOrigins: []string{"journal.example.org"}}); err == nil {
		t.Fatal("an origin without a scheme was accepted in the configuration")
	}
}

// Too many subscriptions on one connection are refused.
func TestMaxSubscriptions(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServerWithConfig(t, server.Config{MaxSubscriptions: 2})
	c := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	for i := range 3 {
		j := servertest.NewJournalID()
		servertest.MustOK(t, c.Create(j))
		if i < 2 {
			servertest.MustOK(t, c.Subscribe(j, 0))
			continue
		}
		e := wantError(t, c.Subscribe(j, 0), protocol.CodeInvalid)
		if !strings.Contains(e.Message, "2 subscriptions") {
			t.Errorf("message %q", e.Message)
		}
	}
}

// scrape fetches the relay's metrics and returns each sample by its series
// (name and labels as printed).
func scrape(t *testing.T, srv *servertest.Server) map[string]float64 {
	t.Helper()
	hs := httptest.NewServer(srv.Relay().MetricsHandler())
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func metricValue(t *testing.T, srv *servertest.Server, series string) float64 {
	t.Helper()
	m := scrape(t, srv)
	v, ok := m[series]
	if !ok {
		t.Fatalf("no metric %s", series)
	}
	return v
}

// The metrics count connections, blobs and bytes each way, acks,
// subscriptions and refusals, and are not on the public handler.
func TestMetrics(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServerWithConfig(t, server.Config{MaxBlobSize: 1000})
	before := scrape(t, srv)
	for _, name := range []string{"kintsugi_relay_connections", "kintsugi_relay_subscriptions", `kintsugi_relay_storage_bytes{part="lsm"}`, `kintsugi_relay_storage_bytes{part="vlog"}`, `kintsugi_relay_storage_bytes{part="blobs"}`, "go_goroutines"} {
		if _, ok := before[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	if before["kintsugi_relay_connections"] != 0 || before["kintsugi_relay_blobs_in_total"] != 0 {
		t.Fatalf("a new relay reports activity: %v", before)
	}

	w := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	j := servertest.NewJournalID()
	servertest.MustOK(t, w.Create(j))
	ch := servertest.Chain{Journal: j, Author: w.Device}
	b1, b2 := ch.Next("one"), ch.Next("two")
	servertest.MustOK(t, w.Put(j, b1))
	servertest.MustOK(t, w.Put(j, b2))
	servertest.MustOK(t, w.Put(j, b1)) // duplicate
	wantError(t, w.Put(j, ch.Next(strings.Repeat("x", 1000))), protocol.CodeTooLarge)
	r := servertest.Dial(t, srv.WebSocketURL(), w.Key)
	servertest.MustOK(t, r.Subscribe(j, 0))
	r.NextBlob()
	r.NextBlob()
	r.NextCaughtUp()

	m := scrape(t, srv)
	want := map[string]float64{
		"kintsugi_relay_connections":                                           2,
		"kintsugi_relay_connections_total":                                     2,
		"kintsugi_relay_subscriptions":                                         1,
		"kintsugi_relay_blobs_in_total":                                        2,
		"kintsugi_relay_bytes_in_total":                                        float64(len(b1) + len(b2)),
		"kintsugi_relay_duplicate_puts_total":                                  1,
		"kintsugi_relay_blobs_out_total":                                       2,
		"kintsugi_relay_bytes_out_total":                                       float64(len(b1) + len(b2)),
		"kintsugi_relay_put_ack_seconds_count":                                 3,
		`kintsugi_relay_put_ack_seconds_bucket{le="+Inf"}`:                     3,
		`kintsugi_relay_limit_rejections_total{code="too-large",limit="size"}`: 1,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if m[`kintsugi_relay_storage_bytes{part="blobs"}`] <= 0 {
		t.Errorf("the blob segments take no space after two puts")
	}

	resp, err := http.Get(srv.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("public /metrics answered %s; it should not be served there", resp.Status)
	}
}

// /readyz is 200 while the relay serves, 503 once it is shutting down or
// its store fails; /healthz stays a plain liveness probe until shutdown.
func TestReadyz(t *testing.T) {
	t.Parallel()
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	srv := servertest.NewServer(t)
	if code, body := get(srv.URL() + "/readyz"); code != 200 || body != "ready" {
		t.Fatalf("readyz: %d %q", code, body)
	}
	metricsSrv := httptest.NewServer(srv.Relay().MetricsHandler())
	defer metricsSrv.Close()
	if code, _ := get(metricsSrv.URL + "/readyz"); code != 200 {
		t.Fatalf("readyz on the metrics listener: %d", code)
	}

	// Shutdown: while the relay drains its connections, readiness fails.
	c := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	closed := make(chan error, 1)
	go func() { closed <- srv.Relay().Close(context.Background()) }()
	if e, _ := readClosingError(t, c); e.Code != protocol.CodeShuttingDown {
		t.Fatalf("device got %s", e.Code)
	}
	if code, body := get(metricsSrv.URL + "/readyz"); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "draining") {
		t.Fatalf("readyz while shutting down: %d %q", code, body)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if code, _ := get(srv.URL() + "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz after shutdown: %d", code)
	}

	// A store that stops answering makes the relay unready.
	srv2 := servertest.NewServer(t)
	if err := srv2.Store().Close(); err != nil {
		t.Fatal(err)
	}
	if code, body := get(srv2.URL() + "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "store") {
		t.Fatalf("readyz with a closed store: %d %q", code, body)
	}
	if code, _ := get(srv2.URL() + "/healthz"); code != 200 {
		t.Fatalf("healthz with a closed store: %d", code)
	}
}

// The information document names the relay and its limits.
func TestInfo(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServerWithConfig(t, server.Config{JournalQuota: 5 << 20, RequestRate: -1, MaxConns: 7, Version: "v1.2.3", MaxBlobSize: 4096})
	resp, err := http.Get(srv.URL() + protocol.InfoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("info: %s %v", resp.Status, resp.Header)
	}
	var info protocol.RelayInfo
	if err := stdjson.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	l := info.Limits
	if info.Software != "kintsugi-relay" || info.Version != "v1.2.3" || info.ProtocolVersion != protocol.Version ||
		info.Subprotocol != protocol.Subprotocol || info.RelayID != srv.Relay().RelayID() {
		t.Errorf("info %+v", info)
	}
	if l.MaxBlobSize != 4096 || l.JournalQuota != 5<<20 || l.RequestRate != 0 || l.RequestBurst != 0 || l.MaxConnections != 7 ||
		l.JournalPutRate != server.DefaultJournalPutRate || l.JournalPutBurst != server.DefaultJournalPutBurst ||
		l.MaxConnsPerAddr != server.DefaultMaxConnsPerAddress || l.MaxUnauthConns != server.DefaultMaxUnauthConns || l.AuthTimeout != 10 || l.PingInterval != 30 ||
		l.MaxMessageSize != protocol.MaxMessageSize || l.MaxAuthMessage != 4096 {
		t.Errorf("limits %+v", l)
	}
	r, err := http.Post(srv.URL()+protocol.InfoPath, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST info: %s", r.Status)
	}
}
