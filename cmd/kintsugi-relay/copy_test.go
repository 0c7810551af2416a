package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/internal/pgtest"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/pgstore"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// copy moves a Badger relay to PostgreSQL whole: the same relay id,
// journals, members filed under the same people, removed devices that
// stay out, logs at the same sequence numbers with purges kept (a resend
// of a purged blob is still a duplicate), and pending invites that still
// work. A second copy into the same database, and a copy of a directory a
// relay holds, are refused and change nothing.
func TestCopyBadgerToPostgres(t *testing.T) {
	ctx := t.Context()
	data := filepath.Join(t.TempDir(), "relay-data")
	src, err := server.OpenBadger(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	relayID, err := src.RelayID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	owner, partner, laptop, lost := [32]byte{1}, [32]byte{2}, [32]byte{3}, [32]byte{4}
	j, other := servertest.NewJournalID(), servertest.NewJournalID()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(src.CreateJournal(ctx, j, owner))
	must(src.CreateJournal(ctx, other, owner)) // an empty journal
	now := time.Now()
	must(src.PutInvite(ctx, server.Invite{Journal: j, AuthHash: [32]byte{9}, Kind: server.InvitePartner, Expires: now.Add(time.Hour), Packet: []byte("packet")}))
	if _, _, err := server.Redeem(ctx, src, [32]byte{9}, partner, now, server.JournalPersons); err != nil {
		t.Fatal(err)
	}
	must(server.AddDevice(ctx, src, j, owner, laptop))
	must(server.AddDevice(ctx, src, j, owner, lost))
	must(server.RemoveDevice(ctx, src, j, owner, lost))
	link := server.Invite{Journal: j, AuthHash: [32]byte{10}, Kind: server.InviteLink, Expires: now.Add(time.Hour), Packet: []byte("link packet")}
	must(src.PutInvite(ctx, link))
	ch := servertest.Chain{Journal: j, Author: owner}
	var blobs [][]byte
	for i := range 5 {
		b := ch.Next(fmt.Sprint("entry ", i))
		blobs = append(blobs, b)
		if _, _, _, err := src.Append(ctx, j, b); err != nil {
			t.Fatal(err)
		}
	}
	purgedID := protocol.IDOf(blobs[2])
	if _, err := src.Purge(ctx, j, purgedID, owner, purgedID); err != nil {
		t.Fatal(err)
	}
	want, err := src.Read(ctx, j, 0, 100)
	if err != nil {
		t.Fatal(err)
	}

	// While the directory is held, as by a running relay, copy refuses.
	db := pgtest.NewDatabase(t)
	_, rep, code := runRelay(t, "copy", "--data", data, "--store", db)
	if code != exitFailure || !strings.Contains(rep, "kintsugi-relay: a relay is using "+data) || !strings.Contains(rep, "hint: stop the relay first") {
		t.Fatalf("copy of a held directory: exit %d, %q", code, rep)
	}
	must(src.Close())

	out, rep, code := runRelay(t, "copy", "--data", data, "--store", db, "--json")
	var res copyResult
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("copy: exit %d, %q %q", code, out, rep)
	}
	if res.RelayID != relayID || res.Journals != 2 || res.Blobs != 5 || res.Purged != 1 || res.Members != 4 || res.Removed != 1 || res.Invites != 1 {
		t.Fatalf("copy reports %+v", res)
	}
	noPassword(t, out, password(t, db))

	dst, err := pgstore.Open(ctx, db, pgstore.Config{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if id, err := dst.RelayID(ctx); err != nil || id != relayID {
		t.Fatalf("relay id on PostgreSQL %q (%v), want %q", id, err, relayID)
	}
	got, err := dst.Read(ctx, j, 0, 100)
	if err != nil || len(got) != len(want) {
		t.Fatalf("read the copy: %d blobs (%v), want %d", len(got), err, len(want))
	}
	var used int64
	for i := range want {
		if got[i].Seq != want[i].Seq || got[i].Purged != want[i].Purged || !bytes.Equal(got[i].Blob, want[i].Blob) {
			t.Fatalf("blob %d: seq %d purged %v, want seq %d purged %v and the same bytes", i, got[i].Seq, got[i].Purged, want[i].Seq, want[i].Purged)
		}
		used += int64(len(got[i].Blob))
	}
	if n, err := dst.JournalUsage(ctx, j); err != nil || n != used {
		t.Fatalf("usage %d (%v), want %d", n, err, used)
	}
	if seq, _, dup, err := dst.Append(ctx, j, blobs[2]); err != nil || !dup || seq != 3 {
		t.Fatalf("resend of the purged blob: seq %d dup %v (%v); want a duplicate at 3", seq, dup, err)
	}
	if seq, _, dup, err := dst.Append(ctx, j, ch.Next("after the move")); err != nil || dup || seq != 6 {
		t.Fatalf("new blob after the copy: seq %d dup %v (%v); want 6", seq, dup, err)
	}
	if seq, err := dst.LastSeq(ctx, other); err != nil || seq != 0 {
		t.Fatalf("empty journal's last seq %d (%v)", seq, err)
	}
	for _, d := range [][32]byte{owner, partner, laptop} {
		if ok, err := dst.IsMember(ctx, j, d); err != nil || !ok {
			t.Fatalf("a member is not one after the copy (%v)", err)
		}
	}
	// The laptop is the owner's: the partner cannot remove it.
	if err := server.RemoveDevice(ctx, dst, j, partner, laptop); !errors.Is(err, protocol.ErrInvalid) {
		t.Fatalf("the partner removes the owner's laptop: %v, want refused", err)
	}
	// The removed device stays out.
	if err := server.AddDevice(ctx, dst, j, owner, lost); err == nil {
		t.Fatal("a removed device was added back after the copy")
	}
	// The journal still has its two people; the pending link works once.
	if _, _, err := server.Redeem(ctx, dst, link.AuthHash, [32]byte{5}, time.Now(), server.JournalPersons); err != nil {
		t.Fatalf("redeem the copied link: %v", err)
	}
	if _, _, err := server.Redeem(ctx, dst, link.AuthHash, [32]byte{6}, time.Now(), server.JournalPersons); !errors.Is(err, protocol.ErrInviteUnknown) {
		t.Fatalf("redeem the copied link again: %v", err)
	}

	// Again into the same database: refused, nothing changed.
	_, rep, code = runRelay(t, "copy", "--data", data, "--store", db)
	if code != exitFailure || !strings.Contains(rep, "already holds a relay's data; nothing was copied") || !strings.Contains(rep, "hint: copy into a new, empty database") {
		t.Fatalf("copy into a full database: exit %d, %q", code, rep)
	}
	if seq, err := dst.LastSeq(ctx, j); err != nil || seq != 6 {
		t.Fatalf("after a refused copy: last seq %d (%v), want 6", seq, err)
	}
}
