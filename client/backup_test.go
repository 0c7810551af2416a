package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// These tests back up a real client, destroy its home, restore it in a new
// one and sync against a real relay.

func backupTo(t *testing.T, a *Account) (path, phrase string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "backup.ksb")
	res, err := a.WriteBackup(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v", err, fi.Mode())
	}
	return path, res.Phrase
}

// restoreFrom restores a backup into a new home and opens its current
// journal (closed when the test ends).
func restoreFrom(t *testing.T, path, phrase string) (*Account, *Journal) {
	t.Helper()
	a, err := restoreInto(filepath.Join(t.TempDir(), "restored"), path, phrase)
	if err != nil {
		t.Fatal(err)
	}
	j, err := a.Current("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return a, j
}

func restoreInto(home, path, phrase string) (*Account, error) {
	data, err := ReadBackupFile(path)
	if err != nil {
		return nil, err
	}
	s, err := crypto.ParseRecoveryPhrase(phrase)
	if err != nil {
		return nil, err
	}
	b, err := OpenBackup(data, s)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.Restore(Home{Dir: home}, []byte("a new passphrase"), crypto.TestingKDF)
}

// destroy closes j and removes its whole home, as a lost laptop would.
func destroy(t *testing.T, j *Journal) {
	t.Helper()
	j.Close()
	if err := os.RemoveAll(j.acct.Home.Dir); err != nil {
		t.Fatal(err)
	}
}

// ownChainOf returns this device's own blobs (kind and seq), and the
// number of them that are Local.
func ownChainOf(t *testing.T, j *Journal) (seq uint64, last protocol.BlobID, local int) {
	t.Helper()
	j.withLock(func() error {
		seq, last = j.ownSeq, j.ownLast
		for _, s := range j.order {
			if s.Header.Author == j.acct.Device.SignKey() && s.Local {
				local++
			}
		}
		return nil
	})
	return seq, last, local
}

func mustWrite(t *testing.T, j *Journal, text string) Entry {
	t.Helper()
	e, err := j.Write(Payload{Kind: KindEntry, Text: text})
	if err != nil {
		t.Fatalf("write %q: %v", text, err)
	}
	return e
}

func syncOK(t *testing.T, j *Journal) *SyncResult {
	t.Helper()
	r, err := j.Sync(testCtx(t))
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return r
}

// clean is clienttest.Clean for this package's own tests, which cannot
// import clienttest (it imports client). Keep the two the same: nothing
// missing, no warning, nothing unreadable, an empty outbox.
func clean(t *testing.T, who string, j *Journal) {
	t.Helper()
	st, err := j.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Missing) > 0 || len(unread(st)) > 0 || st.Unreadable > 0 || st.Outbox > 0 {
		t.Fatalf("%s's status is not clean: missing %+v, notices %+v, unreadable %d, outbox %d", who, st.Missing, unread(st), st.Unreadable, st.Outbox)
	}
}

