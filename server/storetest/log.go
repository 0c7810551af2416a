package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// The journal's log: Append, Read, LastSeq, Purge, RelayID.

func testRelayID(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	id, err := s.RelayID(ctx(t))
	if err != nil || id == "" {
		t.Fatalf("relay id %q, %v", id, err)
	}
	if again, err := s.RelayID(ctx(t)); err != nil || again != id {
		t.Fatalf("relay id %q, then %q (%v)", id, again, err)
	}
	// Random: another database has another id.
	other := b.open(t, b.NewDatabase(t))
	if id2, err := other.RelayID(ctx(t)); err != nil || id2 == id {
		t.Fatalf("two databases have relay ids %q and %q (%v)", id, id2, err)
	}
	// Stable across restarts: see testReopen.
}

func testCreateJournal(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	owner, other := newDevice(), newDevice()
	j := newJournal()
	mustMember(t, s, j, owner, false) // a journal that does not exist has no members
	if err := s.CreateJournal(ctx(t), j, owner); err != nil {
		t.Fatal(err)
	}
	mustMember(t, s, j, owner, true)
	mustMember(t, s, j, other, false)
	if err := s.CreateJournal(ctx(t), j, other); !errors.Is(err, protocol.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	mustMember(t, s, j, other, false)
}

// testAppendRead appends one at a time to two journals and reads them back
// whole and in pieces.
func testAppendRead(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	dev := newDevice()
	j1, j2 := newJournalWith(t, s, dev), newJournalWith(t, s, dev)
	missing := newJournal()
	if last, err := s.LastSeq(ctx(t), j1); err != nil || last != 0 {
		t.Fatalf("last seq of an empty journal: %d, %v", last, err)
	}
	if last, err := s.LastSeq(ctx(t), missing); err != nil || last != 0 {
		t.Fatalf("last seq of a missing journal: %d, %v", last, err)
	}
	if got, err := s.Read(ctx(t), missing, 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("read of a missing journal: %d blobs, %v", len(got), err)
	}

	if _, _, _, err := s.Append(ctx(t), missing, blob(missing, dev, "nowhere")); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("append to a missing journal: %v, want ErrNotFound", err)
	}

	const n = 12
	var want1 [][]byte
	for i := range n {
		for _, j := range []protocol.JournalID{j1, j2} {
			data := blob(j, dev, fmt.Sprintf("entry %d", i))
			seq, id, dup, err := s.Append(ctx(t), j, data)
			if err != nil {
				t.Fatal(err)
			}
			if seq != uint64(i+1) || dup || id != protocol.IDOf(data) {
				t.Fatalf("append %d to %v: seq %d, dup %v, id %v; want seq %d, a new blob, id %v", i, j, seq, dup, id, i+1, protocol.IDOf(data))
			}
			if j == j1 {
				want1 = append(want1, data)
			}
		}
	}
	for _, j := range []protocol.JournalID{j1, j2} {
		if last, err := s.LastSeq(ctx(t), j); err != nil || last != n {
			t.Fatalf("last seq %d, %v; want %d", last, err, n)
		}
	}
	for _, max := range []int{1, 5, n, 100} {
		all := readAll(t, s, j1, max)
		if len(all) != n {
			t.Fatalf("read %d blobs %d at a time, want %d", len(all), max, n)
		}
		for i, sb := range all {
			if sb.Purged || !bytes.Equal(sb.Blob, want1[i]) {
				t.Fatalf("blob at seq %d is not the one appended there", sb.Seq)
			}
		}
	}
	got, err := s.Read(ctx(t), j1, 7, 100)
	if err != nil || len(got) != n-7 || got[0].Seq != 8 {
		t.Fatalf("read after 7: %d blobs, %v", len(got), err)
	}
	for _, after := range []uint64{n, n + 1, math.MaxUint64} {
		if got, err := s.Read(ctx(t), j1, after, 10); err != nil || len(got) != 0 {
			t.Fatalf("read after %d of %d blobs: %d blobs, %v", after, n, len(got), err)
		}
	}
}

