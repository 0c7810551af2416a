package server

import (
	"context"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// TestPlanMemory checks the budget → Badger options mapping: the figures
// chosen for a few budgets, and what must hold for every budget.
func TestPlanMemory(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	for _, c := range []struct {
		budget int64
		want   MemoryPlan
	}{
		// The default and the least: a 512 MB machine.
		{256 * mib, MemoryPlan{Budget: 256 * mib, MemTableSize: 8 * mib, NumMemtables: 2, NumLevelZeroTables: 5, NumLevelZeroTablesStall: 15,
			ValueThreshold: 1 << 20, NumCompactors: 2, GoMemoryLimit: 224 * mib}},
		{512 * mib, MemoryPlan{Budget: 512 * mib, MemTableSize: 16 * mib, NumMemtables: 2, NumLevelZeroTables: 5, NumLevelZeroTablesStall: 15,
			ValueThreshold: 1 << 20, NumCompactors: 2, GoMemoryLimit: 448 * mib}},
		{1 << 30, MemoryPlan{Budget: 1 << 30, MemTableSize: 32 * mib, NumMemtables: 2, NumLevelZeroTables: 5, NumLevelZeroTablesStall: 15,
			ValueThreshold: 1 << 20, NumCompactors: 2, GoMemoryLimit: 896 * mib}},
		// Memtables stop at Badger's default size.
		{8 << 30, MemoryPlan{Budget: 8 << 30, MemTableSize: 64 * mib, NumMemtables: 2, NumLevelZeroTables: 5, NumLevelZeroTablesStall: 15,
			ValueThreshold: 1 << 20, NumCompactors: 2, GoMemoryLimit: 8<<30 - 256*mib}},
	} {
		got, err := PlanMemory(c.budget)
		if err != nil {
			t.Errorf("budget %d MiB: %v", c.budget/mib, err)
			continue
		}
		if got != c.want {
			t.Errorf("budget %d MiB:\n got %+v\nwant %+v", c.budget/mib, got, c.want)
		}
	}
	def, err := PlanMemory(0)
	if want, _ := PlanMemory(DefaultMemoryBudget); err != nil || def != want {
		t.Errorf("PlanMemory(0) = %+v, %v; want the plan for DefaultMemoryBudget %+v", def, err, want)
	}

	for b := int64(MinMemoryBudget); b <= 16<<30; b += b/3 + 7 {
		p, err := PlanMemory(b)
		if err != nil {
			t.Fatalf("budget %d: %v", b, err)
		}
		// Every blob the relay accepts stays in the LSM tree (Badger
		// keeps values shorter than the threshold there), and Badger
		// accepts the threshold: at most 15% of a memtable.
		if p.ValueThreshold <= protocol.MaxBlobSize-1 || p.ValueThreshold > p.MemTableSize*15/100 {
			t.Errorf("budget %d: value threshold %d with memtables of %d", b, p.ValueThreshold, p.MemTableSize)
		}
		// The memtables at their most (waiting, flushing, written), with
		// their arenas (1.3 times their size) and logs, take at most
		// 60% of the budget; the Go runtime's limit leaves room for the
		// logs.
		most := int64(p.NumMemtables+2) * p.MemTableSize
		if most*23/10 > b*6/10 || p.GoMemoryLimit != b-most || p.GoMemoryLimit <= 0 {
			t.Errorf("budget %d: %+v", b, p)
		}
	}

	for _, b := range []int64{1, 128 * mib, MinMemoryBudget - 1, -5} {
		if _, err := PlanMemory(b); !errors.Is(err, ErrMemoryBudgetTooSmall) {
			t.Errorf("budget %d: %v, want ErrMemoryBudgetTooSmall", b, err)
		}
	}
}

// TestPlanMemoryOpens checks that Badger takes the plan's options as
// planned, and that a store opened with the smallest budget stores and
// returns the largest blob.
func TestPlanMemoryOpens(t *testing.T) {
	t.Parallel()
	p, err := PlanMemory(MinMemoryBudget)
	if err != nil {
		t.Fatal(err)
	}
	o := p.apply(badger.DefaultOptions(t.TempDir()))
	if o.MemTableSize != p.MemTableSize || o.NumMemtables != p.NumMemtables || o.NumLevelZeroTables != p.NumLevelZeroTables ||
		o.NumLevelZeroTablesStall != p.NumLevelZeroTablesStall || o.ValueThreshold != p.ValueThreshold ||
		o.BlockCacheSize != p.BlockCacheSize || o.IndexCacheSize != p.IndexCacheSize || o.NumCompactors != p.NumCompactors {
		t.Fatalf("options %+v from plan %+v", o, p)
	}

	if _, err := OpenBadgerWith(t.TempDir(), BadgerConfig{MemoryBudget: MinMemoryBudget - 1}); !errors.Is(err, ErrMemoryBudgetTooSmall) {
		t.Fatalf("open with too small a budget: %v", err)
	}
	s, err := OpenBadgerWith(t.TempDir(), BadgerConfig{MemoryBudget: MinMemoryBudget})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.db.Opts().MemTableSize; got != p.MemTableSize {
		t.Fatalf("store opened with memtables of %d, want %d", got, p.MemTableSize)
	}
	ctx := context.Background()
	var j protocol.JournalID
	j[0] = 1
	dev := [32]byte{2}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, DefaultMaxBlobSize)
	blob[0] = 7
	seq, _, _, err := s.Append(ctx, j, blob)
	if err != nil {
		t.Fatalf("append of a %d-byte blob: %v", len(blob), err)
	}
	blobs, err := s.Read(ctx, j, seq-1, 1)
	if err != nil || len(blobs) != 1 || len(blobs[0].Blob) != len(blob) {
		t.Fatalf("read back: %v, %d blobs", err, len(blobs))
	}
}