// The whole story: a backup made before the partner joined (with the
// invite open), more written on the old machine afterwards, the machine
// lost, the backup restored on a new one. Everything comes back, the
// partner keeps reading, and the chain goes on without a fork.
func TestBackupRestoreRecoversEverything(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	alex := testAccount(t, "alex")
	aj, err := alex.CreateJournal(ctx, relay.URL(), "starting again")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, aj, "before you joined")
	syncOK(t, aj)
	code, _, err := aj.Invite(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	path, phrase := backupTo(t, alex)

	// After the backup: Sam joins, Alex's client re-boxes the first entry
	// for Sam (a grant), Alex writes more; Sam writes.
	sj, err := testAccount(t, "sam").Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	defer sj.Close()
	if r := syncOK(t, aj); len(r.Joined) != 1 {
		t.Fatalf("alex did not see sam join: %+v", r)
	}
	mustWrite(t, aj, "written after the backup")
	syncOK(t, aj)
	mustWrite(t, sj, "sam's words")
	syncOK(t, sj)
	oldSeq, oldLast, oldLocal := ownChainOf(t, aj)
	if oldSeq != 3 {
		t.Fatalf("alex's chain has %d blobs, want 3 (entry, grant, entry)", oldSeq)
	}
	want := entryTexts(t, aj)
	want = append(want, "sam's words")
	destroy(t, aj)

	a2, j2 := restoreFrom(t, path, phrase)
	if !j2.Restoring() {
		t.Fatal("a restored journal is not in restored mode")
	}
	if _, err := j2.Write(Payload{Kind: KindEntry, Text: "too early"}); !errors.Is(err, ErrRestoring) {
		t.Fatalf("write before the first sync: %v, want ErrRestoring", err)
	}
	r := syncOK(t, j2)
	if r.Pushed != 0 {
		t.Fatalf("the restored device sent %d blobs: adopted history must not be sent or re-boxed again", r.Pushed)
	}
	if j2.Restoring() {
		t.Fatal("still in restored mode after catching up")
	}
	if got := entryTexts(t, j2); !sameSet(got, want) {
		t.Fatalf("restored entries %q, want %q", got, want)
	}
	if p, err := j2.Partner(); err != nil || p.Name != "sam" {
		t.Fatalf("partner after restore: %v, %v", p, err)
	}
	seq, last, local := ownChainOf(t, j2)
	if seq != oldSeq || last != oldLast || local != oldLocal {
		t.Fatalf("own chain after restore: seq %d last %x local %d; want %d %x %d", seq, last[:4], local, oldSeq, oldLast[:4], oldLocal)
	}
	clean(t, "the restored alex", j2)

	// The next entry continues the chain, and Sam reads it.
	e := mustWrite(t, j2, "after the restore")
	j2.withLock(func() error {
		s := j2.chainOf(mustChain(t, e.ID))
		if s.Header.Seq != oldSeq+1 || s.Header.Prev != oldLast {
			t.Errorf("new entry at seq %d prev %x; want %d %x", s.Header.Seq, s.Header.Prev[:4], oldSeq+1, oldLast[:4])
		}
		return nil
	})
	syncOK(t, j2)
	if r := syncOK(t, sj); len(r.New) != 1 || r.New[0].Text != "after the restore" {
		t.Fatalf("sam received %+v", r.New)
	}
	clean(t, "sam", sj)
	mustWrite(t, sj, "and sam answers")
	syncOK(t, sj)
	syncOK(t, j2)
	if got := entryTexts(t, j2); !slices.Contains(got, "and sam answers") {
		t.Fatalf("the restored device does not read sam's new entry: %q", got)
	}
	clean(t, "the restored alex", j2)
	_ = a2
}

// An entry still in the outbox when the backup was made is sent by the
// restored device, not lost.
func TestRestoreSendsWhatWasUnsent(t *testing.T) {
	t.Parallel()
	aj, sj := pairedJournals(t)
	mustWrite(t, aj, "sent")
	syncOK(t, aj)
	mustWrite(t, aj, "not sent before the laptop died")
	path, phrase := backupTo(t, aj.acct)
	destroy(t, aj)

	_, j2 := restoreFrom(t, path, phrase)
	if r := syncOK(t, j2); r.Pushed != 1 {
		t.Fatalf("pushed %d, want the 1 unsent entry", r.Pushed)
	}
	if r := syncOK(t, sj); len(r.New) != 2 {
		t.Fatalf("sam received %d entries, want 2", len(r.New))
	}
	clean(t, "sam", sj)
	clean(t, "the restored alex", j2)
	mustWrite(t, j2, "and on we go")
	syncOK(t, j2)
	syncOK(t, sj)
	clean(t, "sam", sj)
}

