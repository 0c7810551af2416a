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
// append that is waiting, up to maxGroup appends or Committer.maxBytes, and
// writes them all at once: for BadgerStore, their bytes to a segment file
// with one write and one fdatasync, then their index records in one synced
// transaction (seglog.go). Then it answers each of them. While that sync runs, the next appends queue up
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
// The committer itself ([Committer]) knows nothing of Badger: it forms
// groups and answers them; a store's commit function writes each group.
// The PostgreSQL store uses it the same way, with one database
// transaction per group.
//
// The group's transaction also adds the bytes of the blobs it stored to
// each journal's usage count (usage.go), once per journal, so the count
// stays exact across crashes. Purge changes usage counts too; purges and
// groups take turns (BadgerStore.usageMu) instead of conflicting.

// Bounds on one group. Badger refuses a transaction above 15% of its
// memtable (1.2 MiB with the 8 MiB memtables of the default memory
// budget, see memory.go), so a group also stays under three quarters of
// that (Committer.maxBytes), leaving room for its keys and counts: an
// append that would take the group past it waits for the next group. A
// group that is refused anyway is split in halves.
const (
	maxGroup      = 1024
	maxGroupBytes = 4 << 20
)

// AppendRequest is one append waiting for its group commit: a
// [Committer] hands a group of them to its commit function, which sets
// each one's result.
type AppendRequest struct {
	Journal protocol.JournalID
	Blob    []byte
	ID      protocol.BlobID // SHA-256 of Blob

	// Set by the commit function: the blob's sequence number and whether
	// the journal held it already, or why the append failed.
	Seq uint64
	Dup bool
	Err error

	done chan struct{} // capacity 1; the committer sends once
}

var appendReqPool = sync.Pool{New: func() any { return &AppendRequest{done: make(chan struct{}, 1)} }}

// Committer runs group commits for a store: one goroutine takes every
// append waiting, up to maxGroup of them or maxBytes of blobs (beyond the
// first), and hands them to the store's commit function, which writes
// them in one durable transaction and sets each one's result; then it
// answers them all. Appends are handed over in the order they were
// started. [BadgerStore] and the PostgreSQL store both use it.
type Committer struct {
	reqs     chan *AppendRequest // appends waiting for a group
	stop     chan struct{}       // closed by Stop
	done     chan struct{}       // closed when the committer has returned
	maxBytes int                 // static
	commit   func(group []*AppendRequest)
}

// StartCommitter starts a committer that writes each group with commit.
// commit runs on the committer's goroutine only, one group at a time; it
// gets every request with its results zero (AppendRequest.wait recycles
// them so) and must set Seq and Dup, or Err, on every request of the
// group, starting again from zero if it retries. maxBytes
// bounds the blob bytes of a group beyond its first append (0: the
// default, 4 MiB).
func StartCommitter(maxBytes int, commit func(group []*AppendRequest)) *Committer {
	if maxBytes <= 0 {
		maxBytes = maxGroupBytes
	}
	c := &Committer{
		reqs:     make(chan *AppendRequest, maxGroup),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		maxBytes: maxBytes,
		commit:   commit,
	}
	go c.loop()
	return c
}

// Stop stops the committer. The caller must make sure no append is in
// flight (a store's Close waits for them first).
func (c *Committer) Stop() {
	close(c.stop)
	<-c.done
}

// Start queues an append of blob to j for the next group and returns at
// once. release, if not nil, is called once the append's result is known
// and Wait is about to return it: a store's hold against Close.
func (c *Committer) Start(j protocol.JournalID, blob []byte, release func()) *PendingAppend {
	r := appendReqPool.Get().(*AppendRequest)
	r.Journal, r.Blob, r.ID = j, blob, protocol.IDOf(blob)
	c.reqs <- r
	if release == nil {
		release = func() {}
	}
	return &PendingAppend{id: r.ID, r: r, done: release}
}

// wait waits for the committer's answer and recycles r.
func (r *AppendRequest) wait() (uint64, bool, error) {
	<-r.done
	seq, dup, err := r.Seq, r.Dup, r.Err
	*r = AppendRequest{done: r.done}
	appendReqPool.Put(r)
	return seq, dup, err
}

// PendingAppend is an append started by [Store.StartAppend].
type PendingAppend struct {
	id   protocol.BlobID
	r    *AppendRequest // nil if the append failed to start
	err  error          // why it did not start
	done func()         // releases the store for Close
}

