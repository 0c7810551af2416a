package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
)

func cmdCommit(e *env) *cli.Command {
	return &cli.Command{
		Name:      "commit",
		Usage:     "make a commitment to your partner, kept or missed over time",
		ArgsUsage: "TEXT",
		Description: "For example: kintsugi commit \"I'll tell you my plans each evening\" --every day\n" +
			"Check in with `kintsugi checkin ID --kept` or `--missed`; `kintsugi commitments` shows the record.",
		Flags: []cli.Flag{&cli.StringFlag{Name: "every", Value: "day", Usage: "day or week"}},
		Action: func(c *cli.Context) error {
			every := strings.ToLower(c.String("every"))
			if every != "day" && every != "week" {
				return usageError(fmt.Sprintf("--every %s is not day or week", every), "write --every day or --every week")
			}
			return e.writeEntry(c, client.Payload{Kind: client.KindCommit, Every: every}, "commitment")
		},
	}
}

func cmdCheckin(e *env) *cli.Command {
	return &cli.Command{
		Name:      "checkin",
		Usage:     "record whether you kept one of your commitments",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "kept", Usage: "you kept it"},
			&cli.BoolFlag{Name: "missed", Usage: "you did not, this time"},
			&cli.StringFlag{Name: "note", Usage: "a few words to go with it"},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("kept") == c.Bool("missed") {
				return usageError("say either --kept or --missed", "an honest --missed matters as much as --kept")
			}
			kept := c.Bool("kept")
			if c.NArg() != 1 {
				return usageError("checkin takes one commitment id", "`kintsugi commitments` lists them; add words with --note")
			}
			return e.respond(c, client.Payload{Kind: client.KindCheckin, Kept: &kept, Text: c.String("note")}, true)
		},
	}
}

func cmdCommitments(e *env) *cli.Command {
	return &cli.Command{
		Name:  "commitments",
		Usage: "show each commitment and its check-ins over time",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"}},
		Action: func(c *cli.Context) error {
			j, byID, cs, err := e.entriesOf(client.KindCommit)
			if err != nil {
				return err
			}
			defer j.Close()
			if c.Bool("json") {
				type withCheckins struct {
					client.Entry
					Checkins []client.Entry `json:"checkins"`
				}
				out := []withCheckins{}
				for _, cm := range cs {
					w := withCheckins{Entry: cm, Checkins: []client.Entry{}}
					for _, id := range cm.Responses {
						if r := get(byID, id); r.Kind == client.KindCheckin {
							w.Checkins = append(w.Checkins, r)
						}
					}
					out = append(out, w)
				}
				return e.json(out)
			}
			if len(cs) == 0 {
				e.printf("No commitments yet. `kintsugi commit TEXT` makes one, when you are ready.\n")
				return nil
			}
			now := time.Now()
			for _, cm := range cs {
				every := "each day"
				if cm.Every == "week" {
					every = "each week"
				}
				e.printf("%s  %s: %s (%s, since %s)\n", cm.Short, clean(cm.Author), clean(cm.Text), every, cm.Created.Local().Format("Mon 2 Jan"))
				e.printf("          %s\n", strip(cm, byID, now))
			}
			e.printf("\n          ● kept   ○ not this time   · nothing noted   (oldest on the left)\n")
			return nil
		},
	}
}

// strip draws a commitment's record: one mark per day (last 28) or week
// (last 12), from its start. It shows what happened, and counts nothing.
func strip(cm client.Entry, byID entries, now time.Time) string {
	loc := now.Location()
	var checkins []client.Entry
	for _, id := range cm.Responses {
		checkins = append(checkins, get(byID, id))
	}
	marks := map[time.Time]string{}
	for p, c := range client.CheckinRecord(cm, checkins, loc) {
		if *c.Kept {
			marks[p] = "●"
		} else {
			marks[p] = "○"
		}
	}
	var b strings.Builder
	for _, p := range client.RecentPeriods(cm, now, loc) {
		if m, ok := marks[p]; ok {
			b.WriteString(m)
		} else {
			b.WriteString("·")
		}
	}
	return b.String()
}

func cmdAgree(e *env) *cli.Command {
	return &cli.Command{
		Name:  "agree",
		Usage: "propose, accept or decline agreements: boundaries, shared values, new practices",
		Subcommands: []*cli.Command{
			{
				Name:      "propose",
				Usage:     "propose an agreement for both of you",
				ArgsUsage: "TEXT",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "kind", Value: "practice", Usage: "boundary, value or practice"},
					&cli.StringFlag{Name: "revises", Usage: "the id of an earlier agreement this one replaces"},
				},
				Action: func(c *cli.Context) error {
					kind := strings.ToLower(c.String("kind"))
					if kind != "boundary" && kind != "value" && kind != "practice" {
						return usageError(fmt.Sprintf("--kind %s is not boundary, value or practice", kind), "write --kind boundary, --kind value or --kind practice")
					}
					p := client.Payload{Kind: client.KindAgree, Category: kind}
					if r := c.String("revises"); r != "" {
						_, j, err := e.open()
						if err != nil {
							return err
						}
						entries, err := j.Entries()
						j.Close()
						if err != nil {
							return err
						}
						old, err := client.Find(entries, r)
						if err != nil {
							return err
						}
						if old.Kind != client.KindAgree {
							return fail(fmt.Sprintf("%s is not an agreement", old.Short), "`kintsugi agreements` lists them")
						}
						p.Ref = old.ID
					}
					return e.writeEntry(c, p, "proposed agreement")
				},
			},
			{
				Name:      "accept",
				Usage:     "accept your partner's proposed agreement",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "note", Usage: "a few words to go with it"}},
				Action: func(c *cli.Context) error {
					return e.respond(c, client.Payload{Kind: client.KindDecision, Decision: "accept", Text: c.String("note")}, true)
				},
			},
			{
				Name:      "decline",
				Usage:     "decline your partner's proposed agreement, and say what would work instead",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "note", Usage: "what would work for you instead"}},
				Action: func(c *cli.Context) error {
					return e.respond(c, client.Payload{Kind: client.KindDecision, Decision: "decline", Text: c.String("note")}, true)
				},
			},
		},
	}
}

func cmdAgreements(e *env) *cli.Command {
	return &cli.Command{
		Name:  "agreements",
		Usage: "list agreements: proposed, accepted by both, declined, revised",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"}},
		Action: func(c *cli.Context) error {
			j, byID, as, err := e.entriesOf(client.KindAgree)
			if err != nil {
				return err
			}
			defer j.Close()
			if c.Bool("json") {
				return e.json(as)
			}
			if len(as) == 0 {
				e.printf("No agreements yet. Either of you can propose one with `kintsugi agree propose TEXT`.\n")
				return nil
			}
			for _, a := range as {
				e.printEntry("", a, byID)
				e.printThread(a, byID, 1)
				if a.State == "proposed" && !a.Mine {
					e.printf("    kintsugi agree accept %s   or   kintsugi agree decline %s --note \"...\"\n", a.Short, a.Short)
				}
				e.printf("\n")
			}
			return nil
		},
	}
}