// Wrong, mistyped and tampered inputs are refused with the error that
// names the problem, and change nothing.
func TestRestoreRefusesBadInput(t *testing.T) {
	t.Parallel()
	aj, _ := pairedJournals(t)
	mustWrite(t, aj, "something to keep")
	syncOK(t, aj)
	path, phrase := backupTo(t, aj.acct)
	home := filepath.Join(t.TempDir(), "new")
	nothingHere := func(what string) {
		t.Helper()
		if _, err := os.Stat(home); !os.IsNotExist(err) {
			t.Fatalf("%s: the new home was touched (%v)", what, err)
		}
	}

	other, _ := crypto.NewRecoverySecret(rand.Reader)
	if _, err := restoreInto(home, path, other.Phrase()); !errors.Is(err, crypto.ErrWrongRecoveryPhrase) {
		t.Fatalf("another phrase: %v", err)
	}
	nothingHere("wrong phrase")
	groups := strings.Fields(phrase)
	b := []byte(groups[5])
	if b[1] == 'a' {
		b[1] = 'b'
	} else {
		b[1] = 'a'
	}
	groups[5] = string(b)
	_, err := restoreInto(home, path, strings.Join(groups, " "))
	var pe *crypto.PhraseError
	if !errors.As(err, &pe) || pe.Group != 6 {
		t.Fatalf("typo in group 6: %v", err)
	}
	nothingHere("typo")

	data, _ := os.ReadFile(path)
	for _, at := range []int{0, 16, 20, 60, 70, 100, len(data) - 1} {
		bad := bytes.Clone(data)
		bad[at] ^= 1
		tampered := filepath.Join(t.TempDir(), "tampered.ksb")
		os.WriteFile(tampered, bad, 0o600)
		_, err := restoreInto(home, tampered, phrase)
		if err == nil || !(errors.Is(err, crypto.ErrBackupDamaged) || errors.Is(err, crypto.ErrNotBackup) || errors.Is(err, crypto.ErrWrongRecoveryPhrase) || errors.Is(err, crypto.ErrBackupVersion)) {
			t.Fatalf("byte %d tampered: %v", at, err)
		}
		nothingHere("tampered file")
	}
	if _, err := restoreInto(home, aj.acct.Home.KeyPath(), phrase); !errors.Is(err, crypto.ErrNotBackup) {
		t.Fatalf("a key file given as the backup: %v", err)
	}
	nothingHere("not a backup")

	// A home with an identity is never restored over.
	keyBefore, _ := os.ReadFile(aj.acct.Home.KeyPath())
	if _, err := restoreInto(aj.acct.Home.Dir, path, phrase); !errors.Is(err, ErrHomeExists) {
		t.Fatalf("restore over a live home: %v", err)
	}
	if keyAfter, _ := os.ReadFile(aj.acct.Home.KeyPath()); !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("the key file changed")
	}
	if got := entryTexts(t, aj); !slices.Contains(got, "something to keep") {
		t.Fatalf("the live journal changed: %q", got)
	}

	// A home that lost only its key file still holds a real journal: it
	// is not replaced by the backup's empty one.
	partial := filepath.Join(t.TempDir(), "partial")
	if err := os.CopyFS(partial, os.DirFS(aj.acct.Home.Dir)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(partial, "identity.key"))
	if _, err := restoreInto(partial, path, phrase); !errors.Is(err, ErrHomeHasJournal) {
		t.Fatalf("restore over a journal: %v", err)
	}
	if _, err := os.Stat(filepath.Join(partial, "identity.key")); !os.IsNotExist(err) {
		t.Fatal("a key file was written although the restore was refused")
	}

	// What an interrupted restore leaves (no key file yet) is simply
	// restored over.
	if _, err := restoreInto(home, path, phrase); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(home, "identity.key"))
	a, err := restoreInto(home, path, phrase)
	if err != nil {
		t.Fatalf("restore after an interrupted one: %v", err)
	}
	j, err := a.Current("")
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	syncOK(t, j)
	if got := entryTexts(t, j); !slices.Contains(got, "something to keep") {
		t.Fatalf("restored entries: %q", got)
	}

	// A backup never replaces a file.
	if _, err := aj.acct.WriteBackup(path); !errors.Is(err, ErrBackupExists) {
		t.Fatalf("backup over an existing file: %v", err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, data) {
		t.Fatal("the existing backup file changed")
	}
}

