package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// openLogged opens the store in dir with its log going to the returned
// buffer.
func openLogged(t *testing.T, dir string) (*BadgerStore, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	s, err := OpenBadger(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &logs
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// segFiles returns the segment files of the store in dir and their sizes.
func segFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, segDirName))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi.Size()
	}
	return out
}

// Blobs go to segment files, not into Badger: the bytes of a stored blob
// are in a segment and in none of Badger's files.
func TestBlobsLiveInSegments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	j, dev := protocol.JournalID{7}, [32]byte{7}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	blob, marker := markedBlob(t, j, dev)
	if _, _, _, err := s.Append(ctx, j, blob); err != nil {
		t.Fatal(err)
	}
	hits := filesContain(t, dir, marker)
	if len(hits) != 1 || hits[0] != segName(1) {
		t.Fatalf("the blob's bytes are in %v, want only %s", hits, segName(1))
	}
	got := readAll(t, s, j)
	if len(got) != 1 || !bytes.Equal(got[0].Blob, blob) {
		t.Fatalf("read back %d blobs", len(got))
	}
}

// A segment whose blobs were all purged is deleted once a newer segment
// takes the writes; its bytes were punched out at each purge already.
func TestPurgedSegmentIsDeleted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	j, dev := protocol.JournalID{8}, [32]byte{8}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	blob, _ := markedBlob(t, j, dev)
	if _, _, _, err := s.Append(ctx, j, blob); err != nil {
		t.Fatal(err)
	}
	// Make the next group start segment 2, as a full segment would.
	s.usageMu.Lock()
	s.segs.w.Close()
	s.segs.w = nil
	s.usageMu.Unlock()
	keep, _ := markedBlob(t, j, dev)
	if _, _, _, err := s.Append(ctx, j, keep); err != nil {
		t.Fatal(err)
	}
	if _, ok := segFiles(t, dir)[segName(2)]; !ok {
		t.Fatal("the second group did not start a new segment")
	}
	if _, err := s.Purge(ctx, j, protocol.IDOf(blob), dev, protocol.BlobID{9}); err != nil {
		t.Fatal(err)
	}
	if _, ok := segFiles(t, dir)[segName(1)]; ok {
		t.Fatal("the segment whose only blob was purged is still there")
	}
	got := readAll(t, s, j)
	if len(got) != 2 || !got[0].Purged || !bytes.Equal(got[1].Blob, keep) {
		t.Fatalf("read after purge: %+v", got)
	}
}

// segChildEnv names the store directory of TestSegmentTornTail's child.
const segChildEnv = "KINTSUGI_SEGMENT_CHILD_DIR"

// TestSegmentTornTail kills a process with SIGKILL after a group's bytes
// are durable in their segment but before the group's index commits,
// which is the one moment a segment holds bytes nobody was told about.
// Every blob the child acknowledged must be there afterwards, the
// unacknowledged group's bytes must be cut off (and the cut logged), and
// the store must go on appending where its log ended.
func TestSegmentTornTail(t *testing.T) {
	t.Parallel()
	if dir := os.Getenv(segChildEnv); dir != "" {
		segTornChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSegmentTornTail$")
	cmd.Env = append(os.Environ(), segChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed: %v\n%s", err, out)
	}
	var acked []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if b, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked = append(acked, b)
		}
	}
	if len(acked) < 20 {
		t.Fatalf("the child acknowledged %d blobs before the kill, want 20", len(acked))
	}
	before := segFiles(t, dir)[segName(1)]
	s, logs := openLogged(t, dir)
	if !strings.Contains(logs.String(), "cut the torn tail") {
		t.Fatalf("opening did not cut a torn tail; log:\n%s", logs)
	}
	after := segFiles(t, dir)[segName(1)]
	if after >= before {
		t.Fatalf("segment is %d bytes after opening, %d before: nothing was cut", after, before)
	}
	j := protocol.JournalID{1}
	got := readAll(t, s, j)
	if len(got) != len(acked) {
		t.Fatalf("the store holds %d blobs; %d were acknowledged", len(got), len(acked))
	}
	for i, b := range got {
		if b.Seq != uint64(i+1) || string(b.Blob) != acked[i] {
			t.Fatalf("entry %d: seq %d %q, want %q", i, b.Seq, b.Blob, acked[i])
		}
	}
	// The unacknowledged blob can be sent again and lands after the others.
	seq, _, dup, err := s.Append(context.Background(), j, []byte("unacknowledged"))
	if err != nil || dup || seq != uint64(len(acked)+1) {
		t.Fatalf("append after the cut: %d %v %v", seq, dup, err)
	}
	if got := readAll(t, s, j); string(got[len(got)-1].Blob) != "unacknowledged" {
		t.Fatalf("read %q", got[len(got)-1].Blob)
	}
}

