package client

import (
	"os"
	"testing"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// Tests of to_since (tosince.go): a relay that strips this device's slot
// from an entry is named as having changed it, and nobody is told that of
// an entry that simply was not sealed to them yet.

// ownToSince returns the to_since that j's own entry e carries, read back
// from j's log and opened with j's own slot.
func ownToSince(t *testing.T, j *Journal, e Entry) (map[string]uint64, uint64) {
	t.Helper()
	var since map[string]uint64
	var seq uint64
	err := j.withLock(func() error {
		s := j.chainOf(mustChain(t, e.ID))
		if s == nil {
			t.Fatalf("entry %s is not held", e.Short)
		}
		pe, err := protocol.ParseEntry(j.raw(s))
		if err != nil {
			return err
		}
		ck, err := j.keys.EntryKey(pe, j.ownBox)
		if err != nil {
			return err
		}
		p, err := openPayload(pe, ck)
		since, seq = p.ToSince, s.Header.Seq
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return since, seq
}

func kidOf(a *Account) string { return kidHex(crypto.KeyID(a.Device.BoxPublic)) }

// changedAndLate checks j's status counts and that the relay's change was
// named once.
func changedAndLate(t *testing.T, who string, j *Journal, changed, late int) {
	t.Helper()
	st := mustStatus(t, j)
	if st.Changed != changed || st.Unreadable != late {
		t.Fatalf("%s's status: changed %d, unreadable %d; want %d changed, %d unreadable", who, st.Changed, st.Unreadable, changed, late)
	}
	n := 0
	for _, no := range unread(st) {
		if no.Kind == NoticeRelayChanged {
			n += no.Count
		}
	}
	if n != changed {
		t.Fatalf("%s's notices %+v: %d relay-changed, want %d", who, unread(st), n, changed)
	}
}

// A relay strips Sam's slot from the middle one of three entries by Alex.
// Sam reads the first and the third; the middle one is named as changed
// on the way, not counted as waiting for a grant, whichever order the
// relay delivers them in, and it stays so after Sam's journal is opened
// again from its checkpoint or rebuilt from its log.
func TestStrippedSlotIsChangedNotLate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		serve func(strip servertest.View, mid servertest.Match) []servertest.View
	}{
		{"in order", func(strip servertest.View, _ servertest.Match) []servertest.View {
			return []servertest.View{strip}
		}},
		// The stripped entry arrives in a later sync, after the entry
		// that vouches for it was opened.
		{"late", func(strip servertest.View, mid servertest.Match) []servertest.View {
			return []servertest.View{servertest.Drop(mid), servertest.Then(strip, servertest.Later(mid))}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			relay, liar := servertest.NewLyingServer(t)
			aj, sj := pairedOn(t, relay)
			syncOK(t, sj)
			first := mustWrite(t, aj, "alex: the first")
			mid := mustWrite(t, aj, "alex: the one the relay strips")
			third := mustWrite(t, aj, "alex: the third")
			syncOK(t, aj)
			since, seq := ownToSince(t, aj, third)
			if _, firstSeq := ownToSince(t, aj, first); since[kidOf(sj.acct)] > firstSeq || seq <= firstSeq {
				t.Fatalf("the third entry (seq %d) vouches for sam's slot from %d, want at most %d", seq, since[kidOf(sj.acct)], firstSeq)
			}

			isMid := servertest.ChainPrefix(mid.ID)
			strip := servertest.Strip(crypto.KeyID(sj.acct.Device.BoxPublic), isMid)
			for _, v := range tc.serve(strip, isMid) {
				liar.ServeTo(sj.acct.Device.SignKey(), v)
				syncOK(t, sj)
			}
			got := entryTexts(t, sj)
			if len(got) != 2 || got[0] != first.Text || got[1] != third.Text {
				t.Fatalf("sam reads %q", got)
			}
			changedAndLate(t, "sam", sj, 1, 0)

			// Opened again from the checkpoint (which keeps the claims)
			// and rebuilt from the log: the same.
			acct, id := sj.acct, sj.id
			sj.withLock(func() error { sj.saveCheckpoint(true); return nil })
			sj.closeFiles()
			again, err := acct.OpenJournal(id)
			if err != nil {
				t.Fatal(err)
			}
			changedAndLate(t, "sam from the checkpoint", again, 1, 0)
			again.closeFiles()
			if err := os.Remove(again.checkpointPath()); err != nil {
				t.Fatal(err)
			}
			rebuilt, err := acct.OpenJournal(id)
			if err != nil {
				t.Fatal(err)
			}
			defer rebuilt.Close()
			changedAndLate(t, "sam rebuilt", rebuilt, 1, 0)
		})
	}
}

// No false alarm: entries written before the partner joined carry no
// slot for the partner and are vouched for by nothing. While the grant
// that re-boxes them is held back they are late, not changed; once it
// arrives they open. Entries written after carry a claim that starts at
// the first entry sealed to the partner.
func TestSlotsFromBeforeAJoinAreLateNotChanged(t *testing.T) {
	t.Parallel()
	relay, liar := servertest.NewLyingServer(t)
	ctx := testCtx(t)
	aj, err := testAccount(t, "alex").CreateJournal(ctx, relay.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { aj.Close() })
	mustWrite(t, aj, "alex: before you joined")
	mustWrite(t, aj, "alex: still before")
	syncOK(t, aj)
	code, _, err := aj.Invite(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	sam := testAccount(t, "sam")
	isGrant := func(b []byte) bool { return len(b) > 1 && protocol.Kind(b[1]) == protocol.KindGrant }
	liar.ServeTo(sam.Device.SignKey(), servertest.Drop(func(b server.StoredBlob) bool { return !b.Purged && isGrant(b.Blob) }))
	sj, err := sam.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sj.Close() })
	syncOK(t, aj) // learns of sam, re-boxes the two entries for sam
	after := mustWrite(t, aj, "alex: after you joined")
	again := mustWrite(t, aj, "alex: and again")
	syncOK(t, aj)
	s1, seq1 := ownToSince(t, aj, after)
	s2, _ := ownToSince(t, aj, again)
	if s1[kidOf(sam)] != seq1 || s2[kidOf(sam)] != seq1 {
		t.Fatalf("claims for sam: %d and %d, want both from %d (the first entry sealed to sam)", s1[kidOf(sam)], s2[kidOf(sam)], seq1)
	}
	if s2[kidOf(aj.acct)] >= seq1 {
		t.Fatalf("alex's own slot is vouched for from %d, want from before %d", s2[kidOf(aj.acct)], seq1)
	}

	syncOK(t, sj)
	if got := entryTexts(t, sj); len(got) != 2 {
		t.Fatalf("sam reads %q without the grant", got)
	}
	changedAndLate(t, "sam", sj, 0, 2)

	liar.ServeTo(sam.Device.SignKey(), servertest.Later(func(b server.StoredBlob) bool { return !b.Purged && isGrant(b.Blob) }))
	syncOK(t, sj)
	if got := entryTexts(t, sj); len(got) != 4 {
		t.Fatalf("sam reads %q with the grant", got)
	}
	changedAndLate(t, "sam", sj, 0, 0)
}

