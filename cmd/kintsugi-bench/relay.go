package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/pgstore"
)

// The relay under test runs in a child process: this same executable,
// started with childEnv set to the data directory. A separate process
// keeps the load generator's goroutines, garbage and file descriptors out
// of the relay's runtime, so the relay's memory can be read from the
// kernel (/proc/<pid>/status) and its Go runtime without the clients'
// share mixed in.
const childEnv = "KINTSUGI_BENCH_RELAY_DIR"

// childProfileEnv, if set, names a file the child writes a CPU profile of
// the relay to (--relay-cpuprofile). Each relay of a run overwrites it.
const childProfileEnv = "KINTSUGI_BENCH_RELAY_CPUPROFILE"

// childPingEnv, if set, is the relay's ping interval (a Go duration);
// otherwise the default. Only the idle scenario sets it, so that its
// measurement includes ping and pong rounds.
const childPingEnv = "KINTSUGI_BENCH_RELAY_PING"

// childProtocolEnv, if set, is the newest protocol version the relay
// speaks (server.Config.MaxProtocolVersion).
const childProtocolEnv = "KINTSUGI_BENCH_RELAY_PROTOCOL"

// childHeapEnv, if set, names a file the child writes a heap profile to
// each time its memory is read (--relay-memprofile): the last one wins.
const childHeapEnv = "KINTSUGI_BENCH_RELAY_MEMPROFILE"

// childStoreEnv, if set, is the URL of the PostgreSQL database the child
// relay keeps its data in, instead of Badger in its directory.
const childStoreEnv = "KINTSUGI_BENCH_RELAY_STORE"

// childNoneEnv, if set, makes the child relay's store keep nothing
// (--store-none, none.go).
const childNoneEnv = "KINTSUGI_BENCH_RELAY_NONE"

// childPollEnv, if set, is how often a child relay on PostgreSQL reads
// the heads of the journals its subscribers follow (a Go duration).
const childPollEnv = "KINTSUGI_BENCH_RELAY_POLL"

// memPath is served by the child only, on the relay's listener: it runs
// a garbage collection and returns the child's memory figures as JSON.
const memPath = "/bench/mem"

// cpuPath is served by the child only: the CPU time the relay process
// has used so far (getrusage), as JSON.
const cpuPath = "/bench/cpu"

// cpuStats is the child relay's CPU time so far, in microseconds.
type cpuStats struct {
	UserUs int64 `json:"user_us"`
	SysUs  int64 `json:"sys_us"`
}

// memStats is the child relay's memory after a forced GC.
type memStats struct {
	RSS        uint64 `json:"rss"`         // resident set size, from /proc/self/status
	HeapInuse  uint64 `json:"heap_inuse"`  // runtime.MemStats.HeapInuse
	HeapAlloc  uint64 `json:"heap_alloc"`  // runtime.MemStats.HeapAlloc: live objects
	StackInuse uint64 `json:"stack_inuse"` // runtime.MemStats.StackInuse
	Goroutines int    `json:"goroutines"`
}

