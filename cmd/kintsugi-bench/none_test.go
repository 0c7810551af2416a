package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// TestNoneStoreKeepsNothing: the store --store-none measures with numbers
// appends densely per journal and keeps nothing: no blob can be read back,
// a repeat is not found, no usage is counted, and Badger holds no log.
func TestNoneStoreKeepsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := server.OpenBadger(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s := newNoneStore(b)
	j, k := newJournalID(), newJournalID()
	for _, jj := range []struct {
		j      protocol.JournalID
		blobs  [][]byte
		wantAt []uint64
	}{
		{j, [][]byte{[]byte("one"), []byte("two"), []byte("one")}, []uint64{1, 2, 3}},
		{k, [][]byte{[]byte("one")}, []uint64{1}},
	} {
		if err := s.CreateJournal(ctx, jj.j, [32]byte{1}); err != nil {
			t.Fatal(err)
		}
		for i, blob := range jj.blobs {
			seq, id, dup, err := s.Append(ctx, jj.j, blob)
			if err != nil || seq != jj.wantAt[i] || dup || id == ([32]byte{}) {
				t.Fatalf("append %d: seq %d dup %v id %x err %v, want seq %d", i, seq, dup, id, err, jj.wantAt[i])
			}
		}
		if blobs, err := s.Read(ctx, jj.j, 0, 10); err != nil || len(blobs) != 0 {
			t.Fatalf("read back %d blobs (%v): the store keeps nothing", len(blobs), err)
		}
		if n, err := s.JournalUsage(ctx, jj.j); err != nil || n != 0 {
			t.Fatalf("usage %d, %v", n, err)
		}
		if last, err := s.LastSeq(ctx, jj.j); err != nil || last != 0 {
			t.Fatalf("Badger's last seq %d, %v", last, err)
		}
	}
	// Closed, it refuses appends, as a store does; closing again is safe.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.Append(ctx, j, []byte("late")); !errors.Is(err, server.ErrStoreClosed) {
		t.Fatalf("append after Close: %v", err)
	}
	s.Close()
}

// TestRelayOnNoneStore: a child relay started for the none backend keeps
// nothing (a blob put twice is stored twice), where Badger's finds the
// repeat: the runs marked "none" measure that store, not Badger.
func TestRelayOnNoneStore(t *testing.T) {
	t.Parallel()
	o := &options{dir: t.TempDir(), protocol: protocol.Version}
	for _, c := range []struct {
		backend string
		second  uint64 // the seq of the repeat
		dup     bool
	}{{backendBadger, 1, true}, {backendNone, 2, false}} {
		rs, err := startRelays(o, c.backend, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.stop()
		conn, err := dialDevice(rs.procs[0].wsURL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.close()
		j := newJournalID()
		if err := conn.create(j); err != nil {
			t.Fatal(err)
		}
		ch := &chain{journal: j, author: conn.device, size: 1024}
		blob := ch.next()
		for i, want := range []uint64{1, c.second} {
			ok, err := conn.call(func(id uint64) any { return &protocol.Put{Type: protocol.TypePut, ID: id, Journal: j, Blob: blob} })
			if err != nil {
				t.Fatalf("%s: put %d: %v", c.backend, i, err)
			}
			if ok.Seq != want || ok.Duplicate != (i == 1 && c.dup) {
				t.Errorf("%s: put %d of the same blob: seq %d duplicate %v, want seq %d", c.backend, i, ok.Seq, ok.Duplicate, want)
			}
		}
	}
}

// TestBenchStoreNone: with --store-none each ingest run on Badger has a
// run beside it on the store that keeps nothing, with the same writers,
// and puts were acknowledged on both. No measured figure is asserted.
func TestBenchStoreNone(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"kintsugi-bench", "--json", "--dir", t.TempDir(), "--only", "ingest",
		"--writers", "3", "--shared-writers", "1", "--ingest-time", "100ms", "--store-none"}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	var r results
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	type run struct {
		store   string
		writers int
	}
	want := []run{{backendBadger, 3}, {backendNone, 3}}
	if len(r.Ingest) != len(want) {
		t.Fatalf("ingest: %d runs, want %d: %+v", len(r.Ingest), len(want), r.Ingest)
	}
	for i, x := range r.Ingest {
		if (run{x.Store, x.Writers}) != want[i] || x.Blobs == 0 || x.FailedWriters != 0 || x.Durable != (x.Store == backendBadger) {
			t.Errorf("ingest run %d: %+v, want %+v with puts acknowledged, durable only on badger", i, x, want[i])
		}
	}
	// In the table the none runs stand apart from the durable ones,
	// under words that say what they are not.
	var table bytes.Buffer
	printTable(&table, &r)
	durable, notDurable, ok := strings.Cut(table.String(), "NOT DURABLE")
	if !ok || hasRow(durable, backendNone) || !hasRow(notDurable, backendNone) || !hasRow(durable, backendBadger) || hasRow(notDurable, backendBadger) {
		t.Errorf("the table does not set the none runs apart:\n%s", table.String())
	}
}

// hasRow reports whether a line of text starts, past its spaces, with
// the word store.
func hasRow(text, store string) bool {
	for line := range strings.SplitSeq(text, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == store {
			return true
		}
	}
	return false
}
