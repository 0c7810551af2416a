package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
)

func cmdEdit(e *env) *cli.Command {
	return &cli.Command{
		Name:      "edit",
		Usage:     "write a new version of one of your entries; your partner sees that it was edited, and every version stays in its history",
		ArgsUsage: "ID [TEXT]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "feeling", Aliases: []string{"f"}, Usage: "replace the feelings (repeat for several)"},
			&cli.IntFlag{Name: "intensity", Aliases: []string{"i"}, Usage: "replace the intensity of the feelings, 0 to 10"},
			&cli.StringSliceFlag{Name: "tag", Aliases: []string{"t"}, Usage: "replace the tags"},
		},
		Action: func(c *cli.Context) error {
			j, _, t, err := e.target(c, "which entry? the id is missing", "`kintsugi log --author me` lists yours")
			if err != nil {
				return err
			}
			defer j.Close()
			if !t.Mine {
				return usageError(fmt.Sprintf("%s is %s's entry; only its author can change it", t.Short, clean(t.Author)), "`kintsugi reply "+t.Short+"` responds to it")
			}
			if t.Retracted != nil {
				return fail(fmt.Sprintf("%s was retracted, so it cannot be edited", t.Short), "`kintsugi write` starts a new entry, whenever you want to")
			}
			p := client.Payload{Feelings: t.Feelings, Intensity: t.Intensity, Tags: t.Tags}
			if c.IsSet("feeling") {
				if p.Feelings, err = feelingsArg(c.StringSlice("feeling")); err != nil {
					return err
				}
			}
			if c.IsSet("intensity") {
				n := c.Int("intensity")
				if n < 0 || n > 10 {
					return usageError(fmt.Sprintf("intensity %d is outside 0 to 10", n), "choose a number from 0 (gentle) to 10 (overwhelming)")
				}
				if err := needsFeeling(p.Feelings); err != nil {
					return err
				}
				p.Intensity = &n
			}
			if c.IsSet("tag") {
				if p.Tags, err = tagsArg(c.StringSlice("tag")); err != nil {
					return err
				}
			}
			p.Text = t.Text
			if err := j.Writable(); err != nil {
				return err
			}
			if c.NArg() > 1 || !c.IsSet("feeling") && !c.IsSet("intensity") && !c.IsSet("tag") {
				p.Text, err = e.readTextWith(c.Args().Tail(), "entry", t.Text)
				if e.edited != nil {
					// Kept as a draft, it is a new version of this
					// entry, not a new entry (draftWays).
					e.edited.what = "edit " + t.Short
				}
				if err != nil {
					return err
				}
			}
			if p.Text == "" {
				return fail("the new version is empty, so nothing was changed", "to withdraw an entry, use `kintsugi retract "+t.Short+"`")
			}
			r, _, err := j.Revise(t.ID, p)
			if err != nil {
				return err
			}
			e.printf("Saved a new version of %s (%s). %s will see that it was edited; `kintsugi show %s --history` shows every version. %s\n", t.Short, r.Short, clean(partnerName(j)), t.Short, e.whereItGoes(j))
			return nil
		},
	}
}

func cmdRetract(e *env) *cli.Command {
	return &cli.Command{
		Name:      "retract",
		Usage:     "withdraw one of your entries: its words stop showing everywhere; that it was retracted, and when, stays visible",
		ArgsUsage: "ID",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "yes", Usage: "do not ask to confirm"}},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageError("retract takes one entry id", "`kintsugi log --author me` lists yours")
			}
			j, _, t, err := e.target(c, "which entry? the id is missing", "`kintsugi log --author me` lists yours")
			if err != nil {
				return err
			}
			defer j.Close()
			if !t.Mine {
				return usageError(fmt.Sprintf("%s is %s's entry; only its author can retract it", t.Short, clean(t.Author)), "`kintsugi reply "+t.Short+"` responds to it, in your own words")
			}
			if t.Retracted != nil {
				return fail(fmt.Sprintf("%s is already retracted", t.Short), "")
			}
			partner := clean(partnerName(j))
			// Asked as the client would decide now; what Retract finds
			// when it writes is what the result line says.
			asked, err := j.RetractSending(t)
			if err != nil {
				return err
			}
			question := fmt.Sprintf("Retract %s? %s will still see that something was retracted, and when. A copy they already read may remain on their device.", t.Short, partner)
			switch asked {
			case client.NotSent:
				question = fmt.Sprintf("Retract %s? It has not been sent yet, so %s will see only that you wrote something and took it back, and when; never its words.", t.Short, partner)
			case client.MaybeSent:
				question = fmt.Sprintf("Retract %s? It may already have reached %s: a sync has been sending it and has not heard back from the relay. Its words are hidden everywhere once the retraction arrives; %s will see that something was retracted, and when, and a copy they already read may remain on their device.", t.Short, partner, partner)
			}
			ok, err := e.confirm(c, "retracting", question)
			if err != nil || !ok {
				return err
			}
			_, was, err := j.Retract(t.ID)
			if err != nil {
				return err
			}
			switch {
			case was.Sending == client.NotSent:
				e.printf("Retracted %s before it was sent: %s will see only that you wrote something and took it back, and when; never its words. %s\n", t.Short, partner, e.whereGoes(j, "the retraction"))
				return nil
			case was.Sending == client.MaybeSent:
				e.printf("Retracted %s. It may have reached %s: a sync was sending it and had not heard back from the relay. Its words are hidden everywhere once the retraction arrives. %s\n", t.Short, partner, e.whereGoes(j, "the retraction"))
				return nil
			case asked != client.Sent && !c.Bool("yes"):
				e.printf("Retracted %s. A sync sent it while you were deciding, so %s may have read it; its words are hidden everywhere once the retraction arrives. %s\n", t.Short, partner, e.whereGoes(j, "the retraction"))
				return nil
			}
			e.printf("Retracted %s. %s\n", t.Short, e.whereGoes(j, "the retraction"))
			return nil
		},
	}
}
