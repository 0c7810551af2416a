package client

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// TestCheckpointRoundTrip: a journal opened from its checkpoint shows
// exactly what the same journal rebuilt from its log shows (every kind of
// entry, revisions, a retraction purged on the relay, answers, a
// reveal-together answer still held, status), and opening it decrypts
// nothing.
func TestCheckpointRoundTrip(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	aj, sj := pairedOn(t, relay)
	ctx := testCtx(t)
	q, err := aj.Write(Payload{Kind: KindQuestion, Text: "where were you?"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aj.Write(Payload{Kind: KindEntry, Text: "a feeling", Feelings: []string{"grief", "hope"}, Intensity: new(7), Tags: []string{"evening"}}); err != nil {
		t.Fatal(err)
	}
	x := mustWrite(t, aj, "words to take back")
	if _, _, err := aj.Revise(x.Short, Payload{Text: "second thoughts"}); err != nil {
		t.Fatal(err)
	}
	e := mustWrite(t, aj, "an entry that will be edited")
	if _, _, err := aj.Revise(e.Short, Payload{Text: "edited", Feelings: []string{"calm"}}); err != nil {
		t.Fatal(err)
	}
	syncOK(t, aj)
	if _, _, err := aj.Retract(x.Short); err != nil {
		t.Fatal(err)
	}
	tq, err := aj.Write(Payload{Kind: KindTogether, Text: "what did you miss?"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := aj.TogetherAnswer(tq.Short, "talking"); err != nil {
		t.Fatal(err)
	}
	syncOK(t, aj)
	syncOK(t, sj)
	if _, _, err := sj.Answer(q.Short, "at my sister's"); err != nil {
		t.Fatal(err)
	}
	if _, err := sj.Write(Payload{Kind: KindEntry, Text: "from sam", ListenOnly: true}); err != nil {
		t.Fatal(err)
	}
	syncOK(t, sj)
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, aj, "written after the last sync")

	acct, id := aj.acct, aj.id
	aj.withLock(func() error { aj.saveCheckpoint(true); return nil })
	aj.closeFiles()

	show := func(j *Journal) (string, string) {
		es, err := j.Entries()
		if err != nil {
			t.Fatal(err)
		}
		st := mustStatus(t, j)
		st.LastSync = nil
		a, _ := json.Marshal(es)
		b, _ := json.Marshal(st)
		return string(a), string(b)
	}
	fromCheckpoint, err := acct.OpenJournal(id)
	if err != nil {
		t.Fatal(err)
	}
	st := mustStatus(t, fromCheckpoint)
	if fromCheckpoint.opens != 0 {
		t.Fatalf("opening from the checkpoint and reading status decrypted %d entries, want none", fromCheckpoint.opens)
	}
	if st.Entries == 0 || st.Outbox != 1 || st.Held != 0 {
		t.Fatalf("status from the checkpoint: %+v", st)
	}
	e1, s1 := show(fromCheckpoint)
	if reps := fromCheckpoint.Repairs(); len(reps) != 0 {
		t.Fatalf("repairs %+v", reps)
	}
	fromCheckpoint.closeFiles()

	if err := os.Remove(aj.checkpointPath()); err != nil {
		t.Fatal(err)
	}
	rebuilt, err := acct.OpenJournal(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rebuilt.Close()
	if rebuilt.opens == 0 {
		t.Fatal("rebuilding from the log decrypted nothing")
	}
	e2, s2 := show(rebuilt)
	if e1 != e2 {
		t.Fatalf("entries from the checkpoint:\n%s\nrebuilt from the log:\n%s", e1, e2)
	}
	if s1 != s2 {
		t.Fatalf("status from the checkpoint:\n%s\nrebuilt from the log:\n%s", s1, s2)
	}
}
