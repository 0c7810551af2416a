package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// readAll reads every blob of j.
func readAll(t *testing.T, s *BadgerStore, j protocol.JournalID) []StoredBlob {
	t.Helper()
	var all []StoredBlob
	for after := uint64(0); ; {
		got, err := s.Read(context.Background(), j, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			return all
		}
		all = append(all, got...)
		after = got[len(got)-1].Seq
	}
}

// TestGroupCommitConcurrentAppends runs many writers at once, several per
// journal, with some blobs sent by two writers at the same moment, so
// appends share groups. Every journal's log must be dense and hold each
// blob once; each writer's own appends must be stored in the order it
// made them; a blob sent twice must get one sequence number, answered as
// a duplicate the second time; and an append to a missing journal must
// fail alone.
func TestGroupCommitConcurrentAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	journals := []protocol.JournalID{{1}, {2}, {3}}
	for _, j := range journals {
		if err := s.CreateJournal(ctx, j, [32]byte{9}); err != nil {
			t.Fatal(err)
		}
	}
	missing := protocol.JournalID{4}
	const perJournal, each = 6, 40
	type ack struct {
		seq uint64
		dup bool
	}
	var (
		mu   sync.Mutex
		acks = map[string][]ack{} // blob → answers
	)
	record := func(blob []byte, seq uint64, dup bool) {
		mu.Lock()
		acks[string(blob)] = append(acks[string(blob)], ack{seq, dup})
		mu.Unlock()
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, len(journals)*perJournal+1)
	for ji, j := range journals {
		for w := range perJournal {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				var last uint64
				for i := range each {
					blob := fmt.Appendf(nil, "j%d-w%d-%d", ji, w, i)
					if i%10 == 0 {
						// Writers 0 and 1 of a journal send these blobs
						// at about the same moment.
						blob = fmt.Appendf(nil, "j%d-shared-%d", ji, i)
						if w > 1 {
							continue
						}
					}
					seq, id, dup, err := s.Append(ctx, j, blob)
					if err != nil {
						errs <- err
						return
					}
					if id != protocol.IDOf(blob) {
						errs <- fmt.Errorf("append returned id %s for %q", id, blob)
						return
					}
					if !dup && seq <= last {
						errs <- fmt.Errorf("writer %d/%d: seq %d after %d", ji, w, seq, last)
						return
					}
					last = max(last, seq)
					record(blob, seq, dup)
				}
			}()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		for range 20 {
			if _, _, _, err := s.Append(ctx, missing, []byte("nowhere")); !errors.Is(err, protocol.ErrNotFound) {
				errs <- fmt.Errorf("append to a missing journal: %v", err)
				return
			}
		}
	}()
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	for blob, as := range acks {
		fresh := 0
		for _, a := range as {
			if a.seq != as[0].seq {
				t.Fatalf("%q got seqs %v", blob, as)
			}
			if !a.dup {
				fresh++
			}
		}
		if fresh != 1 {
			t.Fatalf("%q stored %d times (answers %v)", blob, fresh, as)
		}
	}
	total := 0
	for ji, j := range journals {
		all := readAll(t, s, j)
		for i, b := range all {
			if b.Seq != uint64(i+1) {
				t.Fatalf("journal %d: entry %d has seq %d", ji, i, b.Seq)
			}
			as := acks[string(b.Blob)]
			if len(as) == 0 || as[0].seq != b.Seq {
				t.Fatalf("journal %d seq %d holds %q, acknowledged as %v", ji, b.Seq, b.Blob, as)
			}
		}
		if last, err := s.LastSeq(ctx, j); err != nil || last != uint64(len(all)) {
			t.Fatalf("journal %d: last seq %d, %v; log has %d", ji, last, err, len(all))
		}
		// The usage count (written once per journal per group) holds
		// every stored blob once, duplicates in one group included.
		var bytes int64
		for _, b := range all {
			bytes += int64(len(b.Blob))
		}
		if used, err := s.JournalUsage(ctx, j); err != nil || used != bytes {
			t.Fatalf("journal %d: usage %d, %v; log holds %d bytes", ji, used, err, bytes)
		}
		if stored := storedUsage(t, s, j); stored != bytes {
			t.Fatalf("journal %d: usage record %d; log holds %d bytes", ji, stored, bytes)
		}
		total += len(all)
	}
	if total != len(acks) {
		t.Fatalf("logs hold %d blobs, %d distinct blobs were acknowledged", total, len(acks))
	}
	if got, err := s.LastSeq(ctx, missing); err != nil || got != 0 {
		t.Fatalf("missing journal has last seq %d, %v", got, err)
	}
}

