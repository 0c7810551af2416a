package server

import (
	"context"
	"errors"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Group commit.
//
// Badger batches transactions that arrive together into one write, but
// with SyncWrites it still syncs its write-ahead log once per transaction
// (DB.writeToLSM calls SyncWAL for every request of a batch). One
// transaction per append therefore costs one disk sync per append, about
// 1,000 durable appends a second however many clients write at once.
//
// So appends do not open their own transactions. Append hands its blob to
// the store's committer goroutine and waits. The committer takes every
// append that is waiting, up to maxGroup appends or committer.maxBytes, and
// writes them all in one synced transaction: one write, one sync. Then it
// answers each of them. While that sync runs, the next appends queue up
// and form the next group, so under load a group holds about as many
// appends as there are writers waiting, and a lone writer pays one sync as
// before.
//
// The committer is the only writer of log, dedup and last-sequence
// records, so it assigns sequence numbers in the order it takes appends,
// densely, without locks or transaction conflicts between appends. Inside
// one transaction each append sees the ones before it (a Badger
// transaction reads its own pending writes), so a blob sent twice in one
// group is stored once and the second answer is a duplicate of the first.
// Nothing in a group becomes visible to readers, or is acknowledged,
// before the group's transaction has been synced.
//
// The group's transaction also adds the bytes of the blobs it stored to
// each journal's usage count (usage.go), once per journal, so the count
// stays exact across crashes. Purge changes usage counts too; purges and
// groups take turns (BadgerStore.usageMu) instead of conflicting.

// Bounds on one group. Badger refuses a transaction above 15% of its
// memtable (1.2 MiB with the 8 MiB memtables of the default memory
// budget, see memory.go), so a group also stays under three quarters of
// that (committer.maxBytes), leaving room for its keys and counts: an
// append that would take the group past it waits for the next group. A
// group that is refused anyway is split in halves.
const (
	maxGroup      = 1024
	maxGroupBytes = 4 << 20
)

// appendReq is one Append waiting for the committer.
type appendReq struct {
	j    protocol.JournalID
	blob []byte
	id   protocol.BlobID

	// Set by the committer before it signals done.
	seq uint64
	dup bool
	err error

	done chan struct{} // capacity 1; the committer sends once
}

var appendReqPool = sync.Pool{New: func() any { return &appendReq{done: make(chan struct{}, 1)} }}

// committer runs group commits for a BadgerStore.
type committer struct {
	reqs chan *appendReq // appends waiting for a group
	stop chan struct{}   // closed by stopCommitter
	done chan struct{}   // closed when the committer has returned

	// maxBytes bounds the blob bytes of a group (beyond its first
	// append). Static after construction.
	maxBytes int

	// last caches, for journals the committer has appended to, the last
	// sequence number it committed. Owned by the committer goroutine.
	last map[protocol.JournalID]uint64
}

// startCommitter starts the store's committer goroutine.
func (s *BadgerStore) startCommitter() {
	s.commits = committer{
		reqs:     make(chan *appendReq, maxGroup),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		maxBytes: int(min(maxGroupBytes, s.db.MaxBatchSize()*3/4)),
	}
	go s.commitLoop()
}

// stopCommitter stops the committer. The caller must make sure no Append
// is in flight (Close holds s.mu for writing).
func (s *BadgerStore) stopCommitter() {
	close(s.commits.stop)
	<-s.commits.done
}

// appendGrouped queues one append for the next group and waits for its
// result. It does not give up on a context: once queued, the append is
// written or fails with its group, and the caller learns which.
func (s *BadgerStore) appendGrouped(j protocol.JournalID, blob []byte, id protocol.BlobID) (uint64, bool, error) {
	r := s.queueAppend(j, blob, id)
	return r.wait()
}

func (s *BadgerStore) queueAppend(j protocol.JournalID, blob []byte, id protocol.BlobID) *appendReq {
	r := appendReqPool.Get().(*appendReq)
	r.j, r.blob, r.id = j, blob, id
	s.commits.reqs <- r
	return r
}

// wait waits for the committer's answer and recycles r.
func (r *appendReq) wait() (uint64, bool, error) {
	<-r.done
	seq, dup, err := r.seq, r.dup, r.err
	*r = appendReq{done: r.done}
	appendReqPool.Put(r)
	return seq, dup, err
}

// PendingAppend is an append started by [BadgerStore.StartAppend].
type PendingAppend struct {
	id   protocol.BlobID
	r    *appendReq // nil if the append failed to start
	err  error      // why it did not start
	done func()     // releases the store for Close
}

// StartAppend starts appending blob to j's log, like [BadgerStore.Append],
// and returns without waiting for the commit. Appends started one after
// the other are stored in that order. The caller must call Wait, which
// returns what Append would have; until then Close waits.
func (s *BadgerStore) StartAppend(ctx context.Context, j protocol.JournalID, blob []byte) *PendingAppend {
	p := &PendingAppend{id: protocol.IDOf(blob)}
	done, err := s.begin(ctx)
	if err != nil {
		p.err = err
		return p
	}
	p.done = done
	p.r = s.queueAppend(j, blob, p.id)
	return p
}

// Wait waits for the append to be durable (or to fail) and returns its
// sequence number, id and whether the journal already held the blob.
func (p *PendingAppend) Wait() (uint64, protocol.BlobID, bool, error) {
	if p.r == nil {
		return 0, p.id, false, p.err
	}
	seq, dup, err := p.r.wait()
	p.r = nil
	p.err = err
	p.done()
	if err != nil {
		return 0, p.id, false, err
	}
	return seq, p.id, dup, nil
}

func (s *BadgerStore) commitLoop() {
	defer close(s.commits.done)
	group := make([]*appendReq, 0, maxGroup)
	var next *appendReq // taken from reqs, but too large for the last group
	for {
		if next != nil {
			group, next = append(group[:0], next), nil
		} else {
			select {
			case r := <-s.commits.reqs:
				group = append(group[:0], r)
			case <-s.commits.stop:
				return
			}
		}
		size := len(group[0].blob)
	fill:
		for len(group) < maxGroup {
			select {
			case r := <-s.commits.reqs:
				if size+len(r.blob) > s.commits.maxBytes {
					next = r
					break fill
				}
				group = append(group, r)
				size += len(r.blob)
			default:
				break fill
			}
		}
		s.commitGroup(group)
		for i, r := range group {
			r.done <- struct{}{}
			group[i] = nil
		}
	}
}

// commitGroup writes group in one synced transaction and sets each
// append's result. An append to a journal that does not exist fails alone;
// any other failure fails the whole group, which then changed nothing.
func (s *BadgerStore) commitGroup(group []*appendReq) {
	g := &s.commits
	var last map[protocol.JournalID]uint64  // journals this group appended to
	var counts map[protocol.JournalID]int64 // their usage counts, as committed
	// Taken for the transaction only, so a split group below retakes it.
	s.usageMu.Lock() // see BadgerStore.usageMu
	err := s.update(func(txn *badger.Txn) error {
		last = make(map[protocol.JournalID]uint64)
		counts = make(map[protocol.JournalID]int64)
		added := make(map[protocol.JournalID]int64) // blob bytes this group added per journal
		for _, r := range group {
			r.seq, r.dup, r.err = 0, false, nil
		}
		for _, r := range group {
			err := g.appendInTxn(txn, r, last)
			if errors.Is(err, protocol.ErrNotFound) {
				r.err = err
				continue
			}
			if err != nil {
				return err
			}
			if !r.dup {
				added[r.j] += int64(len(r.blob))
			}
		}
		for j, seq := range last {
			if err := txn.Set(key(pfxLastSeq, j[:]), u64(seq)); err != nil {
				return err
			}
		}
		// Usage counts change in the same transaction as the log, so
		// they stay exact across crashes (usage.go).
		for j, n := range added {
			used, err := addUsage(txn, j, n)
			if err != nil {
				return err
			}
			counts[j] = used
		}
		return nil
	})
	if err == nil {
		s.usage.set(counts) // before usageMu goes, so counts are set in commit order
	}
	s.usageMu.Unlock()
	if errors.Is(err, badger.ErrTxnTooBig) && len(group) > 1 {
		// Unexpected given the group bounds, but safe: the transaction
		// was discarded, so write each half on its own.
		s.commitGroup(group[:len(group)/2])
		s.commitGroup(group[len(group)/2:])
		return
	}
	if err != nil {
		for _, r := range group {
			r.seq, r.dup, r.err = 0, false, err
		}
		return
	}
	for j, seq := range last {
		g.remember(j, seq)
	}
}

// maxCached bounds the committer's cache of journals and their last
// sequence numbers; past it the cache starts again empty.
const maxCached = 1 << 16

// remember records that journal j exists and that seq is its last
// sequence number, as committed.
func (g *committer) remember(j protocol.JournalID, seq uint64) {
	if g.last == nil || len(g.last) >= maxCached {
		g.last = make(map[protocol.JournalID]uint64)
	}
	g.last[j] = seq
}

// appendInTxn stores r.blob at the end of r.j's log in txn, or finds it
// already there, and sets r.seq and r.dup. last holds the last sequence
// number of each journal this group has appended to; the caller writes
// them. It returns protocol.ErrNotFound, having written nothing, if the
// journal does not exist.
//
// The committer is the only writer of last-sequence records, so what it
// remembers from its own commits is what the store holds: a journal it
// remembers exists and needs no read.
func (g *committer) appendInTxn(txn *badger.Txn, r *appendReq, last map[protocol.JournalID]uint64) error {
	j := r.j
	seq, ok := last[j]
	if !ok {
		seq, ok = g.last[j]
	}
	if !ok {
		ok, err := exists(txn, key(pfxJournal, j[:]))
		if err != nil {
			return err
		}
		if !ok {
			return protocol.ErrNotFound
		}
		if seq, err = lastSeq(txn, j); err != nil {
			return err
		}
	}
	bk := key(pfxBlobByID, j[:], r.id[:])
	item, err := txn.Get(bk)
	if err == nil {
		r.seq, err = u64Value(item, "dedup")
		r.dup = err == nil
		return err
	}
	if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	seq++
	if err := txn.Set(key(pfxLog, j[:], u64(seq)), r.blob); err != nil {
		return err
	}
	if err := txn.Set(bk, u64(seq)); err != nil {
		return err
	}
	last[j] = seq
	r.seq = seq
	return nil
}
