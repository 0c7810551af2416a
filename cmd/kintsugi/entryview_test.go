package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
)

// TestReaderVoiceNamesWhoNeedsTime: an export is read by someone who is
// neither partner, so a question waiting on an "I need time" names the
// partner who needs it, on either partner's device, and never says "you".
func TestReaderVoiceNamesWhoNeedsTime(t *testing.T) {
	q := client.Entry{ID: "q1", Short: "q1", Kind: client.KindQuestion, Author: "Alex", State: "needs-time", Answers: []string{"a1"}}
	a := client.Entry{ID: "a1", Short: "a1", Kind: client.KindAnswer, Author: "Sam", NeedTime: true, Ref: "q1"}
	for _, mine := range []bool{false, true} {
		q.Mine, a.Mine = mine, !mine
		byID := entryMap{"q1": q, "a1": a}
		if head, _ := entryHead(q, byID, toReader); head != "Alex asked (Sam needs time)" {
			t.Errorf("exported by Alex=%v: question reads %q, want %q", mine, head, "Alex asked (Sam needs time)")
		}
		if head, _ := entryHead(a, byID, toReader); head != "Sam needs time with Alex's question q1" {
			t.Errorf("exported by Alex=%v: answer reads %q", mine, head)
		}
	}
	// On Sam's own device the question still speaks to Sam.
	q.Mine, a.Mine = false, true
	if head, _ := entryHead(q, entryMap{"q1": q, "a1": a}, toYou); head != "Alex asked (you need time)" {
		t.Errorf("on Sam's device: %q, want %q", head, "Alex asked (you need time)")
	}
	// Without the answer at hand, the reader is still not addressed.
	if head, _ := entryHead(q, entryMap{"q1": q}, toReader); head != "Alex asked (their partner needs time)" {
		t.Errorf("answer not at hand: %q", head)
	}
}

// TestReaderVoiceNeverSaysYou: every kind of entry, in every state an
// export can show, is worded without "you" or "your" in the reader's
// voice, from either partner's device.
func TestReaderVoiceNeverSaysYou(t *testing.T) {
	you := regexp.MustCompile(`(?i)\byou(r|rs|rself)?\b`)
	yes, seven := true, 7
	ref := client.Entry{ID: "r1", Short: "r1", Kind: client.KindEntry, Author: "Sam"}
	var cases []client.Entry
	add := func(en client.Entry) { cases = append(cases, en) }
	for _, s := range []string{"open", "needs-time", "answered"} {
		add(client.Entry{Kind: client.KindQuestion, State: s})
	}
	add(client.Entry{Kind: client.KindAnswer, Ref: "r1"})
	add(client.Entry{Kind: client.KindAnswer, Ref: "r1", NeedTime: true})
	for _, k := range []string{client.KindEntry, client.KindFollowup, client.KindReply, client.KindAck, client.KindReflection, client.KindTogetherAnswer, client.KindTogetherMark, client.KindRetraction} {
		add(client.Entry{Kind: k, Ref: "r1"})
	}
	add(client.Entry{Kind: client.KindCommit, Every: "day"})
	add(client.Entry{Kind: client.KindCheckin, Ref: "r1", Kept: &yes})
	add(client.Entry{Kind: client.KindCheckin, Ref: "r1"})
	for _, s := range []string{"proposed", "accepted", "declined", "revised"} {
		add(client.Entry{Kind: client.KindAgree, Category: "boundary", State: s, Ref: "r1"})
	}
	add(client.Entry{Kind: client.KindDecision, Decision: "accept", Ref: "r1"})
	add(client.Entry{Kind: client.KindDecision, Decision: "decline", Ref: "r1"})
	for s := range readerTogetherStates {
		add(client.Entry{Kind: client.KindTogether, State: s})
	}
	add(client.Entry{Kind: client.KindEntry, Edited: true, Feelings: []string{"grief"}, Intensity: &seven, ListenOnly: true})
	retracted := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	add(client.Entry{Kind: client.KindEntry, Retracted: &retracted})
	for _, en := range cases {
		for _, mine := range []bool{false, true} {
			en.ID, en.Short, en.Author, en.Mine = "e1", "e1", "Alex", mine
			r := ref
			r.Mine = !mine
			head, ok := entryHead(en, entryMap{"r1": r, "e1": en}, toReader)
			if ok && you.MatchString(head) {
				t.Errorf("%s (state %q, mine %v) reads %q to a counsellor", en.Kind, en.State, mine, head)
			}
			if ok && !strings.Contains(head, "Alex") {
				t.Errorf("%s (state %q, mine %v) reads %q: it does not name its author", en.Kind, en.State, mine, head)
			}
		}
	}
}

// TestIntensityWithoutFeelingIsNamed: an entry that carries an intensity
// but names no feeling (write refuses one now; an earlier version or
// another client may have saved it) says what the number is, instead of
// a bare "You (5/10)".
func TestIntensityWithoutFeelingIsNamed(t *testing.T) {
	five := 5
	en := client.Entry{ID: "e1", Short: "e1", Kind: client.KindEntry, Author: "Alex", Mine: true, Intensity: &five}
	for v, want := range map[voice]string{toYou: "You · intensity 5/10", toReader: "Alex wrote · intensity 5/10"} {
		if head, _ := entryHead(en, entryMap{}, v); head != want {
			t.Errorf("voice %d: %q, want %q", v, head, want)
		}
	}
	en.Feelings = []string{"grief"}
	if head, _ := entryHead(en, entryMap{}, toYou); head != "You · feeling grief (5/10)" {
		t.Errorf("with a feeling: %q", head)
	}
}
