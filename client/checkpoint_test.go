package client

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/crypto"

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

// TestTextsReadBackAnyLength: an entry's text is read back from the log
// when a listing shows it (the checkpoint holds no text), with one read
// for most records and a second for a long one: every length around
// that first read, up to the longest entry, comes back exactly, after
// the journal is opened again from its checkpoint.
func TestTextsReadBackAnyLength(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	aj, _ := pairedOn(t, relay)
	lengths := []int{1, rawGuess / 2, rawGuess - 300, rawGuess - 200, rawGuess - 100, rawGuess, rawGuess + 1, 3 * rawGuess}
	// The longest text an entry holds: the payload's JSON around it
	// takes the rest.
	longest := crypto.MaxPayload - 200
	lengths = append(lengths, longest)
	want := map[string]string{}
	for i, n := range lengths {
		text := strings.Repeat(string(rune('a'+i)), n)
		e := mustWrite(t, aj, text)
		want[e.ID] = text
	}
	if _, err := aj.Write(Payload{Kind: KindEntry, Text: strings.Repeat("x", crypto.MaxPayload)}); !errors.Is(err, ErrTooLong) {
		t.Fatalf("a text longer than an entry holds: %v, want ErrTooLong", err)
	}
	syncOK(t, aj)
	acct, id := aj.acct, aj.id
	aj.withLock(func() error { aj.saveCheckpoint(true); return nil })
	aj.closeFiles()
	j, err := acct.OpenJournal(id)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	es, err := j.Entries()
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, e := range es {
		if w, ok := want[e.ID]; ok {
			got++
			if e.Text != w {
				t.Errorf("entry of %d characters read back as %d characters", len(w), len(e.Text))
			}
		}
	}
	if got != len(want) {
		t.Fatalf("%d of %d entries listed", got, len(want))
	}
	if j.rawReads == 0 {
		t.Fatal("no text was read back from the log: the test no longer covers it")
	}
}
