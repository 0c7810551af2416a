package main

import (
	"context"
	"sync"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// The store that keeps nothing (--store-none).
//
// A durable put costs the relay its connection (reading and parsing the
// put, answering it, the goroutines between) and its store (deciding the
// sequence number, writing and syncing, indexing). To tell the two apart,
// ingest can also run against a relay whose store keeps nothing: appends
// go through the same group committer as Badger's, which here only gives
// each the next sequence number of its journal, in memory. Nothing is
// written, nothing is synced, a blob sent twice is stored twice, and no
// blob can be read back: it measures the relay around its store, never a
// relay anyone could run. Everything else (devices, journals, members) is
// the Badger store's, so authentication and membership cost what they do.

// noneStore is a Badger store whose appends keep nothing.
type noneStore struct {
	server.Store
	commits *server.Committer

	mu     sync.RWMutex // read-held by each append until its answer; Close takes it
	closed bool         // guarded by mu
}

func newNoneStore(s server.Store) *noneStore {
	last := make(map[protocol.JournalID]uint64) // the committer's goroutine only
	return &noneStore{Store: s, commits: server.StartCommitter(0, func(group []*server.AppendRequest) {
		for _, r := range group {
			last[r.Journal]++
			r.Seq = last[r.Journal]
		}
	})}
}

// StartAppend gives blob the next sequence number of j and keeps nothing.
// Like Badger's, it holds Close back until the append is answered.
func (s *noneStore) StartAppend(ctx context.Context, j protocol.JournalID, blob []byte) *server.PendingAppend {
	if err := ctx.Err(); err != nil {
		return server.FailedAppend(blob, err)
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return server.FailedAppend(blob, server.ErrStoreClosed)
	}
	return s.commits.Start(j, blob, s.mu.RUnlock)
}

// Append is StartAppend, waited for.
func (s *noneStore) Append(ctx context.Context, j protocol.JournalID, blob []byte) (uint64, protocol.BlobID, bool, error) {
	return s.StartAppend(ctx, j, blob).Wait()
}

// JournalUsage is always 0: the store holds no blob.
func (s *noneStore) JournalUsage(ctx context.Context, j protocol.JournalID) (int64, error) {
	return 0, nil
}

// Close waits for the appends in flight, stops the committer and closes
// the Badger store; a second Close only closes the Badger store again.
func (s *noneStore) Close() error {
	s.mu.Lock()
	stop := !s.closed
	s.closed = true
	s.mu.Unlock()
	if stop {
		s.commits.Stop()
	}
	return s.Store.Close()
}
