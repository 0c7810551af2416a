// Command kintsugi-bench measures a real Kintsugi relay on loopback: it
// starts the relay (package server, a Badger store in a fresh temporary
// directory, real fsync) as a child process listening on 127.0.0.1, drives
// it over real WebSocket connections and prints what it measured as a
// table, or as JSON with --json.
//
//	go run ./cmd/kintsugi-bench            # everything, full sizes
//	go run ./cmd/kintsugi-bench --quick    # everything, small sizes
//	go run ./cmd/kintsugi-bench --only ingest --writers 64 --json
//
// Scenarios (--only picks some):
//
//   - ingest: durable ingest. Each writer is its own device on its own
//     connection, putting blobs one at a time and waiting for each
//     acknowledgement, which the relay sends only after the blob is
//     synced to disk. Blobs/s and ack latency, per writer count, with a
//     journal per writer (spread) and with several writers per journal
//     (shared).
//   - push: latency from one partner's put to a subscriber reading the
//     pushed blob, with 1 to 1000 subscribed devices on the journal.
//   - idle: relay memory per idle subscribed connection.
//   - sync: a new device's first sync of 10,000 entries: raw fetch, and
//     fetch plus decryption in the real client (package client).
//   - client: the real kintsugi command (built once with the go tool, so
//     run it from the repository) on journals of 1k, 10k and 100k
//     entries: wall time, CPU time and peak RSS of each command's process
//     (first sync, log, show, status, questions), from an unlocked session
//     (`kintsugi unlock`) so argon2id is not measured. Not in the default run,
//     as it takes several minutes: pick it with --only client.
//   - link: a person whose journal holds 10,000 entries, half of them the
//     partner's, links a new device while the partner is offline: the
//     time from the new device's first sync starting to every entry read,
//     and the size of the history the linking device hands over (grants).
//     Not in the default run: pick it with --only link.
//   - memory: the real kintsugi-relay command (built with the go tool, or
//     --relay-binary) stores 1 GiB of mixed 1 KiB–500 KiB blobs
//     (--memory-total) from 8 writers; the relay process's peak RSS, and
//     its anonymous and file-backed memory, against its --memory-budget.
//     Not in the default run (a minute or more, and 1 GiB of disk): pick it
//     with --only memory.
//
// With --store postgres://… (a PostgreSQL server where it may create and
// drop databases and roles), ingest and push also run on PostgreSQL, each
// beside its Badger run, a fresh database per run; push also runs across
// two relays on one database (the writer on one, the subscribers on the
// other); and the listener scenario runs:
//
//   - listener: two relays on one database; relay B's listening session
//     is ended and B kept from connecting for 2 s while blobs are put on
//     relay A; the time from letting B connect again to its subscriber
//     having every missed blob.
//
// The relays speak the newest protocol version (--protocol 1 limits them to
// version 1, JSON frames only), and every client, raw or real, speaks what
// the relay picks, as real clients do.
//
// Ingest reports the relay's own CPU time per acknowledged put (getrusage
// in the relay process). Push also measures, in the same run, the raw
// fan-out floor: gorilla/websocket alone, no store and no protocol,
// fanning the same messages out to as many subscribers (floor.go), and
// reports p99 against it. A writer or subscriber whose connection fails
// is counted and named; the others' figures stand. With --store-none,
// ingest also runs beside each Badger run on the same relay with a store
// that keeps nothing (none.go): Badger's figures less these are what its
// store costs.
//
//	go run ./cmd/kintsugi-bench --compare HEAD~3 --only ingest,push
//
// --compare REV checks revision REV out into a temporary worktree, builds
// its kintsugi-bench, and runs this build and REV's in turn (A/B/A/B) with
// the same flags, printing both with their ratios (compare.go).
//
// The load generator runs on the same machine as the relay and competes
// with it for CPU; a relay serving remote clients would not pay for them.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	if code, ok := runAsChild(); ok {
		os.Exit(code)
	}
	os.Exit(report(os.Stderr, run(context.Background(), os.Args, os.Stdout, os.Stderr)))
}

// runAsChild runs this process as one of the children a benchmark starts
// (a relay, the fan-out floor's server, a command's runner), if its
// environment says it is one, and returns the exit code and true.
// TestMain calls it too, since tests start the test binary as the child.
func runAsChild() (int, bool) {
	switch {
	case os.Getenv(childEnv) != "":
		return runChild(os.Getenv(childEnv)), true
	case os.Getenv(floorEnv) != "":
		return runFloorChild(), true
	case os.Getenv(runnerEnv) != "":
		return runRunner(os.Args[1:]), true
	}
	return 0, false
}

