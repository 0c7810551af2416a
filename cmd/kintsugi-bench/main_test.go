package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/internal/pgtest"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

func TestMain(m *testing.M) {
	// A relay, floor server or runner of a benchmark run a test started.
	if code, ok := runAsChild(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestBenchJSON runs every scenario with tiny sizes and checks the JSON
// report: its shape, and values that must hold on any machine however busy
// (the sizes asked for, counts that add up, percentiles in order). It
// asserts no measured figure: not a time, a rate, a memory size or a
// goroutine count, which a loaded machine may push anywhere.
func TestBenchJSON(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"kintsugi-bench", "--json", "--dir", t.TempDir(),
		"--writers", "1,4", "--shared-writers", "2", "--ingest-time", "200ms",
		"--subscribers", "1,3", "--push-puts", "5",
		"--idle-conns", "5,10", "--idle-ping", "100ms",
		"--sync-entries", "20", "--sync-runs", "1",
	}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	// Every figure is in the report, measured or not (a zero would hide a
	// figure that was never filled in only if its key went missing).
	var raw map[string]any
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	for scenario, keys := range map[string][]string{
		"idle":       {"goroutines_per_conn", "rss_bytes_per_conn", "relay_rss_bytes", "baseline_rss_bytes"},
		"first_sync": {"fetch_ms", "sync_ms", "fetch_decrypt_ms"},
		"ingest":     {"relay_cpu_per_put_us"},
		"push":       {"floor"},
	} {
		objs, _ := raw[scenario].([]any)
		if o, ok := raw[scenario].(map[string]any); ok {
			objs = []any{o}
		}
		if len(objs) == 0 {
			t.Errorf("no %s in the report", scenario)
		}
		for _, o := range objs {
			for _, k := range keys {
				if _, ok := o.(map[string]any)[k]; !ok {
					t.Errorf("%s: no %q in %v", scenario, k, o)
				}
			}
		}
	}
	var r results
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("report is not the expected JSON: %v\n%s", err, out.String())
	}
	if r.Env.CPUs < 1 || r.Env.GoVersion == "" || strings.Join(r.Env.Scenarios, ",") != "ingest,push,idle,sync" || r.Env.Protocol != protocol.Version {
		t.Errorf("env: %+v", r.Env)
	}

	// Ingest: 1 writer (spread only), 4 writers spread and 4 shared 2 per journal.
	type layout struct {
		writers  int
		layout   string
		journals int
	}
	want := []layout{{1, "spread", 1}, {4, "spread", 4}, {4, "shared", 2}}
	if len(r.Ingest) != len(want) {
		t.Fatalf("ingest: %d runs, want %d: %+v", len(r.Ingest), len(want), r.Ingest)
	}
	for i, x := range r.Ingest {
		if (layout{x.Writers, x.Layout, x.Journals}) != want[i] {
			t.Errorf("ingest run %d: %+v, want %+v", i, x, want[i])
		}
		if x.BlobBytes != 1024 || x.Seconds != 0.2 || x.PerSecond != float64(x.Blobs)/x.Seconds {
			t.Errorf("ingest run %d: %+v", i, x)
		}
		if x.AckP99ms < x.AckP50ms || x.FailedWriters != 0 {
			t.Errorf("ingest run %d latencies: %+v", i, x)
		}
	}

	if len(r.Push) != 2 {
		t.Fatalf("push: %+v", r.Push)
	}
	for i, x := range r.Push {
		subs := []int{1, 3}[i]
		if x.Subscribers != subs || x.Puts != 5 || x.Samples != subs*5 || x.P99ms < x.P50ms || x.AckP99ms < x.AckP50ms || x.FailedSubscribers != 0 {
			t.Errorf("push run %d: %+v", i, x)
		}
		if x.Floor == nil || x.Floor.P99ms < x.Floor.P50ms {
			t.Errorf("push run %d: floor %+v", i, x.Floor)
		}
	}

	if len(r.Idle) != 2 || r.Idle[0].Connections != 5 || r.Idle[1].Connections != 10 {
		t.Fatalf("idle: %+v", r.Idle)
	}

	s := r.FirstSync
	if s == nil {
		t.Fatal("no first_sync in the report")
	}
	// The journal holds the entries and at least the partner's join.
	if s.Entries != 20 || s.FetchedBlobs <= s.Entries || s.Runs != 1 || s.BlobBytes < 1024 || s.BlobBytes > 1024+512 {
		t.Errorf("first sync: %+v", s)
	}
}

