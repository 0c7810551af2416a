package server

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// One sync per group.
//
// A group of appends (groupcommit.go) is stored in three steps:
//
//  1. decide: the committer gives each new blob the next sequence number
//     of its journal and finds blobs the journal already holds, reading
//     the index (Badger) and the pending index below; it writes nothing.
//  2. write: the group's new blobs go to the segment being written, each
//     as a framed record that names its journal, sequence number and id
//     (seglog.go), with one pwrite and one fdatasync. The appends are
//     answered after this sync, the only one they wait for.
//  3. index: a second goroutine commits the group's index records (log
//     record → segment reference, dedup record, last sequence number,
//     usage count, segment end) in one synced Badger transaction, taking
//     every group that is waiting at once, and pausing after a small
//     batch (indexPause) so that under load one transaction takes many.
//
// Between 2 and 3 the blobs are in the pending index, in memory: Read,
// LastSeq, HasBlob and JournalUsage add what it holds to what Badger
// holds, and the committer's decisions see it, so a blob is readable the
// moment it is acknowledged. Each reader takes the pending index's read
// lock while it opens its Badger transaction, and the index goroutine
// drops a group from the pending index (under the write lock) only after
// its transaction has committed: whatever a reader misses in one it
// finds in the other.
//
// Every Badger commit is synced, in order, so after a crash the index
// holds every blob up to some point, in the order they were written, and
// none after it (a suffix may be lost, never one in the middle; a batch
// ends at maxIndexBatch blobs, not at a group's end, so the suffix may
// begin inside a group). The segments hold every
// acknowledged blob with its header, past the end the index records for
// each segment. Opening the store reads those records and indexes them
// again (recoverTail), so nothing acknowledged is lost: the index is
// recoverable instead of durable at the moment of the answer.
//
// What waits for the blobs acknowledged before it to be in Badger
// (pendingIndex.drain; under steady appends the pending index never empties): a
// purge (it changes a log record, which must be in Badger), backups,
// exports, VerifyBlobs, and the compaction after purges, which blocks
// Badger's writes while it flushes (gc.go). Close lets indexLoop commit
// everything pending before it closes Badger.
//
// If an index commit fails (the disk is failing), the blobs already
// answered stay readable from the pending index, further appends are
// refused, and the next start indexes them from the segments.

// maxPendingIndex bounds the blobs waiting in the pending index: the
// committer waits before adding a group past it, so a slow index commit
// slows appends instead of growing memory.
const maxPendingIndex = 16 << 10

// maxIndexBatch bounds the blobs one index transaction records (about 150
// bytes of records each, well under Badger's transaction limit).
const maxIndexBatch = 4096

// idxEntry is one stored blob's index record.
type idxEntry struct {
	j    protocol.JournalID
	seq  uint64
	size int64  // the blob's length, for its journal's usage count
	ref  segRef // where its bytes are; unused for a store in memory
	blob []byte // its bytes, for a store in memory (no segments)
}

type blobKey struct {
	j  protocol.JournalID
	id protocol.BlobID
}

// pendingIndex holds the blobs acknowledged whose index records have not
// committed yet, in the order they were stored.
type pendingIndex struct {
	mu      sync.RWMutex
	changed sync.Cond // on mu: entries were added or committed, or err set
	entries []idxEntry
	busy    int    // entries[:busy] are being committed
	added   uint64 // entries ever added
	done    uint64 // entries ever committed
	byJ     map[protocol.JournalID][]idxEntry
	byID    map[blobKey]uint64
	err     error // a write failed for good (errIndexFailed, errSegmentUnusable)
	idxErr  error // of those, the index's own failure: nothing commits any more
	stopped bool
}

func newPendingIndex() *pendingIndex {
	p := &pendingIndex{byJ: make(map[protocol.JournalID][]idxEntry), byID: make(map[blobKey]uint64)}
	p.changed.L = &p.mu
	return p
}

// add adds a group's entries, waiting first while too many are pending.
func (p *pendingIndex) add(es []idxEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.entries) >= maxPendingIndex && p.idxErr == nil && !p.stopped {
		p.changed.Wait()
	}
	p.added += uint64(len(es))
	for _, e := range es {
		p.entries = append(p.entries, e)
		p.byJ[e.j] = append(p.byJ[e.j], e)
		p.byID[blobKey{e.j, e.ref.id}] = e.seq
	}
	p.changed.Broadcast()
}