// withoutFlag returns args without the flag name and its value (as
// "--name v", "-name v" or "--name=v").
func withoutFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--"+name || a == "-"+name:
			i++ // and its value
		case strings.HasPrefix(a, "--"+name+"=") || strings.HasPrefix(a, "-"+name+"="):
		default:
			out = append(out, a)
		}
	}
	return out
}

// usageError is a bad command line.
type usageError struct{ msg, hint string }

func (e *usageError) Error() string { return e.msg }

func report(w io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(w, "kintsugi-bench: %s\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(w, "hint: %s\n", ue.hint)
		return exitUsage
	}
	return exitFailure
}

// options are the parsed flags.
type options struct {
	dir           string // parent of the relay's temporary data directories
	blobSize      int
	only          map[string]bool
	writers       []int
	shared        int
	ingestTime    time.Duration
	subscribers   []int
	pushPuts      int
	idleConns     []int
	idlePing      time.Duration
	syncEntries   int
	syncRuns      int
	clientEntries []int
	clientRuns    int
	linkEntries   int // link: entries in the journal, half the partner's
	linkRuns      int
	memoryTotal   int64  // memory: bytes of blobs to store
	memoryWriters int    // memory: writers, a journal each
	memoryBudget  string // memory: the relay's --memory-budget; "": its default
	// memoryBudgetBytes is memoryBudget in bytes, or the default budget.
	memoryBudgetBytes int64
	relayBinary       string   // memory: the kintsugi-relay to run; "": build one
	relayProfiles     profiles // --relay-cpuprofile, --relay-memprofile
	protocol          int      // --protocol: the newest protocol version the relays speak
	progress          io.Writer
	asJSON            bool
	scenarioList      []string
	store             string // --store: a PostgreSQL server's URL; "": Badger only
	storeNone         bool   // --store-none: ingest also runs on a store that keeps nothing (none.go)
	listenerRounds    int
	// breakFirst, in tests, closes the first writer's connection (ingest)
	// after its first acknowledged put, or the first subscriber's (push
	// and the fan-out floor) after its first message, as a failing
	// connection would.
	breakFirst bool
}

var scenarios = []string{"ingest", "push", "idle", "sync", "link", "client", "memory", "listener"}

// defaultScenarios are the scenarios run without --only.
var defaultScenarios = []string{"ingest", "push", "idle", "sync"}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func(_ *cli.Context, err error, _ bool) error {
		return &usageError{msg: strings.ToLower(err.Error()[:1]) + err.Error()[1:], hint: "run 'kintsugi-bench --help' for usage"}
	}
	var job func() error // what the command line asks for, once it is read
	app := &cli.App{
		Name:            "kintsugi-bench",
		Usage:           "measure a Kintsugi relay on loopback, and the kintsugi command on long journals",
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		OnUsageError:    usage,
		ExitErrHandler:  func(*cli.Context, error) {},
		Flags:           benchFlags(),
		// The action only reads the command line; the benchmark runs
		// once the app has returned (see cliMu).
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return &usageError{msg: fmt.Sprintf("kintsugi-bench takes no arguments, got %q", c.Args().First()), hint: "pick scenarios with --only"}
			}
			o, err := parseOptions(c, stderr)
			if err != nil {
				return err
			}
			if rev := c.String("compare"); rev != "" {
				if o.asJSON {
					return &usageError{msg: "--compare prints a table, not JSON", hint: "leave out --json; each run's JSON is read by the comparison"}
				}
				if o.storeNone {
					return &usageError{msg: "--store-none measures this build only", hint: "run it without --compare: its rows beside Badger's are the comparison"}
				}
				job = func() error { return runCompare(rev, withoutFlag(args[1:], "compare"), stdout, stderr) }
				return nil
			}
			cpuprofile := c.String("cpuprofile")
			job = func() error { return runAndReport(o, cpuprofile, stdout) }
			return nil
		},
	}
	cliMu.Lock()
	err := app.RunContext(ctx, args)
	cliMu.Unlock()
	if err != nil || job == nil {
		return err
	}
	return job()
}

// cliMu lets one urfave/cli app run at a time in this process: an app
// sets the package's help flag and command as it runs, so two at once
// race. Tests run the command several times at once; each parses its
// command line under cliMu and then benchmarks without it.
var cliMu sync.Mutex

