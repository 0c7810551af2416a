package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Defaults for [GCConfig].
const (
	DefaultGCInterval     = 10 * time.Minute
	DefaultGCDiscardRatio = 0.5
)

// maxVlogRewrites bounds value-log rewrites in one GC pass.
const maxVlogRewrites = 16

// keyCompact is written and dropped again to make Badger flush its
// memtables (see compactPurged); no other key starts with its prefix.
var keyCompact = []byte("x/compact")

// GCConfig configures [BadgerStore.StartGC]. The zero value selects the
// defaults.
type GCConfig struct {
	// Interval between passes. Default: DefaultGCInterval.
	Interval time.Duration
	// DiscardRatio is the share of a value-log file that must be garbage
	// before the file is rewritten, in (0, 1). Default:
	// DefaultGCDiscardRatio, as Badger recommends.
	DiscardRatio float64
	// Logger receives one line per pass that did something, and errors.
	// It never receives keys or values. Default: discard.
	Logger *slog.Logger
}

// GCResult describes one GC pass.
type GCResult struct {
	VlogRewrites int   // value-log files rewritten
	Purges       int64 // purges whose bytes the pass compacted away (0: no compaction)
	DiskBytes    int64 // bytes the store's files occupy on disk after the pass
	// Pause is how long store operations waited for the compaction's
	// memtable flush (0 without one).
	Pause    time.Duration
	Duration time.Duration
}

// StartGC runs a GC pass ([BadgerStore.GC]) every cfg.Interval in the
// background until the store closes. It can be started once.
func (s *BadgerStore) StartGC(cfg GCConfig) error {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultGCInterval
	}
	if cfg.DiscardRatio == 0 {
		cfg.DiscardRatio = DefaultGCDiscardRatio
	}
	if cfg.DiscardRatio <= 0 || cfg.DiscardRatio >= 1 {
		return fmt.Errorf("gc discard ratio %v is not between 0 and 1", cfg.DiscardRatio)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s.maint.mu.Lock()
	started := s.maint.gc
	s.maint.gc = true
	s.maint.mu.Unlock()
	if started {
		return errors.New("gc already started")
	}
	ctx, done, err := s.maint.enter(context.Background())
	if err != nil {
		return err
	}
	log := cfg.Logger.With("component", "gc")
	go func() {
		defer done()
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			res, err := s.gc(ctx, cfg.DiscardRatio)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				log.Warn("storage gc failed; will retry", "err", err, "next_in", cfg.Interval)
			case res.VlogRewrites > 0 || res.Purges > 0:
				log.Info("storage gc", "vlog_rewrites", res.VlogRewrites, "purges_compacted", res.Purges, "pause", res.Pause.Round(time.Millisecond), "disk_bytes", res.DiskBytes, "duration", res.Duration.Round(time.Millisecond))
			default:
				log.Debug("storage gc: nothing to do", "disk_bytes", res.DiskBytes)
			}
		}
	}()
	return nil
}

// GC runs one pass now: it rewrites value-log files that are at least
// discardRatio garbage, and, if blobs were purged since the last pass,
// compacts the store so the purged bytes leave its files.
func (s *BadgerStore) GC(ctx context.Context, discardRatio float64) (GCResult, error) {
	ctx, done, err := s.maint.enter(ctx)
	if err != nil {
		return GCResult{}, err
	}
	defer done()
	return s.gc(ctx, discardRatio)
}

func (s *BadgerStore) gc(ctx context.Context, discardRatio float64) (GCResult, error) {
	start := time.Now()
	var res GCResult
	// Badger rewrites at most one file per call; call until it has nothing
	// left worth rewriting. Blobs are stored inline in the LSM tree (they
	// stay under Badger's value threshold, see DefaultMaxBlobSize), so
	// this usually finds nothing; it matters for a relay configured for
	// 1 MiB blobs.
	for res.VlogRewrites < maxVlogRewrites && ctx.Err() == nil {
		err := s.db.RunValueLogGC(discardRatio)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("value-log gc: %w", err)
		}
		res.VlogRewrites++
	}
	if n := s.maint.purges.Swap(0); n > 0 {
		pause, err := s.compactPurged(ctx)
		res.Pause = pause
		if err != nil {
			s.maint.purges.Add(n) // try again next pass
			return res, fmt.Errorf("compaction after purges: %w", err)
		}
		res.Purges = n
	}
	res.DiskBytes = diskUsage(s.db.Opts().Dir)
	res.Duration = time.Since(start)
	return res, ctx.Err()
}

// compactPurged makes the bytes of purged blobs leave the store's files. A
// purge writes the purged record as a new version of the log key that
// discards earlier ones, but the blob's bytes stay where they were
// written: in the memtable's write-ahead log (a .mem file) until Badger
// flushes the memtable, and in SST tables until a compaction merges the
// table with the newer version. On a quiet relay neither happens for a
// long time, so:
//
//  1. DropPrefix on a scratch key forces the flush: Badger blocks writes,
//     flushes every memtable to a level-0 table (deleting its .mem file)
//     and compacts level 0 into the base level, which drops the discarded
//     versions it merges. Writes would fail while blocked, so store
//     operations are held off (s.mu) for its duration, as Close does,
//     and the pending index (indexcommit.go) is committed first.
//  2. Flatten compacts the remaining levels into one, so a blob written
//     long ago to a deeper level meets its purged record.
//
// Deleted files leave their blocks to the filesystem, which does not wipe
// them: the bytes are gone from the store, not erased from the device.
func (s *BadgerStore) compactPurged(ctx context.Context) (pause time.Duration, err error) {
	s.maint.heavy.Lock() // not while a backup streams
	defer s.maint.heavy.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(keyCompact, []byte{1})
	}); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	start := time.Now()
	s.mu.Lock()
	if s.cl {
		s.mu.Unlock()
		return 0, ErrStoreClosed
	}
	// s.mu does not hold off the index goroutine (indexcommit.go): the
	// index records of blobs already answered commit first, or one would
	// fail in the flush. No append can start meanwhile, so none is
	// pending after this.
	if err := s.pend.drain(); err != nil {
		s.mu.Unlock()
		return time.Since(start), err
	}
	err = s.db.DropPrefix(keyCompact)
	s.mu.Unlock()
	pause = time.Since(start)
	if err != nil {
		return pause, fmt.Errorf("flush: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return pause, err
	}
	if err := s.db.Flatten(1); err != nil {
		return pause, fmt.Errorf("flatten: %w", err)
	}
	return pause, nil
}