// take waits for entries and returns the oldest ones to commit; false
// once stopped with nothing left.
func (p *pendingIndex) take() ([]idxEntry, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.entries) == 0 && !p.stopped {
		p.changed.Wait()
	}
	if len(p.entries) == 0 {
		return nil, false
	}
	p.busy = min(len(p.entries), maxIndexBatch)
	return p.entries[:p.busy:p.busy], true
}

// committed drops the entries take returned, now in Badger, and runs
// also, under the same lock: what a reader adds up from both (a journal's
// usage) changes at once.
func (p *pendingIndex) committed(also func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	also()
	for _, e := range p.entries[:p.busy] {
		rest := p.byJ[e.j][1:] // a journal's entries are committed in order
		if len(rest) == 0 {
			delete(p.byJ, e.j)
		} else {
			p.byJ[e.j] = rest
		}
		delete(p.byID, blobKey{e.j, e.ref.id})
	}
	p.done += uint64(p.busy)
	p.entries = append(p.entries[:0], p.entries[p.busy:]...)
	if cap(p.entries) > 4*maxPendingIndex {
		p.entries = append([]idxEntry(nil), p.entries...)
	}
	p.busy = 0
	p.changed.Broadcast()
}

// fail records that the store can take no more appends: the index, or
// (index false) the segment being written, cannot be written. What is
// pending stays readable; after a segment's failure indexLoop goes on
// committing it, so a backup, an export or a purge still works.
func (p *pendingIndex) fail(err error, index bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
	if index && p.idxErr == nil {
		p.idxErr = err
	}
	p.changed.Broadcast()
}

// failed returns why the store takes no more appends, if it does not.
func (p *pendingIndex) failed() error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.err
}

// drain waits until every entry pending now has committed (not those
// added meanwhile: under steady appends the pending index is never empty).
func (p *pendingIndex) drain() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for target := p.added; p.done < target && p.idxErr == nil; {
		p.changed.Wait()
	}
	return p.idxErr
}

// stop makes take return false once the entries are committed.
func (p *pendingIndex) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	p.changed.Broadcast()
}

// last returns the sequence number of j's newest pending blob (0: none).
// Called with mu held.
func (p *pendingIndex) last(j protocol.JournalID) uint64 {
	if es := p.byJ[j]; len(es) > 0 {
		return es[len(es)-1].seq
	}
	return 0
}

// errIndexFailed wraps the failure of an index commit for appends refused
// after it.
var errIndexFailed = errors.New("the relay could not record blobs in its index and takes no more until it is restarted (a restart indexes them from the segment files)")

// readTxn opens a read-only Badger transaction together with what the
// pending index holds for j (see the comment at the top of this file).
// The caller discards the transaction.
func (s *BadgerStore) readTxn(j protocol.JournalID) (*badger.Txn, []idxEntry) {
	s.pend.mu.RLock()
	defer s.pend.mu.RUnlock()
	txn := s.db.NewTransaction(false)
	es := s.pend.byJ[j]
	return txn, es[:len(es):len(es)]
}

// commitGroup stores group (see the comment at the top of this file) and
// sets each append's result. An append to a journal that does not exist
// fails alone; a failure to write fails the group's new blobs, whose
// sequence numbers the next group then uses.
func (s *BadgerStore) commitGroup(group []*AppendRequest) {
	if err := s.pend.failed(); err != nil {
		for _, r := range group {
			r.Err = err
		}
		return
	}
	fresh, last, err := s.decide(group)
	if err != nil {
		for _, r := range group {
			r.Err = err
		}
		return
	}
	if len(fresh) == 0 {
		return
	}
	es := make([]idxEntry, len(fresh))
	for i, r := range fresh {
		es[i] = idxEntry{j: r.Journal, seq: r.Seq, size: int64(len(r.Blob)), ref: segRef{id: r.ID}, blob: r.Blob}
	}
	if s.segs == nil {
		// In memory: the index records hold the blobs, committed now.
		if err := s.commitIndex(es, now); err != nil {
			// A batch split in halves may have committed its first
			// half: the next group reads the journals' last numbers
			// from Badger again rather than reuse numbers now taken
			// (an append answered with this error and sent again is
			// then found, as after any unclear failure).
			s.last = nil
			failGroup(group, err)
			return
		}
	} else {
		recs := make([]segRecord, len(fresh))
		for i, r := range fresh {
			recs[i] = segRecord{j: r.Journal, seq: r.Seq, id: r.ID, blob: r.Blob}
		}
		refs, err := s.segs.write(recs)
		if err != nil {
			s.segs.log.Error("could not write blobs to a segment", "err", err)
			if errors.Is(err, errSegmentUnusable) {
				s.pend.fail(err, false)
			}
			failGroup(group, err)
			return
		}
		for i := range es {
			es[i].ref, es[i].blob = refs[i], nil
		}
		s.pend.add(es)
	}
	for j, seq := range last {
		s.remember(j, seq)
	}
}

