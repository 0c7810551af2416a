package server

import (
	"context"
	"errors"
	"os"
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

	// Set by a pipelined committer's prepare function (BadgerStore):
	// where the blob's bytes were written, whether this append wrote them
	// (an earlier append of the same blob to the same journal in the group
	// shares them), or why writing failed.
	ref     segRef
	owner   bool
	prepErr error

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
	reqs     chan *AppendRequest          // appends waiting for a group
	stop     chan struct{}                // closed by Stop
	done     chan struct{}                // closed when the committer has returned
	maxBytes int                          // static
	prepare  func(group []*AppendRequest) // nil: not pipelined
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
	return startCommitter(maxBytes, nil, commit)
}

// StartPipelinedCommitter starts a committer that hands each group to
// prepare and then to commit, in order, and answers the group after
// commit; while commit runs for one group, prepare already runs for the
// next (on another goroutine). prepare sees each group once, with its
// results zero, and may only set the fields prepare owns (the segment
// references); commit must not depend on anything prepare did for a later
// group. BadgerStore prepares a group by writing and syncing its blobs to
// a segment, and commits it by committing its index records, so one
// group's segment sync overlaps the index commit of the group before.
func StartPipelinedCommitter(maxBytes int, prepare, commit func(group []*AppendRequest)) *Committer {
	return startCommitter(maxBytes, prepare, commit)
}

