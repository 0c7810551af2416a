package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// Durability and Close.

// testReopen writes some of everything, closes the store, opens it again
// and checks that all of it is there and that the rules still hold.
func testReopen(t *testing.T, b Backend) {
	db := b.NewDatabase(t)
	s := b.open(t, db)
	owner, partner, laptop, removed := newDevice(), newDevice(), newDevice(), newDevice()
	id, err := s.RelayID(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	j := newJournalWith(t, s, owner)
	join(t, s, j, partner)
	addDevice(t, s, j, owner, laptop)
	addDevice(t, s, j, owner, removed)
	if err := s.RemoveDevice(ctx(t), j, owner, removed); err != nil {
		t.Fatal(err)
	}
	var blobs [][]byte
	for i := range 5 {
		data := blob(j, owner, fmt.Sprintf("entry %d", i))
		if _, _, _, err := s.Append(ctx(t), j, data); err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, data)
	}
	chain := protocol.BlobID(newHash())
	if _, err := s.Purge(ctx(t), j, protocol.IDOf(blobs[1]), owner, chain); err != nil {
		t.Fatal(err)
	}
	unused, used, link := newHash(), newHash(), newHash()
	for _, h := range [][32]byte{unused, used} {
		if err := s.putInvite(ctx(t), j, h, soon(), []byte("invite")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutLink(ctx(t), j, link, soon(), []byte("link")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.redeem(ctx(t), used, newDevice(), time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	usage, err := s.JournalUsage(ctx(t), j)
	if err != nil || usage == 0 {
		t.Fatalf("usage %d, %v", usage, err)
	}
	s.shut(t)

	s = b.open(t, db)
	if again, err := s.RelayID(ctx(t)); err != nil || again != id {
		t.Fatalf("relay id %q before reopening, %q after (%v)", id, again, err)
	}
	if err := s.CreateJournal(ctx(t), j, newDevice()); !errors.Is(err, protocol.ErrExists) {
		t.Fatalf("create the journal again after reopening: %v, want ErrExists", err)
	}
	// The log, with its purge.
	if last, err := s.LastSeq(ctx(t), j); err != nil || last != 5 {
		t.Fatalf("last seq %d after reopening, %v; want 5", last, err)
	}
	checkPurged(t, s, j, blobs, 1, chain)
	if again, err := s.JournalUsage(ctx(t), j); err != nil || again != usage {
		t.Fatalf("usage %d after reopening, %v; want %d", again, err, usage)
	}
	if seq, _, dup, err := s.Append(ctx(t), j, blobs[3]); err != nil || !dup || seq != 4 {
		t.Fatalf("append again after reopening: seq %d, dup %v, %v; want seq 4, dup", seq, dup, err)
	}
	if seq, _, dup, err := s.Append(ctx(t), j, blob(j, owner, "after")); err != nil || dup || seq != 6 {
		t.Fatalf("append after reopening: seq %d, dup %v, %v; want a new blob at 6", seq, dup, err)
	}
	// Members, their people, and removals.
	for _, d := range [][32]byte{owner, partner, laptop} {
		mustMember(t, s, j, d, true)
	}
	if err := s.RemoveDevice(ctx(t), j, partner, laptop); !errors.Is(err, protocol.ErrInvalid) {
		t.Fatalf("partner removes the owner's laptop after reopening: %v, want ErrInvalid", err)
	}
	mustStayOut(t, s, j, owner, removed)
	// Invites.
	if _, _, err := s.redeem(ctx(t), used, newDevice(), time.Now(), 0); !errors.Is(err, protocol.ErrInviteUnknown) {
		t.Fatalf("redeem a used invite after reopening: %v, want ErrInviteUnknown", err)
	}
	if err := s.putInvite(ctx(t), j, link, soon(), nil); !errors.Is(err, server.ErrInviteExists) {
		t.Fatalf("reuse a stored link's hash after reopening: %v, want ErrInviteExists", err)
	}
	if gotJ, packet, err := s.redeem(ctx(t), unused, newDevice(), time.Now(), 0); err != nil || gotJ != j || string(packet) != "invite" {
		t.Fatalf("redeem an invite after reopening: %v, %q, %v", gotJ, packet, err)
	}
	dev := newDevice()
	if gotJ, packet, err := s.redeem(ctx(t), link, dev, time.Now(), 0); err != nil || gotJ != j || string(packet) != "link" {
		t.Fatalf("redeem a link after reopening: %v, %q, %v", gotJ, packet, err)
	}
	mustMember(t, s, j, dev, false)
}

// testCloseInFlight closes the store while appends are running: every
// append it acknowledged must be stored, at its sequence number, when it
// is opened again.
func testCloseInFlight(t *testing.T, b Backend) {
	const workers, enough, most = 4, 24, 500
	db := b.NewDatabase(t)
	s := b.open(t, db)
	dev := newDevice()
	j := newJournalWith(t, s, dev)

	var acked atomic.Int64
	var once sync.Once
	ready := make(chan struct{}) // closed once enough appends are acknowledged
	acks := make([][]ack, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			// Append until the store refuses (it is closed), but not forever
			// should it never refuse.
			for i := range most {
				data := blob(j, dev, fmt.Sprintf("worker %d, append %d", w, i))
				seq, _, dup, err := s.Append(ctx(t), j, data)
				if err != nil {
					break
				}
				acks[w] = append(acks[w], ack{j, seq, dup, data})
				if acked.Add(1) == enough {
					once.Do(func() { close(ready) })
				}
			}
			once.Do(func() { close(ready) })
		})
	}
	<-ready
	s.shut(t)
	wg.Wait()
	if _, _, _, err := s.Append(ctx(t), j, blob(j, dev, "late")); err == nil {
		t.Fatal("append after close: no error")
	}

	s = b.open(t, db)
	log := readAll(t, s, j, 50)
	if last, err := s.LastSeq(ctx(t), j); err != nil || last != uint64(len(log)) {
		t.Fatalf("last seq %d with %d blobs stored, %v", last, len(log), err)
	}
	n := 0
	for _, as := range acks {
		for _, a := range as {
			n++
			if a.dup || a.seq == 0 || a.seq > uint64(len(log)) || !bytes.Equal(log[a.seq-1].Blob, a.data) {
				t.Fatalf("append acknowledged at seq %d before close is not there after reopening (%d blobs stored)", a.seq, len(log))
			}
		}
	}
	if n < enough {
		t.Fatalf("only %d appends were acknowledged before close, want at least %d", n, enough)
	}
}

// testClosed checks that every method fails with ErrStoreClosed after
// Close.
func testClosed(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	dev := newDevice()
	j := newJournalWith(t, s, dev)
	data := blob(j, dev, "before close")
	if _, _, _, err := s.Append(ctx(t), j, data); err != nil {
		t.Fatal(err)
	}
	s.shut(t)
	c := ctx(t)
	h, now := newHash(), time.Now()
	nop := func(*server.Members) error { return nil }
	for name, call := range map[string]func() error{
		"RelayID":       func() error { _, err := s.RelayID(c); return err },
		"CreateJournal": func() error { return s.CreateJournal(c, newJournal(), dev) },
		"IsMember":      func() error { _, err := s.IsMember(c, j, dev); return err },
		"UpdateMembers": func() error { return s.UpdateMembers(c, j, nop) },
		"PutInvite":     func() error { return s.putInvite(c, j, h, soon(), nil) },
		"RedeemInvite": func() error {
			_, err := s.RedeemInvite(c, h, now, func(server.Invite, *server.Members) error { return nil })
			return err
		},
		"Append":       func() error { _, _, _, err := s.Append(c, j, blob(j, dev, "after close")); return err },
		"StartAppend":  func() error { _, _, _, err := s.StartAppend(c, j, blob(j, dev, "after close")).Wait(); return err },
		"Read":         func() error { _, err := s.Read(c, j, 0, 10); return err },
		"HasBlob":      func() error { _, err := s.HasBlob(c, j, protocol.IDOf(data)); return err },
		"JournalUsage": func() error { _, err := s.JournalUsage(c, j); return err },
		"Purge":        func() error { _, err := s.Purge(c, j, protocol.IDOf(data), dev, protocol.BlobID{}); return err },
		"LastSeq":      func() error { _, err := s.LastSeq(c, j); return err },
		"Check":        func() error { return s.Check(c) },
	} {
		if err := call(); !errors.Is(err, server.ErrStoreClosed) {
			t.Errorf("%s after close: %v, want ErrStoreClosed", name, err)
		}
	}
}
