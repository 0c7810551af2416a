package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
)

func cmdCompare(e *env) *cli.Command {
	return &cli.Command{
		Name:  "compare",
		Usage: "show a code to read to your partner, to check you both see the same journal",
		Description: "The relay could keep your newest entries from your partner, or theirs from you, and nothing\n" +
			"in the journal would show it. Right after you have both synced, read each other your codes:\n" +
			"the same code means you hold the same newest item from every device.",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"}},
		Action: func(c *cli.Context) error {
			_, j, err := e.open()
			if err != nil {
				return err
			}
			defer j.Close()
			cmp, err := j.Compare()
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return e.json(cmp)
			}
			partner := "your partner"
			if p, err := j.Partner(); err == nil {
				partner = clean(p.Name)
			}
			e.printf("Your code for this journal:\n\n    %s\n\n", cmp.Code)
			switch {
			case cmp.Unsent > 0:
				e.printf("This device has %s not sent yet, which %s cannot have: run `kintsugi sync` first, then `kintsugi compare` again.\n\n", plural(cmp.Unsent, "item", "items"), partner)
			case cmp.LastSync == nil:
				e.printf("This device has not synced yet: run `kintsugi sync` first.\n\n")
			default:
				e.printf("Last synced %s.\n\n", cmp.LastSync.Local().Format("Mon 2 Jan 15:04"))
			}
			e.printf("Read it to %s, in person or on a call, and listen to theirs (`kintsugi compare` on their device), each of you right after a sync and before writing anything more.\n", partner)
			e.printf("The same code means you both hold the same newest item from every device.\n")
			e.printf("Different codes usually mean one of you wrote or synced since: sync again, both of you, and compare again.\n")
			e.printf("If they still differ, the relay may be keeping something from one of you. Nothing you hold is changed by that; `kintsugi status` on each side shows what was last heard from each device, and whoever runs the relay should be told.\n")
			if len(cmp.Heads) > 0 {
				e.printf("\nThe newest item this device holds from each device:\n")
				for _, h := range cmp.Heads {
					e.printf("  %s\n", headLine(h))
				}
			}
			return nil
		},
	}
}

// headLine says which device a head is from and what it is.
func headLine(h client.Head) string {
	if h.Seq == 0 {
		return fmt.Sprintf("%s: nothing yet", headDevice(h))
	}
	return fmt.Sprintf("%s: item %d, written %s (%s)", headDevice(h), h.Seq, h.Written.Local().Format("Mon 2 Jan 15:04"), h.Chain[:client.ShortIDLen])
}

// headDevice names the device a head is from.
func headDevice(h client.Head) string {
	name := "this device"
	if !h.ThisDevice {
		name = deviceWords(client.Notice{Who: h.Who, Device: h.Device})
	}
	if h.Removed {
		name += " (removed)"
	}
	return name
}