// TestBenchPostgres runs ingest, push and listener with --store: each of
// ingest and push beside its Badger run, push also across two relays, and
// the lost-listener rounds. Like TestBenchJSON, it checks shapes and
// counts, no measured figure.
func TestBenchPostgres(t *testing.T) {
	t.Parallel()
	admin := pgtest.AdminURL(t)
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"kintsugi-bench", "--json", "--dir", t.TempDir(), "--store", admin,
		"--only", "ingest,push,listener", "--writers", "2", "--shared-writers", "1", "--ingest-time", "200ms",
		"--subscribers", "2", "--push-puts", "3", "--listener-rounds", "1",
	}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	var r results
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("report is not the expected JSON: %v\n%s", err, out.String())
	}
	if len(r.Ingest) != 2 || r.Ingest[0].Store != "badger" || r.Ingest[1].Store != "postgres" {
		t.Fatalf("ingest: %+v", r.Ingest)
	}
	for _, x := range r.Ingest {
		if x.Writers != 2 || x.Journals != 2 || x.PerSecond != float64(x.Blobs)/x.Seconds {
			t.Errorf("ingest on %s: %+v", x.Store, x)
		}
	}
	type setup struct {
		store string
		nodes int
	}
	want := []setup{{"badger", 1}, {"postgres", 1}, {"postgres", 2}}
	if len(r.Push) != len(want) {
		t.Fatalf("push: %+v", r.Push)
	}
	for i, x := range r.Push {
		if (setup{x.Store, x.Nodes}) != want[i] || x.Subscribers != 2 || x.Samples != 6 || x.P99ms < x.P50ms {
			t.Errorf("push run %d: %+v, want %+v", i, x, want[i])
		}
	}
	if l := r.Listener; l == nil || l.Rounds != 1 || l.Missed != listenerMissed || l.RecoverMaxms < l.RecoverP50ms {
		t.Errorf("listener: %+v", r.Listener)
	}
}

// TestBenchProtocol1: with --protocol 1 the relays speak only version 1,
// and the scenarios that send and read frames themselves still run.
func TestBenchProtocol1(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"kintsugi-bench", "--json", "--protocol", "1", "--only", "ingest,push,sync", "--dir", t.TempDir(),
		"--writers", "2", "--shared-writers", "1", "--ingest-time", "200ms",
		"--subscribers", "2", "--push-puts", "5",
		"--sync-entries", "20", "--sync-runs", "1",
	}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	var r results
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Env.Protocol != 1 || len(r.Ingest) != 1 || len(r.Push) != 1 || r.Push[0].Samples != 10 || r.FirstSync == nil || r.FirstSync.FetchedBlobs <= 20 {
		t.Fatalf("report: %s", out.String())
	}
}

// TestBenchTable checks the human-readable report names what was run.
func TestBenchTable(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"kintsugi-bench", "--only", "push", "--dir", t.TempDir(),
		"--subscribers", "2", "--push-puts", "3"}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{"push latency", "subscribers", "p99 ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "durable ingest") {
		t.Errorf("table reports a scenario that was not run:\n%s", out.String())
	}
}

func TestBenchUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--only", "nonsense"},
		{"--writers", "0"},
		{"--blob-size", "10"},
		{"--client-entries", "1000,5"},
		{"--client-runs", "0"},
		{"--only", "client,nonsense"},
		{"--memory-total", "lots"},
		{"--memory-total", "0"},
		{"--memory-writers", "0"},
		{"--memory-budget", "some"},
		{"--protocol", "0"},
		{"--protocol", "3"},
		{"extra"},
		{"--only", "listener"}, // without --store
		{"--store", "mysql://somewhere"},
		{"--listener-rounds", "0"},
		{"--link-entries", "0"},
		{"--link-runs", "0"},
		{"--store-none", "--compare", "HEAD"},
		{"--store-none", "--only", "push"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"kintsugi-bench"}, args...), &out, &errOut)
		var buf bytes.Buffer
		if code := report(&buf, err); code != exitUsage || !strings.HasPrefix(buf.String(), "kintsugi-bench: ") || !strings.Contains(buf.String(), "\nhint: ") {
			t.Errorf("%v: exit %d, printed %q", args, code, buf.String())
		}
	}
}