// runChild runs the relay of a benchmark run in this process, on a free
// port of 127.0.0.1, until its standard input closes (the parent exited or
// is done with it). It prints "listening <addr>" once it serves.
func runChild(dir string) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	if os.Getenv(childHeapEnv) != "" {
		runtime.MemProfileRate = 1 // exact attribution, for small per-connection objects
	}
	var err error
	if path := os.Getenv(childProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kintsugi-bench: relay: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "kintsugi-bench: relay: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	var store server.Store
	if db := os.Getenv(childStoreEnv); db != "" {
		pcfg := pgstore.Config{Migrate: true, Logger: logger}
		if v := os.Getenv(childPollEnv); v != "" {
			if pcfg.PollInterval, err = time.ParseDuration(v); err != nil {
				fmt.Fprintf(os.Stderr, "kintsugi-bench: relay: %v\n", err)
				return 1
			}
		}
		store, err = pgstore.Open(context.Background(), db, pcfg)
	} else {
		store, err = server.OpenBadger(dir, logger)
		if err == nil && os.Getenv(childNoneEnv) != "" {
			store = newNoneStore(store)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsugi-bench: relay: %v\n", err)
		return 1
	}
	defer store.Close()
	// The relay's request and journal put rates are set far above
	// anything the benchmark sends, so every request still pays for its
	// rate checks, as in production, but none is refused: a benchmark
	// measures how fast the relay can go, not the operator's policy. The
	// journal quota keeps its default (each put reads the journal's
	// usage); no scenario comes near it.
	cfg := server.Config{
		Store:           store,
		Logger:          logger,
		RequestRate:     1e9,
		RequestBurst:    1 << 30,
		JournalPutRate:  1e9,
		JournalPutBurst: 1 << 30,
	}
	if v := os.Getenv(childPingEnv); v != "" {
		if cfg.PingInterval, err = time.ParseDuration(v); err != nil {
			fmt.Fprintf(os.Stderr, "kintsugi-bench: relay: %v\n", err)
			return 1
		}
	}
	if v := os.Getenv(childProtocolEnv); v != "" {
		if cfg.MaxProtocolVersion, err = strconv.Atoi(v); err != nil {
			fmt.Fprintf(os.Stderr, "kintsugi-bench: relay: %v\n", err)
			return 1
		}
	}
	relay, err := server.New(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsugi-bench: relay: %v\n", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle("/", relay)
	mux.HandleFunc(memPath, func(w http.ResponseWriter, _ *http.Request) {
		// Several collections: each may halve the stacks of goroutines
		// that use less than a quarter of theirs, as a relay that has
		// been idle a while has had done to them.
		for range 4 {
			runtime.GC()
		}
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st := memStats{RSS: selfRSS(), HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, StackInuse: ms.StackInuse, Goroutines: runtime.NumGoroutine()}
		if path := os.Getenv(childHeapEnv); path != "" {
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc(cpuPath, func(w http.ResponseWriter, _ *http.Request) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(cpuStats{UserUs: ru.Utime.Nano() / 1e3, SysUs: ru.Stime.Nano() / 1e3})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsugi-bench: relay: %v\n", err)
		return 1
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	fmt.Printf("listening %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes our stdin
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = hs.Shutdown(ctx)
	_ = relay.Close(ctx)
	return 0
}

// selfRSS returns this process's resident set size in bytes, or 0 if
// /proc cannot tell.
func selfRSS() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// profiles names the profiles a child relay writes; empty: none.
type profiles struct{ cpu, heap string }

// relayOptions are the settings of one child relay.
type relayOptions struct {
	prof     profiles
	ping     time.Duration // 0: the default ping interval
	store    string        // a PostgreSQL database's URL; "": Badger
	none     bool          // Badger, whose appends keep nothing (none.go)
	poll     time.Duration // PostgreSQL: how often the relay polls heads; 0: its default
	protocol int           // the newest protocol version it speaks; 0: the newest there is
}

// relayOptions returns the settings of the command line for a child relay.
func (o *options) relayOptions() relayOptions {
	return relayOptions{prof: o.relayProfiles, protocol: o.protocol}
}

// relayProc is a running child relay.
type relayProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string // host:port on 127.0.0.1
	dir   string // its data directory
}

// startRelay starts a child relay on a fresh data directory under parent.
func startRelay(parent string, ro relayOptions) (*relayProc, error) {
	prof := ro.prof
	dir, err := os.MkdirTemp(parent, "relay-")
	if err != nil {
		return nil, err
	}
	env := []string{childEnv + "=" + dir}
	if prof.cpu != "" {
		env = append(env, childProfileEnv+"="+prof.cpu)
	}
	if prof.heap != "" {
		env = append(env, childHeapEnv+"="+prof.heap)
	}
	if ro.ping > 0 {
		env = append(env, childPingEnv+"="+ro.ping.String())
	}
	if ro.store != "" {
		env = append(env, childStoreEnv+"="+ro.store)
	}
	if ro.none {
		env = append(env, childNoneEnv+"=1")
	}
	if ro.poll > 0 {
		env = append(env, childPollEnv+"="+ro.poll.String())
	}
	if ro.protocol > 0 {
		env = append(env, childProtocolEnv+"="+strconv.Itoa(ro.protocol))
	}
	return startChild(dir, env)
}

// startChild starts this executable again as a child server with env
// added to its environment (the variable that says which server), and
// waits until it says where it listens. dir, if not "", is its data
// directory, removed when it stops.
func startChild(dir string, env []string) (*relayProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &relayProc{cmd: cmd, stdin: stdin, dir: dir}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		p.stop()
		return nil, fmt.Errorf("the child process did not start (it said %q)", strings.TrimSpace(line))
	}
	p.addr = addr
	return p, nil
}

// url returns the relay's WebSocket endpoint.
func (p *relayProc) wsURL() string { return "ws://" + p.addr + "/v1/ws" }

// httpURL returns the relay's base URL.
func (p *relayProc) httpURL() string { return "http://" + p.addr }

// mem asks the relay for its memory figures.
func (p *relayProc) mem() (memStats, error) {
	var st memStats
	resp, err := http.Get(p.httpURL() + memPath)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("memory probe: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// cpu asks the relay how much CPU time (user + system) it has used.
func (p *relayProc) cpu() (time.Duration, error) {
	var st cpuStats
	resp, err := http.Get(p.httpURL() + cpuPath)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("CPU probe: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, err
	}
	return time.Duration(st.UserUs+st.SysUs) * time.Microsecond, nil
}

// stop closes the relay's stdin, which makes it shut down cleanly, waits
// for it (killing it after a while) and removes its data.
func (p *relayProc) stop() error {
	_ = p.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		err = errors.Join(errors.New("the relay process did not stop within 30s"), <-done)
	}
	return errors.Join(err, os.RemoveAll(p.dir))
}

// relaySet is the relays of one run, on one store, and the database they
// share if it is PostgreSQL.
type relaySet struct {
	procs []*relayProc
	db    *benchDB // nil for Badger
}

// startRelays starts n relays on backend: for Badger (or the store that
// keeps nothing), one (n must be 1);
// for PostgreSQL, n sharing a fresh database, the second and later ones
// as a role of their own (see benchDB.ownRole).
func startRelays(o *options, backend string, n int) (*relaySet, error) {
	return startRelaysWith(o, backend, n, relayOptions{})
}

// startRelaysWith is startRelays with options for every relay (its store
// is set here).
func startRelaysWith(o *options, backend string, n int, ro relayOptions) (*relaySet, error) {
	rs := &relaySet{}
	ro.prof, ro.protocol = o.relayProfiles, o.protocol
	ro.none = backend == backendNone
	if backend == backendPostgres {
		db, err := newBenchDB(o.store)
		if err != nil {
			return nil, err
		}
		rs.db, ro.store = db, db.url
	} else if n != 1 {
		return nil, errors.New("only relays on PostgreSQL share their data")
	}
	for i := range n {
		if i == 1 {
			// The first relay has migrated the database by now.
			u, err := rs.db.ownRole()
			if err != nil {
				rs.stop()
				return nil, err
			}
			ro.store = u
		}
		p, err := startRelay(o.dir, ro)
		if err != nil {
			rs.stop()
			return nil, err
		}
		rs.procs = append(rs.procs, p)
	}
	return rs, nil
}

// stop stops the relays and drops their database.
func (rs *relaySet) stop() error {
	var errs []error
	for _, p := range rs.procs {
		errs = append(errs, p.stop())
	}
	if rs.db != nil {
		errs = append(errs, rs.db.drop())
	}
	return errors.Join(errs...)
}
