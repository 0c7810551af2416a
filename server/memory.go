package server

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Memory budget.
//
// A relay process's memory is mostly Badger's, and Badger's defaults are
// sized for a database server: five 64 MiB memtables (plus the one being
// written and the one being flushed, each a Go-heap arena of about 1.3
// times its size and a memory-mapped write-ahead log of the same size), a
// 256 MiB block cache and four compactors. Left at those, a relay
// ingesting large entries reached 1.2 GB of RSS. [PlanMemory] sizes these
// from one figure, the budget for the whole relay process, so that a relay
// fits a 512 MB machine by default.
//
// What the plan sets, and why (badger v4, read from its source):
//
//   - Memtables dominate: up to NumMemtables immutable ones wait for their
//     flush, one is being flushed and one takes writes, so up to
//     NumMemtables+2 exist at once, each a Go-heap arena of
//     MemTableSize plus 30% (Badger's largest batch and its node
//     overhead) and a write-ahead log file whose written pages are
//     resident. The plan uses a thirty-second of the budget per memtable
//     (at least 8 MiB, at most Badger's default 64 MiB) and two waiting
//     memtables.
//   - The value threshold stays at 1 MiB, above every blob the relay
//     accepts, so blobs stay in the LSM tree and its write-ahead log and
//     never go to the value log. Moving large blobs to the value log would
//     take them out of the memtables, but Badger only logs a failed sync
//     of the value log (the write is still acknowledged), and a purged
//     blob's bytes would stay in a value-log file until that file is
//     mostly garbage (see gc.go). Badger refuses a value threshold above
//     15% of the memtable size, which is why memtables are at least 8 MiB.
//   - No block cache (Badger's default is 256 MiB). Tables are
//     memory-mapped and written without compression or encryption, so a
//     block read is a slice of the mapped file and its parsed offsets a
//     view of it: a cache would save a lookup, not a copy. With large
//     entries a small cache only thrashed (and Badger warned about it
//     every minute). Tables that older relays wrote with compression are
//     decompressed on each read until compaction rewrites them.
//   - The index cache is used by Badger only for encrypted tables, which
//     the relay does not write (blobs are ciphertext already): it stays 0,
//     and table indexes are read in place from the mapped files.
//   - Level-0 tables and their stall count keep Badger's defaults: level-0
//     tables are memory-mapped files, so their count bounds read
//     amplification and write stalls, not the heap, and with small
//     memtables each is small.
//   - Two compactors (Badger's minimum) instead of four: each builds its
//     output tables in the heap, and a small server has few cores.
//   - GoMemoryLimit is a soft limit for the Go runtime (see
//     runtime/debug.SetMemoryLimit): the budget less the memtables'
//     write-ahead logs, which are file pages the kernel counts in RSS but
//     the Go runtime does not manage. Without it, the collector lets the
//     heap grow to twice what is live before collecting (GOGC=100), so a
//     burst of large entries could take the process past the budget for
//     no reason but timing. Setting it is the program's choice, not this
//     package's: it is process-wide.
//
// What no setting bounds: connections. An idle subscribed connection costs
// about 12–16 KB; one catching up on large entries holds up to its send
// queue (DefaultSendQueueBytes) and a request in flight. The budget is a
// target the relay sizes itself for, not a cap the kernel enforces.

// Memory budget bounds, in bytes.
const (
	// DefaultMemoryBudget is 256 MiB: half of a 512 MB machine, leaving
	// the rest to the kernel, a reverse proxy and the page cache that the
	// store's memory-mapped files read through.
	DefaultMemoryBudget = 256 << 20
	// MinMemoryBudget is the smallest budget [PlanMemory] accepts, the
	// default: storing large entries quickly took a relay to about 230
	// MiB of anonymous memory with a budget of 128 MiB as with 256 MiB
	// (Badger's table builders, which no option bounds; see
	// docs/performance.md), so a smaller budget would not be kept.
	MinMemoryBudget = DefaultMemoryBudget
)

// ErrMemoryBudgetTooSmall is returned (wrapped) by [PlanMemory] for a
// budget under [MinMemoryBudget].
var ErrMemoryBudgetTooSmall = errors.New("memory budget too small")

// MemoryPlan is how a relay divides its memory budget. Its fields are
// Badger options of the same names, except Budget and GoMemoryLimit.
type MemoryPlan struct {
	Budget int64 // the budget the plan was made for, in bytes

	MemTableSize            int64
	NumMemtables            int
	NumLevelZeroTables      int
	NumLevelZeroTablesStall int
	ValueThreshold          int64
	BlockCacheSize          int64
	IndexCacheSize          int64
	NumCompactors           int

	// GoMemoryLimit is the soft memory limit the plan suggests for the Go
	// runtime (runtime/debug.SetMemoryLimit), in bytes.
	GoMemoryLimit int64
}

// Memtable bounds: Badger's largest transaction is 15% of a memtable, and
// the value threshold may not exceed it, so a memtable of at least 8 MiB
// keeps 1 MiB blobs inline. 64 MiB is Badger's default.
const (
	minMemTable = 8 << 20
	maxMemTable = 64 << 20
)

// PlanMemory returns the plan for a relay process that should stay within
// budget bytes; 0 means [DefaultMemoryBudget]. A budget under
// [MinMemoryBudget] is an error wrapping [ErrMemoryBudgetTooSmall]. It is a
// pure function of budget.
func PlanMemory(budget int64) (MemoryPlan, error) {
	if budget == 0 {
		budget = DefaultMemoryBudget
	}
	if budget < MinMemoryBudget {
		return MemoryPlan{}, fmt.Errorf("%w: %d MiB, the least is %d MiB", ErrMemoryBudgetTooSmall, budget>>20, MinMemoryBudget>>20)
	}
	const mib = 1 << 20
	p := MemoryPlan{
		Budget:                  budget,
		MemTableSize:            min(max(budget/32/mib*mib, minMemTable), maxMemTable),
		NumMemtables:            2,
		NumLevelZeroTables:      5,  // Badger's default
		NumLevelZeroTablesStall: 15, // Badger's default
		// Strictly above every blob: Badger keeps values shorter than
		// the threshold in the LSM tree.
		ValueThreshold: protocol.MaxBlobSize,
		BlockCacheSize: 0,
		IndexCacheSize: 0,
		NumCompactors:  2,
	}
	p.GoMemoryLimit = budget - int64(p.NumMemtables+2)*p.MemTableSize
	return p, nil
}

// defaultPlan is the plan for [DefaultMemoryBudget], for the stores that
// backups and restores open (the commands that run them take no budget).
func defaultPlan() MemoryPlan {
	p, err := PlanMemory(DefaultMemoryBudget)
	if err != nil {
		panic(err) // DefaultMemoryBudget is above MinMemoryBudget
	}
	return p
}

// apply sets the plan's Badger options on o.
func (p MemoryPlan) apply(o badger.Options) badger.Options {
	return o.
		WithMemTableSize(p.MemTableSize).
		WithNumMemtables(p.NumMemtables).
		WithNumLevelZeroTables(p.NumLevelZeroTables).
		WithNumLevelZeroTablesStall(p.NumLevelZeroTablesStall).
		WithValueThreshold(p.ValueThreshold).
		WithBlockCacheSize(p.BlockCacheSize).
		WithIndexCacheSize(p.IndexCacheSize).
		WithNumCompactors(p.NumCompactors)
}