// runAndReport runs the scenarios o asks for and prints the report, with
// a CPU profile of this process written to cpuprofile if it is not "".
func runAndReport(o *options, cpuprofile string, stdout io.Writer) error {
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := runAll(o)
	if err != nil {
		return err
	}
	if o.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printTable(stdout, res)
	return nil
}

// benchFlags are the command's flags.
func benchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
		&cli.StringFlag{Name: "compare", Usage: "run the same benchmark on this build and on revision `REV` of the repository, alternating (A/B/A/B), and print both with their ratios"},
		&cli.BoolFlag{Name: "quick", Usage: "small sizes for a quick look (explicit flags still win)"},
		&cli.StringSliceFlag{Name: "only", Usage: "scenarios to run: ingest, push, idle, sync, link, client, memory, listener (default: all but link, client and memory, and listener only with --store)"},
		&cli.StringFlag{Name: "store", EnvVars: []string{"KINTSUGI_BENCH_STORE"}, Usage: "a PostgreSQL server's `URL` (postgres://…) where the benchmark may create and drop databases and roles: ingest and push also run on PostgreSQL, and so does the listener scenario"},
		&cli.BoolFlag{Name: "store-none", Usage: "ingest also runs on a relay whose store keeps nothing (sequence numbers in memory; nothing written, synced or deduplicated): what a put costs the relay besides its store. Not a relay anyone could run"},
		&cli.IntFlag{Name: "listener-rounds", Value: 5, Usage: "listener: rounds (the median and the longest are reported)"},
		&cli.StringFlag{Name: "dir", Usage: "`directory` for the relay's temporary data and the client scenario's homes (default: the system temp dir); it must be on the disk you want to measure"},
		&cli.IntFlag{Name: "blob-size", Value: 1024, Usage: "blob size in bytes for ingest and push"},
		&cli.IntSliceFlag{Name: "writers", Value: cli.NewIntSlice(1, 8, 64), Usage: "ingest: concurrent writers, one run each"},
		&cli.IntFlag{Name: "shared-writers", Value: 8, Usage: "ingest: writers per journal in the shared layout (1 skips it)"},
		&cli.DurationFlag{Name: "ingest-time", Value: 3 * time.Second, Usage: "ingest: measured time per run"},
		&cli.IntSliceFlag{Name: "subscribers", Value: cli.NewIntSlice(1, 10, 100, 1000), Usage: "push: subscribed devices, one run each"},
		&cli.IntFlag{Name: "push-puts", Value: 200, Usage: "push: puts per run"},
		&cli.IntSliceFlag{Name: "idle-conns", Value: cli.NewIntSlice(1000, 5000), Usage: "idle: connection counts to measure at"},
		&cli.DurationFlag{Name: "idle-ping", Value: time.Second, Usage: "idle: the relay's ping interval (default relays ping every 30s); memory is read after 3 intervals"},
		&cli.IntFlag{Name: "sync-entries", Value: 10000, Usage: "sync: entries the new device fetches"},
		&cli.IntFlag{Name: "link-entries", Value: 10000, Usage: "link: entries in the journal (half of them the partner's) that the linked device reads"},
		&cli.IntFlag{Name: "link-runs", Value: 3, Usage: "link: first syncs of the linked device (the median is reported)"},
		&cli.StringFlag{Name: "relay-cpuprofile", Usage: "write a CPU profile of the relay process to `file` (of the last relay started: use with one scenario and size)"},
		&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of this process (the clients) to `file`"},
		&cli.StringFlag{Name: "relay-memprofile", Usage: "write a heap profile of the relay process to `file` each time the idle scenario reads its memory"},
		&cli.IntFlag{Name: "sync-runs", Value: 3, Usage: "sync: runs (the median is reported)"},
		&cli.IntSliceFlag{Name: "client-entries", Value: cli.NewIntSlice(1000, 10000, 100000), Usage: "client: journal sizes, in entries, one run each (at least 10)"},
		&cli.IntFlag{Name: "client-runs", Value: 3, Usage: "client: runs of each command (the median is reported)"},
		&cli.StringFlag{Name: "memory-total", Value: "1GiB", Usage: "memory: `bytes` of blobs to store (suffixes like MiB, GiB work)"},
		&cli.IntFlag{Name: "memory-writers", Value: 8, Usage: "memory: concurrent writers, each its own device and journal"},
		&cli.StringFlag{Name: "memory-budget", Usage: "memory: the relay's --memory-budget (default: the relay's default)"},
		&cli.StringFlag{Name: "relay-binary", Usage: "memory: the kintsugi-relay `file` to run (default: build one from this repository)"},
		&cli.IntFlag{Name: "protocol", Value: protocol.Version, Usage: "the newest protocol `version` the relay speaks, and so the one every client speaks (1: JSON frames only; not for memory, which runs the kintsugi-relay command)"},
	}
}

