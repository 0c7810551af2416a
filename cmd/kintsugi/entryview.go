package main

import (
	"fmt"
	"strings"

	"github.com/kintsugi-journal/kintsugi/client"
)

// How an entry is introduced, in one place: log, show, sync, the lists of
// questions, agreements and reveal-together questions, and the Markdown
// and HTML exports all word an entry with entryHead, so what a check-in
// or a decision says (kept or not, accepted or declined) reads the same
// everywhere.

// voice is whom an entry's head speaks to.
type voice int

const (
	// toYou speaks to the person on their own device: "You answered
	// Sam's question 1a2b3c4d", "Sam read your entry 5e6f7a8b and heard
	// you".
	toYou voice = iota
	// toReader names both partners, for an export that someone else (a
	// counsellor) reads: "Sam answered Alex's question 1a2b3c4d", "Alex
	// wrote".
	toReader
)

// readerTogetherStates words a reveal-together question's state for a
// reader who is neither partner (togetherStates speaks to one of them).
var readerTogetherStates = map[string]string{
	"open":                "not answered yet",
	"waiting-for-you":     "one of them has answered",
	"waiting-for-partner": "one of them has answered",
	"revealing":           "both answered",
	"revealed":            "both answered; revealed to both",
}

// agreementStates words an agreement's state.
var agreementStates = map[string]string{"proposed": "waiting", "accepted": "accepted by both", "declined": "declined", "revised": "revised"}

// entryHead words what en is, in voice v: who wrote what kind of entry, in
// response to which entry (looked up in byID), and what it says besides
// its text: a question's state, a check-in kept or not, a decision, the
// kind of an agreement, how often a commitment is meant, feelings and
// their intensity, a wish to be heard. ok is false for an entry that is
// shown through another one (a reveal-together mark whose answer, or
// whose absence, says the same).
func entryHead(en client.Entry, byID entries, v voice) (head string, ok bool) {
	mine := en.Mine && v == toYou
	// On a person's own device, their own entries speak to them: "You
	// followed up on your question", "Your answer to Sam's question".
	who, whose := clean(en.Author), clean(en.Author)+"'s"
	if mine {
		who, whose = "You", "Your"
	}
	of := func() string {
		t, ok := byID.Get(en.Ref)
		switch {
		case !ok:
			return " an entry"
		case t.Mine && v == toYou:
			return fmt.Sprintf(" your %s %s", kindWord(t.Kind), t.Short)
		case t.Author == en.Author:
			return fmt.Sprintf(" their %s %s", kindWord(t.Kind), t.Short)
		}
		return fmt.Sprintf(" %s's %s %s", clean(t.Author), kindWord(t.Kind), t.Short)
	}
	if en.Kind == client.KindRetraction {
		return who + " retracted an entry", true
	}
	if en.Retracted != nil {
		return fmt.Sprintf("%s retracted this on %s", who, en.Retracted.Local().Format("Mon 2 Jan 2006, 15:04")), true
	}
	switch en.Kind {
	case client.KindEntry:
		head = who
		if v == toReader {
			head += " wrote"
		}
	case client.KindQuestion:
		state := map[string]string{"open": "open", "needs-time": "needs time", "answered": "answered"}[en.State]
		switch {
		case en.State != "needs-time" || mine:
		case v == toReader:
			// Only the asker's partner answers, so it is they who need
			// time: name them, as a reader knows neither "you".
			state = needsTimeName(en, byID) + " needs time"
		default:
			state = "you need time" // the partner asked; "needs time" would read as theirs
		}
		head = fmt.Sprintf("%s asked (%s)", who, state)
	case client.KindAnswer:
		switch {
		case en.NeedTime && mine:
			head = fmt.Sprintf("You need time with%s", of())
		case en.NeedTime:
			head = fmt.Sprintf("%s needs time with%s", who, of())
		default:
			head = fmt.Sprintf("%s answered%s", who, of())
		}
	case client.KindFollowup:
		head = fmt.Sprintf("%s followed up on%s", who, of())
	case client.KindReply:
		head = fmt.Sprintf("%s replied to%s", who, of())
	case client.KindCommit:
		head = fmt.Sprintf("%s committed (each %s)", who, clean(en.Every))
	case client.KindCheckin:
		head = fmt.Sprintf("%s checked in on commitment %s: %s", who, shortOf(en.Ref), keptWord(en))
	case client.KindAgree:
		head = fmt.Sprintf("%s proposed %s (%s)", who, article(clean(en.Category)), agreementStates[en.State])
		if en.Ref != "" {
			head += " revising" + of()
		}
	case client.KindDecision:
		if en.Decision == "accept" {
			head = fmt.Sprintf("%s accepted%s", who, of())
		} else {
			head = fmt.Sprintf("%s declined%s", who, of())
		}
	case client.KindTogether:
		if v == toReader {
			head = fmt.Sprintf("%s asked a reveal-together question (%s)", who, readerTogetherStates[en.State])
		} else {
			head = fmt.Sprintf("%s asked a question for you both (%s)", who, togetherStates[en.State])
		}
	case client.KindReflection:
		head = fmt.Sprintf("%s reflected", who)
		if p, ok := client.FindPrompt(en.Prompt); ok {
			head += fmt.Sprintf(" on prompt %s: %q", p.ID, p.Text)
		}
	case client.KindTogetherAnswer:
		head = fmt.Sprintf("%s answer to%s", whose, of())
	case client.KindTogetherMark:
		// A mark says an answer is there, still sealed. One's own answer
		// is shown as itself, and so is the partner's once revealed: the
		// mark would only say the same again. An export shows answers
		// only.
		q := get(byID, en.Ref)
		if en.Mine || q.State == "revealed" || v == toReader {
			return "", false
		}
		head = fmt.Sprintf("%s answered%s", who, of())
		switch q.State {
		case "waiting-for-you":
			head += "; it opens for you once you have answered too"
		case "revealing":
			head += "; you have both answered, so it opens on the next syncs"
		}
	case client.KindAck:
		switch {
		case mine:
			head = fmt.Sprintf("You read%s and let them know", of())
		case v == toReader:
			head = fmt.Sprintf("%s read%s and let them know", who, of())
		default:
			head = fmt.Sprintf("%s read%s and heard you", who, of())
		}
	default:
		head = who
	}
	if en.Edited {
		head += " · edited"
	}
	if len(en.Feelings) > 0 {
		head += " · feeling " + clean(strings.Join(en.Feelings, ", "))
	}
	switch {
	case en.Intensity != nil && len(en.Feelings) > 0:
		head += fmt.Sprintf(" (%d/10)", *en.Intensity)
	case en.Intensity != nil:
		// No feeling named (write refuses that now; an earlier version
		// or another client may not have): say what the number is.
		head += fmt.Sprintf(" · intensity %d/10", *en.Intensity)
	}
	if en.ListenOnly {
		head += " · asks to be heard, not answered"
	}
	return head, true
}