// TestGroupCommitUsageWithPurges purges blobs while group commits append
// to the same journal: both change the journal's usage count, and
// whichever transaction conflicts is retried, so the count ends exact.
func TestGroupCommitUsageWithPurges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	j, dev := protocol.JournalID{1}, [32]byte{5}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		t.Fatal(err)
	}
	blob := func(i int) []byte {
		b := make([]byte, protocol.HeaderSize+100+i%50)
		b[0] = 1
		copy(b[18:50], dev[:])
		binary.BigEndian.PutUint32(b[protocol.HeaderSize:], uint32(i))
		return b
	}
	const early, writers, each = 60, 4, 60
	for i := range early {
		if _, _, _, err := s.Append(ctx, j, blob(i)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, _, _, err := s.Append(ctx, j, blob(early+w*each+i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range early {
			if _, err := s.Purge(ctx, j, protocol.IDOf(blob(i)), dev, protocol.BlobID{7}); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var want int64
	for _, b := range readAll(t, s, j) {
		if b.Purged {
			want += 1 + int64(len(b.Blob)) // stored with its purged mark
		} else {
			want += int64(len(b.Blob))
		}
	}
	if used, err := s.JournalUsage(ctx, j); err != nil || used != want {
		t.Fatalf("usage %d, %v; the log holds %d bytes", used, err, want)
	}
	if stored := storedUsage(t, s, j); stored != want {
		t.Fatalf("usage record %d; the log holds %d bytes", stored, want)
	}
}

// TestGroupCommitLargeBlobs sends blobs near the size limit from many
// writers at once: groups must stay within what Badger accepts in one
// transaction.
func TestGroupCommitLargeBlobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	j := protocol.JournalID{1}
	if err := s.CreateJournal(ctx, j, [32]byte{}); err != nil {
		t.Fatal(err)
	}
	const writers = 12
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			blob := bytes.Repeat([]byte{byte(w)}, DefaultMaxBlobSize)
			if _, _, _, err := s.Append(ctx, j, blob); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := readAll(t, s, j)
	if len(all) != writers {
		t.Fatalf("stored %d of %d large blobs", len(all), writers)
	}
	for i, b := range all {
		if b.Seq != uint64(i+1) || len(b.Blob) != DefaultMaxBlobSize {
			t.Fatalf("entry %d: seq %d, %d bytes", i, b.Seq, len(b.Blob))
		}
	}
}

// TestGroupCommitClose closes the store while writers are appending:
// every append returns (stored, or refused as closed), and everything
// acknowledged is there after reopening.
func TestGroupCommitClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	j := protocol.JournalID{1}
	if err := s.CreateJournal(ctx, j, [32]byte{}); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked = map[uint64][]byte{}
		wg    sync.WaitGroup
	)
	errs := make(chan error, 8)
	// Close once the writers are well under way (not after a fixed time,
	// which on a slow machine could close before anything was stored).
	const beforeClose = 200
	underWay := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				blob := fmt.Appendf(nil, "w%d-%d", w, i)
				seq, _, _, err := s.Append(ctx, j, blob)
				if errors.Is(err, ErrStoreClosed) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acked[seq] = blob
				if len(acked) == beforeClose {
					close(underWay)
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-underWay:
	case err := <-errs:
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s2 := openTestStore(t, dir)
	all := readAll(t, s2, j)
	if len(all) < len(acked) {
		t.Fatalf("%d blobs after reopening, %d were acknowledged", len(all), len(acked))
	}
	for _, b := range all {
		if want, ok := acked[b.Seq]; ok && !bytes.Equal(want, b.Blob) {
			t.Fatalf("seq %d holds %q, acknowledged for %q", b.Seq, b.Blob, want)
		}
	}
}

// groupCommitChildEnv names the store directory of TestGroupCommitHardKill's
// child process.
const groupCommitChildEnv = "KINTSUGI_GROUP_COMMIT_CHILD_DIR"

// TestGroupCommitHardKill kills a process with SIGKILL while many of its
// goroutines append, three times. The child prints each append's answer
// only after Append returned; every blob it printed must be in the store
// afterwards, at the sequence number it was given, and each journal's log
// must be dense.
func TestGroupCommitHardKill(t *testing.T) {
	t.Parallel()
	if dir := os.Getenv(groupCommitChildEnv); dir != "" {
		groupCommitChild(dir)
		return
	}
	dir := t.TempDir()
	journals := []protocol.JournalID{{1}, {2}, {3}, {4}}
	type acked struct {
		j    int
		seq  uint64
		blob string
	}
	var all []acked
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGroupCommitHardKill$")
		cmd.Env = append(os.Environ(), groupCommitChildEnv+"="+dir, fmt.Sprintf("KINTSUGI_GROUP_COMMIT_ROUND=%d", round))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		deadline := time.After(20 * time.Second)
		n := 0
	read:
		for n < 300 {
			select {
			case line, ok := <-lines:
				if !ok {
					break read
				}
				var a acked
				if _, err := fmt.Sscanf(line, "ack %d %d %s", &a.j, &a.seq, &a.blob); err != nil {
					continue // test framework output
				}
				all = append(all, a)
				n++
			case <-deadline:
				break read
			}
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		for range lines {
		}
		_ = cmd.Wait()
		if n == 0 {
			t.Fatalf("round %d: the child acknowledged nothing", round)
		}
	}

	s := openTestStore(t, dir)
	logs := make([]map[uint64]string, len(journals))
	for ji, j := range journals {
		logs[ji] = map[uint64]string{}
		for i, b := range readAll(t, s, j) {
			if b.Seq != uint64(i+1) {
				t.Fatalf("journal %d: entry %d has seq %d", ji, i, b.Seq)
			}
			logs[ji][b.Seq] = string(b.Blob)
		}
	}
	for _, a := range all {
		if got, ok := logs[a.j][a.seq]; !ok || got != a.blob {
			t.Fatalf("acknowledged %q at journal %d seq %d; the store holds %q", a.blob, a.j, a.seq, got)
		}
	}
}

// groupCommitChild appends from 16 goroutines until it is killed, printing
// "ack <journal index> <seq> <blob>" after each append returns.
func groupCommitChild(dir string) {
	s, err := OpenBadger(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	journals := []protocol.JournalID{{1}, {2}, {3}, {4}}
	for _, j := range journals {
		if err := s.CreateJournal(ctx, j, [32]byte{}); err != nil && !errors.Is(err, protocol.ErrExists) {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	round := os.Getenv("KINTSUGI_GROUP_COMMIT_ROUND")
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	for g := range 16 {
		go func() {
			ji := g % len(journals)
			for i := 0; ; i++ {
				blob := fmt.Sprintf("r%s-g%d-%d", round, g, i)
				seq, _, _, err := s.Append(ctx, journals[ji], []byte(blob))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(w, "ack %d %d %s\n", ji, seq, blob)
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	select {}
}

// TestBadgerReadsSnappyTables opens a store whose tables were written with
// Snappy compression, as stores were before compression was turned off:
// everything must still read, and appends continue the log.
func TestBadgerReadsSnappyTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithCompression(options.Snappy))
	if err != nil {
		t.Fatal(err)
	}
	j := protocol.JournalID{1}
	err = db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(key(pfxJournal, j[:]), u64(0)); err != nil {
			return err
		}
		for seq := uint64(1); seq <= 3; seq++ {
			blob := bytes.Repeat([]byte{byte(seq)}, 4096) // compressible
			id := protocol.IDOf(blob)
			if err := txn.Set(key(pfxLog, j[:], u64(seq)), blob); err != nil {
				return err
			}
			if err := txn.Set(key(pfxBlobByID, j[:], id[:]), u64(seq)); err != nil {
				return err
			}
		}
		return txn.Set(key(pfxLastSeq, j[:]), u64(3))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // flushes the memtable to a Snappy table
		t.Fatal(err)
	}
	if tables, _ := filepath.Glob(filepath.Join(dir, "*.sst")); len(tables) == 0 {
		t.Fatal("badger wrote no table on close")
	}
	s := openTestStore(t, dir)
	all := readAll(t, s, j)
	if len(all) != 3 {
		t.Fatalf("read %d blobs", len(all))
	}
	for i, b := range all {
		if !bytes.Equal(b.Blob, bytes.Repeat([]byte{byte(i + 1)}, 4096)) {
			t.Fatalf("blob %d differs", i+1)
		}
	}
	seq, _, dup, err := s.Append(ctx, j, all[1].Blob)
	if err != nil || !dup || seq != 2 {
		t.Fatalf("re-append: %d %v %v", seq, dup, err)
	}
	if seq, _, _, err := s.Append(ctx, j, []byte("next")); err != nil || seq != 4 {
		t.Fatalf("append: %d %v", seq, err)
	}
}

// In a store that keeps blobs inside Badger, a group whose transaction is
// split in halves and fails in its second half has still committed its
// first: the next group must not number its blobs again over it.
func TestSplitCommitFailingHalfWayKeepsNumbers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	s := newBadgerStore(db, nil)
	t.Cleanup(func() { s.Close() })
	j := protocol.JournalID{20}
	if err := s.CreateJournal(ctx, j, [32]byte{}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var calls atomic.Int32
	s.testIndexCommit = func() error {
		switch calls.Add(1) {
		case 1: // the group of A: held until B and C wait behind it
			<-release
		case 2: // B and C together
			return badger.ErrTxnTooBig
		case 4: // C, after B committed alone
			return errors.New("the disk failed")
		}
		return nil
	}
	a := s.StartAppend(ctx, j, []byte("A"))
	for calls.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	b := s.StartAppend(ctx, j, []byte("B"))
	c := s.StartAppend(ctx, j, []byte("C"))
	close(release)
	if seq, _, _, err := a.Wait(); err != nil || seq != 1 {
		t.Fatalf("A: %d %v", seq, err)
	}
	if _, _, _, err := b.Wait(); err == nil {
		t.Fatal("B was answered as stored, though its group failed")
	}
	if _, _, _, err := c.Wait(); err == nil {
		t.Fatal("C was answered as stored, though its group failed")
	}
	if seq, _, _, err := s.Append(ctx, j, []byte("D")); err != nil || seq != 3 {
		t.Fatalf("D: %d %v; want 3, after B, which the first half stored", seq, err)
	}
	// B, sent again, is found where the first half put it.
	if seq, _, dup, err := s.Append(ctx, j, []byte("B")); err != nil || !dup || seq != 2 {
		t.Fatalf("B again: %d %v %v", seq, dup, err)
	}
	got := readAll(t, s, j)
	if len(got) != 3 || string(got[1].Blob) != "B" || string(got[2].Blob) != "D" {
		t.Fatalf("read: %+v", got)
	}
}

// TestPendingAppendReady: Ready says, without waiting, whether an
// append's result is known; once it is, Wait returns it at once, the
// same every time, and the store's hold is released exactly once.
func TestPendingAppendReady(t *testing.T) {
	gate := make(chan struct{})
	c := StartCommitter(0, func(group []*AppendRequest) {
		<-gate
		for i, r := range group {
			r.Seq, r.Dup = uint64(i+7), i > 0
		}
	})
	defer c.Stop()
	var released atomic.Int32
	var j protocol.JournalID
	p := c.Start(j, []byte("blob"), func() { released.Add(1) })
	if p.Ready() {
		t.Fatal("ready before its group committed")
	}
	close(gate)
	for deadline := time.Now().Add(10 * time.Second); !p.Ready(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not ready 10 s after its group was let through")
		}
	}
	for range 2 {
		seq, id, dup, err := p.Wait()
		if seq != 7 || dup || err != nil || id != protocol.IDOf([]byte("blob")) {
			t.Fatalf("Wait after Ready: seq %d dup %v err %v", seq, dup, err)
		}
	}
	if !p.Ready() || released.Load() != 1 {
		t.Fatalf("ready %v, released %d times, want once", p.Ready(), released.Load())
	}
	// An append that failed to start is ready with its error.
	failed := FailedAppend([]byte("x"), ErrStoreClosed)
	if _, _, _, err := failed.Wait(); !failed.Ready() || !errors.Is(err, ErrStoreClosed) {
		t.Fatalf("failed append: ready %v, err %v", failed.Ready(), err)
	}
}
