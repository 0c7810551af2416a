package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
)

var togetherStates = map[string]string{
	"open":                "neither of you has answered",
	"waiting-for-you":     "waiting for you",
	"waiting-for-partner": "waiting for your partner",
	"revealing":           "both answered; opening on the next syncs",
	"revealed":            "revealed",
}

func cmdTogether(e *env) *cli.Command {
	return &cli.Command{
		Name:  "together",
		Usage: "questions you both answer, revealed only when both have answered",
		Description: "Your answer is sealed to your own devices until your partner has answered too;\n" +
			"this is enforced by encryption, not by hiding it. Without a subcommand, lists the reveal-together questions.",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"}},
		Action: func(c *cli.Context) error {
			return e.listTogether(c.Bool("json"))
		},
		Subcommands: []*cli.Command{
			{
				Name:      "ask",
				Usage:     "ask a question you will both answer",
				ArgsUsage: "TEXT",
				Action: func(c *cli.Context) error {
					return e.writeEntry(c, client.Payload{Kind: client.KindTogether}, "reveal-together question")
				},
			},
			{
				Name:      "answer",
				Usage:     "answer a reveal-together question; it opens for your partner once they answer too",
				ArgsUsage: "ID [TEXT]",
				Action: func(c *cli.Context) error {
					j, _, t, err := e.target(c, "which question? the id is missing", "`kintsugi together` lists them")
					if err != nil {
						return err
					}
					defer j.Close()
					if t.Kind != client.KindTogether {
						// The wrong kind of entry is a usage error, as for
						// `agree accept` on what is not an agreement.
						return usageError(fmt.Sprintf("%s is not a reveal-together question", t.Short), "`kintsugi together` lists them")
					}
					if t.State != "open" && t.State != "waiting-for-you" {
						return fail("you have already answered this one", "`kintsugi together` shows where it stands")
					}
					if err := j.Writable(); err != nil {
						return err
					}
					text, err := e.readText(c.Args().Tail(), "answer")
					if err != nil {
						return err
					}
					if text == "" {
						return usageError("there is no text to save", "write it after the id, or pipe it in")
					}
					a, _, err := j.TogetherAnswer(t.ID, text)
					if errors.Is(err, client.ErrAlreadyAnswered) {
						return fail("you have already answered this one", "`kintsugi together` shows where it stands")
					}
					if err != nil {
						return err
					}
					if t.State == "waiting-for-you" {
						e.printf("Saved your answer (%s). %s has answered too, so both answers open for each other after you both sync.\n", a.Short, clean(partnerName(j)))
					} else {
						e.printf("Saved your answer (%s), sealed to your own devices. It opens for %s once they answer too.\n", a.Short, clean(partnerName(j)))
					}
					return nil
				},
			},
		},
	}
}

func (e *env) listTogether(asJSON bool) error {
	j, byID, ps, err := e.entriesOf(client.KindTogether)
	if err != nil {
		return err
	}
	defer j.Close()
	if asJSON {
		return e.json(ps)
	}
	if len(ps) == 0 {
		e.printf("No reveal-together questions yet. `kintsugi together ask TEXT` asks one you both answer.\n")
		return nil
	}
	for _, p := range ps {
		e.printEntry("", p, byID)
		for _, id := range p.Responses {
			if r := get(byID, id); r.Kind == client.KindTogetherAnswer {
				e.printResponse(r, byID)
			}
		}
		if p.State == "open" || p.State == "waiting-for-you" {
			e.printf("    when you are ready: kintsugi together answer %s\n", p.Short)
		}
		e.printf("\n")
	}
	return nil
}
