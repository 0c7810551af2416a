package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
)

func cmdPrompts(e *env) *cli.Command {
	return &cli.Command{
		Name:  "prompts",
		Usage: "guided prompts for each of the seven stages; answer one with `kintsugi reflect`",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "stage", Usage: "only this stage (1 to 7)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"},
		},
		Action: func(c *cli.Context) error {
			stages := client.Stages
			if n := c.Int("stage"); c.IsSet("stage") {
				if n < 1 || n > len(stages) {
					return usageError(fmt.Sprintf("there is no stage %d", n), fmt.Sprintf("stages are numbered 1 to %d", len(stages)))
				}
				stages = stages[n-1 : n]
			}
			if c.Bool("json") {
				return e.json(stages)
			}
			for _, s := range stages {
				e.printf("%d. %s — %s\n", s.N, s.Name, s.About)
				for _, p := range s.Prompts {
					e.printf("   %-4s %s\n", p.ID, p.Text)
				}
				e.printf("\n")
			}
			// The example is a prompt that was just listed: the second of
			// the first stage shown.
			ex := stages[0].Prompts[min(1, len(stages[0].Prompts)-1)].ID
			e.printf("Answer one with `kintsugi reflect --prompt %s`, whenever you like. Skipping is fine.\n", ex)
			return nil
		},
	}
}

func cmdReflect(e *env) *cli.Command {
	return &cli.Command{
		Name:      "reflect",
		Usage:     "write a reflection, on a prompt or on your own",
		ArgsUsage: "[TEXT]",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "prompt", Usage: "answer the prompt `ID`, like 5.2 (`kintsugi prompts` lists them)"}},
		Action: func(c *cli.Context) error {
			p := client.Payload{Kind: client.KindReflection}
			if id := c.String("prompt"); id != "" {
				pr, ok := client.FindPrompt(id)
				if !ok {
					return usageError(fmt.Sprintf("there is no prompt %q", id), "`kintsugi prompts` lists them, like 5.2")
				}
				p.Prompt = pr.ID
				if c.NArg() == 0 {
					fmt.Fprintf(e.stderr, "%s\n", pr.Text)
				}
			}
			return e.writeEntry(c, p, "reflection")
		},
	}
}