// TestPutFrame checks the hand-built put frame is what protocol.Marshal
// makes, so the relay is measured on the frames real clients send.
func TestPutFrame(t *testing.T) {
	ch := &chain{journal: newJournalID(), author: [32]byte{7}, size: 1024}
	for i := range 3 {
		blob := ch.next()
		if _, err := protocol.ParseHeader(blob); err != nil {
			t.Fatalf("blob %d: %v", i, err)
		}
		want, err := protocol.Marshal(&protocol.Put{Type: protocol.TypePut, ID: uint64(i + 1), Journal: ch.journal, Blob: blob})
		if err != nil {
			t.Fatal(err)
		}
		if got := putFrame(nil, uint64(i+1), ch.journal, blob); !bytes.Equal(got, want) {
			t.Fatalf("put frame\n got %s\nwant %s", got, want)
		}
		frame, err := protocol.Marshal(&protocol.Blob{Type: protocol.TypeBlob, Journal: ch.journal, Seq: uint64(40 + i), Blob: blob})
		if err != nil {
			t.Fatal(err)
		}
		if seq, ok := frameSeq(frame); !ok || seq != uint64(40+i) {
			t.Fatalf("frameSeq of a blob frame: %d %v", seq, ok)
		}
	}
	if _, ok := frameSeq([]byte(`{"type":"caught_up","journal":"00","seq":3}`)); ok {
		t.Fatal("frameSeq took caught_up for a blob")
	}
	// Version 2: every blob of a blobs frame, nothing from another frame.
	f := protocol.AppendBlobsHeader(nil, ch.journal)
	for seq := uint64(7); seq <= 9; seq++ {
		f = protocol.AppendBlobEntry(f, seq, false, ch.next())
	}
	if seqs, err := blobSeqs(true, f, nil); err != nil || !slices.Equal(seqs, []uint64{7, 8, 9}) {
		t.Fatalf("blobSeqs of a blobs frame: %v, %v", seqs, err)
	}
	if seqs, err := blobSeqs(true, protocol.AppendAcks(nil, protocol.Ack{ID: 1}), nil); err != nil || len(seqs) != 0 {
		t.Fatalf("blobSeqs of an acks frame: %v, %v", seqs, err)
	}
}

// parse runs the command line through the flags and parseOptions only.
func parse(t *testing.T, args ...string) (*options, error) {
	t.Helper()
	var o *options
	app := &cli.App{
		Name:           "kintsugi-bench",
		Flags:          benchFlags(),
		Writer:         io.Discard,
		ErrWriter:      io.Discard,
		ExitErrHandler: func(*cli.Context, error) {},
		Action: func(c *cli.Context) error {
			var err error
			o, err = parseOptions(c, io.Discard)
			return err
		},
	}
	err := app.Run(append([]string{"kintsugi-bench", "--dir", t.TempDir()}, args...))
	return o, err
}