func testAppendIdempotent(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	dev := newDevice()
	j, other := newJournalWith(t, s, dev), newJournalWith(t, s, dev)
	first := blob(j, dev, "first")
	second := blob(j, dev, "second")
	for _, data := range [][]byte{first, second} {
		if _, _, _, err := s.Append(ctx(t), j, data); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		seq, id, dup, err := s.Append(ctx(t), j, bytes.Clone(first))
		if err != nil || seq != 1 || !dup || id != protocol.IDOf(first) {
			t.Fatalf("append again: seq %d, dup %v, %v; want seq 1, dup", seq, dup, err)
		}
	}
	if last, _ := s.LastSeq(ctx(t), j); last != 2 {
		t.Fatalf("last seq %d after a duplicate, want 2", last)
	}
	if all := readAll(t, s, j, 10); len(all) != 2 {
		t.Fatalf("%d blobs stored after a duplicate, want 2", len(all))
	}
	// Per journal: another journal holding the same bytes stores them.
	seq, _, dup, err := s.Append(ctx(t), other, first)
	if err != nil || seq != 1 || dup {
		t.Fatalf("same blob in another journal: seq %d, dup %v, %v; want a new blob at 1", seq, dup, err)
	}
}

// testStartAppend checks that appends started one after the other,
// without waiting, are stored in that order, and that each Wait answers
// as Append would have.
func testStartAppend(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	dev := newDevice()
	j := newJournalWith(t, s, dev)
	const n = 40
	var datas [][]byte
	var pending []*server.PendingAppend
	for i := range n {
		data := blob(j, dev, fmt.Sprintf("pipelined %d", i))
		if i == n-1 {
			data = datas[3] // a resend, in the same pipeline
		}
		datas = append(datas, data)
		pending = append(pending, s.StartAppend(ctx(t), j, data))
	}
	for i, p := range pending {
		seq, id, dup, err := p.Wait()
		want, wantDup := uint64(i+1), false
		if i == n-1 {
			want, wantDup = 4, true
		}
		if err != nil || seq != want || dup != wantDup || id != protocol.IDOf(datas[i]) {
			t.Fatalf("append %d started in order: seq %d, dup %v, %v; want seq %d, dup %v", i, seq, dup, err, want, wantDup)
		}
	}
	if _, _, _, err := s.StartAppend(ctx(t), newJournal(), datas[0]).Wait(); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("started append to a missing journal: %v, want ErrNotFound", err)
	}
}

// testUsage checks HasBlob, JournalUsage and Check.
func testUsage(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	if err := s.Check(ctx(t)); err != nil {
		t.Fatalf("check of an open store: %v", err)
	}
	dev := newDevice()
	j, other := newJournalWith(t, s, dev), newJournalWith(t, s, dev)
	usage := func(j protocol.JournalID) int64 {
		t.Helper()
		n, err := s.JournalUsage(ctx(t), j)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := usage(j); n != 0 {
		t.Fatalf("usage of an empty journal: %d", n)
	}
	if n := usage(newJournal()); n != 0 {
		t.Fatalf("usage of a missing journal: %d", n)
	}
	short, long := blob(j, dev, "short"), blob(j, dev, strings.Repeat("long ", 1000))
	for _, data := range [][]byte{short, long, short} { // the second short is a resend
		if _, _, _, err := s.Append(ctx(t), j, data); err != nil {
			t.Fatal(err)
		}
	}
	if n, want := usage(j), int64(len(short)+len(long)); n != want {
		t.Fatalf("usage after two blobs and a resend: %d, want %d", n, want)
	}
	if n := usage(other); n != 0 {
		t.Fatalf("another journal's usage changed to %d", n)
	}
	if _, err := s.Purge(ctx(t), j, protocol.IDOf(long), dev, protocol.BlobID(newHash())); err != nil {
		t.Fatal(err)
	}
	// The purged record counts (Badger adds its one-byte mark).
	if n, want := usage(j), int64(len(short)+protocol.PurgedRecordSize); n != want && n != want+1 {
		t.Fatalf("usage after purging the long blob: %d, want %d (its purged record counts)", n, want)
	}
	for _, c := range []struct {
		j    protocol.JournalID
		data []byte
		want bool
	}{{j, short, true}, {j, long, true}, {other, short, false}, {j, blob(j, dev, "never sent"), false}} {
		if got, err := s.HasBlob(ctx(t), c.j, protocol.IDOf(c.data)); err != nil || got != c.want {
			t.Fatalf("has blob: %v, %v; want %v", got, err, c.want)
		}
	}
}

// testReadOwnsSlices checks that what Read returns belongs to the caller:
// scribbling on it changes nothing stored.
func testReadOwnsSlices(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	dev := newDevice()
	j := newJournalWith(t, s, dev)
	data := blob(j, dev, "do not touch")
	if _, _, _, err := s.Append(ctx(t), j, data); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s, j, 10)
	for i := range got[0].Blob {
		got[0].Blob[i] = 0
	}
	if again := readAll(t, s, j, 10); !bytes.Equal(again[0].Blob, data) {
		t.Fatal("changing a slice Read returned changed the stored blob")
	}
}

