package ui_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/client/clienttest"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
	"github.com/kintsugi-journal/kintsugi/ui"
)

// childHome names the home the ui server of BenchmarkLiveMemory serves,
// in the environment of the process it runs in.
const childHome = "KINTSUGI_UI_MEMORY_HOME"

// BenchmarkLiveMemory is issue 14's "memory of a `kintsugi ui` process
// left open for an hour of live updates stays flat", with the hour
// compressed: Sam writes and syncs b.N entries one by one (3,600 is one a
// second for an hour) while Alex's ui server, in a process of its own,
// has a page open on its event stream; after each entry arrives the page
// fetches its timeline, as static/live.js does. The ui server's live heap
// (runtime.ReadMemStats after a GC, in its own process, so the relay and
// Sam's client are not counted) is sampled before the first entry and
// every b.N/12 entries; the benchmark reports the first, last and peak
// sample and logs them all. Then a fresh ui server process opens the
// grown journal and serves its timeline once: its heap (fresh-MiB) is
// what the journal itself takes, so last minus fresh is what an hour of
// live updates left behind. It asserts nothing about the figures.
// KINTSUGI_UI_MEMORY_PROFILE=FILE writes the server's heap profile at
// the end, sampled finely, for `go tool pprof`.
//
//	go test ./ui -run '^$' -bench LiveMemory -benchtime 3600x -v
func BenchmarkLiveMemory(b *testing.B) {
	relay := servertest.NewServer(b)
	alex, sam := clienttest.NewAccount(b, "Alex"), clienttest.NewAccount(b, "Sam")
	aj, sj, _ := clienttest.Pair(b, relay.URL(), alex, sam)
	clienttest.Sync(b, aj)
	aj.Close()

	// Alex's ui server, in a process of its own, unlocked.
	srv := startChild(b, alex.Home.Dir)
	defer srv.stop()
	heap, get := srv.heap, srv.get
	events := eventStream(b, srv.http, srv.base)

	every := max(b.N/12, 1)
	samples := []float64{heap()}
	text := strings.Repeat("a day of small steps, written down ", 6)
	b.ResetTimer()
	for i := range b.N {
		if _, err := sj.Write(client.Payload{Kind: client.KindEntry, Text: fmt.Sprintf("%d: %s", i, text)}); err != nil {
			b.Fatal(err)
		}
		if _, err := sj.Sync(clienttest.Context(b)); err != nil {
			b.Fatal(err)
		}
		wait := time.After(30 * time.Second)
	arrived:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					b.Fatal("the event stream ended")
				}
				if ev == "entries" {
					break arrived
				}
			case <-wait:
				b.Fatalf("entry %d did not arrive in the open page", i)
			}
		}
		if body := get("/", true); !strings.Contains(body, fmt.Sprintf("%d: a day", i)) {
			b.Fatalf("entry %d is not on the timeline", i)
		}
		if (i+1)%every == 0 {
			b.StopTimer()
			samples = append(samples, heap())
			b.StartTimer()
		}
	}
	b.StopTimer()
	if path := os.Getenv("KINTSUGI_UI_MEMORY_PROFILE"); path != "" {
		fmt.Fprintln(srv.in, "profile "+path)
		srv.line("profiled")
	}
	// What the grown journal itself takes: a fresh ui server on it,
	// unlocked, having served the timeline once.
	fresh := startChild(b, alex.Home.Dir)
	fresh.get("/", false)
	b.ReportMetric(fresh.heap(), "fresh-MiB")
	fresh.stop()
	peak := 0.0
	for k, s := range samples {
		b.Logf("after %5d entries: ui server heap %.2f MiB", min(k*every, b.N), s)
		peak = max(peak, s)
	}
	b.ReportMetric(samples[0], "first-MiB")
	b.ReportMetric(samples[len(samples)-1], "last-MiB")
	b.ReportMetric(peak, "peak-MiB")
}

// TestLiveMemoryServer is the ui server process of BenchmarkLiveMemory;
// alone, it skips. It prints "url URL", answers each "heap" line on its
// input with "heap BYTES" (the live heap after a GC), and stops at the
// end of its input.
func TestLiveMemoryServer(t *testing.T) {
	dir := os.Getenv(childHome)
	if dir == "" {
		t.Skip("the ui server process of BenchmarkLiveMemory")
	}
	if os.Getenv("KINTSUGI_UI_MEMORY_PROFILE") != "" {
		runtime.MemProfileRate = 4096
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ui.New(ui.Config{
		Keys: &keys{home: client.Home{Dir: dir}},
		Open: func(a *client.Account) (*client.Journal, error) { return a.Current("") },
	}, ln)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	fmt.Printf("url %s\n", srv.URL())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if path, ok := strings.CutPrefix(sc.Text(), "profile "); ok {
			runtime.GC()
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			pprof.WriteHeapProfile(f)
			f.Close()
			fmt.Printf("profiled\n")
		}
		if sc.Text() == "heap" {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			fmt.Printf("heap %d\n", m.HeapAlloc)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// child is a ui server in a process of its own (TestLiveMemoryServer),
// opened and unlocked through its pages.
type child struct {
	b    *testing.B
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	base string
	http *http.Client
}

// startChild starts a ui server on the home dir and unlocks it, as a
// person does: the link, then the passphrase.
func startChild(b *testing.B, dir string) *child {
	c := &child{b: b, cmd: exec.Command(os.Args[0], "-test.run=^TestLiveMemoryServer$")}
	c.cmd.Env = append(os.Environ(), childHome+"="+dir)
	c.cmd.Stderr = os.Stderr
	var err error
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c.out = bufio.NewScanner(out)
	link, err := url.Parse(c.line("url "))
	if err != nil {
		b.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c.http = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c.base = "http://" + link.Host
	c.get(link.RequestURI(), false)
	csrf := csrfRe.FindStringSubmatch(c.get("/unlock", false))
	if csrf == nil {
		b.Fatal("no unlock form")
	}
	resp, err := c.http.PostForm(c.base+"/unlock", url.Values{"csrf": {csrf[1]}, "passphrase": {clienttest.Passphrase}})
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	for !strings.Contains(c.get("/", false), "Connected to the relay") {
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

// line returns the rest of the server process's next line that starts
// with prefix.
func (c *child) line(prefix string) string {
	for c.out.Scan() {
		if v, ok := strings.CutPrefix(c.out.Text(), prefix); ok {
			return v
		}
	}
	c.b.Fatalf("the ui server process ended before saying %q", prefix)
	return ""
}

// heap returns the server process's live heap after a GC, in MiB.
func (c *child) heap() float64 {
	fmt.Fprintln(c.in, "heap")
	var n uint64
	fmt.Sscan(c.line("heap "), &n)
	return float64(n) / (1 << 20)
}

// get fetches path, as the page's script does when live.
func (c *child) get(path string, live bool) string {
	req, _ := http.NewRequest("GET", c.base+path, nil)
	if live {
		req.Header.Set("X-Kintsugi-Live", "1")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// stop ends the server process: it stops at the end of its input.
func (c *child) stop() {
	c.in.Close()
	c.cmd.Wait()
}