// FailedAppend returns a PendingAppend of blob that did not start because
// of err: its Wait returns err at once.
func FailedAppend(blob []byte, err error) *PendingAppend {
	return &PendingAppend{id: protocol.IDOf(blob), err: err}
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

func (c *Committer) loop() {
	defer close(c.done)
	group := make([]*AppendRequest, 0, maxGroup)
	var next *AppendRequest // taken from reqs, but too large for the last group
	for {
		if next != nil {
			group, next = append(group[:0], next), nil
		} else {
			select {
			case r := <-c.reqs:
				group = append(group[:0], r)
			case <-c.stop:
				return
			}
		}
		size := len(group[0].Blob)
	fill:
		for len(group) < maxGroup {
			select {
			case r := <-c.reqs:
				if size+len(r.Blob) > c.maxBytes {
					next = r
					break fill
				}
				group = append(group, r)
				size += len(r.Blob)
			default:
				break fill
			}
		}
		c.commit(group)
		for i, r := range group {
			r.done <- struct{}{}
			group[i] = nil
		}
	}
}

// StartAppend implements [Store]. The append joins the next group commit.
func (s *BadgerStore) StartAppend(ctx context.Context, j protocol.JournalID, blob []byte) *PendingAppend {
	done, err := s.begin(ctx)
	if err != nil {
		return FailedAppend(blob, err)
	}
	return s.commits.Start(j, blob, done)
}

// commitGroup writes group in one synced transaction and sets each
// append's result. An append to a journal that does not exist fails alone;
// any other failure fails the whole group, which then changed nothing.
func (s *BadgerStore) commitGroup(group []*AppendRequest) {
	var last map[protocol.JournalID]uint64  // journals this group appended to
	var counts map[protocol.JournalID]int64 // their usage counts, as committed
	var sw segWrite                         // the segment's record, as committed
	// Taken for the transaction only, so a split group below retakes it.
	s.usageMu.Lock() // see BadgerStore.usageMu
	err := s.update(func(txn *badger.Txn) error {
		last = make(map[protocol.JournalID]uint64)
		counts = make(map[protocol.JournalID]int64)
		sw = segWrite{}
		added := make(map[protocol.JournalID]int64) // blob bytes this group added per journal
		for _, r := range group {
			r.Seq, r.Dup, r.Err = 0, false, nil
		}
		var fresh []*AppendRequest // appends that store their blob
		for _, r := range group {
			err := s.appendInTxn(txn, r, last)
			if errors.Is(err, protocol.ErrNotFound) {
				r.Err = err
				continue
			}
			if err != nil {
				return err
			}
			if !r.Dup {
				added[r.Journal] += int64(len(r.Blob))
				fresh = append(fresh, r)
			}
		}
		if err := s.storeBlobs(txn, fresh, &sw); err != nil {
			return err
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
		if sw.seg != 0 {
			s.segs.segs[sw.seg] = sw.info
		}
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
			r.Seq, r.Dup, r.Err = 0, false, err
		}
		return
	}
	for j, seq := range last {
		s.remember(j, seq)
	}
}

// maxCached bounds the commit function's cache of journals and their last
// sequence numbers; past it the cache starts again empty.
const maxCached = 1 << 16

// remember records that journal j exists and that seq is its last
// sequence number, as committed.
func (s *BadgerStore) remember(j protocol.JournalID, seq uint64) {
	if s.last == nil || len(s.last) >= maxCached {
		s.last = make(map[protocol.JournalID]uint64)
	}
	s.last[j] = seq
}

// appendInTxn gives r.blob the next sequence number of r.j's log in txn
// (the caller stores it there, see storeBlobs), or finds it already
// there, and sets r.seq and r.dup. last holds the last sequence
// number of each journal this group has appended to; the caller writes
// them. It returns protocol.ErrNotFound, having written nothing, if the
// journal does not exist.
//
// The committer is the only writer of last-sequence records, so what it
// remembers from its own commits is what the store holds: a journal it
// remembers exists and needs no read.
func (s *BadgerStore) appendInTxn(txn *badger.Txn, r *AppendRequest, last map[protocol.JournalID]uint64) error {
	j := r.Journal
	seq, ok := last[j]
	if !ok {
		seq, ok = s.last[j]
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
	bk := key(pfxBlobByID, j[:], r.ID[:])
	item, err := txn.Get(bk)
	if err == nil {
		r.Seq, err = u64Value(item, "dedup")
		r.Dup = err == nil
		return err
	}
	if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	seq++
	if err := txn.Set(bk, u64(seq)); err != nil {
		return err
	}
	last[j] = seq
	r.Seq = seq
	return nil
}

// storeBlobs stores the blobs of fresh, each at its log record (r.Journal,
// r.Seq), in txn. With segments (seglog.go), it first writes their bytes
// to the active segment durably, and the log records refer to them; sw
// gets the segment's new record, which the transaction also writes.
// Stores without segments (in memory) keep blobs inline.
func (s *BadgerStore) storeBlobs(txn *badger.Txn, fresh []*AppendRequest, sw *segWrite) error {
	if s.segs == nil || len(fresh) == 0 {
		for _, r := range fresh {
			if err := txn.Set(key(pfxLog, r.Journal[:], u64(r.Seq)), r.Blob); err != nil {
				return err
			}
		}
		return nil
	}
	blobs := make([][]byte, len(fresh))
	ids := make([]protocol.BlobID, len(fresh))
	size := 0
	for i, r := range fresh {
		blobs[i], ids[i] = r.Blob, r.ID
		size += len(r.Blob)
	}
	if err := s.segs.startGroup(size); err != nil {
		return err
	}
	refs, w, err := s.segs.write(blobs, ids)
	if err != nil {
		return err
	}
	for i, r := range fresh {
		if err := txn.Set(key(pfxLog, r.Journal[:], u64(r.Seq)), refs[i].encode()); err != nil {
			return err
		}
	}
	*sw = w
	return txn.Set(segKey(w.seg), w.info.encode())
}