func parseOptions(c *cli.Context, stderr io.Writer) (*options, error) {
	o := &options{
		dir:            c.String("dir"),
		blobSize:       c.Int("blob-size"),
		writers:        c.IntSlice("writers"),
		shared:         c.Int("shared-writers"),
		ingestTime:     c.Duration("ingest-time"),
		subscribers:    c.IntSlice("subscribers"),
		pushPuts:       c.Int("push-puts"),
		idleConns:      c.IntSlice("idle-conns"),
		idlePing:       c.Duration("idle-ping"),
		syncEntries:    c.Int("sync-entries"),
		syncRuns:       c.Int("sync-runs"),
		clientEntries:  c.IntSlice("client-entries"),
		clientRuns:     c.Int("client-runs"),
		linkEntries:    c.Int("link-entries"),
		linkRuns:       c.Int("link-runs"),
		memoryWriters:  c.Int("memory-writers"),
		memoryBudget:   c.String("memory-budget"),
		relayBinary:    c.String("relay-binary"),
		protocol:       c.Int("protocol"),
		progress:       stderr,
		relayProfiles:  profiles{cpu: c.String("relay-cpuprofile"), heap: c.String("relay-memprofile")},
		asJSON:         c.Bool("json"),
		only:           make(map[string]bool),
		store:          strings.TrimSpace(c.String("store")),
		storeNone:      c.Bool("store-none"),
		listenerRounds: c.Int("listener-rounds"),
	}
	if o.store != "" && !strings.HasPrefix(o.store, "postgres://") && !strings.HasPrefix(o.store, "postgresql://") {
		return nil, &usageError{msg: "--store takes a postgres:// URL", hint: "for example postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"}
	}
	if c.Bool("quick") {
		quick := func(name string, set func()) {
			if !c.IsSet(name) {
				set()
			}
		}
		quick("ingest-time", func() { o.ingestTime = time.Second })
		quick("subscribers", func() { o.subscribers = []int{1, 10, 100} })
		quick("push-puts", func() { o.pushPuts = 50 })
		quick("idle-conns", func() { o.idleConns = []int{500} })
		quick("sync-entries", func() { o.syncEntries = 1000 })
		quick("sync-runs", func() { o.syncRuns = 1 })
		quick("client-entries", func() { o.clientEntries = []int{200, 1000} })
		quick("client-runs", func() { o.clientRuns = 1 })
		quick("link-entries", func() { o.linkEntries = 1000 })
		quick("link-runs", func() { o.linkRuns = 1 })
		quick("memory-total", func() { o.memoryTotal = 128 << 20 })
		quick("listener-rounds", func() { o.listenerRounds = 2 })
	}
	if o.dir == "" {
		o.dir = os.TempDir()
	}
	for _, s := range c.StringSlice("only") {
		s = strings.TrimSpace(s)
		if !slices.Contains(scenarios, s) {
			return nil, &usageError{msg: fmt.Sprintf("unknown scenario %q", s), hint: "--only takes ingest, push, idle, sync, link, client, memory or listener (comma-separated)"}
		}
		o.only[s] = true
	}
	if len(o.only) == 0 {
		for _, s := range defaultScenarios {
			o.only[s] = true
		}
		if o.store != "" {
			o.only["listener"] = true
		}
	}
	if o.storeNone && !o.only["ingest"] {
		return nil, &usageError{msg: "--store-none is for the ingest scenario", hint: "add ingest to --only, or leave --store-none out"}
	}
	if o.only["listener"] && o.store == "" {
		return nil, &usageError{msg: "the listener scenario needs PostgreSQL", hint: "give a PostgreSQL server with --store postgres://…"}
	}
	for _, s := range scenarios {
		if o.only[s] {
			o.scenarioList = append(o.scenarioList, s)
		}
	}
	if o.blobSize < minEntrySize || o.blobSize > 512<<10 {
		return nil, &usageError{msg: fmt.Sprintf("--blob-size %d is outside %d..%d", o.blobSize, minEntrySize, 512<<10), hint: "the default is 1024"}
	}
	positive := func(name string, vs ...int) error {
		for _, v := range vs {
			if v <= 0 {
				return &usageError{msg: fmt.Sprintf("--%s must be positive, not %d", name, v), hint: "give counts like 1,8,64"}
			}
		}
		return nil
	}
	if err := errors.Join(
		positive("writers", o.writers...),
		positive("shared-writers", o.shared),
		positive("subscribers", o.subscribers...),
		positive("push-puts", o.pushPuts),
		positive("idle-conns", o.idleConns...),
		positive("sync-entries", o.syncEntries),
		positive("sync-runs", o.syncRuns),
		positive("link-entries", o.linkEntries),
		positive("link-runs", o.linkRuns),
		positive("client-runs", o.clientRuns),
		positive("memory-writers", o.memoryWriters),
		positive("listener-rounds", o.listenerRounds),
	); err != nil {
		return nil, err
	}
	if err := parseMemorySizes(c, o); err != nil {
		return nil, err
	}
	for _, n := range o.clientEntries {
		if n < minClientEntries {
			return nil, &usageError{msg: fmt.Sprintf("--client-entries %d is below %d", n, minClientEntries), hint: "give journal sizes like 1000,10000,100000"}
		}
	}
	slices.Sort(o.clientEntries)
	o.clientEntries = slices.Compact(o.clientEntries)
	if o.idlePing <= 0 {
		return nil, &usageError{msg: "--idle-ping must be positive", hint: "for example --idle-ping 1s"}
	}
	if o.protocol < protocol.Version1 || o.protocol > protocol.Version {
		return nil, &usageError{msg: fmt.Sprintf("--protocol %d is not a version this relay speaks", o.protocol), hint: fmt.Sprintf("give %d or %d", protocol.Version1, protocol.Version)}
	}
	if o.ingestTime <= 0 {
		return nil, &usageError{msg: "--ingest-time must be positive", hint: "for example --ingest-time 3s"}
	}
	slices.Sort(o.idleConns)
	if fi, err := os.Stat(o.dir); err != nil || !fi.IsDir() {
		return nil, &usageError{msg: fmt.Sprintf("--dir %s is not a directory", o.dir), hint: "give an existing directory on the disk to measure"}
	}
	return o, nil
}