func TestClientOptions(t *testing.T) {
	for _, c := range []struct {
		args      []string
		entries   []int
		runs      int
		scenarios string
	}{
		{nil, []int{1000, 10000, 100000}, 3, "ingest,push,idle,sync"},
		{[]string{"--only", "client"}, []int{1000, 10000, 100000}, 3, "client"},
		{[]string{"--quick", "--only", "sync,client"}, []int{200, 1000}, 1, "sync,client"},
		{[]string{"--quick", "--client-entries", "5000", "--client-runs", "5"}, []int{5000}, 5, "ingest,push,idle,sync"},
		{[]string{"--client-entries", "100000,10,1000,1000"}, []int{10, 1000, 100000}, 3, "ingest,push,idle,sync"},
		{[]string{"--client-entries", "300", "--client-entries", "20"}, []int{20, 300}, 3, "ingest,push,idle,sync"},
	} {
		o, err := parse(t, c.args...)
		if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if !slices.Equal(o.clientEntries, c.entries) || o.clientRuns != c.runs || strings.Join(o.scenarioList, ",") != c.scenarios {
			t.Errorf("%v: entries %v, runs %d, scenarios %v; want %v, %d, %s", c.args, o.clientEntries, o.clientRuns, o.scenarioList, c.entries, c.runs, c.scenarios)
		}
	}
	for _, args := range [][]string{
		{"--client-entries", "9"},
		{"--client-entries", "0"},
		{"--client-entries", "ten"},
		{"--client-runs", "-1"},
	} {
		if _, err := parse(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestMedian(t *testing.T) {
	if got := median([]int64{5, 1, 3}); got != 3 {
		t.Errorf("median of 5 1 3: %d", got)
	}
	if got := median([]time.Duration{4, 1, 3, 2}); got != 3 {
		t.Errorf("median of 4 1 3 2: %d (the upper middle)", got)
	}
	if got := median([]float64{7}); got != 7 {
		t.Errorf("median of 7: %v", got)
	}
	if got := median([]int64(nil)); got != 0 {
		t.Errorf("median of nothing: %d", got)
	}
	xs := []int{3, 2, 1}
	median(xs)
	if !slices.Equal(xs, []int{3, 2, 1}) {
		t.Errorf("median reordered its argument: %v", xs)
	}
}

func TestClientTarget(t *testing.T) {
	for _, c := range []struct {
		command string
		n       int
		want    string
	}{
		{"log -n 10", 100000, "<= 150 ms, <= 80 MiB"},
		{"questions", 10000, "<= 100 ms"},
		{"show ID", 1000, ""},
		{"sync + log", 10000, "<= 300 ms"},
		{"sync + log", 100000, "<= 3 s, <= 200 MiB"},
		{"sync", 100000, ""},
		{"log", 10000, ""},
	} {
		if got := clientTarget(c.command, c.n); got != c.want {
			t.Errorf("target of %s at %d: %q, want %q", c.command, c.n, got, c.want)
		}
	}
}

// TestTextGen checks the generated journal is the same for a seed and has
// the mix the docs describe.
func TestTextGen(t *testing.T) {
	a, b := newTextGen(7), newTextGen(7)
	questions := 0
	for i := range 100 {
		p, q := a.payload(), b.payload()
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("payload %d differs for one seed:\n%+v\n%+v", i, p, q)
		}
		if n := len(p.Text); n < 900 || n > 1200 {
			t.Errorf("payload %d: %d bytes of text", i, n)
		}
		switch p.Kind {
		case client.KindQuestion:
			questions++
		case client.KindEntry:
			if len(p.Feelings) == 0 || p.Intensity == nil || *p.Intensity < 0 || *p.Intensity > 10 {
				t.Errorf("payload %d: feelings %v, intensity %v", i, p.Feelings, p.Intensity)
			}
		default:
			t.Errorf("payload %d: kind %q", i, p.Kind)
		}
	}
	if questions != 10 {
		t.Errorf("%d questions in 100 entries, want 10", questions)
	}
}

// TestClientScenario runs the client scenario on a tiny journal: it builds
// the kintsugi command, so it needs the go tool. It checks the report's
// shape and that each command ran, not what it measured.
func TestClientScenario(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the kintsugi command")
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"kintsugi-bench", "--json", "--only", "client", "--dir", t.TempDir(),
		"--client-entries", "60", "--client-runs", "1"}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	var r results
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("report is not the expected JSON: %v\n%s", err, out.String())
	}
	if len(r.Client) != 1 {
		t.Fatalf("client: %+v", r.Client)
	}
	x := r.Client[0]
	if x.Entries != 60 || x.Questions != 6 || x.Answers != samAnswers || x.Runs != 1 || x.TextBytes < 900 {
		t.Errorf("client: %+v", x)
	}
	var names []string
	for _, c := range x.Commands {
		names = append(names, c.Command)
		if c.WallMs <= 0 || c.PeakRSSKB <= 0 {
			t.Errorf("%s: %+v", c.Command, c)
		}
	}
	if got := strings.Join(names, ","); got != "sync,sync + log,log -n 10,show ID,status,questions,log" {
		t.Errorf("commands: %s", got)
	}
}

