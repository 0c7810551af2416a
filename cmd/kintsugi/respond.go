package main

import (
	"fmt"
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

func cmdQuestions(e *env) *cli.Command {
	return &cli.Command{
		Name:  "questions",
		Usage: "list hard questions: open, needing time, answered",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "open", Usage: "only the ones not answered yet (including \"I need time\")"},
			&cli.BoolFlag{Name: "answered", Usage: "only the answered ones"},
			&cli.BoolFlag{Name: "waiting-on-me", Usage: "only your partner's questions you have not answered yet"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"},
		},
		Action: func(c *cli.Context) error {
			defer e.buffered()()
			j, byID, all, err := e.entriesOf(client.KindQuestion)
			if err != nil {
				return err
			}
			defer j.Close()
			qs := []client.Entry{}
			for _, en := range all {
				answered := *en.Answered
				switch {
				case c.Bool("open") && answered,
					c.Bool("answered") && !answered,
					c.Bool("waiting-on-me") && (answered || en.Mine):
					continue
				}
				qs = append(qs, en)
			}
			if c.Bool("json") {
				return e.json(qs)
			}
			if len(qs) == 0 {
				switch {
				case c.Bool("waiting-on-me"):
					e.printf("Nothing is waiting on you.\n")
				case c.Bool("open"):
					e.printf("No open questions.\n")
				case c.Bool("answered"):
					e.printf("No answered questions yet.\n")
				default:
					e.printf("No questions yet. Either of you can ask one with `kintsugi ask`.\n")
				}
				return nil
			}
			for _, q := range qs {
				e.printEntry("", q, byID)
				for _, id := range q.Responses {
					e.printResponse(get(byID, id), byID)
				}
				if !*q.Answered && !q.Mine {
					e.printf("    when you are ready: kintsugi answer %s   (or --need-time)\n", q.Short)
				}
				e.printf("\n")
			}
			return nil
		},
	}
}

// printResponse prints a response indented under the entry it belongs to.
func (e *env) printResponse(r client.Entry, byID entries) {
	if r.ID == "" {
		return
	}
	e.printEntry("  ↳ ", r, byID)
}