func startCommitter(maxBytes int, prepare, commit func(group []*AppendRequest)) *Committer {
	if maxBytes <= 0 {
		maxBytes = maxGroupBytes
	}
	c := &Committer{
		reqs:     make(chan *AppendRequest, maxGroup),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		maxBytes: maxBytes,
		prepare:  prepare,
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
	*r = AppendRequest{done: r.done} // also clears what prepare set
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
	// Pipelined: a second goroutine commits and answers each prepared
	// group while this one forms and prepares the next. The hand-over
	// waits until the committing goroutine has finished the group before,
	// so at most two groups are in flight, and they alternate between two
	// slices.
	var finish chan []*AppendRequest
	if c.prepare != nil {
		finish = make(chan []*AppendRequest)
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			for group := range finish {
				c.commitAndAnswer(group)
			}
		}()
		defer func() {
			close(finish)
			<-finished
		}()
	}
	slices := [2][]*AppendRequest{make([]*AppendRequest, 0, maxGroup), make([]*AppendRequest, 0, maxGroup)}
	turn := 0
	var next *AppendRequest // taken from reqs, but too large for the last group
	for {
		group := slices[turn][:0]
		if c.prepare != nil {
			turn ^= 1
		}
		if next != nil {
			group, next = append(group, next), nil
		} else {
			select {
			case r := <-c.reqs:
				group = append(group, r)
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
		if c.prepare == nil {
			c.commitAndAnswer(group)
			continue
		}
		c.prepare(group)
		finish <- group
	}
}

// commitAndAnswer commits group and answers each of its appends.
func (c *Committer) commitAndAnswer(group []*AppendRequest) {
	c.commit(group)
	for i, r := range group {
		r.done <- struct{}{}
		group[i] = nil
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

// commitGroup writes group's index records (with segments; the blobs
// themselves without) in one synced transaction and sets each append's
// result. An append to a journal that does not exist fails alone; any
// other failure fails the whole group, which then changed nothing. With
// segments, prepareGroup has written the group's blobs before.
func (s *BadgerStore) commitGroup(group []*AppendRequest) {
	var last map[protocol.JournalID]uint64  // journals this group appended to
	var counts map[protocol.JournalID]int64 // their usage counts, as committed
	var segUpd map[uint32]segInfo           // the segments' records, as committed
	var holes bool                          // blobs written again that the store had: their bytes go
	// Taken for the transaction only, so a split group below retakes it.
	s.usageMu.Lock() // see BadgerStore.usageMu
	err := s.update(func(txn *badger.Txn) error {
		last = make(map[protocol.JournalID]uint64)
		counts = make(map[protocol.JournalID]int64)
		segUpd = make(map[uint32]segInfo)
		holes = false
		added := make(map[protocol.JournalID]int64) // blob bytes this group added per journal
		for _, r := range group {
			r.Seq, r.Dup, r.Err = 0, false, nil
		}
		for _, r := range group {
			if r.prepErr != nil {
				r.Err = r.prepErr
				continue
			}
			err := s.appendInTxn(txn, r, last)
			if errors.Is(err, protocol.ErrNotFound) {
				r.Err = err
				if s.segs != nil && r.owner { // written for a journal that does not exist
					holes = true
					if err := s.segHole(txn, r, segUpd); err != nil {
						return err
					}
				}
				continue
			}
			if err != nil {
				return err
			}
			if !r.Dup {
				added[r.Journal] += int64(len(r.Blob))
			}
			if err := s.storeBlob(txn, r, segUpd); err != nil {
				return err
			}
			holes = holes || (s.segs != nil && r.Dup && r.owner)
		}
		for seg, info := range segUpd {
			if err := txn.Set(segKey(seg), info.encode()); err != nil {
				return err
			}
		}
		if s.testCommitErr != nil {
			if err := s.testCommitErr(); err != nil {
				return err
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
		for seg, info := range segUpd {
			s.segs.segs[seg] = info
		}
		if holes {
			// A blob sent again was written before the group knew the
			// store had it (perhaps purged): its copy goes before the
			// answer, as a purge's bytes do.
			if perr := s.punchHoles(); perr != nil {
				s.segs.log.Warn("could not remove the bytes of a blob sent twice; will try again at the next purge or start", "err", perr)
			}
		}
	}
	if err != nil && !errors.Is(err, badger.ErrTxnTooBig) {
		s.discardWritten(group)
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

// prepareGroup writes the blobs of group to the segment log, durably,
// before the group's index commits (commitGroup): with one pwrite and one
// fdatasync, and sets each append's reference to its bytes. A blob sent
// twice to one journal in the group is written once. The committer runs it
// while the group before is committing. It knows nothing of what the store
// holds: a blob it writes may turn out to be one the journal already had,
// and commitGroup then removes the copy.
func (s *BadgerStore) prepareGroup(group []*AppendRequest) {
	type blobKey struct {
		j  protocol.JournalID
		id protocol.BlobID
	}
	first := make(map[blobKey]*AppendRequest, len(group))
	var blobs [][]byte
	var ids []protocol.BlobID
	var owners []*AppendRequest
	for _, r := range group {
		k := blobKey{r.Journal, r.ID}
		if _, ok := first[k]; ok {
			continue
		}
		first[k] = r
		r.owner = true
		owners = append(owners, r)
		blobs, ids = append(blobs, r.Blob), append(ids, r.ID)
	}
	refs, err := s.segs.write(blobs, ids)
	for i, r := range owners {
		if err != nil {
			r.prepErr = err
			continue
		}
		r.ref = refs[i]
	}
	for _, r := range group {
		if !r.owner {
			o := first[blobKey{r.Journal, r.ID}]
			r.ref, r.prepErr = o.ref, o.prepErr
		}
	}
}

// storeBlob stores r's blob at its log record (r.Journal, r.Seq) in txn:
// inline for a store without segments (in memory), else as a reference to
// the bytes prepareGroup wrote, counted in its segment's record in segUpd.
// For an append that found its blob already stored (r.Dup) and wrote a
// copy anyway, it records the copy as a hole to punch out.
func (s *BadgerStore) storeBlob(txn *badger.Txn, r *AppendRequest, segUpd map[uint32]segInfo) error {
	if s.segs == nil {
		if r.Dup {
			return nil
		}
		return txn.Set(key(pfxLog, r.Journal[:], u64(r.Seq)), r.Blob)
	}
	if !r.owner {
		return nil // its bytes are another append's
	}
	if r.Dup {
		return s.segHole(txn, r, segUpd)
	}
	info := s.segCommitted(r, segUpd)
	info.live++
	segUpd[r.ref.seg] = info
	return txn.Set(key(pfxLog, r.Journal[:], u64(r.Seq)), r.ref.encode())
}

// segCommitted returns the record of r's segment as it will be once this
// group commits, with the committed end moved past r's bytes: every byte
// the writer put before them is referenced or a hole by then.
func (s *BadgerStore) segCommitted(r *AppendRequest, segUpd map[uint32]segInfo) segInfo {
	info, ok := segUpd[r.ref.seg]
	if !ok {
		info = s.segs.segs[r.ref.seg]
	}
	info.end = max(info.end, r.ref.off+r.ref.n)
	return info
}

// segHole records r's bytes, which nothing will refer to, as a hole to
// punch out once the group has committed.
func (s *BadgerStore) segHole(txn *badger.Txn, r *AppendRequest, segUpd map[uint32]segInfo) error {
	segUpd[r.ref.seg] = s.segCommitted(r, segUpd)
	return txn.Set(holeKey(r.ref.seg, r.ref.off), u64(uint64(r.ref.n)))
}

// discardWritten punches out the bytes prepareGroup wrote for group, whose
// index did not commit: a later group's commit will move the segment's
// committed end past them, and they must not stay there unreferenced.
// Best effort: if the disk fails here, it is failing for every write.
func (s *BadgerStore) discardWritten(group []*AppendRequest) {
	if s.segs == nil {
		return
	}
	for _, r := range group {
		if !r.owner || r.prepErr != nil || r.ref.n == 0 {
			continue
		}
		if err := s.segs.punch(r.ref.seg, r.ref.off, r.ref.n); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.segs.log.Error("could not remove the bytes of a write that failed", "segment", segName(r.ref.seg), "err", err)
			return
		}
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
