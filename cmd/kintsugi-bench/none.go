package main

import (
	"context"

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
func (s *noneStore) StartAppend(ctx context.Context, j protocol.JournalID, blob []byte) *server.PendingAppend {
	return s.commits.Start(j, blob, nil)
}

// Append is StartAppend, waited for.
func (s *noneStore) Append(ctx context.Context, j protocol.JournalID, blob []byte) (uint64, protocol.BlobID, bool, error) {
	return s.StartAppend(ctx, j, blob).Wait()
}

// JournalUsage is always 0: the store holds no blob.
func (s *noneStore) JournalUsage(ctx context.Context, j protocol.JournalID) (int64, error) {
	return 0, nil
}

// Close stops the committer, then closes the Badger store.
func (s *noneStore) Close() error {
	s.commits.Stop()
	return s.Store.Close()
}
