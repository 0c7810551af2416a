package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// logRecorder is a slog.Handler that keeps every record's level and
// message, and the value of its "reason" attribute.
type logRecorder struct {
	mu   sync.Mutex
	recs []logRecord
}

type logRecord struct {
	level  slog.Level
	msg    string
	reason string
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" {
			rec.reason = a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, rec)
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// count returns how many records at level have a message starting with msg.
func (h *logRecorder) count(level slog.Level, msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.level == level && strings.HasPrefix(r.msg, msg) {
			n++
		}
	}
	return n
}

// reasons returns the reasons of the records with message msg.
func (h *logRecorder) reasons(msg string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		if r.msg == msg {
			out = append(out, r.reason)
		}
	}
	return out
}

// Behind a trusted proxy, X-Forwarded-For hops with a port count as their
// address, and hops that are not addresses ("unknown") share one
// address's allowance, rather than the unlimited one of the proxy's
// loopback address.
func TestMaxConnsPerAddressBehindProxy(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServerWithConfig(t, server.Config{MaxConnsPerAddress: 2})
	xff := func(addr string) http.Header { return http.Header{"X-Forwarded-For": {addr}} }
	d := &websocket.Dialer{}
	for _, tc := range []struct{ name, a, b, over string }{
		{"IPv4 with a port", "10.9.8.7:4444", "10.9.8.7:5555", "10.9.8.7"},
		{"IPv6 with a port", "[2001:db8:9::1]:4444", "[2001:db8:9::2]:4444", "2001:db8:9::3"},
		{"not an address", "unknown", "_hidden", "unknown"},
	} {
		servertest.DialRawWith(t, d, srv.WebSocketURL(), xff(tc.a))
		servertest.DialRawWith(t, d, srv.WebSocketURL(), xff(tc.b))
		resp, body := servertest.Refused(t, srv.WebSocketURL(), xff(tc.over))
		if resp.StatusCode != http.StatusTooManyRequests || !strings.HasPrefix(body, "too-many-connections: ") {
			t.Fatalf("%s: refusal %s %q", tc.name, resp.Status, body)
		}
	}
}

// The first WebSocket request from a trusted proxy without
// X-Forwarded-For is logged as a warning, once.
func TestTrustedProxyWithoutHeaderIsWarnedOnce(t *testing.T) {
	t.Parallel()
	logs := &logRecorder{}
	srv := servertest.NewServerWithConfig(t, server.Config{Logger: slog.New(logs)})
	servertest.DialRawWith(t, &websocket.Dialer{}, srv.WebSocketURL(), http.Header{"X-Forwarded-For": {"203.0.113.5"}})
	if n := logs.count(slog.LevelWarn, "a trusted proxy sent a request without X-Forwarded-For"); n != 0 {
		t.Fatalf("warned %d times about a proxy that sent the header", n)
	}
	for range 3 {
		servertest.DialRaw(t, srv.WebSocketURL())
	}
	if n := logs.count(slog.LevelWarn, "a trusted proxy sent a request without X-Forwarded-For"); n != 1 {
		t.Fatalf("warned %d times about a trusted proxy without X-Forwarded-For, want once", n)
	}
}