func testPurge(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	author, other := newDevice(), newDevice()
	j := newJournalWith(t, s, author)
	elsewhere := newJournalWith(t, s, author)
	blobs := [][]byte{
		blob(j, author, "one"),
		blob(j, author, "two: the secret to purge"),
		blob(j, other, "three"),
	}
	for _, data := range blobs {
		if _, _, _, err := s.Append(ctx(t), j, data); err != nil {
			t.Fatal(err)
		}
	}
	target := protocol.IDOf(blobs[1])
	chain := protocol.BlobID(newHash())

	if _, err := s.Purge(ctx(t), j, target, other, chain); !errors.Is(err, protocol.ErrInvalid) {
		t.Fatalf("purge by another device: %v, want ErrInvalid", err)
	}
	if all := readAll(t, s, j, 10); all[1].Purged || !bytes.Equal(all[1].Blob, blobs[1]) {
		t.Fatal("a refused purge changed the blob")
	}
	if _, err := s.Purge(ctx(t), j, protocol.BlobID(newHash()), author, chain); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("purge of a blob nobody stored: %v, want ErrNotFound", err)
	}
	if _, err := s.Purge(ctx(t), elsewhere, target, author, chain); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("purge of a blob another journal holds: %v, want ErrNotFound", err)
	}
	if _, err := s.Purge(ctx(t), newJournal(), target, author, chain); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("purge in a missing journal: %v, want ErrNotFound", err)
	}

	seq, err := s.Purge(ctx(t), j, target, author, chain)
	if err != nil || seq != 2 {
		t.Fatalf("purge: seq %d, %v; want 2", seq, err)
	}
	checkPurged(t, s, j, blobs, 1, chain)
	// Again, even with another chain id: succeeds, changes nothing.
	seq, err = s.Purge(ctx(t), j, target, author, protocol.BlobID(newHash()))
	if err != nil || seq != 2 {
		t.Fatalf("purge of a purged blob: seq %d, %v; want 2", seq, err)
	}
	checkPurged(t, s, j, blobs, 1, chain)
	// The sequence number stays taken.
	if last, _ := s.LastSeq(ctx(t), j); last != 3 {
		t.Fatalf("last seq %d after a purge, want 3", last)
	}
	if seq, _, _, err := s.Append(ctx(t), j, blob(j, author, "four")); err != nil || seq != 4 {
		t.Fatalf("append after a purge: seq %d, %v; want 4", seq, err)
	}
}

// checkPurged checks that j's log holds blobs, except that blobs[purged]
// is now its purged record: its header and chain.
func checkPurged(t *testing.T, s server.Store, j protocol.JournalID, blobs [][]byte, purged int, chain protocol.BlobID) {
	t.Helper()
	all := readAll(t, s, j, 10)
	if len(all) < len(blobs) {
		t.Fatalf("%d blobs after a purge, want %d", len(all), len(blobs))
	}
	for i, data := range blobs {
		sb := all[i]
		if i != purged {
			if sb.Purged || !bytes.Equal(sb.Blob, data) {
				t.Fatalf("seq %d: purging seq %d changed it", sb.Seq, purged+1)
			}
			continue
		}
		want := append(bytes.Clone(data[:protocol.HeaderSize]), chain[:]...)
		if !sb.Purged || len(sb.Blob) != protocol.PurgedRecordSize || !bytes.Equal(sb.Blob, want) {
			t.Fatalf("seq %d: purged %v, %d bytes; want the purged record (header and chain id, %d bytes)", sb.Seq, sb.Purged, len(sb.Blob), protocol.PurgedRecordSize)
		}
	}
}

// Races.

// race runs fn(i) for i in [0, n) on n goroutines released together,
// and waits for them.
func race(n int, fn func(i int)) {
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-gate
			fn(i)
		})
	}
	close(gate)
	wg.Wait()
}

