package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

func openTestStore(t *testing.T, dir string) *BadgerStore {
	t.Helper()
	s, err := OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBadgerAppendRead(t *testing.T) {
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
	if err := s.CreateJournal(ctx, j1, [32]byte{6}); !errors.Is(err, protocol.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if _, _, _, err := s.Append(ctx, protocol.JournalID{3}, []byte("x")); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("append to missing journal: %v", err)
	}

	// Concurrent appends to two journals: contiguous, no duplicates.
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for _, j := range []protocol.JournalID{j1, j2} {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, _, _, err := s.Append(ctx, j, fmt.Appendf(nil, "%v-%d-%d", j, w, i)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, j := range []protocol.JournalID{j1, j2} {
		last, err := s.LastSeq(ctx, j)
		if err != nil || last != workers*each {
			t.Fatalf("last seq %d, %v", last, err)
		}
		var all []StoredBlob
		for after := uint64(0); ; {
			got, err := s.Read(ctx, j, after, 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				break
			}
			all = append(all, got...)
			after = got[len(got)-1].Seq
		}
		seen := map[string]bool{}
		for i, b := range all {
			if b.Seq != uint64(i+1) || seen[string(b.Blob)] || !bytes.HasPrefix(b.Blob, []byte(j.String())) {
				t.Fatalf("entry %d: seq %d %q", i, b.Seq, b.Blob)
			}
			seen[string(b.Blob)] = true
			// Dedup by id returns the original sequence number.
			seq, id, dup, err := s.Append(ctx, j, b.Blob)
			if err != nil || !dup || seq != b.Seq || id != protocol.IDOf(b.Blob) {
				t.Fatalf("re-append of %d: %d %v %v", b.Seq, seq, dup, err)
			}
		}
		if len(all) != workers*each {
			t.Fatalf("read %d blobs", len(all))
		}
	}
	if got, _ := s.Read(ctx, j1, ^uint64(0), 10); len(got) != 0 {
		t.Fatal("read after max seq returned blobs")
	}

	// Everything survives reopening.
	id, _ := s.RelayID(ctx)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LastSeq(ctx, j1); !errors.Is(err, ErrStoreClosed) {
		t.Fatalf("use after close: %v", err)
	}
	s2 := openTestStore(t, dir)
	if id2, _ := s2.RelayID(ctx); id2 != id || len(id) != 32 {
		t.Fatalf("relay id %q then %q", id, id2)
	}
	if last, _ := s2.LastSeq(ctx, j2); last != workers*each {
		t.Fatalf("last seq after reopen %d", last)
	}
	if ok, _ := s2.IsMember(ctx, j1, dev); !ok {
		t.Fatal("membership lost")
	}
	seq, _, dup, err := s2.Append(ctx, j1, []byte("new"))
	if err != nil || dup || seq != workers*each+1 {
		t.Fatalf("append after reopen: %d %v %v", seq, dup, err)
	}
}

func TestBadgerReadCapsBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	j := protocol.JournalID{1}
	if err := s.CreateJournal(ctx, j, [32]byte{}); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20)
	for i := range 6 {
		big[0] = byte(i)
		if _, _, _, err := s.Append(ctx, j, big); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Read(ctx, j, 0, 256)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(got) >= 6 {
		t.Fatalf("read %d one-megabyte blobs in one batch", len(got))
	}
}

func TestBadgerInvites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	j := protocol.JournalID{1}
	now := time.Now()
	if err := s.PutInvite(ctx, Invite{Journal: j, AuthHash: [32]byte{1}, Expires: now.Add(time.Hour), Packet: []byte("p")}); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("invite to missing journal: %v", err)
	}
	if err := s.CreateJournal(ctx, j, [32]byte{}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutInvite(ctx, Invite{Journal: j, AuthHash: [32]byte{1}, Expires: now.Add(time.Hour), Packet: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutInvite(ctx, Invite{Journal: j, AuthHash: [32]byte{1}, Expires: now.Add(time.Hour), Packet: []byte("q")}); !errors.Is(err, ErrInviteExists) {
		t.Fatalf("same hash twice: %v", err)
	}
	// Concurrent redemptions: exactly one wins.
	var wg sync.WaitGroup
	results := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := Redeem(ctx, s, [32]byte{1}, [32]byte{byte(10 + i)}, now, JournalPersons)
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	wins := 0
	for err := range results {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, protocol.ErrInviteUnknown):
			t.Fatal(err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d redemptions won", wins)
	}
	// Expiry is judged by the caller's clock. (Without the two-person
	// rule here: the journal already has two people.)
	if err := s.PutInvite(ctx, Invite{Journal: j, AuthHash: [32]byte{2}, Expires: now.Add(time.Hour), Packet: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Redeem(ctx, s, [32]byte{2}, [32]byte{3}, now.Add(time.Hour), 0); !errors.Is(err, protocol.ErrInviteUnknown) {
		t.Fatalf("expired redeem: %v", err)
	}
	gotJ, packet, err := Redeem(ctx, s, [32]byte{2}, [32]byte{3}, now, 0)
	if err != nil || gotJ != j || string(packet) != "p" {
		t.Fatalf("redeem: %v %q %v", gotJ, packet, err)
	}
	if ok, _ := s.IsMember(ctx, j, [32]byte{3}); !ok {
		t.Fatal("redeemer is not a member")
	}
}

func TestBadgerLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	openTestStore(t, dir)
	_, err := OpenBadger(dir, nil)
	if !IsLocked(err) {
		t.Fatalf("second open: %v", err)
	}
}