// A relay whose copy of this device's history is older than the backup is
// said plainly; nothing is adopted and writing waits.
func TestRestoreNoticesARolledBackRelay(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	aj, sj := pairedOn(t, relay)
	mustWrite(t, aj, "one")
	syncOK(t, aj)
	relay.Stop()
	snapshot := filepath.Join(t.TempDir(), "relay-snapshot")
	if err := os.CopyFS(snapshot, os.DirFS(relay.DataDir())); err != nil {
		t.Fatal(err)
	}
	relay.Start()
	mustWrite(t, aj, "two")
	mustWrite(t, aj, "three")
	syncOK(t, aj)
	path, phrase := backupTo(t, aj.acct)
	destroy(t, aj)
	_ = sj

	relay.Stop()
	os.RemoveAll(relay.DataDir())
	if err := os.CopyFS(relay.DataDir(), os.DirFS(snapshot)); err != nil {
		t.Fatal(err)
	}
	relay.Start()

	_, j2 := restoreFrom(t, path, phrase)
	_, err := j2.Sync(testCtx(t))
	if !errors.Is(err, ErrOwnHistoryOlder) || !strings.Contains(err.Error(), "the backup knows 3 items from this device, and the relay has only 1") {
		t.Fatalf("sync against a rolled-back relay: %v", err)
	}
	if !j2.Restoring() {
		t.Fatal("restored mode ended although the head is missing")
	}
	if _, err := j2.Write(Payload{Kind: KindEntry, Text: "x"}); !errors.Is(err, ErrRestoring) {
		t.Fatalf("write: %v", err)
	}
	if seq, _, local := ownChainOf(t, j2); seq != 0 || local != 0 {
		t.Fatalf("adopted %d blobs up to seq %d from a rolled-back relay", local, seq)
	}
	st, _ := j2.Status()
	if !unreadKind(st, NoticeRestoreOlder) {
		t.Fatalf("status does not say so: %+v", st.Notices)
	}
	// Said again on the next sync, not forgotten.
	if _, err := j2.Sync(testCtx(t)); !errors.Is(err, ErrOwnHistoryOlder) {
		t.Fatalf("second sync: %v", err)
	}
}

// Two machines writing as one device after the backup (the old one still
// in use) leave two continuations: the restore says so and does not pick.
func TestRestoreNoticesTwoHistories(t *testing.T) {
	t.Parallel()
	aj, _ := pairedJournals(t)
	mustWrite(t, aj, "before the backup")
	syncOK(t, aj)
	path, phrase := backupTo(t, aj.acct)
	copyHome := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(copyHome, os.DirFS(aj.acct.Home.Dir)); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, aj, "on the old machine")
	syncOK(t, aj)
	twin, err := Unlock(Home{Dir: copyHome}, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	tj, err := twin.Current("")
	if err != nil {
		t.Fatal(err)
	}
	defer tj.Close()
	mustWrite(t, tj, "on a copy of it")
	syncOK(t, tj)

	_, j2 := restoreFrom(t, path, phrase)
	if _, err := j2.Sync(testCtx(t)); !errors.Is(err, ErrOwnHistoryForked) {
		t.Fatalf("sync with two histories: %v", err)
	}
	if !j2.Restoring() {
		t.Fatal("restored mode ended on a forked history")
	}
}