// parseMemorySizes reads the memory scenario's sizes into o.
func parseMemorySizes(c *cli.Context, o *options) error {
	total, err := humanize.ParseBytes(c.String("memory-total"))
	if !c.IsSet("memory-total") && o.memoryTotal > 0 {
		total, err = uint64(o.memoryTotal), nil // --quick
	}
	if err != nil || total == 0 || total > math.MaxInt64 {
		return &usageError{msg: fmt.Sprintf("--memory-total takes a size such as 1GiB, not %q", c.String("memory-total")), hint: "the default is 1GiB"}
	}
	o.memoryTotal = int64(total)
	o.memoryBudgetBytes = server.DefaultMemoryBudget
	if o.memoryBudget != "" {
		b, err := humanize.ParseBytes(o.memoryBudget)
		if err != nil || b > math.MaxInt64 {
			return &usageError{msg: fmt.Sprintf("--memory-budget takes a size such as 256MiB, not %q", o.memoryBudget), hint: "leave it out for the relay's default"}
		}
		o.memoryBudgetBytes = int64(b)
	}
	return nil
}

// results is everything one run measured.
type results struct {
	Env       envInfo         `json:"env"`
	Ingest    []ingestResult  `json:"ingest,omitempty"`
	Push      []pushResult    `json:"push,omitempty"`
	Idle      []idleResult    `json:"idle,omitempty"`
	FirstSync *syncResult     `json:"first_sync,omitempty"`
	Link      *linkResult     `json:"link,omitempty"`
	Client    []clientResult  `json:"client,omitempty"`
	Memory    *memoryResult   `json:"memory,omitempty"`
	Listener  *listenerResult `json:"listener,omitempty"`
}

// envInfo describes where the figures were measured.
type envInfo struct {
	CPUs      int      `json:"cpus"`
	GoVersion string   `json:"go_version"`
	OS        string   `json:"os"`
	Arch      string   `json:"arch"`
	DataFS    string   `json:"data_fs"`  // file system of --dir: fsync on tmpfs costs nothing
	Protocol  int      `json:"protocol"` // the newest protocol version the relays spoke (--protocol)
	LoadAvg   string   `json:"load_avg"` // /proc/loadavg at the start: other work on the machine skews figures
	Scenarios []string `json:"scenarios"`
	Started   string   `json:"started"`
}

