package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"github.com/kintsugi-journal/kintsugi/internal/version"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// startRelay runs "serve" in the background and returns its WebSocket URL
// and a function that stops it (as SIGTERM would) and returns run's error.
func startRelay(t *testing.T, data string) (string, func() error) {
	t.Helper()
	url, stop, line := startRelayWith(t, "--data", data)
	if !strings.HasSuffix(line, "(data in "+data+")") {
		t.Fatalf("start line %q", line)
	}
	return url, stop
}

// startRelayWith runs "serve" with args (and a free port) in the
// background and returns its WebSocket URL, a function that stops it (as
// SIGTERM would) and returns run's error, and the line it started with.
func startRelayWith(t *testing.T, args ...string) (string, func() error, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := newApp(pw, io.Discard).RunContext(ctx, append([]string{"kintsugi-relay", "serve", "--listen", "127.0.0.1:0", "--log-level", "debug"}, args...))
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		cancel()
		t.Fatalf("relay did not start: %v", <-done)
	}
	line := lines.Text()
	go io.Copy(io.Discard, pr) // drain the rest ("stopped")
	const prefix = "kintsugi-relay: listening on http://"
	if !strings.HasPrefix(line, prefix) {
		t.Fatalf("start line %q", line)
	}
	addr := strings.Fields(strings.TrimPrefix(line, prefix))[0]
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return "ws://" + addr + protocol.Path, stop, line
}

func TestServeStopKeepsData(t *testing.T) {
	data := filepath.Join(t.TempDir(), "relay-data")
	url, stop := startRelay(t, data)
	key := servertest.NewKey(t)
	c := servertest.Dial(t, url, key)
	j := servertest.NewJournalID()
	servertest.MustOK(t, c.Create(j))
	ch := servertest.Chain{Journal: j, Author: c.Device}
	var blobs [][]byte
	for i := range 5 {
		b := ch.Next(strings.Repeat("x", i))
		blobs = append(blobs, b)
		servertest.MustOK(t, c.Put(j, b))
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// The connected device was told the relay is going away.
	data1, _ := c.Read()
	var e protocol.Error
	if protocol.DecodeAs(data1, &e) != nil || e.Code != protocol.CodeShuttingDown {
		t.Fatalf("device got %s on shutdown", data1)
	}

	url, _ = startRelay(t, data)
	c = servertest.Dial(t, url, key)
	servertest.MustOK(t, c.Subscribe(j, 0))
	for i, want := range blobs {
		if b := c.NextBlob(); b.Seq != uint64(i+1) || !bytes.Equal(b.Blob, want) {
			t.Fatalf("blob %d after restart: seq %d", i, b.Seq)
		}
	}
	if cu := c.NextCaughtUp(); cu.Seq != 5 {
		t.Fatalf("caught up at %d", cu.Seq)
	}
}

func TestErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	locked := t.TempDir()
	st, err := server.OpenBadger(locked, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// A start refused for its address makes no store: the data
	// directory it names does not appear.
	notMade := filepath.Join(t.TempDir(), "not-made")
	defer func() {
		if _, err := os.Stat(notMade); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a start refused for its address left %s behind (%v)", notMade, err)
		}
	}()

	tests := []struct {
		name string
		args []string
		code int
		out  []string // substrings of the report
	}{
		{"address in use", []string{"serve", "--listen", busy.Addr().String(), "--data", notMade}, exitFailure,
			[]string{"kintsugi-relay: address " + busy.Addr().String() + " is already in use", "hint: another program is listening there; pick another --listen"}},
		{"data dir locked", []string{"serve", "--listen", "127.0.0.1:0", "--data", locked}, exitFailure,
			[]string{"kintsugi-relay: the data directory " + locked + " is locked", "hint: another kintsugi-relay is using it"}},
		{"unknown flag", []string{"serve", "--bogus"}, exitUsage, []string{"kintsugi-relay: serve has no option --bogus\n", "kintsugi-relay: hint: "}},
		{"unknown command", []string{"nosuch"}, exitUsage, []string{"kintsugi-relay: there is no command \"nosuch\"\n", "kintsugi-relay: hint: "}},
		{"bad log level", []string{"serve", "--log-level", "loud"}, exitUsage, []string{`unknown log level "loud"`}},
		{"bad log format", []string{"serve", "--log-format", "xml"}, exitUsage, []string{`unknown log format "xml"`}},
		{"stray argument", []string{"serve", "now"}, exitUsage, []string{"serve takes no arguments"}},
		{"no command", nil, exitUsage, []string{"no command given"}},
		{"bad listen", []string{"serve", "--listen", "nonsense", "--data", t.TempDir()}, exitFailure, []string{"cannot listen on nonsense", "hint: --listen takes host:port"}},
		{"cert without key", []string{"serve", "--tls-cert", "c.pem"}, exitUsage, []string{"--tls-cert and --tls-key go together"}},
		{"missing cert", []string{"serve", "--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem", "--data", t.TempDir()}, exitFailure,
			[]string{"cannot load the TLS certificate", "hint: --tls-cert takes a PEM certificate chain"}},
		{"bad quota", []string{"serve", "--journal-quota", "lots"}, exitUsage, []string{`--journal-quota takes a size in bytes such as 1048576 or 512MiB, not "lots"`}},
		{"blob size too big", []string{"serve", "--max-blob-size", "2MiB"}, exitUsage, []string{"--max-blob-size must be between 90 bytes and 1 MiB"}},
		{"memory budget too small", []string{"serve", "--memory-budget", "64MiB"}, exitUsage,
			[]string{"kintsugi-relay: --memory-budget must be at least 256 MiB, not 64MiB", "hint: storing large entries takes"}},
		{"memory budget not a size", []string{"serve", "--memory-budget", "plenty"}, exitUsage, []string{`--memory-budget takes a size in bytes such as 1048576 or 512MiB, not "plenty"`}},
		{"negative rate", []string{"serve", "--request-rate", "-1"}, exitUsage, []string{"--request-rate must be a number of requests per second, 0 or more"}},
		{"zero burst", []string{"serve", "--journal-put-burst", "0"}, exitUsage, []string{"--journal-put-burst must be a whole number above 0"}},
		{"bad proxy", []string{"serve", "--trusted-proxy", "10.0.0.0/33"}, exitUsage, []string{"--trusted-proxy takes CIDRs"}},
		{"bad origin", []string{"serve", "--allow-origin", "example.org"}, exitUsage, []string{`--allow-origin: "example.org" is not an origin`}},
		{"zero timeout", []string{"serve", "--auth-timeout", "0s"}, exitUsage, []string{"--auth-timeout must be a positive duration"}},
		{"store not a URL", []string{"serve", "--store", "/var/lib/kintsugi"}, exitUsage,
			[]string{"kintsugi-relay: --store takes a postgres:// URL", "without --store the relay keeps its data in a Badger directory (--data)"}},
		{"pool size without store", []string{"serve", "--store-pool-size", "8"}, exitUsage, []string{"--store-pool-size is for the PostgreSQL store, which --store chooses"}},
		{"migrate at start without store", []string{"serve", "--migrate"}, exitUsage, []string{"--migrate is for the PostgreSQL store"}},
		{"pool size zero", []string{"serve", "--store", "postgres://db.example.org/k", "--store-pool-size", "0"}, exitUsage, []string{"--store-pool-size must be a whole number from 1 to 10000"}},
		{"migrate without store", []string{"migrate"}, exitUsage, []string{"kintsugi-relay: migrate needs the database", "hint: give its URL with --store"}},
		{"backup of postgres", []string{"backup", "--store", "postgres://db.example.org/k", "out.backup"}, exitUsage,
			[]string{"kintsugi-relay: backup is for the Badger store; this relay's data is in PostgreSQL", "hint: back up PostgreSQL with its own tools, pg_dump or continuous archiving"}},
		{"restore into postgres", []string{"restore", "--store", "postgres://db.example.org/k", "in.backup"}, exitUsage,
			[]string{"kintsugi-relay: restore is for the Badger store", "hint: restore PostgreSQL with its own tools, pg_restore"}},
		{"metrics address in use", []string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", busy.Addr().String(), "--data", t.TempDir()}, exitFailure,
			[]string{"address " + busy.Addr().String() + " is already in use", "pick another --metrics-listen address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := newApp(io.Discard, io.Discard).RunContext(context.Background(), append([]string{"kintsugi-relay"}, tt.args...))
			var out bytes.Buffer
			if code := report(&out, err); code != tt.code {
				t.Fatalf("exit code %d, want %d (%v)", code, tt.code, err)
			}
			for _, s := range tt.out {
				if !strings.Contains(out.String(), s) {
					t.Errorf("report %q lacks %q", out.String(), s)
				}
			}
		})
	}
	if code := report(io.Discard, nil); code != exitOK {
		t.Fatalf("report(nil) = %d", code)
	}
}

