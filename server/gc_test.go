package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"golang.org/x/sys/unix"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// markedBlob returns a blob by dev in j whose body is 4 KiB of random
// bytes (incompressible, like ciphertext), and that body.
func markedBlob(t *testing.T, j protocol.JournalID, dev [32]byte) (blob, marker []byte) {
	t.Helper()
	marker = make([]byte, 4096)
	rand.Read(marker)
	return append(joinBlob(j, dev), marker...), marker
}

// filesContain reports which files under dir contain needle, reading only
// the parts of sparse files that hold data.
func filesContain(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if found, err := fileContains(path, needle); err != nil {
			return err
		} else if found {
			hits = append(hits, filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

func fileContains(path string, needle []byte) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	size := fi.Size()
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			return false, nil // no data after off (ENXIO)
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return false, err
		}
		// Back up by the needle's length so a match across the start of
		// this extent is not missed.
		from := max(0, data-int64(len(needle)))
		buf := make([]byte, hole-from)
		if _, err := f.ReadAt(buf, from); err != nil && err != io.EOF {
			return false, err
		}
		if bytes.Contains(buf, needle) {
			return true, nil
		}
		off = hole
	}
	return false, nil
}

// A purged blob's bytes are in none of the store's files once Purge
// returns (they were punched out of their segment and synced), whether its
// index record was still in the memtable or already flushed to a table,
// and a GC pass changes nothing about that. (Blobs stored inline by older
// relays leave at the next GC pass: TestLegacyInlineStore.)
func TestPurgeRemovesBytes(t *testing.T) {
	t.Parallel()
	for _, flushed := range []bool{false, true} {
		name := "in memtable"
		if flushed {
			name = "flushed to a table"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s, err := OpenBadger(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			j, dev := protocol.JournalID{4}, [32]byte{4}
			if err := s.CreateJournal(ctx, j, dev); err != nil {
				t.Fatal(err)
			}
			blob, marker := markedBlob(t, j, dev)
			keep, keepMarker := markedBlob(t, j, dev)
			if _, _, _, err := s.Append(ctx, j, blob); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := s.Append(ctx, j, keep); err != nil {
				t.Fatal(err)
			}
			if flushed {
				// Closing flushes the memtable to a level-0 table.
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if s, err = OpenBadger(dir, nil); err != nil {
					t.Fatal(err)
				}
			}
			if hits := filesContain(t, dir, marker); len(hits) == 0 {
				t.Fatal("the blob's bytes are in no file before the purge: this test could not see them")
			}
			if _, err := s.Purge(ctx, j, protocol.IDOf(blob), dev, protocol.BlobID{9}); err != nil {
				t.Fatal(err)
			}
			if hits := filesContain(t, dir, marker); len(hits) > 0 {
				t.Fatalf("the purged blob's bytes are still in %v after the purge", hits)
			}
			if _, err := s.GC(ctx, DefaultGCDiscardRatio); err != nil {
				t.Fatal(err)
			}
			if hits := filesContain(t, dir, marker); len(hits) > 0 {
				t.Fatalf("the purged blob's bytes are in %v after gc", hits)
			}
			if hits := filesContain(t, dir, keepMarker); len(hits) == 0 {
				t.Fatal("the blob that was not purged is in no file")
			}
			got, err := s.Read(ctx, j, 0, 10)
			if err != nil || len(got) != 2 || !got[0].Purged || got[1].Purged || !bytes.Equal(got[1].Blob, keep) {
				t.Fatalf("read after gc: %d blobs, %v", len(got), err)
			}
			// A second pass has nothing to compact.
			if res, err := s.GC(ctx, DefaultGCDiscardRatio); err != nil || res.Purges != 0 {
				t.Fatalf("second gc: %+v, %v", res, err)
			}
		})
	}
}

// A backup taken after a purge does not hold the purged bytes, even before
// any GC.
func TestBackupSkipsPurgedBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	j, dev := protocol.JournalID{5}, [32]byte{5}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	blob, marker := markedBlob(t, j, dev)
	if _, _, _, err := s.Append(ctx, j, blob); err != nil {
		t.Fatal(err)
	}
	var before, after bytes.Buffer
	if _, err := s.Backup(ctx, &before); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(before.Bytes(), marker) {
		t.Fatal("a backup before the purge lacks the blob")
	}
	if _, err := s.Purge(ctx, j, protocol.IDOf(blob), dev, protocol.BlobID{9}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(ctx, &after); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(after.Bytes(), marker) {
		t.Fatal("a backup taken after the purge still holds the purged bytes")
	}
}

// The compaction after purges blocks Badger's writes while it flushes
// (DropPrefix). The index records of blobs already answered commit on
// their own goroutine, which store operations held off by s.mu do not
// stop: one that commits in that window would fail, and the relay would
// take no more blobs until restarted. The compaction must not start while
// any is pending.
func TestCompactionWithIndexPending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	j, dev := protocol.JournalID{19}, [32]byte{19}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	// The index commit of the next blob has begun when the compaction
	// starts; it waits until Badger refuses writes (the compaction's
	// flush has begun), then commits. A store that waits for it before
	// compacting never gets there: the wait ends after a while, and the
	// commit goes ahead before the flush.
	var hold atomic.Bool
	inCommit := make(chan struct{})
	s.testIndexCommit = func() error {
		if !hold.CompareAndSwap(true, false) {
			return nil
		}
		close(inCommit)
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
			err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("test/probe"), nil) })
			if errors.Is(err, badger.ErrBlockedWrites) {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		return nil
	}
	hold.Store(true)
	blob, _ := markedBlob(t, j, dev)
	if _, _, _, err := s.Append(ctx, j, blob); err != nil {
		t.Fatal(err)
	}
	<-inCommit
	if _, err := s.compactPurged(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.pend.drain(); err != nil {
		t.Fatalf("the index commit failed: %v", err)
	}
	next, _ := markedBlob(t, j, dev)
	if seq, _, _, err := s.Append(ctx, j, next); err != nil || seq != 2 {
		t.Fatalf("append after the compaction: %d %v", seq, err)
	}
}