func runAll(o *options) (*results, error) {
	res := &results{Env: envInfo{
		CPUs:      runtime.NumCPU(),
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
		DataFS:    fsName(o.dir),
		Protocol:  o.protocol,
		LoadAvg:   loadAvg(),
		Scenarios: o.scenarioList,
		Started:   time.Now().UTC().Format(time.RFC3339),
	}}
	say := func(format string, args ...any) { fmt.Fprintf(o.progress, "kintsugi-bench: "+format+"\n", args...) }
	backends := []string{backendBadger}
	if o.store != "" {
		backends = append(backends, backendPostgres)
	}
	if o.only["ingest"] {
		backends := backends
		if o.storeNone {
			backends = append(backends, backendNone)
		}
		for _, w := range o.writers {
			layouts := []int{1}
			if o.shared > 1 && w > 1 {
				layouts = append(layouts, o.shared)
			}
			for _, per := range layouts {
				for _, backend := range backends {
					say("ingest: %d writers, %d per journal, %s, on %s", w, min(per, w), o.ingestTime, backend)
					r, err := runIngest(o, backend, w, per, o.ingestTime)
					if err != nil {
						return nil, fmt.Errorf("ingest with %d writers on %s: %w", w, backend, err)
					}
					res.Ingest = append(res.Ingest, *r)
				}
			}
		}
	}
	if o.only["push"] {
		type setup struct {
			backend string
			nodes   int
		}
		setups := []setup{{backendBadger, 1}}
		if o.store != "" {
			setups = append(setups, setup{backendPostgres, 1}, setup{backendPostgres, 2})
		}
		for _, n := range o.subscribers {
			say("push: the raw fan-out floor (gorilla/websocket alone) to %d subscribers, %d messages", n, o.pushPuts)
			floor, err := runFloor(o, n, o.pushPuts, o.blobSize)
			if err != nil {
				return nil, fmt.Errorf("the raw fan-out floor with %d subscribers: %w", n, err)
			}
			for _, st := range setups {
				say("push: %d subscribers, %d puts, on %s, %d relays", n, o.pushPuts, st.backend, st.nodes)
				r, err := runPush(o, st.backend, st.nodes, n, o.pushPuts)
				if err != nil {
					return nil, fmt.Errorf("push with %d subscribers on %s: %w", n, st.backend, err)
				}
				r.Floor = floor
				res.Push = append(res.Push, *r)
			}
		}
	}
	if o.only["idle"] {
		say("idle: %v connections", o.idleConns)
		r, err := runIdle(o, o.idleConns)
		if err != nil {
			return nil, fmt.Errorf("idle connections: %w", err)
		}
		res.Idle = r
	}
	if o.only["sync"] {
		say("sync: writing %d entries, then %d first syncs", o.syncEntries, o.syncRuns)
		r, err := runFirstSync(o, o.syncEntries, o.syncRuns)
		if err != nil {
			return nil, fmt.Errorf("first sync: %w", err)
		}
		res.FirstSync = r
	}
	if o.only["link"] {
		say("link: writing %d entries, half of them the partner's, then linking a device and %d first syncs", o.linkEntries, o.linkRuns)
		r, err := runLink(o, o.linkEntries, o.linkRuns)
		if err != nil {
			return nil, fmt.Errorf("link: %w", err)
		}
		res.Link = r
	}
	if o.only["client"] {
		say("client: the kintsugi command on journals of %v entries, %d runs each", o.clientEntries, o.clientRuns)
		r, err := runClient(o, o.clientEntries, o.clientRuns)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		res.Client = r
	}
	if o.only["memory"] {
		r, err := runMemory(o)
		if err != nil {
			return nil, fmt.Errorf("memory: %w", err)
		}
		res.Memory = r
	}
	if o.only["listener"] {
		say("listener: %d rounds of a lost listening session on PostgreSQL", o.listenerRounds)
		r, err := runListener(o, o.listenerRounds, listenerMissed)
		if err != nil {
			return nil, fmt.Errorf("listener: %w", err)
		}
		res.Listener = r
	}
	return res, nil
}