// failGroup fails every append of a group that was not stored, also
// those found to repeat one of its new blobs (their answer would name a
// sequence number nothing holds); an append to a journal that does not
// exist keeps its own error.
func failGroup(group []*AppendRequest, err error) {
	for _, r := range group {
		if r.Err == nil {
			r.Seq, r.Dup, r.Err = 0, false, err
		}
	}
}

// decide sets the sequence number of each append in group, and Dup for a
// blob its journal holds already (or that an earlier append of the group
// brings), or Err for a journal that does not exist. It returns the
// appends of new blobs, in order, and each journal's new last sequence
// number.
func (s *BadgerStore) decide(group []*AppendRequest) ([]*AppendRequest, map[protocol.JournalID]uint64, error) {
	s.pend.mu.RLock()
	defer s.pend.mu.RUnlock()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	last := make(map[protocol.JournalID]uint64)
	seen := make(map[blobKey]uint64)
	var fresh []*AppendRequest
	for _, r := range group {
		j := r.Journal
		seq, ok := last[j]
		if !ok {
			seq, ok = s.last[j]
		}
		if !ok {
			ok, err := exists(txn, key(pfxJournal, j[:]))
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				r.Err = protocol.ErrNotFound
				continue
			}
			if seq, err = lastSeq(txn, j); err != nil {
				return nil, nil, err
			}
			seq = max(seq, s.pend.last(j))
		}
		k := blobKey{j, r.ID}
		if at, ok := seen[k]; ok {
			r.Seq, r.Dup = at, true
			continue
		}
		if at, ok := s.pend.byID[k]; ok {
			r.Seq, r.Dup = at, true
			continue
		}
		item, err := txn.Get(key(pfxBlobByID, j[:], r.ID[:]))
		if err == nil {
			r.Seq, err = u64Value(item, "dedup")
			r.Dup = err == nil
			if err != nil {
				return nil, nil, err
			}
			continue
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return nil, nil, err
		}
		seq++
		last[j], seen[k], r.Seq = seq, seq, seq
		fresh = append(fresh, r)
	}
	return fresh, last, nil
}

// commitIndex commits the index records of es in one synced transaction
// (split in halves if Badger finds it too large), then updates the usage
// counts and segment records the store keeps in memory; the usage counts
// through published, which runs the update it is given (at once, or with
// the pending index locked).
func (s *BadgerStore) commitIndex(es []idxEntry, published func(func())) error {
	s.usageMu.Lock() // see BadgerStore.usageMu
	defer s.usageMu.Unlock()
	counts := make(map[protocol.JournalID]int64)
	if err := s.commitIndexLocked(es, counts); err != nil {
		return err
	}
	published(func() { s.usage.set(counts) })
	return nil
}

// now runs f: commitIndex's published for what the pending index does
// not hold.
func now(f func()) { f() }

