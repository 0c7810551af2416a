package client

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// TestWriterFollowsARepairedLog: a process that opened the journal before
// another repaired its log (a watcher, say) writes to the repaired log, so
// what it was told is saved is there for every later command, and the
// repair is not reported twice.
func TestWriterFollowsARepairedLog(t *testing.T) {
	t.Parallel()
	aj, sj := exchanged(t)
	at := firstEntryAt(aj, sj)
	watcher := must(aj.acct.OpenJournal(aj.id))
	defer watcher.Close()
	logPath := filepath.Join(aj.dir, "log")
	b := must(os.ReadFile(logPath))
	b[at+5+8+200] ^= 0x40
	must0(os.WriteFile(logPath, b, 0o600))
	if err := aj.Verify(); err != nil {
		t.Fatal(err)
	}
	if r := only(t, aj.Repairs(), RepairLog); !r.Refetch {
		t.Fatalf("repair %+v", r)
	}
	if _, err := watcher.Write(Payload{Kind: KindEntry, Text: "alex: written in the watcher after the repair"}); err != nil {
		t.Fatal(err)
	}
	fresh := must(aj.acct.OpenJournal(aj.id))
	defer fresh.Close()
	if got := entryTexts(t, fresh); !slices.Contains(got, "alex: written in the watcher after the repair") {
		t.Fatalf("a later command reads %q: the watcher's saved entry is missing", got)
	}
	if reps := fresh.Repairs(); len(reps) != 0 {
		t.Fatalf("the next command reports repairs %+v", reps)
	}
	// And a sync from the watcher brings the partner's entry back.
	syncOK(t, watcher)
	if got := entryTexts(t, watcher); !slices.Contains(got, "sam: one") {
		t.Fatalf("after a sync the watcher reads %q", got)
	}
}

// TestCopiedLogIsNotDamage: a home copied to another disk (the same bytes
// under a new inode) opens from its checkpoint without a word.
func TestCopiedLogIsNotDamage(t *testing.T) {
	t.Parallel()
	aj, _ := exchanged(t)
	aj.withLock(func() error { aj.saveCheckpoint(true); return nil })
	acct, id := aj.acct, aj.id
	logPath := filepath.Join(aj.dir, "log")
	aj.closeFiles()
	b := must(os.ReadFile(logPath))
	must0(os.WriteFile(logPath+".copy", b, 0o600))
	must0(os.Rename(logPath+".copy", logPath))
	j := must(acct.OpenJournal(id))
	defer j.Close()
	if reps := j.Repairs(); len(reps) != 0 {
		t.Fatalf("an identical copy of the log is reported as repaired: %+v", reps)
	}
	if j.opens != 0 {
		t.Fatalf("opening a copied home decrypted %d entries: the checkpoint was not used", j.opens)
	}
}

// TestUnopenedAreNotRetriedEachLock: an entry this device cannot open (a
// partner's reveal-together answer, held until this person answers) is
// not tried again on every command when nothing that could open it
// changed.
func TestUnopenedAreNotRetriedEachLock(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	aj, sj := pairedOn(t, relay)
	tq := mustWriteKind(t, aj, KindTogether, "what did you miss?")
	syncOK(t, aj)
	syncOK(t, sj)
	if _, _, err := sj.TogetherAnswer(tq.Short, "talking"); err != nil {
		t.Fatal(err)
	}
	syncOK(t, sj)
	syncOK(t, aj)
	st := mustStatus(t, aj)
	if st.Held != 1 {
		t.Fatalf("status %+v, want one held answer", st)
	}
	var before, after int
	aj.withLock(func() error { before = len(aj.unopened); return nil })
	tries := aj.tries
	for range 3 {
		mustStatus(t, aj)
	}
	aj.withLock(func() error { after = len(aj.unopened); return nil })
	if before != 1 || after != 1 || aj.tries != tries {
		t.Fatalf("unopened %d then %d; %d more tries to open, want none", before, after, aj.tries-tries)
	}
}

// exchanged pairs two journals on a fresh relay; each has written one
// entry and both have synced: "alex: sent", then "sam: one".
func exchanged(t *testing.T) (aj, sj *Journal) {
	t.Helper()
	aj, sj = pairedOn(t, servertest.NewServer(t))
	mustWrite(t, aj, "alex: sent")
	syncOK(t, aj)
	mustWrite(t, sj, "sam: one")
	syncOK(t, sj)
	syncOK(t, aj)
	return aj, sj
}

// firstEntryAt returns where the first entry from other's device starts in
// j's log.
func firstEntryAt(j, other *Journal) int64 {
	var at int64 = -1
	j.withLock(func() error {
		for _, s := range j.order {
			if s.Header.Author == other.acct.Device.SignKey() && s.Header.Kind == protocol.KindEntry && at < 0 {
				at = s.At
			}
		}
		return nil
	})
	return at
}

func mustWriteKind(t *testing.T, j *Journal, kind, text string) Entry {
	t.Helper()
	e, err := j.Write(Payload{Kind: kind, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestJoinedDeviceLosesItsLog: a device that joined by invite (its own
// history starts with its join) loses its log after it synced, with and
// without a checkpoint. A sync brings its history back and it writes on
// from where it was: neither side sees two histories or strays.
func TestJoinedDeviceLosesItsLog(t *testing.T) {
	t.Parallel()
	for _, withCheckpoint := range []bool{false, true} {
		relay := servertest.NewServer(t)
		aj, sj := pairedOn(t, relay)
		syncOK(t, sj)
		mustWrite(t, sj, "sam: before")
		syncOK(t, sj)
		syncOK(t, aj)
		if withCheckpoint {
			sj.withLock(func() error { sj.saveCheckpoint(true); return nil })
		} else {
			os.Remove(sj.checkpointPath())
		}
		acct, id := sj.acct, sj.id
		sj.closeFiles()
		must0(os.Remove(filepath.Join(sj.dir, "log")))

		j := must(acct.OpenJournal(id))
		if r := only(t, j.Repairs(), RepairLog); !r.Waits || !r.Refetch {
			t.Fatalf("checkpoint %v: repair %+v", withCheckpoint, r)
		}
		syncOK(t, j)
		mustWrite(t, j, "sam: after")
		syncOK(t, j)
		syncOK(t, aj)
		for _, jj := range []*Journal{j, aj} {
			st := mustStatus(t, jj)
			if len(st.Missing) != 0 || st.Strangers != 0 || st.Outbox != 0 {
				t.Fatalf("checkpoint %v: status %+v", withCheckpoint, st)
			}
			for _, n := range st.Notices {
				t.Fatalf("checkpoint %v: notice %+v", withCheckpoint, n)
			}
		}
		if got := entryTexts(t, aj); !slices.Equal(got, []string{"sam: before", "sam: after"}) {
			t.Fatalf("checkpoint %v: the partner reads %q", withCheckpoint, got)
		}
		j.Close()
	}
}
