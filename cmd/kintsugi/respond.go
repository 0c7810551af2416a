package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
)

// respond runs the shared part of answer, followup, reply and ack: find
// the entry, check the response fits it, read the text, save.
func (e *env) respond(c *cli.Context, p client.Payload, textOptional bool) error {
	// Check the target before asking for any text, so nobody writes a
	// long answer only to be told it cannot be saved.
	j, byID, t, err := e.target(c, "which entry? the id is missing", "`kintsugi log` and `kintsugi questions` show ids")
	if err != nil {
		return err
	}
	defer j.Close()
	if err := client.CheckResponse(*t, p.Kind); err != nil {
		return responseError(err, t, p.Kind, clean(partnerName(j)))
	}
	if p.Kind == client.KindAck && p.Text == "" {
		// A second bare ack would only tell them the same again.
		for _, id := range t.Responses {
			if a := get(byID, id); a.Kind == client.KindAck && a.Mine && a.Retracted == nil {
				how := fmt.Sprintf("You already let %s know you read it, on %s (%s)", clean(t.Author), a.Created.Local().Format("Mon 2 Jan 2006"), a.Short)
				if !a.Synced {
					where := e.whereItGoes(j)
					if w, _, _ := strings.Cut(where, " "); w == "It" || w == "The" {
						where = lowerFirst(where) // not a partner's name, when they left
					}
					how = fmt.Sprintf("You already acknowledged it, on %s (%s); %s", a.Created.Local().Format("Mon 2 Jan 2006"), a.Short, where)
				}
				e.printf("%s; nothing new was saved. To say more, add a few words with --note.\n", strings.TrimSuffix(how, "."))
				return nil
			}
		}
	}
	if err := j.Writable(); err != nil {
		return err
	}
	if !textOptional || c.NArg() > 1 {
		if p.Text, err = e.readText(c.Args().Tail(), p.Kind); err != nil {
			return err
		}
		if p.Text == "" && !textOptional {
			return usageError("there is no text to save", "write it after the id, or pipe it in")
		}
	}
	// The check-in that stands for this day or week so far, if any (read
	// before this one is saved).
	var checkins []client.Entry
	if p.Kind == client.KindCheckin {
		for _, id := range t.Responses {
			checkins = append(checkins, get(byID, id))
		}
	}
	r, now, err := j.Respond(t.ID, p)
	if err != nil {
		// The entry may have changed while the text was written (an
		// agreement decided on another device): word it the same way.
		if now == nil {
			now = t
		}
		return responseError(err, now, p.Kind, clean(partnerName(j)))
	}
	switch {
	case p.Kind == client.KindAck:
		e.printf("%s will see that you read it (%s).", clean(t.Author), r.Short)
	case p.Kind == client.KindCheckin:
		e.printf("Saved your check-in (%s).", r.Short)
	case p.Kind == client.KindDecision && p.Decision == "accept":
		e.printf("You accepted it (%s); it now stands for both of you.", r.Short)
	case p.Kind == client.KindDecision:
		e.printf("You declined it (%s). %s can propose a new version.", r.Short, clean(t.Author))
	case p.NeedTime:
		e.printf("Saved (%s): %s will see that you need time with this question. That is an honest answer too.", r.Short, clean(t.Author))
	default:
		e.printf("Saved your %s (%s)%s on this device.", kindWord(p.Kind), r.Short, e.in(j))
	}
	e.printf(" %s\n", e.whereItGoes(j))
	if p.Kind == client.KindCheckin {
		e.sayReplaced(*t, checkins, r.Created, *p.Kept)
	}
	return nil
}

// sayReplaced says plainly when a check-in on commitment cm, written at
// created and saying kept (or not), takes the place of an earlier one of
// the same day or week (of checkins, cm's responses before it): the
// record shows one check-in for each (the latest, client.CheckinRecord),
// and a person who checks in twice should not see the first one vanish
// from it without a word.
func (e *env) sayReplaced(cm client.Entry, checkins []client.Entry, created time.Time, kept bool) {
	if created.IsZero() {
		created = time.Now()
	}
	period := client.PeriodStart(cm.Every, created, time.Local)
	was, ok := client.CheckinRecord(cm, checkins, time.Local)[period]
	if !ok {
		return
	}
	when, each := "today", "day"
	if cm.Every == "week" {
		when, each = "this week", "week"
	}
	now, before := keptWord(client.Entry{Kept: &kept}), keptWord(was)
	shows := fmt.Sprintf(": %s now shows %s", when, now)
	if now == before {
		before, shows = "also "+before, ""
	}
	e.printf("It takes the place of %s's earlier check-in (%s, %s) in `kintsugi commitments`, which shows the latest of each %s%s. Both stay in the timeline.\n",
		when, was.Short, before, each, shows)
}

