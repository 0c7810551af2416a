package client

import (
	"testing"

	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// TestGrantsCheckOnlyWhatIsNew: with the members and the held answers
// unchanged, re-boxing checks only what was indexed since the last check,
// also in a later process (the checkpoint keeps how far it got); a change
// of members checks every entry again.
func TestGrantsCheckOnlyWhatIsNew(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	aj, _ := pairedOn(t, relay)
	const n = 12
	for range n {
		mustWrite(t, aj, "an entry")
	}
	check := func(j *Journal) int {
		t.Helper()
		j.rawReads = 0
		if err := j.withLock(j.ensureGrants); err != nil {
			t.Fatal(err)
		}
		return j.rawReads
	}
	check(aj)
	if got := check(aj); got != 0 {
		t.Errorf("with nothing new, re-boxing read %d entries back; want 0", got)
	}

	acct, id := aj.acct, aj.id
	aj.withLock(func() error { aj.saveCheckpoint(true); return nil })
	aj.closeFiles()
	again, err := acct.OpenJournal(id)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if got := check(again); got != 0 {
		t.Errorf("in a new process with nothing new, re-boxing read %d entries back; want 0", got)
	}

	// Members that changed (here: the key of what was checked) mean every
	// own entry is looked at again.
	again.grantsDone.trust[0] ^= 1
	if got := check(again); got < n {
		t.Errorf("after a change of members, re-boxing read %d entries back; want at least %d", got, n)
	}
}