func TestEnvironment(t *testing.T) {
	data := filepath.Join(t.TempDir(), "from-env")
	t.Setenv("KINTSUGI_RELAY_DATA", data)
	t.Setenv("KINTSUGI_RELAY_LISTEN", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	out.started = make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- newApp(&out, io.Discard).RunContext(ctx, []string{"kintsugi-relay", "serve"}) }()
	select {
	case <-out.started:
	case err := <-done:
		t.Fatalf("relay did not start: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "(data in "+data+")") {
		t.Fatalf("output %q", out.String())
	}
}

// syncBuffer is a goroutine-safe buffer that closes started, if set, on
// its first write.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	started chan struct{} // nil: no signal
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started != nil && b.buf.Len() == 0 && len(p) > 0 {
		close(b.started)
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := newApp(&out, io.Discard).RunContext(context.Background(), []string{"kintsugi-relay", "--version"}); err != nil {
		t.Fatal(err)
	}
	want := "kintsugi-relay " + version.Get().String() + "\n"
	if out.String() != want {
		t.Fatalf("--version printed %q, want %q", out.String(), want)
	}
}

// TestMemoryBudget checks --memory-budget (here from its environment
// variable) reaches the store and the Go runtime, and that the start line
// of the log says so. Not parallel: it sets the process's memory limit.
func TestMemoryBudget(t *testing.T) {
	t.Setenv("KINTSUGI_RELAY_MEMORY_BUDGET", "512MiB")
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	debug.SetMemoryLimit(math.MaxInt64)

	ctx, cancel := context.WithCancel(context.Background())
	var out, logs syncBuffer
	out.started = make(chan struct{})
	logs.started = make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- newApp(&out, &logs).RunContext(ctx, []string{"kintsugi-relay", "serve", "--listen", "127.0.0.1:0", "--data", t.TempDir()})
	}()
	select {
	case <-out.started:
	case err := <-done:
		t.Fatalf("relay did not start: %v", err)
	}
	limit := debug.SetMemoryLimit(-1)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	plan, err := server.PlanMemory(512 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if limit != plan.GoMemoryLimit {
		t.Errorf("Go memory limit %d while serving, want %d", limit, plan.GoMemoryLimit)
	}
	if !strings.Contains(logs.String(), `msg="relay started"`) || !strings.Contains(logs.String(), "memory_budget=\"512 MiB\" go_memory_limit=\"448 MiB\"") {
		t.Errorf("log lacks the budget:\n%s", logs.String())
	}
}