// A client that paces itself just over its request rate, so that every
// few refusals one request is admitted, is closed once most of what it
// sends is refused; its refusals are logged at info once, then at debug.
func TestPacedRateLimitedClientIsClosed(t *testing.T) {
	t.Parallel()
	clk := newClock()
	logs := &logRecorder{}
	srv := servertest.NewServerWithConfig(t, server.Config{Now: clk.Now, RequestRate: 100, RequestBurst: 1, Logger: slog.New(logs)})
	c := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	refused := 0
	for round := 0; ; round++ {
		if round > 200 {
			t.Fatalf("the connection is still open after %d refusals", refused)
		}
		clk.Advance(10 * time.Millisecond) // one token
		for i := range 3 {
			id := c.NextID()
			c.Send(&protocol.Create{Type: protocol.TypeCreate, ID: id, Journal: servertest.NewJournalID()})
			data, err := c.Read()
			if err != nil {
				t.Fatalf("the connection ended without a connection-level error: %v", err)
			}
			var e protocol.Error
			if env, _ := protocol.Decode(data); env.Type != protocol.TypeError {
				if i != 0 {
					t.Fatalf("request %d of round %d was admitted: %s", i, round, data)
				}
				continue
			}
			if err := protocol.DecodeAs(data, &e); err != nil {
				t.Fatal(err)
			}
			if e.ID == 0 {
				if e.Code != protocol.CodeRateLimited {
					t.Fatalf("closed with %s", e.Code)
				}
				if _, err := c.Read(); closeCode(err) != websocket.ClosePolicyViolation {
					t.Fatalf("close: %v", err)
				}
				if refused < 256 {
					t.Fatalf("closed after only %d refusals", refused)
				}
				if n := logs.count(slog.LevelInfo, "request refused: rate limited"); n != 1 {
					t.Fatalf("%d info lines for the refusals, want 1", n)
				}
				if n := logs.count(slog.LevelDebug, "request refused: rate limited"); n != refused-1 {
					t.Fatalf("%d debug lines for the refusals, want one for each after the first", n)
				}
				return
			}
			refused++
		}
	}
}

// A client that floods the relay with pings (each costs a pong) is closed
// like one that floods it with requests, and the relay says it was pings.
func TestPingFloodIsClosed(t *testing.T) {
	t.Parallel()
	clk := newClock()
	logs := &logRecorder{}
	srv := servertest.NewServerWithConfig(t, server.Config{Now: clk.Now, RequestRate: 1, RequestBurst: 1, Logger: slog.New(logs)})
	c := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	pongs := 0
	c.WS.SetPongHandler(func(string) error { pongs++; return nil })
	for range 1 + 256 + 1 {
		if err := c.WS.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(servertest.ReadTimeout)); err != nil {
			t.Fatal(err)
		}
	}
	e, err := readClosingError(t, c)
	if e.ID != 0 || e.Code != protocol.CodeRateLimited || !strings.Contains(e.Message, "pings") || closeCode(err) != websocket.ClosePolicyViolation {
		t.Fatalf("got %+v, %v", e, err)
	}
	if pongs != 1 {
		t.Errorf("%d pongs, want 1: pings over the rate are not answered", pongs)
	}
	srv.Close() // wait for the connection's log
	if r := logs.reasons("connection closed"); len(r) != 1 || !strings.Contains(r[0], "ping flood") {
		t.Fatalf("closed connections logged with reasons %q, want one naming the ping flood", r)
	}
}

// Text frames must be UTF-8: one that is not is refused as malformed and
// the connection closed with 1007, before and after authenticating.
func TestInvalidUTF8IsRefused(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServer(t)
	bad := []byte(`{"type":"create","id":1,"journal":"` + servertest.NewJournalID().String() + "\",\"x\":\"\xff\xfe\"}")

	c := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	c.SendFrame(bad)
	e, err := readClosingError(t, c)
	if e.Code != protocol.CodeMalformed || e.ID != 0 || closeCode(err) != websocket.CloseInvalidFramePayloadData {
		t.Fatalf("after auth: got %+v, %v", e, err)
	}

	raw := servertest.DialRaw(t, srv.WebSocketURL())
	raw.SendFrame([]byte("{\"type\":\"auth\",\"version\":1,\"x\":\"\xc3\x28\"}"))
	e, err = readClosingError(t, raw)
	if e.Code != protocol.CodeMalformed || closeCode(err) != websocket.CloseInvalidFramePayloadData {
		t.Fatalf("before auth: got %+v, %v", e, err)
	}
}

