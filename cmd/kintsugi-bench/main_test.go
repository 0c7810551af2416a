package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		// The relay child of a benchmark run started by a test.
		os.Exit(runChild(dir))
	}
	os.Exit(m.Run())
}

// TestBenchJSON runs every scenario with tiny sizes and checks the JSON
// report: its shape, and values that must hold on any machine (counts add
// up, latencies are positive and ordered). It asserts no timing.
func TestBenchJSON(t *testing.T) {
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
	var r results
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("report is not the expected JSON: %v\n%s", err, out.String())
	}
	if r.Env.CPUs < 1 || r.Env.GoVersion == "" || strings.Join(r.Env.Scenarios, ",") != "ingest,push,idle,sync" {
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
		if x.Blobs <= 0 || x.BlobBytes != 1024 || x.Seconds != 0.2 || x.PerSecond != float64(x.Blobs)/x.Seconds {
			t.Errorf("ingest run %d: %+v", i, x)
		}
		if x.AckP50ms <= 0 || x.AckP99ms < x.AckP50ms {
			t.Errorf("ingest run %d latencies: %+v", i, x)
		}
	}

	if len(r.Push) != 2 {
		t.Fatalf("push: %+v", r.Push)
	}
	for i, x := range r.Push {
		subs := []int{1, 3}[i]
		if x.Subscribers != subs || x.Puts != 5 || x.Samples != subs*5 || x.P50ms <= 0 || x.P99ms < x.P50ms || x.AckP50ms <= 0 || x.AckP99ms < x.AckP50ms {
			t.Errorf("push run %d: %+v", i, x)
		}
	}

	if len(r.Idle) != 2 || r.Idle[0].Connections != 5 || r.Idle[1].Connections != 10 {
		t.Fatalf("idle: %+v", r.Idle)
	}
	for _, x := range r.Idle {
		// Each subscribed connection has at least its reader goroutine.
		if x.GoroutinesPer < 1 || x.BaselineRSS == 0 || x.RelayRSSBytes < x.BaselineRSS {
			t.Errorf("idle: %+v", x)
		}
	}

	s := r.FirstSync
	if s == nil {
		t.Fatal("no first_sync in the report")
	}
	// The journal holds the entries and at least the partner's join.
	if s.Entries != 20 || s.FetchedBlobs <= s.Entries || s.Runs != 1 || s.BlobBytes < 1024 || s.BlobBytes > 1024+512 {
		t.Errorf("first sync: %+v", s)
	}
	if s.FetchMs <= 0 || s.FetchDecryptMs <= 0 {
		t.Errorf("first sync times: %+v", s)
	}
}

// TestBenchTable checks the human-readable report names what was run.
func TestBenchTable(t *testing.T) {
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
	for _, args := range [][]string{
		{"--only", "nonsense"},
		{"--writers", "0"},
		{"--blob-size", "10"},
		{"extra"},
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
}