// TestLinkScenario runs the link scenario on a tiny journal and checks the
// report: the sizes asked for and the handover's shape, not a time.
func TestLinkScenario(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"kintsugi-bench", "--json", "--only", "link", "--dir", t.TempDir(),
		"--link-entries", "21", "--link-runs", "2"}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	var r results
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("report is not the expected JSON: %v\n%s", err, out.String())
	}
	l := r.Link
	if l == nil || strings.Join(r.Env.Scenarios, ",") != "link" {
		t.Fatalf("report: %+v", r)
	}
	// 21 entries fit in one grant for the laptop: alex's own and, handed
	// over, sam's; each item is 136 bytes.
	if l.Entries != 21 || l.Runs != 2 || l.HandoverBlobs != 1 || l.HandoverBytes < 21*136 {
		t.Errorf("link: %+v", l)
	}
	var table bytes.Buffer
	printTable(&table, &r)
	if !strings.Contains(table.String(), "handover bytes") {
		t.Errorf("the table has no link figures:\n%s", table.String())
	}
}

// TestMemoryScenario runs the memory scenario on a tiny volume: it builds
// the kintsugi-relay command, so it needs the go tool. It checks the
// report's shape and the sizes asked for, not what was measured.
func TestMemoryScenario(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the kintsugi-relay command")
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"kintsugi-bench", "--json", "--only", "memory", "--dir", t.TempDir(),
		"--memory-total", "2MiB", "--memory-writers", "2", "--memory-budget", "512MiB"}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	var raw map[string]map[string]any
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	for _, k := range []string{"budget_bytes", "blobs", "stored_bytes", "start_rss_bytes", "peak_rss_bytes", "peak_anon_bytes", "peak_file_bytes", "end_rss_bytes", "samples"} {
		if _, ok := raw["memory"][k]; !ok {
			t.Errorf("memory: no %q in %v", k, raw["memory"])
		}
	}
	var r results
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("report is not the expected JSON: %v\n%s", err, out.String())
	}
	m := r.Memory
	if m == nil || len(r.Env.Scenarios) != 1 || r.Env.Scenarios[0] != "memory" {
		t.Fatalf("report: %+v", r)
	}
	if m.BudgetBytes != 512<<20 || m.Writers != 2 || m.MinBlobBytes != 1<<10 || m.MaxBlobBytes != 500<<10 ||
		m.Blobs < 1 || m.StoredBytes < 2<<20 || m.StoredBytes > 2<<20+2*int64(m.MaxBlobBytes) || m.Samples < 1 {
		t.Errorf("memory: %+v", m)
	}
	// The kernel's peak is at least every reading it was taken after.
	if m.StartRSSBytes == 0 || m.PeakRSSBytes < m.StartRSSBytes || m.PeakRSSBytes < m.EndRSSBytes {
		t.Errorf("memory readings: %+v", m)
	}
}

// One writer whose connection fails does not throw the run away: the
// others' figures stand, and the result says one failed and why.
func TestIngestSurvivesAFailedWriter(t *testing.T) {
	t.Parallel()
	o := &options{dir: t.TempDir(), blobSize: 1024, protocol: protocol.Version, breakFirst: true}
	r, err := runIngest(o, backendBadger, 3, 1, 300*time.Millisecond)
	if err != nil {
		t.Fatalf("the run was thrown away: %v", err)
	}
	if r.FailedWriters != 1 || len(r.Failures) != 1 || r.Blobs == 0 {
		t.Errorf("%+v", r)
	}
}

// One push subscriber whose connection fails does not throw the run away
// (nor stop the writer): the others' figures stand, and the result says
// one failed.
func TestPushSurvivesAFailedSubscriber(t *testing.T) {
	t.Parallel()
	o := &options{dir: t.TempDir(), blobSize: 1024, protocol: protocol.Version, breakFirst: true}
	r, err := runPush(o, backendBadger, 1, 3, 10)
	if err != nil {
		t.Fatalf("the run was thrown away: %v", err)
	}
	if r.FailedSubscribers != 1 || len(r.Failures) != 1 || r.Samples != 1+2*10 {
		t.Errorf("%+v", r)
	}
}

