package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Usage accounting for [Config.JournalQuota].
//
// The BadgerStore keeps, per journal, the number of blob bytes its log
// holds, in its own keys:
//
//	u                     → usage format (1 byte, 1): present once every u/ key is right
//	u/<journal 16>        → bytes of blobs (and purged records) in the journal's log (8)
//
// Append and Purge update the count in the same transaction as the log, by
// calling addUsage, so it is exact across crashes. A store created before
// usage accounting has no "u" key; OpenBadger then counts every log once
// (ensureUsage) before serving.
//
// The quota check reads a journal's count on every put. So that it need
// not open a read transaction each time, the store also keeps the counts
// it has committed in memory (usageCache): the committer and Purge, the
// only writers of counts, record there what they committed, while still
// holding usageMu, so the cache holds what the store holds.

var (
	keyUsageFormat = []byte("u")
	pfxUsage       = []byte("u/")
)

// sizer reports the store's size on disk, for metrics. Only BadgerStore
// has it: the figures are Badger's own and the segment files' (PostgreSQL
// has its own views of table sizes).
type sizer interface {
	Size() (lsm, vlog int64)
	BlobBytes() int64
}

var _ sizer = (*BadgerStore)(nil)

// addUsage adds delta to j's byte count inside txn and returns the new
// count.
func addUsage(txn *badger.Txn, j protocol.JournalID, delta int64) (int64, error) {
	k := key(pfxUsage, j[:])
	n, err := getU64(txn, k, "usage")
	if err != nil {
		return 0, err
	}
	used := max(int64(n)+delta, 0)
	return used, txn.Set(k, u64(uint64(used)))
}

// usageCache holds the usage counts the store has committed since it
// opened, for journals appended to or purged, so that JournalUsage reads
// memory instead of the store. Only writers of counts set entries, after
// their transaction commits and before they release usageMu.
type usageCache struct {
	mu sync.Mutex
	m  map[protocol.JournalID]int64 // guarded by mu
}

func (u *usageCache) get(j protocol.JournalID) (int64, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	n, ok := u.m[j]
	return n, ok
}

// set records committed counts. Past maxCached journals the cache starts
// again empty; a journal left out is read from the store until its next
// write.
func (u *usageCache) set(counts map[protocol.JournalID]int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil || len(u.m)+len(counts) > maxCached {
		u.m = make(map[protocol.JournalID]int64, len(counts))
	}
	for j, n := range counts {
		u.m[j] = n
	}
}

// ensureUsage counts the bytes of every journal's log once, for a store
// written before usage accounting. It runs before the store serves, so
// nothing appends meanwhile; it sets the counts (not adds to them), so a
// crash part way is repaired by the next open.
func ensureUsage(db *badger.DB) error {
	var done bool
	if err := db.View(func(txn *badger.Txn) error {
		var err error
		done, err = exists(txn, keyUsageFormat)
		return err
	}); err != nil || done {
		return err
	}
	counts := make(map[protocol.JournalID]int64)
	if err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfxLog})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != len(pfxLog)+protocol.JournalIDSize+8 {
				return fmt.Errorf("log key is %d bytes", len(k))
			}
			var j protocol.JournalID
			copy(j[:], k[len(pfxLog):])
			n := item.ValueSize()
			if isSegRefSize(n) { // a blob in a segment counts its own length
				if err := item.Value(func(v []byte) error {
					if r, ok := decodeSegRef(v); ok {
						n = r.n
					}
					return nil
				}); err != nil {
					return err
				}
			}
			counts[j] += n
		}
		return nil
	}); err != nil {
		return fmt.Errorf("count journal usage: %w", err)
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for j, n := range counts {
		if err := wb.Set(key(pfxUsage, j[:]), u64(uint64(n))); err != nil {
			return fmt.Errorf("record journal usage: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("record journal usage: %w", err)
	}
	// The marker goes last, in a synced transaction of its own.
	return db.Update(func(txn *badger.Txn) error { return txn.Set(keyUsageFormat, []byte{1}) })
}

// JournalUsage implements [Store]: it answers from the counts the store
// committed itself, which are exact, since one process holds a Badger
// directory.
func (s *BadgerStore) JournalUsage(ctx context.Context, j protocol.JournalID) (int64, error) {
	done, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	// What Badger counts, and the blobs acknowledged that it does not
	// count yet (indexcommit.go), read under one lock: a group leaves
	// the pending index as its count is set.
	s.pend.mu.RLock()
	defer s.pend.mu.RUnlock()
	pending := func(after uint64) (n int64) {
		for _, e := range s.pend.byJ[j] {
			if e.seq > after {
				n += e.size
			}
		}
		return n
	}
	if n, ok := s.usage.get(j); ok {
		return n + pending(0), nil
	}
	// Badger's snapshot may already hold a group that is still pending
	// (committed, not yet dropped): count only what lies past its log.
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	used, err := getU64(txn, key(pfxUsage, j[:]), "usage")
	if err != nil {
		return 0, err
	}
	last, err := lastSeq(txn, j)
	return int64(used) + pending(last), err
}

// HasBlob implements [Store].
func (s *BadgerStore) HasBlob(ctx context.Context, j protocol.JournalID, id protocol.BlobID) (bool, error) {
	done, err := s.begin(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	s.pend.mu.RLock()
	_, ok := s.pend.byID[blobKey{j, id}]
	s.pend.mu.RUnlock()
	if ok {
		return true, nil
	}
	err = s.db.View(func(txn *badger.Txn) error {
		ok, err = exists(txn, key(pfxBlobByID, j[:], id[:]))
		return err
	})
	return ok, err
}

// BlobBytes returns the disk space the blob segments occupy (a purged
// blob's punched-out bytes do not count).
func (s *BadgerStore) BlobBytes() int64 {
	if s.segs == nil {
		return 0
	}
	return diskUsage(s.segs.dir)
}

// Size returns the bytes of Badger's LSM tables and value log, as Badger
// last measured them (it refreshes the figures about once a minute).
func (s *BadgerStore) Size() (lsm, vlog int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cl {
		return 0, 0
	}
	return s.db.Size()
}

// Check implements [Store]: it reports whether the store is open and can
// read: it returns
// ErrStoreClosed after Close, an error if the data directory's manifest
// or its blobs/ directory is gone (the directory was removed or moved
// away under the running relay, which a read from Badger's memory would
// not notice), or the
// error of a small read.
func (s *BadgerStore) Check(ctx context.Context) error {
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	if o := s.db.Opts(); !o.InMemory {
		if _, err := os.Stat(filepath.Join(o.Dir, badger.ManifestFilename)); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
	}
	if s.segs != nil {
		if _, err := os.Stat(s.segs.dir); err != nil {
			return fmt.Errorf("blob segments: %w", err)
		}
	}
	if err := s.pend.failed(); err != nil {
		return err
	}
	return s.db.View(func(txn *badger.Txn) error {
		_, err := exists(txn, keyRelayID)
		return err
	})
}
