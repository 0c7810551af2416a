package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// The store counts each journal's blob bytes in the same transaction as
// the log: appends add, duplicates do not, a purge leaves its record's
// size, and a store written before the count existed is counted on open.
func TestJournalUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	j1, j2 := protocol.JournalID{1}, protocol.JournalID{2}
	dev := [32]byte{5}
	for _, j := range []protocol.JournalID{j1, j2} {
		if err := s.CreateJournal(ctx, j, dev); err != nil {
			t.Fatal(err)
		}
	}
	usage := func(j protocol.JournalID) int64 {
		t.Helper()
		n, err := s.JournalUsage(ctx, j)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	blob := make([]byte, protocol.HeaderSize+200)
	blob[0] = 1
	copy(blob[18:50], dev[:])
	other := bytes.Clone(blob)
	other[len(other)-1] = 1
	for _, b := range [][]byte{blob, other, blob} {
		if _, _, _, err := s.Append(ctx, j1, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, err := s.Append(ctx, j2, []byte("small")); err != nil {
		t.Fatal(err)
	}
	if got, want := usage(j1), int64(2*len(blob)); got != want {
		t.Fatalf("usage %d, want %d (a duplicate must not count)", got, want)
	}
	if got := usage(protocol.JournalID{9}); got != 0 {
		t.Fatalf("usage of a journal that does not exist: %d", got)
	}
	if held, err := s.HasBlob(ctx, j1, protocol.IDOf(other)); err != nil || !held {
		t.Fatalf("HasBlob = %v, %v", held, err)
	}
	if held, _ := s.HasBlob(ctx, j2, protocol.IDOf(other)); held {
		t.Fatal("HasBlob found a blob in the wrong journal")
	}
	if _, err := s.Purge(ctx, j1, protocol.IDOf(blob), dev, protocol.BlobID{7}); err != nil {
		t.Fatal(err)
	}
	afterPurge := int64(len(blob) + 1 + protocol.PurgedRecordSize)
	if got := usage(j1); got != afterPurge {
		t.Fatalf("usage after purge %d, want %d", got, afterPurge)
	}

	if got := storedUsage(t, s, j1); got != afterPurge {
		t.Fatalf("usage record after purge %d, want %d", got, afterPurge)
	}

	// A store from before usage accounting: no counts, no marker (and
	// none remembered: the counts are dropped under the store).
	if err := s.db.DropPrefix(pfxUsage, keyUsageFormat); err != nil {
		t.Fatal(err)
	}
	s.usage = usageCache{}
	if got := usage(j1); got != 0 {
		t.Fatalf("usage after dropping the counts: %d", got)
	}
	s.Close()
	s = openTestStore(t, dir)
	if got := usage(j1); got != afterPurge {
		t.Fatalf("usage recounted on open %d, want %d", got, afterPurge)
	}
	if got := usage(j2); got != 5 {
		t.Fatalf("usage of j2 recounted on open %d, want 5", got)
	}
	err := s.db.View(func(txn *badger.Txn) error { _, err := txn.Get(keyUsageFormat); return err })
	if err != nil {
		t.Fatalf("usage format marker: %v", err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Check(ctx); err == nil {
		t.Fatal("Check passed on a closed store")
	}
}

// storedUsage reads j's usage record from the store itself, not through
// the store's in-memory copy of the counts.
func storedUsage(t *testing.T, s *BadgerStore, j protocol.JournalID) int64 {
	t.Helper()
	if err := s.pend.drain(); err != nil { // every acknowledged blob counted in Badger
		t.Fatal(err)
	}
	var n int64
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key(pfxUsage, j[:]))
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		n = int64(binary.BigEndian.Uint64(v))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
