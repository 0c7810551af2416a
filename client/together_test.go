package client

import (
	"context"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

func togetherState(t *testing.T, j *Journal, id string) string {
	t.Helper()
	es, err := j.Entries()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.ID == id {
			return e.State
		}
	}
	t.Fatalf("prompt %s not found", id[:8])
	return ""
}

func answerText(t *testing.T, j *Journal, byMe bool) (string, bool) {
	t.Helper()
	es, _ := j.Entries()
	for _, e := range es {
		if e.Kind == KindTogetherAnswer && e.Mine == byMe {
			return e.Text, true
		}
	}
	return "", false
}

// canOpenPartnerAnswer tries, with nothing but this device's own keys, to
// open every blob holding the partner's together answer: no slot for this
// device and no grant may open it.
func canOpenPartnerAnswer(t *testing.T, j *Journal) (held int, opened bool) {
	t.Helper()
	j.withLock(func() error {
		roster := j.trust().roster
		for _, s := range j.order {
			rd, ok := roster[s.Header.Author]
			if !ok || rd.member.Self || s.Header.Kind != protocol.KindEntry {
				continue
			}
			e, _ := protocol.ParseEntry(j.raw(s))
			if _, err := j.acct.keys.EntryKey(e, rd.cert.Box); err != nil {
				held++ // sealed to someone else's devices only
			}
		}
		ents, _ := j.decryptAll(j.trust())
		for _, o := range ents {
			if o.payload.Kind == KindTogetherAnswer && !o.author.member.Self {
				opened = true
			}
		}
		return nil
	})
	return held, opened
}

func TestRevealTogether(t *testing.T) {
	t.Parallel()
	for _, first := range []string{"asker", "other"} {
		t.Run(first+" answers first", func(t *testing.T) {
			aj, sj := pairedJournals(t)
			ctx := context.Background()
			q, err := aj.Write(Payload{Kind: KindTogether, Text: "What did you need from me that you did not get?"})
			if err != nil {
				t.Fatal(err)
			}
			aj.Sync(ctx)
			sj.Sync(ctx)
			j1, j2 := aj, sj
			if first == "other" {
				j1, j2 = sj, aj
			}
			if _, _, err := j1.TogetherAnswer(q.Short, "first answer, written alone"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := j1.TogetherAnswer(q.Short, "again"); err != ErrAlreadyAnswered {
				t.Fatalf("second answer: %v", err)
			}
			j1.Sync(ctx)
			j2.Sync(ctx)
			if s := togetherState(t, j2, q.ID); s != "waiting-for-you" {
				t.Fatalf("second's state %q", s)
			}
			if s := togetherState(t, j1, q.ID); s != "waiting-for-partner" {
				t.Fatalf("first's state %q", s)
			}
			// The second partner holds the first one's answer, and cannot
			// open it with its own keys.
			held, opened := canOpenPartnerAnswer(t, j2)
			if held != 1 || opened {
				t.Fatalf("before answering: %d sealed answer(s) held, opened=%v", held, opened)
			}
			if st, _ := j2.Status(); st.Held != 1 || st.Unreadable != 0 {
				t.Fatalf("status before answering: held %d, unreadable %d", st.Held, st.Unreadable)
			}
			if _, _, err := j2.TogetherAnswer(q.Short, "second answer, also alone"); err != nil {
				t.Fatal(err)
			}
			// Three syncs carry both releases.
			j2.Sync(ctx)
			j1.Sync(ctx)
			j2.Sync(ctx)
			for _, j := range []*Journal{j1, j2} {
				if s := togetherState(t, j, q.ID); s != "revealed" {
					t.Fatalf("state after both answered: %q", s)
				}
			}
			if got, ok := answerText(t, j2, false); !ok || got != "first answer, written alone" {
				t.Fatalf("second reads %q, %v", got, ok)
			}
			if got, ok := answerText(t, j1, false); !ok || got != "second answer, also alone" {
				t.Fatalf("first reads %q, %v", got, ok)
			}
		})
	}
}