func cmdAnswer(e *env) *cli.Command {
	return &cli.Command{
		Name:      "answer",
		Usage:     "answer one of your partner's questions, or say honestly that you need time",
		ArgsUsage: "ID [TEXT]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "need-time", Usage: "say you need time with this question (TEXT is optional)"},
		},
		Action: func(c *cli.Context) error {
			return e.respond(c, client.Payload{Kind: client.KindAnswer, NeedTime: c.Bool("need-time")}, c.Bool("need-time"))
		},
	}
}

func cmdFollowup(e *env) *cli.Command {
	return &cli.Command{
		Name:      "followup",
		Usage:     "add a further question or thought to a question, in its thread",
		ArgsUsage: "ID [TEXT]",
		Action: func(c *cli.Context) error {
			return e.respond(c, client.Payload{Kind: client.KindFollowup}, false)
		},
	}
}

func cmdReply(e *env) *cli.Command {
	return &cli.Command{
		Name:      "reply",
		Usage:     "reply to an entry (entries that ask to be heard take `ack` instead)",
		ArgsUsage: "ID [TEXT]",
		Action: func(c *cli.Context) error {
			return e.respond(c, client.Payload{Kind: client.KindReply}, false)
		},
	}
}

func cmdAck(e *env) *cli.Command {
	return &cli.Command{
		Name:      "ack",
		Usage:     "let your partner know you read and heard an entry",
		ArgsUsage: "ID",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "note", Usage: "a few words to go with it"}},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageError("ack takes only an id", "add words with --note \"...\"")
			}
			return e.respond(c, client.Payload{Kind: client.KindAck, Text: c.String("note")}, true)
		},
	}
}

// questionsShown is how many questions `kintsugi questions` prints when
// neither -n nor --all says otherwise: the newest, as `gh issue list`
// shows its newest 30. Two partners rarely have more open at once, and a
// listing of every question with every answer grows with the journal's
// whole life (10,000 questions is about 10 MB of words). What is left out
// is never left out silently: a last line says how many earlier
// questions there are and how many of them wait on this person.
// --json lists every question that matches unless -n is given, since a
// script asked for all of them.
const questionsShown = 20

func cmdQuestions(e *env) *cli.Command {
	return &cli.Command{
		Name:  "questions",
		Usage: "list hard questions: open, needing time, answered",
		Description: fmt.Sprintf("Shows the newest %d that match, oldest first, and says how many earlier ones there are;\n"+
			"-n chooses how many, --all shows every one.", questionsShown),
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "open", Usage: "only the ones not answered yet (including \"I need time\")"},
			&cli.BoolFlag{Name: "answered", Usage: "only the answered ones"},
			&cli.BoolFlag{Name: "waiting-on-me", Usage: "only your partner's questions you have not answered yet"},
			&cli.IntFlag{Name: "n", Value: questionsShown, Usage: "only the last N that match (with --json and no -n: every one)"},
			&cli.BoolFlag{Name: "all", Usage: "every question that matches, however many"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"},
		},
		Action: func(c *cli.Context) error {
			defer e.buffered()()
			if c.IsSet("n") && c.Int("n") < 1 {
				return usageError(fmt.Sprintf("-n needs 1 or more, not %d", c.Int("n")), "like `kintsugi questions -n 50`; --all shows every question")
			}
			if c.IsSet("n") && c.Bool("all") {
				return usageError("-n and --all ask for different things", "use one: -n 50 for the last fifty, --all for every question")
			}
			open, answered, waiting := c.Bool("open"), c.Bool("answered"), c.Bool("waiting-on-me")
			if answered && (open || waiting) {
				other := "--open"
				if waiting {
					other = "--waiting-on-me"
				}
				return usageError(fmt.Sprintf("--answered and %s ask for different questions", other), "use one of them; without either, questions lists them all")
			}
			// keep applies the filters to a question in state (Entry.State)
			// asked by this person or not; a withdrawn question is neither
			// open nor answered.
			keep := func(state string, mine bool) bool {
				return !(open && !unanswered(state) || answered && state != "answered" || waiting && (!unanswered(state) || mine))
			}
			match := func(en *client.Entry) bool { return keep(en.State, en.Mine) }
			limit := questionsShown
			switch {
			case c.IsSet("n"):
				limit = c.Int("n")
			case c.Bool("all"), c.Bool("json"):
				limit = 0
			}
			_, j, err := e.open()
			if err != nil {
				return err
			}
			defer j.Close()
			r, err := j.Reader()
			if err != nil {
				return err
			}
			qs, err := r.Query(client.Query{Kinds: map[string]bool{client.KindQuestion: true}, Hidden: true, Match: match, Last: limit})
			if err != nil {
				return err
			}
			if qs == nil {
				qs = []client.Entry{}
			}
			if c.Bool("json") {
				return e.json(qs)
			}
			if len(qs) == 0 {
				switch {
				case waiting:
					e.printf("Nothing is waiting on you.\n")
				case open:
					e.printf("No open questions.\n")
				case answered:
					e.printf("No answered questions yet.\n")
				default:
					e.printf("No questions yet. Either of you can ask one with `kintsugi ask`.\n")
				}
				return nil
			}
			for _, q := range qs {
				e.printEntry("", q, r)
				for _, id := range q.Responses {
					e.printResponse(get(r, id), r)
				}
				switch {
				case q.Mine:
				case q.State == "open":
					e.printf("    when you are ready: kintsugi answer %s   (or --need-time)\n", q.Short)
				case q.State == "needs-time":
					e.printf("    when you are ready: kintsugi answer %s\n", q.Short)
				}
				e.printf("\n")
			}
			if limit > 0 {
				e.printEarlierQuestions(c, qs, r.Questions(), keep, partnerName(j))
			}
			return nil
		},
	}
}

