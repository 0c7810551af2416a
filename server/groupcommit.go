package server

import (
	"context"
	"sync"

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
// writes them all at once: for BadgerStore, their bytes to a segment file,
// framed, with one write and one fdatasync; their index records follow in
// Badger, off the path of the answer (indexcommit.go). Then it answers
// each of them. While that sync runs, the next appends queue up and form
// the next group, so under load a group holds about as many appends as
// there are writers waiting, and a lone writer pays one sync.
//
// The committer is the only writer of log, dedup and last-sequence
// records, so it assigns sequence numbers in the order it takes appends,
// densely, without locks or transaction conflicts between appends; a blob
// sent twice in one group is stored once and the second answer is a
// duplicate of the first. Nothing in a group becomes visible to readers,
// or is acknowledged, before the group is durable.
//
// The committer itself ([Committer]) knows nothing of Badger: it forms
// groups and answers them; a store's commit function writes each group.
// The PostgreSQL store uses it the same way, with one database
// transaction per group.
//
// A group's index transaction also adds the bytes of the blobs it stored
// to each journal's usage count (usage.go), once per journal, so the count
// stays exact across crashes. Purge changes usage counts too; purges and
// index commits take turns (BadgerStore.usageMu) instead of conflicting.

// Bounds on one group. A store that keeps blobs inside Badger (in memory)
// must stay under 15% of its memtable per transaction (1.2 MiB with the
// 8 MiB memtables of the default memory budget, see memory.go), so its
// groups also stay under three quarters of that (Committer.maxBytes),
// leaving room for keys and counts: an append that would take the group
// past it waits for the next group. A transaction that is refused anyway
// is split in halves.
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

// take returns the committer's answer, which has come (r.done was
// received), and recycles r.
func (r *AppendRequest) take() (uint64, bool, error) {
	seq, dup, err := r.Seq, r.Dup, r.Err
	*r = AppendRequest{done: r.done}
	appendReqPool.Put(r)
	return seq, dup, err
}

// PendingAppend is an append started by [Store.StartAppend]. One
// goroutine waits for it.
type PendingAppend struct {
	id   protocol.BlobID
	r    *AppendRequest // nil once its result is known, or if it failed to start
	seq  uint64         // its result, once r is nil
	dup  bool
	err  error  // why it failed, or did not start
	done func() // releases the store for Close
}

// FailedAppend returns a PendingAppend of blob that did not start because
// of err: its Wait returns err at once.
func FailedAppend(blob []byte, err error) *PendingAppend {
	return &PendingAppend{id: protocol.IDOf(blob), err: err}
}

// Wait waits for the append to be durable (or to fail) and returns its
// sequence number, id and whether the journal already held the blob.
func (p *PendingAppend) Wait() (uint64, protocol.BlobID, bool, error) {
	if p.r != nil {
		<-p.r.done
		p.finish()
	}
	if p.err != nil {
		return 0, p.id, false, p.err
	}
	return p.seq, p.id, p.dup, nil
}

// Ready reports, without waiting, whether the append's result is known:
// then Wait returns it at once.
func (p *PendingAppend) Ready() bool {
	if p.r == nil {
		return true
	}
	select {
	case <-p.r.done:
		p.finish()
		return true
	default:
		return false
	}
}

// finish keeps the committer's answer, which has come, and releases the
// store.
func (p *PendingAppend) finish() {
	p.seq, p.dup, p.err = p.r.take()
	p.r = nil
	p.done()
}

func (c *Committer) loop() {
	defer close(c.done)
	group := make([]*AppendRequest, 0, maxGroup)
	var next *AppendRequest // taken from reqs, but too large for the last group
	for {
		group = group[:0]
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
		c.commitAndAnswer(group)
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