// needsTimeName names who needs time with question q: the author of an
// answer that says so (only the asker's partner answers a question), or
// "their partner" if that answer is not at hand.
func needsTimeName(q client.Entry, byID entries) string {
	for _, id := range q.Answers {
		if a, ok := byID.Get(id); ok && a.NeedTime && a.Author != q.Author {
			return clean(a.Author)
		}
	}
	return "their partner"
}

// keptWord says what a check-in says, as log does.
func keptWord(c client.Entry) string {
	if c.Kept != nil && *c.Kept {
		return "kept"
	}
	return "not this time"
}

// shownElsewhere is, for show, the line of an entry log shows only
// through another one (entryHead's ok is false): a reveal-together
// question's "I have answered" mark, once the answer itself is shown
// (the only such entry today).
func shownElsewhere(en client.Entry, byID entries) string {
	who := clean(en.Author)
	if en.Mine {
		who = "You"
	}
	q, ok := byID.Get(en.Ref)
	if !ok {
		return stamp(en) + who + " answered a reveal-together question"
	}
	return stamp(en) + fmt.Sprintf("%s answered the reveal-together question %s; the answers are shown with it: `kintsugi show %s`", who, q.Short, q.Short)
}

// stamp begins an entry's line in log and show: its short id and when it
// was written.
func stamp(en client.Entry) string {
	return en.Short + "  " + en.Created.Local().Format("Mon 2 Jan 2006 15:04") + "  "
}

// entryText is en as log shows it: its short id, when it was written and
// its head on one line, then its text, indented. ok is false for an entry
// shown through another one (entryHead).
func entryText(en client.Entry, byID entries) (string, bool) {
	head, ok := entryHead(en, byID, toYou)
	if !ok {
		return "", false
	}
	var b strings.Builder
	b.WriteString(stamp(en) + head)
	if en.Retracted == nil && en.Kind != client.KindRetraction {
		for _, t := range en.Tags {
			b.WriteString(" #" + clean(t))
		}
		if !en.Synced && en.Mine {
			b.WriteString(" · not sent yet")
		}
		if en.Text != "" {
			b.WriteString("\n" + indent(clean(en.Text)))
		}
	}
	b.WriteString("\n")
	return b.String(), true
}

// printEntry prints en as log shows it, after prefix (an indent and an
// arrow under the entry it responds to), and reports whether it printed
// anything: an entry shown through another one prints nothing, not even
// the prefix, so that a caller adds a blank line only after what it
// printed.
func (e *env) printEntry(prefix string, en client.Entry, byID entries) bool {
	s, ok := entryText(en, byID)
	if ok {
		e.printf("%s%s", prefix, s)
	}
	return ok
}

// printThread prints every response to en, and theirs, indented.
func (e *env) printThread(en client.Entry, byID entries, depth int) {
	if depth > 20 {
		return
	}
	for _, id := range en.Responses {
		r, ok := byID.Get(id)
		if !ok {
			continue
		}
		e.printEntry(strings.Repeat("  ", depth)+"↳ ", r, byID)
		e.printThread(r, byID, depth+1)
	}
}