func raceRelayID(t *testing.T, stores []*store) {
	const n = 8
	ids := make([]string, n)
	errs := make([]error, n)
	race(n, func(i int) { ids[i], errs[i] = pick(stores, i).RelayID(ctx(t)) })
	for i := range n {
		if errs[i] != nil || ids[i] == "" || ids[i] != ids[0] {
			t.Fatalf("relay ids asked for at once: %q and %q (%v)", ids[0], ids[i], errs[i])
		}
	}
}

func raceCreateJournal(t *testing.T, stores []*store) {
	const n = 8
	j := newJournal()
	devs := make([][32]byte, n)
	errs := make([]error, n)
	for i := range devs {
		devs[i] = newDevice()
	}
	race(n, func(i int) { errs[i] = pick(stores, i).CreateJournal(ctx(t), j, devs[i]) })
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
			mustMember(t, stores[0], j, devs[i], true)
		case errors.Is(err, protocol.ErrExists):
			mustMember(t, stores[0], j, devs[i], false)
		default:
			t.Fatal(err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d creates of one journal succeeded, want 1", wins, n)
	}
}

// ack is an append the store acknowledged.
type ack struct {
	j    protocol.JournalID
	seq  uint64
	dup  bool
	data []byte
}

func raceAppendContiguous(t *testing.T, stores []*store) {
	const journals, workers, each = 2, 8, 12
	dev := newDevice()
	var js []protocol.JournalID
	for range journals {
		js = append(js, newJournalWith(t, stores[0], dev))
	}
	acks := make([][]ack, workers)
	errs := make([]error, workers)
	race(workers, func(w int) {
		s := pick(stores, w)
		for i := range each {
			j := js[(w+i)%journals]
			data := blob(j, dev, fmt.Sprintf("worker %d, append %d", w, i))
			seq, id, dup, err := s.Append(ctx(t), j, data)
			if err == nil && id != protocol.IDOf(data) {
				err = fmt.Errorf("append returned id %v, want %v", id, protocol.IDOf(data))
			}
			if err != nil {
				errs[w] = err
				return
			}
			acks[w] = append(acks[w], ack{j, seq, dup, data})
		}
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	logs := map[protocol.JournalID][]server.StoredBlob{}
	for _, j := range js {
		logs[j] = readAll(t, stores[len(stores)-1], j, 7)
		if len(logs[j]) != workers*each/journals {
			t.Fatalf("%d blobs stored, want %d", len(logs[j]), workers*each/journals)
		}
		for _, s := range stores {
			if last, err := s.LastSeq(ctx(t), j); err != nil || last != workers*each/journals {
				t.Fatalf("last seq %d, %v; want %d", last, err, workers*each/journals)
			}
		}
	}
	// Each acknowledged blob is where its sequence number says, so no two
	// appends were given one number.
	for _, as := range acks {
		for _, a := range as {
			log := logs[a.j]
			if a.dup || a.seq == 0 || a.seq > uint64(len(log)) || !bytes.Equal(log[a.seq-1].Blob, a.data) {
				t.Fatalf("append acknowledged at seq %d (dup %v) is not stored there", a.seq, a.dup)
			}
		}
	}
}

func raceAppendDuplicates(t *testing.T, stores []*store) {
	const distinct, copies = 4, 6
	dev := newDevice()
	j := newJournalWith(t, stores[0], dev)
	acks := make([]ack, distinct*copies)
	errs := make([]error, distinct*copies)
	race(distinct*copies, func(i int) {
		data := blob(j, dev, fmt.Sprintf("blob %d", i%distinct))
		seq, _, dup, err := pick(stores, i/distinct).Append(ctx(t), j, data)
		acks[i], errs[i] = ack{j, seq, dup, data}, err
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	log := readAll(t, stores[0], j, 100)
	if len(log) != distinct {
		t.Fatalf("%d blobs stored, %d times each, at once: %d stored, want %d", distinct, copies, len(log), distinct)
	}
	for d := range distinct {
		news, seq := 0, acks[d].seq
		for i := d; i < len(acks); i += distinct {
			a := acks[i]
			if !a.dup {
				news++
			}
			if a.seq != seq {
				t.Fatalf("one blob appended at once acknowledged at seqs %d and %d", seq, a.seq)
			}
		}
		if news != 1 {
			t.Fatalf("one blob appended %d times at once: %d appends said it was new, want 1", copies, news)
		}
		if seq == 0 || seq > uint64(len(log)) || !bytes.Equal(log[seq-1].Blob, acks[d].data) {
			t.Fatalf("blob acknowledged at seq %d is not stored there", seq)
		}
	}
}