// A device restored from a backup vouches only for what it writes after
// the restore: its first entry claims only itself, even though the entries
// it adopted from the relay were all sealed to the partner, and the next
// one continues from there.
func TestClaimsAfterARestoreStartAgain(t *testing.T) {
	t.Parallel()
	aj, sj := pairedJournals(t)
	mustWrite(t, aj, "alex: one")
	mustWrite(t, aj, "alex: two")
	syncOK(t, aj)
	path, phrase := backupTo(t, aj.acct)
	mustWrite(t, aj, "alex: written after the backup")
	syncOK(t, aj)
	destroy(t, aj)

	_, j2 := restoreFrom(t, path, phrase)
	syncOK(t, j2)
	if j2.Restoring() {
		t.Fatal("the restore did not finish")
	}
	first := mustWrite(t, j2, "alex: after the restore")
	next := mustWrite(t, j2, "alex: and the next")
	since, seq := ownToSince(t, j2, first)
	for kid, s := range since {
		if s != seq {
			t.Fatalf("the first entry after the restore (seq %d) vouches for %s from %d", seq, kid, s)
		}
	}
	if len(since) != 2 {
		t.Fatalf("to_since %v, want alex's and sam's devices", since)
	}
	since2, _ := ownToSince(t, j2, next)
	if since2[kidOf(sj.acct)] != seq {
		t.Fatalf("the next entry vouches for sam from %d, want %d", since2[kidOf(sj.acct)], seq)
	}
	syncOK(t, j2)
	syncOK(t, sj)
	clean(t, "sam", sj)
}

// The ranges a reader keeps merge whatever order the claims come in, and
// cover exactly what was claimed.
func TestClaimRangesMerge(t *testing.T) {
	t.Parallel()
	var m openIndex
	a, b := [32]byte{1}, [32]byte{2}
	for _, c := range []claimSpan{{5, 9}, {1, 3}, {12, 14}, {4, 4}, {6, 11}, {20, 20}} {
		m.addClaim(a, c)
	}
	m.addClaim(b, claimSpan{2, 3})
	if got := m.claims[a]; len(got) != 2 || got[0] != (claimSpan{1, 14}) || got[1] != (claimSpan{20, 20}) {
		t.Fatalf("merged ranges %v, want [1 14] [20 20]", got)
	}
	for seq, want := range map[uint64]bool{0: false, 1: true, 14: true, 15: false, 19: false, 20: true, 21: false} {
		if got := m.claimed(&stored{Header: protocol.Header{Author: a, Seq: seq}}); got != want {
			t.Errorf("seq %d claimed %v, want %v", seq, got, want)
		}
	}
	if m.claimed(&stored{Header: protocol.Header{Author: b, Seq: 5}}) {
		t.Error("another author's range counted")
	}
}