// commitIndexLocked commits es and records the journals' new usage counts
// in counts; called with usageMu held.
func (s *BadgerStore) commitIndexLocked(es []idxEntry, counts map[protocol.JournalID]int64) error {
	var segUpd map[uint32]segInfo
	var used map[protocol.JournalID]int64
	err := s.update(func(txn *badger.Txn) error {
		used = make(map[protocol.JournalID]int64)
		segUpd = make(map[uint32]segInfo)
		last := make(map[protocol.JournalID]uint64)
		added := make(map[protocol.JournalID]int64)
		for _, e := range es {
			v := e.blob
			if s.segs != nil {
				info, ok := segUpd[e.ref.seg]
				if !ok {
					info = s.segs.segs[e.ref.seg]
				}
				info.end = max(info.end, e.ref.off+e.ref.n)
				info.live++
				segUpd[e.ref.seg] = info
				v = e.ref.encode()
			}
			if err := txn.Set(key(pfxLog, e.j[:], u64(e.seq)), v); err != nil {
				return err
			}
			if err := txn.Set(key(pfxBlobByID, e.j[:], e.ref.id[:]), u64(e.seq)); err != nil {
				return err
			}
			last[e.j] = max(last[e.j], e.seq)
			added[e.j] += e.size
		}
		for seg, info := range segUpd {
			if err := txn.Set(segKey(seg), info.encode()); err != nil {
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
			// The count as committed is known when the store has
			// written it since it opened (usageMu keeps it exact):
			// no read of Badger for it.
			was, ok := counts[j] // an earlier half of a split batch
			if !ok {
				was, ok = s.usage.get(j)
			}
			if !ok {
				u, err := addUsage(txn, j, n)
				if err != nil {
					return err
				}
				used[j] = u
				continue
			}
			used[j] = max(was+n, 0)
			if err := txn.Set(key(pfxUsage, j[:]), u64(uint64(used[j]))); err != nil {
				return err
			}
		}
		if s.testIndexCommit != nil {
			return s.testIndexCommit()
		}
		return nil
	})
	if errors.Is(err, badger.ErrTxnTooBig) && len(es) > 1 {
		// Unexpected given maxIndexBatch, but safe: the transaction was
		// discarded, so write each half on its own.
		if err := s.commitIndexLocked(es[:len(es)/2], counts); err != nil {
			return err
		}
		return s.commitIndexLocked(es[len(es)/2:], counts)
	}
	if err != nil {
		return err
	}
	for j, n := range used {
		counts[j] = n
	}
	for seg, info := range segUpd {
		s.segs.segs[seg] = info
	}
	return nil
}

// indexLoop commits the pending index, every group waiting at once, until
// stopped.
func (s *BadgerStore) indexLoop() {
	defer close(s.indexDone)
	for {
		es, ok := s.pend.take()
		if !ok {
			return
		}
		if err := s.commitIndex(es, s.pend.committed); err != nil {
			s.segs.log.Error("could not record stored blobs in the index: the relay takes no more blobs until it is restarted, which indexes them from the segment files",
				"blobs", len(es), "err", err)
			s.pend.fail(fmt.Errorf("%w: %w", errIndexFailed, err), true)
			return
		}
		if len(es) < maxIndexBatch/16 {
			time.Sleep(indexPause)
		}
	}
}

// indexPause is how long the index goroutine waits after committing a
// small batch, so that under load each transaction (and each sync of
// Badger's log) records more groups. Nothing waits for it but readers of
// Badger alone: appends are answered before it, and reads see the pending
// index.
const indexPause = 5 * time.Millisecond

// recoverTail indexes the records openSegLog found past what the index
// held: blobs acknowledged before the relay stopped whose index records
// had not committed. Each must follow its journal's log; one that does
// not (which no relay writes) is named in the log and left out.
func (s *BadgerStore) recoverTail(tail []idxEntry) error {
	if len(tail) == 0 {
		return nil
	}
	last := make(map[protocol.JournalID]uint64)
	var ok []idxEntry
	err := s.db.View(func(txn *badger.Txn) error {
		for _, e := range tail {
			seq, known := last[e.j]
			if !known {
				found, err := exists(txn, key(pfxJournal, e.j[:]))
				if err != nil {
					return err
				}
				if !found {
					s.segs.log.Error("a blob in a segment belongs to no journal; left out", "segment", segName(e.ref.seg), "offset", e.ref.off, "journal", e.j.String())
					continue
				}
				if seq, err = lastSeq(txn, e.j); err != nil {
					return err
				}
			}
			if e.seq != seq+1 {
				s.segs.log.Error("a blob in a segment does not follow its journal's log; left out", "segment", segName(e.ref.seg), "offset", e.ref.off,
					"journal", e.j.String(), "seq", e.seq, "last", seq)
				last[e.j] = seq
				continue
			}
			last[e.j] = e.seq
			ok = append(ok, e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for len(ok) > 0 {
		n := min(len(ok), maxIndexBatch)
		if err := s.commitIndex(ok[:n], now); err != nil {
			return fmt.Errorf("index the blobs found in segments: %w", err)
		}
		ok = ok[n:]
	}
	return nil
}

// maxCached bounds the commit function's cache of journals and their last
// sequence numbers; past it the cache starts again empty.
const maxCached = 1 << 16

// remember records that journal j exists and that seq is its last
// sequence number, as stored (in the pending index or in Badger).
func (s *BadgerStore) remember(j protocol.JournalID, seq uint64) {
	if s.last == nil || len(s.last) >= maxCached {
		s.last = make(map[protocol.JournalID]uint64)
	}
	s.last[j] = seq
}