// Connections that never authenticate are logged at debug, with at most
// one info line for a burst of them; an authenticated one is logged at
// info.
func TestUnauthenticatedConnectionsLogQuietly(t *testing.T) {
	t.Parallel()
	logs := &logRecorder{}
	srv := servertest.NewServerWithConfig(t, server.Config{Logger: slog.New(logs)})
	for range 20 {
		c := servertest.DialRaw(t, srv.WebSocketURL())
		c.WS.Close()
	}
	c := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	c.WS.Close()
	srv.Close() // wait for every connection's log
	info := logs.count(slog.LevelInfo, "connection opened") + logs.count(slog.LevelInfo, "connection closed") + logs.count(slog.LevelInfo, "closing connection")
	if info > 2 {
		t.Fatalf("%d info lines for 20 unauthenticated connections and one device, want at most 2", info)
	}
	if n := logs.count(slog.LevelInfo, "connection closed before authenticating"); n != 1 {
		t.Errorf("%d info summaries of unauthenticated connections, want 1", n)
	}
	if n := logs.count(slog.LevelDebug, "connection opened"); n != 21 {
		t.Errorf("%d debug lines for opened connections, want 21", n)
	}
	if n := logs.count(slog.LevelInfo, "device authenticated"); n != 1 {
		t.Errorf("%d device authenticated lines, want 1", n)
	}
}

// /readyz notices a data directory that is gone from under the running
// relay, and is ready again once it is back.
func TestReadyzNoticesMissingDataDir(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServer(t)
	get := func() (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(); code != http.StatusOK {
		t.Fatalf("readyz: %d", code)
	}
	dir := srv.DataDir()
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	code, body := get()
	if err := os.Rename(dir+".moved", dir); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "store") {
		t.Fatalf("readyz without the data directory: %d %q", code, body)
	}
	if code, _ := get(); code != http.StatusOK {
		t.Fatalf("readyz with the data directory back: %d", code)
	}
}

// A subscriber that reads steadily but slowly, so that one large blob
// takes longer to reach it than SendTimeout, keeps its connection and
// gets every blob: progress is measured in bytes, not whole messages.
func TestSlowButSteadyReaderKeepsUp(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes megabytes at a reader's pace")
	}
	forVersions(t, func(t *testing.T, v int) {
		// Margins wide enough for a loaded machine under -race: a reader
		// goroutine held up for a tenth of a second must not look stalled.
		const sendTimeout = 400 * time.Millisecond
		logs := &logRecorder{}
		srv := servertest.NewServerWithConfig(t, server.Config{SendTimeout: sendTimeout, SendQueueBytes: 64 << 10, Logger: slog.New(logs)})
		writer := servertest.DialVersion(t, srv.WebSocketURL(), servertest.NewKey(t), v)
		j := servertest.NewJournalID()
		servertest.MustOK(t, writer.Create(j))
		ch := servertest.Chain{Journal: j, Author: writer.Device}
		// 6 blobs of about 1 MiB: more than loopback's socket buffers hold
		// (about 4 MB), so the relay must wait for the reader.
		const n = 6
		pad := strings.Repeat("x", protocol.MaxBlobSize-protocol.HeaderSize-200)
		for i := range n {
			servertest.MustOK(t, writer.Put(j, ch.Next(fmt.Sprint(i, pad))))
		}
		slow := servertest.DialVersion(t, srv.WebSocketURL(), writer.Key, v)
		servertest.MustOK(t, slow.Subscribe(j, 0))
		// Read 4 KB, pause 3 ms, read on: at most 1.3 MB a second, so each
		// message takes over 750 ms, about twice SendTimeout, while bytes
		// keep moving every few milliseconds.
		piece := make([]byte, 4<<10)
		var msg bytes.Buffer
		blobs := 0
		for blobs < n {
			_ = slow.WS.SetReadDeadline(time.Now().Add(servertest.ReadTimeout))
			mt, r, err := slow.WS.NextReader()
			if err != nil {
				t.Fatalf("the relay closed a slow but steady reader after %d of %d blobs: %v", blobs, n, err)
			}
			msg.Reset()
			for {
				k, err := r.Read(piece)
				msg.Write(piece[:k])
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("the relay closed a slow but steady reader after %d of %d blobs: %v", blobs, n, err)
				}
				time.Sleep(3 * time.Millisecond)
			}
			blobs += blobsIn(t, mt == websocket.BinaryMessage, msg.Bytes())
		}
		slow.NextCaughtUp()
		if n := logs.count(slog.LevelWarn, "closing slow connection"); n != 0 {
			t.Fatalf("the relay logged %d slow connections", n)
		}
	})
}