// segTornChild appends 20 blobs one at a time, printing each after
// Append returned, then kills itself between the next group's segment
// sync and its index commit.
func segTornChild(dir string) {
	s, err := OpenBadger(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	j := protocol.JournalID{1}
	if err := s.CreateJournal(ctx, j, [32]byte{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := range 20 {
		blob := fmt.Sprintf("acked-%d", i)
		if _, _, _, err := s.Append(ctx, j, []byte(blob)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("ack %s\n", blob)
	}
	testHookSegSynced = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	_, _, _, err = s.Append(ctx, j, []byte("unacknowledged"))
	fmt.Fprintln(os.Stderr, "the append returned after its kill:", err)
	time.Sleep(time.Minute)
	os.Exit(1)
}

// A damaged segment (a changed byte, or a file shorter than its index) is
// named in the log and by VerifyBlobs; its blob is never served, and
// Read marks its place so what comes after it still is.
func TestSegmentDamage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, how := range []string{"changed byte", "cut short"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenBadger(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			j := protocol.JournalID{2}
			if err := s.CreateJournal(ctx, j, [32]byte{}); err != nil {
				t.Fatal(err)
			}
			blobs := []string{"first blob", "second blob", "third blob"}
			for _, b := range blobs {
				if _, _, _, err := s.Append(ctx, j, []byte(b)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, segDirName, segName(1))
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			switch how {
			case "changed byte":
				data[len("first blob")+2] ^= 0x20 // "se" becomes "sE"
			case "cut short":
				data = data[:len(data)-3]
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, logs := openLogged(t, dir)
			if how == "cut short" && !strings.Contains(logs.String(), "shorter than its index") {
				t.Fatalf("opening did not name the short segment; log:\n%s", logs)
			}
			damagedSeq := uint64(2)
			if how == "cut short" {
				damagedSeq = 3
			}
			got, err := s.Read(ctx, j, damagedSeq-1, 1)
			if err != nil || len(got) != 1 || !got[0].Damaged || got[0].Blob != nil || got[0].Seq != damagedSeq {
				t.Fatalf("read of the damaged blob: %+v, %v", got, err)
			}
			// It is marked, and what comes after it is still served.
			got, err = s.Read(ctx, j, 0, 10)
			if err != nil || len(got) != 3 || !got[damagedSeq-1].Damaged || string(got[0].Blob) != "first blob" || (damagedSeq == 2 && string(got[2].Blob) != "third blob") {
				t.Fatalf("read of the whole journal: %+v, %v", got, err)
			}
			if !strings.Contains(logs.String(), "damaged") || !strings.Contains(logs.String(), j.String()) {
				t.Fatalf("the log does not name the damaged blob:\n%s", logs)
			}
			// The blobs before it are still served, right.
			got, err = s.Read(ctx, j, 0, 1)
			if err != nil || len(got) != 1 || string(got[0].Blob) != "first blob" {
				t.Fatalf("read of the first blob: %+v, %v", got, err)
			}
			res, err := s.VerifyBlobs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res.Blobs != 3 || len(res.Damaged) != 1 || res.Damaged[0].Journal != j || res.Damaged[0].Seq != damagedSeq {
				t.Fatalf("verify: %+v", res)
			}
			// A backup does not copy the wrong bytes: it fails, naming the entry.
			if _, err := s.Backup(ctx, io.Discard); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), fmt.Sprintf("entry %d", damagedSeq)) {
				t.Fatalf("backup of a damaged store: %v", err)
			}
		})
	}
}

// TestLegacyInlineStore opens a store written the way relays wrote before
// segments, with blobs inline in Badger: its blobs are served, purged (and
// gone from the files after a GC pass), deduplicated, backed up and
// restored (into segments), and new blobs go to segments after them.
func TestLegacyInlineStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	j, dev := protocol.JournalID{3}, [32]byte{3}
	old1, marker := markedBlob(t, j, dev)
	old2, _ := markedBlob(t, j, dev)
	{
		// The old code path: an in-memory store keeps blobs inline; write
		// the same records to a directory.
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		legacy := newBadgerStore(db, nil)
		if err := legacy.CreateJournal(ctx, j, dev); err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]byte{old1, old2} {
			if _, _, _, err := legacy.Append(ctx, j, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := legacy.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, segDirName)); err == nil {
			t.Fatal("the old code path made segments")
		}
	}
	s := openTestStore(t, dir)
	got := readAll(t, s, j)
	if len(got) != 2 || !bytes.Equal(got[0].Blob, old1) || !bytes.Equal(got[1].Blob, old2) {
		t.Fatalf("read the old blobs: %d", len(got))
	}
	if seq, _, dup, err := s.Append(ctx, j, old2); err != nil || !dup || seq != 2 {
		t.Fatalf("re-append an old blob: %d %v %v", seq, dup, err)
	}
	fresh, freshMarker := markedBlob(t, j, dev)
	if seq, _, _, err := s.Append(ctx, j, fresh); err != nil || seq != 3 {
		t.Fatalf("append: %d %v", seq, err)
	}
	if hits := filesContain(t, dir, freshMarker); len(hits) != 1 || hits[0] != segName(1) {
		t.Fatalf("the new blob is in %v, want %s", hits, segName(1))
	}
	if n, err := s.JournalUsage(ctx, j); err != nil || n != int64(len(old1)+len(old2)+len(fresh)) {
		t.Fatalf("usage %d, %v", n, err)
	}
	if _, err := s.Purge(ctx, j, protocol.IDOf(old1), dev, protocol.BlobID{9}); err != nil {
		t.Fatal(err)
	}
	if res, err := s.GC(ctx, DefaultGCDiscardRatio); err != nil || res.Purges != 1 {
		t.Fatalf("gc: %+v %v", res, err)
	}
	if hits := filesContain(t, dir, marker); len(hits) > 0 {
		t.Fatalf("the purged old blob is still in %v after gc", hits)
	}
	var backup bytes.Buffer
	if _, err := s.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	rdir := t.TempDir()
	if _, err := RestoreBadger(ctx, rdir, bytes.NewReader(backup.Bytes()), int64(backup.Len()), RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	// The restore wrote the blobs to segments again, old ones included.
	if hits := filesContain(t, rdir, freshMarker); len(hits) != 1 || hits[0] != segName(1) {
		t.Fatalf("the restored blob is in %v, want %s", hits, segName(1))
	}
	r := openTestStore(t, rdir)
	want := readAll(t, s, j)
	got = readAll(t, r, j)
	if len(got) != 3 || !got[0].Purged {
		t.Fatalf("restored %d blobs", len(got))
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || got[i].Purged != want[i].Purged || !bytes.Equal(got[i].Blob, want[i].Blob) {
			t.Fatalf("restored entry %d differs", i+1)
		}
	}
}

// A purge that committed but did not punch its blob's bytes out (the
// relay died in between) leaves a hole record: the next start punches
// them, and so does purging the blob again.
func TestPurgeFinishesAfterInterruption(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, finish := range []string{"reopen", "purge again"} {
		t.Run(finish, func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenBadger(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			j, dev := protocol.JournalID{6}, [32]byte{6}
			if err := s.CreateJournal(ctx, j, dev); err != nil {
				t.Fatal(err)
			}
			blob, marker := markedBlob(t, j, dev)
			if _, _, _, err := s.Append(ctx, j, blob); err != nil {
				t.Fatal(err)
			}
			s.testPurgeCommitted = func() error { return errors.New("interrupted") }
			if _, err := s.Purge(ctx, j, protocol.IDOf(blob), dev, protocol.BlobID{9}); err == nil {
				t.Fatal("the interrupted purge succeeded")
			}
			s.testPurgeCommitted = nil
			if hits := filesContain(t, dir, marker); len(hits) == 0 {
				t.Fatal("the bytes are gone before the punch: this test could not see the interruption")
			}
			// Readers already get the purged record: the index changed first.
			if got := readAll(t, s, j); len(got) != 1 || !got[0].Purged {
				t.Fatalf("read after the interrupted purge: %+v", got)
			}
			switch finish {
			case "reopen":
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if s, err = OpenBadger(dir, nil); err != nil {
					t.Fatal(err)
				}
			case "purge again":
				if _, err := s.Purge(ctx, j, protocol.IDOf(blob), dev, protocol.BlobID{9}); err != nil {
					t.Fatal(err)
				}
			}
			if hits := filesContain(t, dir, marker); len(hits) > 0 {
				t.Fatalf("the purged bytes are still in %v", hits)
			}
		})
	}
}

// A reader whose snapshot predates a purge holds a reference to bytes the
// purge has since punched out: it gets the purged record, not zeros and
// not a damage error.
func TestReadAcrossAPurge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	j, dev := protocol.JournalID{9}, [32]byte{9}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	blob, _ := markedBlob(t, j, dev)
	if _, _, _, err := s.Append(ctx, j, blob); err != nil {
		t.Fatal(err)
	}
	k := key(pfxLog, j[:], u64(1))
	txn := s.db.NewTransaction(false) // the reader's snapshot, before the purge
	defer txn.Discard()
	item, err := txn.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	old, err := item.ValueCopy(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := decodeSegRef(old); !ok {
		t.Fatal("the log record is not a segment reference")
	}
	if _, err := s.Purge(ctx, j, protocol.IDOf(blob), dev, protocol.BlobID{9}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.loadValue(old, nil); !errors.Is(err, ErrDamaged) {
		t.Fatalf("the punched bytes read as whole: %v", err)
	}
	v, err := s.loadValue(old, s.currentLog(k))
	if err != nil || len(v) == 0 || v[0] != purgedMark {
		t.Fatalf("read across the purge: %x, %v", v, err)
	}
}

// The committer writes a group's blobs before it knows whether the store
// has them: a blob sent again, also after it was purged, and a blob for a
// journal that does not exist leave no copy of their bytes behind.
func TestUnstoredCopiesLeaveNoBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	j, dev := protocol.JournalID{10}, [32]byte{10}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	count := func(marker []byte) int {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, segDirName, segName(1)))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Count(data, marker)
	}
	blob, marker := markedBlob(t, j, dev)
	if _, _, _, err := s.Append(ctx, j, blob); err != nil {
		t.Fatal(err)
	}
	if seq, _, dup, err := s.Append(ctx, j, blob); err != nil || !dup || seq != 1 {
		t.Fatalf("append again: %d %v %v", seq, dup, err)
	}
	if n := count(marker); n != 1 {
		t.Fatalf("the blob is in its segment %d times after it was sent twice", n)
	}
	if _, err := s.Purge(ctx, j, protocol.IDOf(blob), dev, protocol.BlobID{9}); err != nil {
		t.Fatal(err)
	}
	if seq, _, dup, err := s.Append(ctx, j, blob); err != nil || !dup || seq != 1 {
		t.Fatalf("append after the purge: %d %v %v", seq, dup, err)
	}
	if hits := filesContain(t, dir, marker); len(hits) > 0 {
		t.Fatalf("a purged blob sent again is in %v", hits)
	}
	other, otherMarker := markedBlob(t, protocol.JournalID{11}, dev)
	if _, _, _, err := s.Append(ctx, protocol.JournalID{11}, other); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("append to a journal that does not exist: %v", err)
	}
	if hits := filesContain(t, dir, otherMarker); len(hits) > 0 {
		t.Fatalf("a blob for a journal that does not exist is in %v", hits)
	}
	// The store goes on as before.
	next, _ := markedBlob(t, j, dev)
	if seq, _, _, err := s.Append(ctx, j, next); err != nil || seq != 2 {
		t.Fatalf("append: %d %v", seq, err)
	}
	if got := readAll(t, s, j); len(got) != 2 || !got[0].Purged || !bytes.Equal(got[1].Blob, next) {
		t.Fatalf("read: %+v", got)
	}
}