// printEarlierQuestions ends a listing of the last questions that keep
// chose, if it left out earlier ones: how many there are, how many of them
// wait on this person (unless the listing is of those already), and how
// to see them. The counts come from the journal's tally, so nothing left
// out is read.
func (e *env) printEarlierQuestions(c *cli.Context, shown []client.Entry, t client.QuestionTally, keep func(state string, mine bool) bool, partner string) {
	// total: the questions the listing chose from; waiting: those of
	// them the partner asked and this person has not answered.
	total, waiting := 0, 0
	for _, cell := range []struct {
		mine bool
		n    client.QuestionCount
	}{{true, t.Mine}, {false, t.Partner}} {
		for state, n := range map[string]int{"open": cell.n.Open, "needs-time": cell.n.NeedsTime, "answered": cell.n.Answered, "retracted": cell.n.Retracted} {
			if !keep(state, cell.mine) {
				continue
			}
			total += n
			if !cell.mine && unanswered(state) {
				waiting += n
			}
		}
	}
	shownWaiting := 0
	for _, q := range shown {
		if !q.Mine && unanswered(q.State) {
			shownWaiting++
		}
	}
	waiting -= shownWaiting
	earlier := total - len(shown)
	if earlier <= 0 {
		return
	}
	e.printf("Showing the newest %s; %s not shown (to see every one: kintsugi questions %s).\n",
		plural(len(shown), "question", "questions"), plural(earlier, "earlier one is", "earlier ones are"), questionsMoreArgs(c))
	if waiting > 0 && !c.Bool("waiting-on-me") {
		// The listing of those shows the newest questionsShown: ask for
		// all of them when there are more.
		more := "--waiting-on-me"
		if waiting+shownWaiting > questionsShown {
			more += " --all"
		}
		e.printf("Of those, %s from %s and not answered yet; when you are ready: kintsugi questions %s\n",
			plural(waiting, "is", "are"), partner, more)
	}
}

// unanswered reports whether a question in state waits for an answer:
// open, or answered so far only with "I need time".
func unanswered(state string) bool { return state == "open" || state == "needs-time" }

// questionsMoreArgs is the arguments that list every question the
// listing c chose from: its filters and --all.
func questionsMoreArgs(c *cli.Context) string {
	var args []string
	for _, f := range []string{"open", "answered", "waiting-on-me"} {
		if c.Bool(f) {
			args = append(args, "--"+f)
		}
	}
	return strings.Join(append(args, "--all"), " ")
}

// printResponse prints a response indented under the entry it belongs to.
func (e *env) printResponse(r client.Entry, byID entries) {
	if r.ID == "" {
		return
	}
	e.printEntry("  ↳ ", r, byID)
}
