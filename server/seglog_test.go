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
	// A store just closed in this process may still be locked for a
	// moment: a child another test starts (the crash tests) holds a copy
	// of every descriptor from its fork until its exec, the directory's
	// lock among them. Seen about once in 45 runs on a loaded machine.
	for try := 0; err != nil && strings.Contains(err.Error(), "Cannot acquire directory lock") && try < 20; try++ {
		time.Sleep(50 * time.Millisecond)
		logs = syncBuffer{}
		s, err = OpenBadger(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	}
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

// A relay killed at any point keeps every blob it acknowledged, with its
// sequence number, and cuts what it was writing:
//
//   - "segment synced": killed after a group's segment sync, before the
//     append is answered. The blob is durable, so it is kept (the client
//     was not told, and sending it again finds it stored).
//   - "index commit": killed while the index transaction of the last two
//     blobs, already answered, has not committed. Opening the store indexes them from their
//     segment's records (recoverTail).
//   - "torn record": a record cut short, as a crash in the middle of a
//     write leaves it: opening the store cuts it off.
//   - "roll-over": as "index commit", but every group starts a new
//     segment, so the blobs the index lacks span five segment files, none
//     of which it records.
func TestSegmentTornTail(t *testing.T) {
	t.Parallel()
	if dir := os.Getenv(segChildEnv); dir != "" {
		segTornChild(dir, os.Getenv(segChildEnv+"_HOW"))
		return
	}
	for _, how := range []string{"segment synced", "index commit", "torn record", "roll-over"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestSegmentTornTail$")
			cmd.Env = append(os.Environ(), segChildEnv+"="+dir, segChildEnv+"_HOW="+how)
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
			want := acked
			if how == "segment synced" {
				want = append(want, "unanswered")
			}
			if how == "torn record" {
				// What a crash in the middle of writing a group leaves: a
				// record's header and part of its blob.
				f, err := os.OpenFile(filepath.Join(dir, segDirName, segName(1)), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				rec := appendRecord(nil, segRecord{j: protocol.JournalID{1}, seq: uint64(len(acked) + 1), id: protocol.IDOf([]byte("torn")), blob: []byte("torn")})
				if _, err := f.Write(rec[:len(rec)-2]); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			if n := len(segFiles(t, dir)); how == "roll-over" && n < 6 {
				t.Fatalf("the child wrote %d segments; want one per blob the index lacks, and more", n)
			}
			before := segFiles(t, dir)[segName(1)]
			s, logs := openLogged(t, dir)
			switch how {
			case "torn record":
				if !strings.Contains(logs.String(), "cut the torn tail") || segFiles(t, dir)[segName(1)] >= before {
					t.Fatalf("opening did not cut the torn record; log:\n%s", logs)
				}
			default:
				if !strings.Contains(logs.String(), "indexing them again") {
					t.Fatalf("opening did not index the blobs the index lacked; log:\n%s", logs)
				}
			}
			j := protocol.JournalID{1}
			got := readAll(t, s, j)
			if len(got) != len(want) {
				t.Fatalf("the store holds %d blobs; want %d (%d acknowledged)", len(got), len(want), len(acked))
			}
			for i, b := range got {
				if b.Seq != uint64(i+1) || string(b.Blob) != want[i] {
					t.Fatalf("entry %d: seq %d %q, want %q", i, b.Seq, b.Blob, want[i])
				}
			}
			if used, err := s.JournalUsage(context.Background(), j); err != nil || used != int64(len(strings.Join(want, ""))) {
				t.Fatalf("usage %d, %v; want %d", used, err, len(strings.Join(want, "")))
			}
			// Sending the last one again finds it; a new one lands after.
			last := want[len(want)-1]
			if seq, _, dup, err := s.Append(context.Background(), j, []byte(last)); err != nil || !dup || seq != uint64(len(want)) {
				t.Fatalf("append of %q again: %d %v %v", last, seq, dup, err)
			}
			seq, _, dup, err := s.Append(context.Background(), j, []byte("after"))
			if err != nil || dup || seq != uint64(len(want)+1) {
				t.Fatalf("append after the restart: %d %v %v", seq, dup, err)
			}
			if got := readAll(t, s, j); string(got[len(got)-1].Blob) != "after" {
				t.Fatalf("read %q", got[len(got)-1].Blob)
			}
		})
	}
}

// segTornChild appends 20 blobs one at a time, printing each after
// Append returned, then kills itself where how says.
func segTornChild(dir, how string) {
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
	if how == "roll-over" {
		s.segs.rollSize = 1 // every group after a segment's first starts a new one
	}
	var holdIndex atomic.Bool
	s.testIndexCommit = func() error {
		if holdIndex.Load() {
			select {} // until the kill: the index records never commit
		}
		return nil
	}
	for i := range 20 {
		if i == 18 && how == "index commit" || i == 15 && how == "roll-over" {
			holdIndex.Store(true) // the last ones are answered, then the kill
		}
		blob := fmt.Sprintf("acked-%d", i)
		if _, _, _, err := s.Append(ctx, j, []byte(blob)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("ack %s\n", blob)
	}
	switch how {
	case "segment synced":
		testHookSegSynced = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
		_, _, _, err = s.Append(ctx, j, []byte("unanswered"))
		fmt.Fprintln(os.Stderr, "the append returned after its kill:", err)
	default:
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
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
			j := protocol.JournalID{2}
			path, data := closedStore(t, dir, j, "first blob", "second blob", "third blob")
			switch how {
			case "changed byte":
				data[bytes.Index(data, []byte("second blob"))+1] ^= 0x20 // "se" becomes "sE"
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
	if err := s.pend.drain(); err != nil {
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

// A group whose segment write fails is cut back out of its segment: its
// appends fail, none of its bytes stay, and the next group takes the same
// sequence numbers.
func TestFailedSegmentWriteLeavesNoBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	j, dev := protocol.JournalID{12}, [32]byte{12}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	first, _ := markedBlob(t, j, dev)
	if _, _, _, err := s.Append(ctx, j, first); err != nil {
		t.Fatal(err)
	}
	s.segs.testWriteErr = func() error { return errors.New("the disk failed") }
	lost, lostMarker := markedBlob(t, j, dev)
	if _, _, _, err := s.Append(ctx, j, lost); err == nil || !strings.Contains(err.Error(), "the disk failed") {
		t.Fatalf("the append of a failed write: %v", err)
	}
	s.segs.testWriteErr = nil
	kept, keptMarker := markedBlob(t, j, dev)
	if seq, _, _, err := s.Append(ctx, j, kept); err != nil || seq != 2 {
		t.Fatalf("append after the failure: %d %v", seq, err)
	}
	if hits := filesContain(t, dir, lostMarker); len(hits) > 0 {
		t.Fatalf("the failed write's bytes are in %v", hits)
	}
	if hits := filesContain(t, dir, keptMarker); len(hits) != 1 {
		t.Fatalf("the stored blob is in %v", hits)
	}
	if got := readAll(t, s, j); len(got) != 2 || !bytes.Equal(got[1].Blob, kept) {
		t.Fatalf("read: %d blobs", len(got))
	}
	// And after a restart, only what was stored is there.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir)
	if got := readAll(t, s, j); len(got) != 2 || !bytes.Equal(got[0].Blob, first) || !bytes.Equal(got[1].Blob, kept) {
		t.Fatalf("read after a restart: %d blobs", len(got))
	}
}

// If the index cannot be written, what was acknowledged stays readable,
// further appends are refused with a sentence that says to restart, and
// the restart indexes the acknowledged blobs from their segment.
func TestFailedIndexCommitKeepsAcknowledgedBlobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	j, dev := protocol.JournalID{13}, [32]byte{13}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	s.testIndexCommit = func() error { return errors.New("the disk failed") }
	acked, _ := markedBlob(t, j, dev)
	if seq, _, _, err := s.Append(ctx, j, acked); err != nil || seq != 1 {
		t.Fatalf("append: %d %v", seq, err)
	}
	if got := readAll(t, s, j); len(got) != 1 || !bytes.Equal(got[0].Blob, acked) {
		t.Fatalf("read of the acknowledged blob: %d blobs", len(got))
	}
	// The index goroutine fails soon after; from then on appends are refused.
	deadline := time.Now().Add(10 * time.Second)
	for s.pend.failed() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	next, _ := markedBlob(t, j, dev)
	if _, _, _, err := s.Append(ctx, j, next); !errors.Is(err, errIndexFailed) || !strings.Contains(err.Error(), "restarted") {
		t.Fatalf("append after the index failed: %v", err)
	}
	// The health check says so, for the operator.
	if err := s.Check(ctx); !errors.Is(err, errIndexFailed) {
		t.Fatalf("the health check after the index failed: %v", err)
	}
	if got := readAll(t, s, j); len(got) != 1 || !bytes.Equal(got[0].Blob, acked) {
		t.Fatalf("read after the failure: %d blobs", len(got))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, logs := openLogged(t, dir)
	if !strings.Contains(logs.String(), "indexing them again") {
		t.Fatalf("the restart did not index the acknowledged blob; log:\n%s", logs)
	}
	if got := readAll(t, s, j); len(got) != 1 || !bytes.Equal(got[0].Blob, acked) {
		t.Fatalf("read after the restart: %d blobs", len(got))
	}
	if seq, _, _, err := s.Append(ctx, j, next); err != nil || seq != 2 {
		t.Fatalf("append after the restart: %d %v", seq, err)
	}
}

// A store written before records were framed (bare blobs back to back in
// its segments, checked by their SHA-256) still reads, in runs too; a
// torn tail of its newest segment is cut as before; new blobs go to a new,
// framed segment, and a purge, a restart and a backup all see both kinds.
func TestUnframedSegmentsStillRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	j, dev := protocol.JournalID{14}, [32]byte{14}
	s, err := OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	db := s.db
	// What a relay before framing wrote: segment 1 holds two bare blobs.
	old0, _ := markedBlob(t, j, dev)
	old1, _ := markedBlob(t, j, dev)
	old := [][]byte{old0, old1}
	var seg []byte
	err = db.Update(func(txn *badger.Txn) error {
		for i, b := range old {
			ref := segRef{seg: 1, off: int64(len(seg)), n: int64(len(b)), id: protocol.IDOf(b)}
			seg = append(seg, b...)
			seq := uint64(i + 1)
			if err := txn.Set(key(pfxLog, j[:], u64(seq)), ref.encode()); err != nil {
				return err
			}
			if err := txn.Set(key(pfxBlobByID, j[:], ref.id[:]), u64(seq)); err != nil {
				return err
			}
		}
		if err := txn.Set(key(pfxLastSeq, j[:]), u64(2)); err != nil {
			return err
		}
		if err := txn.Set(key(pfxUsage, j[:]), u64(uint64(len(seg)))); err != nil {
			return err
		}
		return txn.Set(segKey(1), segInfo{end: int64(len(seg)), live: 2}.encode())
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// And a group it never acknowledged, torn.
	if err := os.WriteFile(filepath.Join(dir, segDirName, segName(1)), append(seg, "\x01torn"...), 0o600); err != nil {
		t.Fatal(err)
	}
	s, logs := openLogged(t, dir)
	if !strings.Contains(logs.String(), "cut the torn tail") || segFiles(t, dir)[segName(1)] != int64(len(seg)) {
		t.Fatalf("opening did not cut the old segment's torn tail; log:\n%s", logs)
	}
	if got := readAll(t, s, j); len(got) != 2 || !bytes.Equal(got[0].Blob, old[0]) || !bytes.Equal(got[1].Blob, old[1]) {
		t.Fatalf("read the old blobs: %+v", got)
	}
	fresh, freshMarker := markedBlob(t, j, dev)
	if seq, _, _, err := s.Append(ctx, j, fresh); err != nil || seq != 3 {
		t.Fatalf("append: %d %v", seq, err)
	}
	if hits := filesContain(t, dir, freshMarker); len(hits) != 1 || hits[0] != segName(2) {
		t.Fatalf("the new blob is in %v, want only the new segment %s", hits, segName(2))
	}
	if _, err := s.Purge(ctx, j, protocol.IDOf(old[0]), dev, protocol.BlobID{9}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir)
	got := readAll(t, s, j)
	if len(got) != 3 || !got[0].Purged || !bytes.Equal(got[1].Blob, old[1]) || !bytes.Equal(got[2].Blob, fresh) {
		t.Fatalf("read after a restart: %+v", got)
	}
	if res, err := s.VerifyBlobs(ctx); err != nil || res.Checked != 2 || res.DamagedCount != 0 {
		t.Fatalf("verify: %+v %v", res, err)
	}
	var backup bytes.Buffer
	if _, err := s.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(backup.Bytes(), old[1]) || !bytes.Contains(backup.Bytes(), freshMarker) {
		t.Fatal("the backup lacks a blob")
	}
}

// Blobs stored one after another are read in one run, across their
// record headers, each checked; a damaged one is left for the caller to
// read on its own (and name), the rest of the run still served.
func TestReadRunsAcrossHeaders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	j, dev := protocol.JournalID{15}, [32]byte{15}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	var blobs [][]byte
	for range 5 {
		b, _ := markedBlob(t, j, dev)
		blobs = append(blobs, b)
		if _, _, _, err := s.Append(ctx, j, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.pend.drain(); err != nil {
		t.Fatal(err)
	}
	var refs []segRef
	err := s.db.View(func(txn *badger.Txn) error {
		for seq := uint64(1); seq <= 5; seq++ {
			item, err := txn.Get(key(pfxLog, j[:], u64(seq)))
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			r, ok := decodeSegRef(v)
			if !ok || !r.framed {
				return fmt.Errorf("log record %d is not a framed segment reference", seq)
			}
			refs = append(refs, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all := []bool{true, true, true, true, true}
	for i, b := range s.segs.readRuns(refs, all) {
		if !bytes.Equal(b, blobs[i]) {
			t.Fatalf("blob %d was not read in the run", i+1)
		}
	}
	// Damage the third blob's bytes.
	f, err := os.OpenFile(filepath.Join(dir, segDirName, segName(1)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{^blobs[2][10]}, refs[2].off+10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got := s.segs.readRuns(refs, all)
	for i, b := range got {
		if i != 2 && !bytes.Equal(b, blobs[i]) {
			t.Fatalf("blob %d after damaging the third: %d bytes", i+1, len(b))
		}
	}
	if got[2] != nil {
		t.Fatal("the damaged blob was served from its run")
	}
}

// A purge waits only for the blobs acknowledged before it to reach the
// index, not for the pending index to empty, which under steady appends
// it never does.
func TestPurgeDuringSteadyAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	j, other, dev := protocol.JournalID{16}, protocol.JournalID{17}, [32]byte{16}
	for _, jj := range []protocol.JournalID{j, other} {
		if err := s.CreateJournal(ctx, jj, dev); err != nil {
			t.Fatal(err)
		}
	}
	// Appends that keep the pending index from ever being empty: the
	// index goroutine is held in each transaction until another append
	// has joined the pending index. The hook is set before the first
	// append, which the index goroutine waits for (under the pending
	// index's lock): set later, it would race with the goroutine reading it.
	added := func() uint64 {
		s.pend.mu.RLock()
		defer s.pend.mu.RUnlock()
		return s.pend.added
	}
	var steady atomic.Bool
	s.testIndexCommit = func() error {
		if steady.Load() {
			was := added()
			for deadline := time.Now().Add(time.Second); added() == was && time.Now().Before(deadline); {
				time.Sleep(100 * time.Microsecond)
			}
		}
		return nil
	}
	var blobs [][]byte
	for range 3 {
		b, _ := markedBlob(t, j, dev)
		if _, _, _, err := s.Append(ctx, j, b); err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, b)
	}
	steady.Store(true)
	defer steady.Store(false)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, _, err := s.Append(ctx, other, fmt.Appendf(nil, "steady %d %d", w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for _, b := range blobs {
		done := make(chan error, 1)
		go func() {
			_, err := s.Purge(ctx, j, protocol.IDOf(b), dev, protocol.BlobID{9})
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a purge is still waiting for the pending index to empty")
		}
	}
	for _, b := range readAll(t, s, j) {
		if !b.Purged {
			t.Fatalf("blob %d is not purged", b.Seq)
		}
	}
}

// Damage among blobs the index did not record yet is named, not cut: a
// blob whose header is whole is indexed and read as damaged, with what
// follows it served; bytes that are no record at all are left in place
// and named at every start, and nothing after them is taken for a torn
// write.
func TestDamageInUnindexedTail(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"blob", "header"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			j := protocol.JournalID{18}
			path, data := closedStore(t, dir, j, "indexed 0", "indexed 1", "indexed 2")
			// Three acknowledged blobs whose index records never
			// committed, as a power loss leaves them; then damage in
			// the middle one.
			at := make([]int, 3)
			for i := range 3 {
				b := fmt.Appendf(nil, "unindexed %d", i)
				at[i] = len(data)
				data = appendRecord(data, segRecord{j: j, seq: uint64(4 + i), id: protocol.IDOf(b), blob: b})
			}
			switch how {
			case "blob":
				data[at[1]+recHdr+2] ^= 0x20
			case "header":
				data[at[1]+20] ^= 0x20 // inside the journal id: the header's CRC fails
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, logs := openLogged(t, dir)
			if segFiles(t, dir)[segName(1)] != int64(len(data)) {
				t.Fatalf("opening cut the segment; log:\n%s", logs)
			}
			if !strings.Contains(logs.String(), "level=ERROR") {
				t.Fatalf("opening did not name the damage as an error; log:\n%s", logs)
			}
			got := readAll(t, s, j)
			switch how {
			case "blob":
				if len(got) != 6 || !got[4].Damaged || string(got[5].Blob) != "unindexed 2" || string(got[3].Blob) != "unindexed 0" {
					t.Fatalf("read: %+v", got)
				}
			case "header":
				// Its number is unknown, so the blob after it does not
				// follow the journal's log and is not served either;
				// the bytes stay for an operator to restore from.
				if len(got) != 4 || string(got[3].Blob) != "unindexed 0" {
					t.Fatalf("read: %+v", got)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				_, logs := openLogged(t, dir)
				if !strings.Contains(logs.String(), "not a whole record") || segFiles(t, dir)[segName(1)] != int64(len(data)) {
					t.Fatalf("a second start did not name the damage again, or cut it; log:\n%s", logs)
				}
			}
		})
	}
}

// A failed write that cannot even be cut back out of its segment stops
// the store taking appends (the health check says so), but what it holds
// is still read, backed up and purged, and a restart takes appends again.
func TestUnusableSegmentStopsAppendsOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	j, dev := protocol.JournalID{19}, [32]byte{19}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	kept, keptMarker := markedBlob(t, j, dev)
	if _, _, _, err := s.Append(ctx, j, kept); err != nil {
		t.Fatal(err)
	}
	// The disk fails the write, and the file can no longer be cut back.
	s.segs.testWriteErr = func() error {
		s.segs.w.Close()
		return errors.New("the disk failed")
	}
	lost, _ := markedBlob(t, j, dev)
	if _, _, _, err := s.Append(ctx, j, lost); !errors.Is(err, errSegmentUnusable) {
		t.Fatalf("the append whose write failed: %v", err)
	}
	s.segs.testWriteErr = nil
	if _, _, _, err := s.Append(ctx, j, lost); !errors.Is(err, errSegmentUnusable) || !strings.Contains(err.Error(), "restarted") {
		t.Fatalf("an append after it: %v", err)
	}
	if err := s.Check(ctx); !errors.Is(err, errSegmentUnusable) {
		t.Fatalf("the health check: %v", err)
	}
	var backup bytes.Buffer
	if _, err := s.Backup(ctx, &backup); err != nil || !bytes.Contains(backup.Bytes(), keptMarker) {
		t.Fatalf("a backup after the failure: %v", err)
	}
	if _, err := s.Purge(ctx, j, protocol.IDOf(kept), dev, protocol.BlobID{9}); err != nil {
		t.Fatalf("a purge after the failure: %v", err)
	}
	if got := readAll(t, s, j); len(got) != 1 || !got[0].Purged {
		t.Fatalf("read: %+v", got)
	}
	s.Close()
	s = openTestStore(t, dir)
	if seq, _, _, err := s.Append(ctx, j, lost); err != nil || seq != 2 {
		t.Fatalf("append after a restart: %d %v", seq, err)
	}
}

// closedStore makes a store in dir with journal j holding blobs, closes
// it, and returns its first segment's path and bytes.
func closedStore(t *testing.T, dir string, j protocol.JournalID, blobs ...string) (string, []byte) {
	t.Helper()
	ctx := context.Background()
	s, err := OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJournal(ctx, j, [32]byte{}); err != nil {
		t.Fatal(err)
	}
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
	return path, data
}