// A floor subscriber whose connection fails makes the floor's run, which
// goes on with the others to its end, fail with an error that names it
// (a floor short of a subscriber is not the floor), and nothing panics.
func TestFloorNamesAFailedSubscriber(t *testing.T) {
	t.Parallel()
	o := &options{breakFirst: true}
	_, err := runFloor(o, 3, 20, 64)
	if err == nil || !strings.Contains(err.Error(), "floor subscriber 0: message 2 did not arrive") {
		t.Fatalf("got %v, want subscriber 0's failure at message 2", err)
	}
}

// --compare runs the benchmark again with the same flags, less its own.
func TestWithoutFlag(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"--compare HEAD~1 --only ingest", "--only ingest"},
		{"--only ingest --compare=main", "--only ingest"},
		{"-compare v1 --writers 8", "--writers 8"},
		{"--only ingest", "--only ingest"},
		{"--comparex 1", "--comparex 1"},
	} {
		if got := strings.Join(withoutFlag(strings.Fields(c.in), "compare"), " "); got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

// The comparison reads each build's report as plain JSON: a figure an
// older bench does not report is missing on its side only, and figures
// of several runs gather under one name.
func TestFiguresOfOlderReports(t *testing.T) {
	parse := func(s string) map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	newer := `{"ingest":[{"store":"badger","writers":64,"layout":"spread","blobs_per_second":100,"ack_p99_ms":2,"relay_cpu_per_put_us":40}],
		"first_sync":{"fetch_ms":50,"sync_ms":300,"fetch_decrypt_ms":400},
		"link":{"link_ms":200,"read_all_ms":550,"handover_bytes":1360516}}`
	older := `{"ingest":[{"store":"badger","writers":64,"layout":"spread","blobs_per_second":50,"ack_p99_ms":4}]}`
	a := figuresOf([]map[string]any{parse(newer), parse(newer)})
	b := figuresOf([]map[string]any{parse(older)})
	cpu := "ingest badger, 64 writers, spread: relay CPU µs/put"
	if got := a.values[cpu]; len(got) != 2 || got[0] != 40 {
		t.Errorf("this build's %s: %v", cpu, got)
	}
	if _, ok := b.values[cpu]; ok {
		t.Errorf("the older report has no %s, got %v", cpu, b.values[cpu])
	}
	rate := "ingest badger, 64 writers, spread: blobs/s"
	if mean(a.values[rate])/mean(b.values[rate]) != 2 {
		t.Errorf("%s: %v against %v", rate, a.values[rate], b.values[rate])
	}
	if a.values["first sync: sync ms"][0] != 300 {
		t.Errorf("first sync: %v", a.values)
	}
	if got := a.values["link: first sync + read ms"]; len(got) != 2 || got[0] != 550 {
		t.Errorf("link: %v", a.values)
	}
	if _, ok := b.values["link: first sync + read ms"]; ok {
		t.Errorf("the older report has no link figures, got %v", b.values)
	}
	// A bench from before --store and --nodes names neither: its figures
	// are Badger's on one relay, and line up with this build's.
	oldest := figuresOf([]map[string]any{parse(`{"ingest":[{"writers":64,"layout":"spread","blobs_per_second":25}],
		"push":[{"subscribers":100,"p99_ms":5}]}`)})
	if got := oldest.values[rate]; len(got) != 1 || got[0] != 25 {
		t.Errorf("an ingest figure without a store: %v", oldest.values)
	}
	if got := oldest.values["push badger, 1 relays, 100 subscribers: p99 ms"]; len(got) != 1 || got[0] != 5 {
		t.Errorf("a push figure without a store or relays: %v", oldest.values)
	}
}

// A revision that does not exist is a usage error, before anything is
// built.
func TestCompareUnknownRevision(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"kintsugi-bench", "--compare", "no-such-revision-anywhere", "--only", "ingest"}, &out, &errOut)
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "names no commit") {
		t.Errorf("got %v", err)
	}
}