// A group whose index commit fails was written to its segment already:
// its bytes are punched out before a later group's commit moves the
// segment's end past them, so a failed write leaves no ciphertext.
func TestFailedCommitLeavesNoBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	j, dev := protocol.JournalID{12}, [32]byte{12}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	var fail atomic.Bool
	s.testCommitErr = func() error {
		if fail.Load() {
			return errors.New("the disk failed")
		}
		return nil
	}
	fail.Store(true)
	lost, lostMarker := markedBlob(t, j, dev)
	if _, _, _, err := s.Append(ctx, j, lost); err == nil {
		t.Fatal("the append succeeded although its commit failed")
	}
	fail.Store(false)
	kept, keptMarker := markedBlob(t, j, dev)
	if seq, _, _, err := s.Append(ctx, j, kept); err != nil || seq != 1 {
		t.Fatalf("append after the failure: %d %v", seq, err)
	}
	if hits := filesContain(t, dir, lostMarker); len(hits) > 0 {
		t.Fatalf("the failed write's bytes are in %v", hits)
	}
	if hits := filesContain(t, dir, keptMarker); len(hits) != 1 {
		t.Fatalf("the stored blob is in %v", hits)
	}
	if got := readAll(t, s, j); len(got) != 1 || !bytes.Equal(got[0].Blob, kept) {
		t.Fatalf("read: %d blobs", len(got))
	}
}