func printTable(w io.Writer, r *results) {
	e := r.Env
	fmt.Fprintf(w, "kintsugi-bench: %d CPUs, %s %s/%s, relay data on %s, protocol version %d, load average at start %s\n", e.CPUs, e.GoVersion, e.OS, e.Arch, e.DataFS, e.Protocol, e.LoadAvg)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var durable, none []ingestResult
	for _, x := range r.Ingest {
		if x.Durable {
			durable = append(durable, x)
		} else {
			none = append(none, x)
		}
	}
	if len(durable) > 0 {
		fmt.Fprintf(w, "\ndurable ingest: puts acknowledged after fsync (target: >= 40000/s with 64 writers; on PostgreSQL, >= 50%% of Badger's)\n")
		fmt.Fprintln(tw, "store\twriters\tlayout\tjournals\tblob bytes\tblobs/s\tof badger\tack p50 ms\tack p99 ms\trelay CPU µs/put\t")
		for _, x := range durable {
			of := "-"
			if x.Store != backendBadger {
				for _, b := range r.Ingest {
					if b.Store == backendBadger && b.Writers == x.Writers && b.Layout == x.Layout && b.PerSecond > 0 {
						of = fmt.Sprintf("%.0f%%", 100*x.PerSecond/b.PerSecond)
					}
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%.0f\t%s\t%.2f\t%.2f\t%.0f\t\n", x.Store, x.Writers, x.Layout, x.Journals, x.BlobBytes, x.PerSecond, of, x.AckP50ms, x.AckP99ms, x.RelayCPUPerPutUs)
		}
		tw.Flush()
	}
	if len(none) > 0 {
		fmt.Fprintf(w, "\nNOT DURABLE: the same relay with a store that keeps nothing (--store-none), not a relay anyone could run; roughly, badger's relay CPU per put less this is what its store costs\n")
		fmt.Fprintln(tw, "store\twriters\tlayout\tjournals\tblob bytes\tblobs/s\tack p50 ms\tack p99 ms\trelay CPU µs/put\t")
		for _, x := range none {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.0f\t\n", x.Store, x.Writers, x.Layout, x.Journals, x.BlobBytes, x.PerSecond, x.AckP50ms, x.AckP99ms, x.RelayCPUPerPutUs)
		}
		tw.Flush()
	}
	for _, x := range r.Ingest {
		if x.FailedWriters > 0 {
			fmt.Fprintf(w, "  %s, %d writers, %s: %d of them failed during the run (%s); the figures are the others'\n", x.Store, x.Writers, x.Layout, x.FailedWriters, strings.Join(x.Failures, "; "))
		}
	}
	if len(r.Push) > 0 {
		fmt.Fprintf(w, "\npush latency: put sent -> subscriber has the blob (target: p99 <= 2 ms at 100 subscribers, <= 1.2x the raw fan-out floor; across two relays, p99 <= 2x one relay's)\n")
		fmt.Fprintln(tw, "store\trelays\tsubscribers\tputs\tsamples\tp50 ms\tp99 ms\tp99 of one relay's\tput ack p50 ms\tput ack p99 ms\tfloor p99 ms\tp99 / floor\t")
		for _, x := range r.Push {
			of := "-"
			if x.Nodes > 1 {
				for _, b := range r.Push {
					if b.Store == x.Store && b.Nodes == 1 && b.Subscribers == x.Subscribers && b.P99ms > 0 {
						of = fmt.Sprintf("%.1fx", x.P99ms/b.P99ms)
					}
				}
			}
			floor, ratio := "-", "-"
			if x.Floor != nil && x.Floor.P99ms > 0 {
				floor, ratio = fmt.Sprintf("%.2f", x.Floor.P99ms), fmt.Sprintf("%.2fx", x.P99ms/x.Floor.P99ms)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%s\t%.2f\t%.2f\t%s\t%s\t\n", x.Store, x.Nodes, x.Subscribers, x.Puts, x.Samples, x.P50ms, x.P99ms, of, x.AckP50ms, x.AckP99ms, floor, ratio)
		}
		tw.Flush()
		for _, x := range r.Push {
			if x.FailedSubscribers > 0 {
				fmt.Fprintf(w, "  %s, %d relays, %d subscribers: %d of them failed during the run (%s); the figures are the others'\n", x.Store, x.Nodes, x.Subscribers, x.FailedSubscribers, strings.Join(x.Failures, "; "))
			}
		}
	}
	if l := r.Listener; l != nil {
		fmt.Fprintf(w, "\nlost listener on PostgreSQL: relay B kept out %.0f s while %d blobs are put on relay A; from letting B in to its subscriber having them all (target: <= 2 s)\n", l.DownSeconds, l.Missed)
		fmt.Fprintln(tw, "rounds\tmedian ms\tlongest ms\t")
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t\n", l.Rounds, l.RecoverP50ms, l.RecoverMaxms)
		tw.Flush()
	}
	if len(r.Idle) > 0 {
		fmt.Fprintf(w, "\nrelay memory per idle subscribed connection (target: <= 12 KB)\n")
		fmt.Fprintln(tw, "connections\tRSS/conn\tGo heap+stacks/conn\theap/conn\tlive objects/conn\tstacks/conn\tgoroutines/conn\trelay RSS\t")
		for _, x := range r.Idle {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t\n", x.Connections, kb(x.RSSBytes), kb(x.GoBytes), kb(x.HeapBytes), kb(x.LiveBytes), kb(x.StackBytes), x.GoroutinesPer, mib(x.RelayRSSBytes))
		}
		tw.Flush()
	}
	if s := r.FirstSync; s != nil {
		fmt.Fprintf(w, "\nfirst sync of %d entries (%d blobs of about %d bytes; median of %d) (target: <= 300 ms with decryption)\n", s.Entries, s.FetchedBlobs, s.BlobBytes, s.Runs)
		fmt.Fprintln(tw, "fetch ms\tsync (fetch, record, decrypt) ms\tsync + read every entry ms\t")
		fmt.Fprintf(tw, "%.0f\t%.0f\t%.0f\t\n", s.FetchMs, s.SyncMs, s.FetchDecryptMs)
		tw.Flush()
	}
	if l := r.Link; l != nil {
		fmt.Fprintf(w, "\nlinking a device to %d entries, half of them the partner's, the partner offline (median of %d first syncs) (target: every entry read <= 5 s)\n", l.Entries, l.Runs)
		fmt.Fprintln(tw, "device link ms\tfirst sync + read every entry ms\thandover grants\thandover bytes\t")
		fmt.Fprintf(tw, "%.0f\t%.0f\t%d\t%d\t\n", l.LinkMs, l.ReadAllMs, l.HandoverBlobs, l.HandoverBytes)
		tw.Flush()
	}
	if len(r.Client) > 0 {
		x := r.Client[0]
		fmt.Fprintf(w, "\nthe kintsugi command on sam's home, each command its own process (median of %d; the key from an unlocked session, so no argon2 unlock)\n", x.Runs)
		fmt.Fprintf(w, "about %d bytes of text an entry, one in ten a question; \"sync + log\" is a first sync followed by reading the whole timeline\n", x.TextBytes)
		fmt.Fprintln(tw, "entries\tcommand\twall ms\tCPU ms\tpeak RSS\ttarget\t")
		for _, x := range r.Client {
			for _, c := range x.Commands {
				fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.0f\t%.1f MiB\t%s\t\n", x.Entries, c.Command, c.WallMs, c.CPUMs, float64(c.PeakRSSKB)/1024, c.Target)
			}
		}
		tw.Flush()
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(w, "\nrelay memory while storing %s of %d KiB to %d KiB blobs from %d writers (target: peak RSS within the budget)\n",
			mibs(m.StoredBytes), m.MinBlobBytes>>10, m.MaxBlobBytes>>10, m.Writers)
		fmt.Fprintln(tw, "budget\tblobs\tseconds\tRSS at start\tpeak RSS\tof budget\tpeak anonymous\tpeak file-backed\tRSS at end\t")
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%s\t%s\t%.0f%%\t%s\t%s\t%s\t\n", mibs(m.BudgetBytes), m.Blobs, m.Seconds, mib(m.StartRSSBytes), mib(m.PeakRSSBytes),
			100*float64(m.PeakRSSBytes)/float64(m.BudgetBytes), mib(m.PeakAnonBytes), mib(m.PeakFileBytes), mib(m.EndRSSBytes))
		tw.Flush()
	}
}

func kb(b float64) string        { return fmt.Sprintf("%.1f KB", b/1000) }
func mib(b uint64) string        { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct holds latency percentiles in milliseconds.
type pct struct{ p50, p99 float64 }

func percentiles(ds []time.Duration) pct {
	if len(ds) == 0 {
		return pct{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q * float64(len(s)-1))
		return ms(s[i])
	}
	return pct{p50: at(0.50), p99: at(0.99)}
}

// fsName names the file system dir is on, as far as this program knows.
func fsName(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch st.Type {
	case 0xEF53:
		return "ext4"
	case 0x01021994:
		return "tmpfs (fsync is free here: figures are not durable-write figures)"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("fs type %#x", st.Type)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