// Blobs the relay invents in this device's name are not adopted, and the
// chain goes on from the real tip.
func TestRestoreDoesNotAdoptForgeries(t *testing.T) {
	t.Parallel()
	aj, sj := pairedJournals(t)
	mustWrite(t, aj, "real")
	syncOK(t, aj)
	path, phrase := backupTo(t, aj.acct)
	seq, last, _ := ownChainOf(t, aj)
	me := aj.acct.Device.SignKey()
	// A join continuing the chain, and a grant sealed by another key.
	if err := putRaw(t, aj, forgedJoin(aj.id, me, seq+1, last)); err != nil {
		t.Fatal(err)
	}
	eve, _ := crypto.NewDevice(rand.Reader)
	h := protocol.Header{Kind: protocol.KindGrant, Journal: aj.id, Author: me, Seq: seq + 1, Prev: last}
	sam := sj.acct.Device.BoxPublic
	g, err := crypto.SealGrant(rand.Reader, eve, h, sam, []crypto.GrantInput{{Entry: last}})
	if err != nil {
		t.Fatal(err)
	}
	if err := putRaw(t, aj, g); err != nil {
		t.Fatal(err)
	}
	destroy(t, aj)

	_, j2 := restoreFrom(t, path, phrase)
	syncOK(t, j2)
	if got, _, _ := ownChainOf(t, j2); got != seq {
		t.Fatalf("own seq %d after forgeries, want %d", got, seq)
	}
	st, _ := j2.Status()
	if !slices.ContainsFunc(unread(st), func(n Notice) bool { return n.Kind == NoticeRestoreStrays && n.Count == 2 }) {
		t.Fatalf("forgeries not reported: %+v", st.Notices)
	}
	e := mustWrite(t, j2, "after")
	j2.withLock(func() error {
		if s := j2.chainOf(mustChain(t, e.ID)); s.Header.Seq != seq+1 || s.Header.Prev != last {
			t.Errorf("new entry at %d, want %d after the real tip", s.Header.Seq, seq+1)
		}
		return nil
	})
	syncOK(t, j2)
	syncOK(t, sj)
	if st, _ := sj.Status(); len(st.Missing) > 0 {
		t.Fatalf("sam sees a gap or fork: %+v", st.Missing)
	}
}

// A restored device that was in the middle of its restore when backed up
// again keeps the head it owes.
func TestBackupOfARestoredJournalKeepsItsHead(t *testing.T) {
	t.Parallel()
	aj, _ := pairedJournals(t)
	mustWrite(t, aj, "one")
	syncOK(t, aj)
	seq, last, _ := ownChainOf(t, aj)
	path, phrase := backupTo(t, aj.acct)
	a2, j2 := restoreFrom(t, path, phrase)
	path2, phrase2 := backupTo(t, a2)
	j2.Close()
	_, j3 := restoreFrom(t, path2, phrase2)
	j3.withLock(func() error {
		if r := j3.st.Restored; r == nil || r.Seq != seq || r.Head != last.String() {
			t.Errorf("second backup's mark %+v, want seq %d head %x", r, seq, last[:4])
		}
		return nil
	})
	syncOK(t, j3)
	if got := entryTexts(t, j3); !slices.Contains(got, "one") {
		t.Fatalf("entries %q", got)
	}
}

func mustChain(t *testing.T, id string) protocol.BlobID {
	t.Helper()
	var c protocol.BlobID
	if n, err := hex.Decode(c[:], []byte(id)); err != nil || n != len(c) {
		t.Fatalf("bad entry id %q", id)
	}
	return c
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// `sync --watch` finishes a restore too, and writing works afterwards.
func TestWatchFinishesARestore(t *testing.T) {
	t.Parallel()
	aj, sj := pairedJournals(t)
	mustWrite(t, aj, "before")
	syncOK(t, aj)
	seq, _, _ := ownChainOf(t, aj)
	path, phrase := backupTo(t, aj.acct)
	destroy(t, aj)

	_, j2 := restoreFrom(t, path, phrase)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	connected := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- j2.Watch(ctx, func(ev Event) {
			if ev.Connected {
				select {
				case connected <- struct{}{}:
				default:
				}
			}
		})
	}()
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("the watcher never caught up")
	}
	if j2.Restoring() {
		t.Fatal("still restoring after the watcher caught up")
	}
	e := mustWrite(t, j2, "written while watching")
	j2.withLock(func() error {
		if s := j2.chainOf(mustChain(t, e.ID)); s.Header.Seq != seq+1 {
			t.Errorf("new entry at seq %d, want %d", s.Header.Seq, seq+1)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	syncOK(t, j2)
	syncOK(t, sj)
	clean(t, "sam", sj)
}
