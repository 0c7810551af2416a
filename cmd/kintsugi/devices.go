package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/kintsugi-journal/kintsugi/client"
)

// confirm asks question on the terminal unless --yes was given, and
// reports whether to go ahead. Without a terminal it refuses: something
// that cannot be undone needs a person's yes. what names the action for
// the error ("retracting").
func (e *env) confirm(c *cli.Context, what, question string) (bool, error) {
	if c.Bool("yes") {
		return true, nil
	}
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		// A usage error: the command line lacks the --yes it needs here.
		words := append([]string{"kintsugi"}, commandPath(c)...)
		for _, a := range c.Args().Slice() {
			if strings.ContainsAny(a, " \t'\"$`\\") {
				a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
			}
			words = append(words, a)
		}
		again := strings.Join(words, " ") + " --yes"
		return false, usageError(what+" needs a confirmation, and there is no terminal to ask on", fmt.Sprintf("run it in a terminal to be asked first, or, if you are sure, add --yes: `%s`", again))
	}
	fmt.Fprintf(e.stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(io.LimitReader(e.stdin, 64)).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		e.printf("Nothing was changed.\n")
		return false, nil
	}
	return true, nil
}

// readCode reads a code from the arguments or, without any, from standard
// input, which keeps it out of shell history and the process list.
func (e *env) readCode(c *cli.Context, prompt string) string {
	code := strings.Join(c.Args().Slice(), "")
	if code == "" {
		if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			fmt.Fprint(e.stderr, prompt)
		}
		line, _ := bufio.NewReader(io.LimitReader(e.stdin, 4096)).ReadString('\n')
		code = strings.TrimSpace(line)
	}
	return code
}

func cmdDevice(e *env) *cli.Command {
	return &cli.Command{
		Name:  "device",
		Usage: "link another device of yours, list your devices, remove a lost one",
		Subcommands: []*cli.Command{
			{
				Name:  "link",
				Usage: "make a one-time code that sets up another device of yours (printed alone on the last line)",
				Description: "The new device gets your identity and every journal here. Everything this\n" +
					"device can read opens there at its first sync, your partner's entries\n" +
					"included. Journals you create, join or leave later follow on every one\n" +
					"of your devices at its next sync.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Usage: "a name for the new device, like \"laptop\"", Value: "new device"},
					expiresFlag(client.DefaultLinkTTL),
				},
				Action: func(c *cli.Context) error {
					ttl, err := parseExpires(c.String("expires"))
					if err != nil {
						return err
					}
					a, err := e.unlock()
					if err != nil {
						return err
					}
					code, exp, err := a.LinkDevice(e.ctx, c.String("name"), ttl)
					if err != nil {
						return err
					}
					fmt.Fprintf(e.stderr, "This code sets up a device that can read and write everything as you. Keep it to yourself; it works once, until %s.\n", exp.Local().Format("Mon 2 Jan 15:04"))
					fmt.Fprintf(e.stderr, "On the new device, run: kintsugi device join CODE\n")
					e.printf("%s\n", code)
					return nil
				},
			},
			{
				Name:      "join",
				Usage:     "set up this device with a code from `kintsugi device link` on another of yours",
				ArgsUsage: "[CODE]",
				Description: "Without CODE, the code is read from standard input, which keeps it out of\n" +
					"your shell history and the process list.",
				Action: func(c *cli.Context) error {
					if e.home.Exists() {
						return client.ErrHomeExists
					}
					code := e.readCode(c, "link code: ")
					if code == "" {
						return usageError("the link code is missing", "run `kintsugi device link` on your other device, then `kintsugi device join CODE` here")
					}
					p, err := e.passphrase(true)
					if err != nil {
						return err
					}
					defer clear(p)
					a, err := client.JoinLink(e.ctx, e.home, code, p, kdf())
					if err != nil {
						return err
					}
					e.printf("This device is now linked, %s. Its keys are in %s, locked with the passphrase you chose here.\n", clean(a.Name), e.home.KeyPath())
					ids, err := a.Journals()
					if err != nil {
						return err
					}
					for _, id := range ids {
						j, err := a.OpenJournal(id)
						if err != nil {
							return err
						}
						e.track(j)
						res, err := j.Sync(e.ctx)
						title := j.Title()
						if title == "" {
							title = "untitled"
						}
						if err != nil {
							msg, _ := describe(err)
							e.printf("Journal %q: not fetched yet (%s); `kintsugi sync` will try again.\n", clean(title), msg)
						} else {
							e.printf("Journal %q: %s arrived.\n", clean(title), plural(res.Received, "item", "items"))
						}
						j.Close()
					}
					e.follow(a, false)
					return nil
				},
			},
			{
				Name:  "list",
				Usage: "list your devices",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"}},
				Action: func(c *cli.Context) error {
					a, err := e.unlock()
					if err != nil {
						return err
					}
					devs, err := a.Devices()
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return e.json(devs)
					}
					for _, d := range devs {
						name := d.Name
						if name == "" {
							name = "(unnamed)"
						}
						note := ""
						switch {
						case d.This:
							note = "  (this device)"
						case d.Removed != nil:
							note = "  (removed " + d.Removed.Local().Format("2 Jan 2006") + ")"
						}
						synced := "  last synced: not known here"
						if d.LastSync != nil {
							synced = "  last synced " + d.LastSync.Local().Format("Mon 2 Jan 15:04")
						}
						if d.Removed != nil {
							synced = ""
						}
						e.printf("%s  %-20s  linked %s%s%s\n", d.ID, clean(name), d.Created.Local().Format("2 Jan 2006"), synced, note)
					}
					return nil
				},
			},
			{
				Name:      "revoke",
				Aliases:   []string{"remove"},
				Usage:     "remove one of your other devices, for example a lost one, from every journal",
				ArgsUsage: "ID|NAME",
				Description: "The relay refuses the device at once and nothing written afterwards is\n" +
					"sealed to it. What it already downloaded stays on it: if it was lost while\n" +
					"unlocked, treat what was on it as read.",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "yes", Usage: "do not ask to confirm"}},
				Action: func(c *cli.Context) error {
					which := strings.Join(c.Args().Slice(), " ")
					if which == "" {
						return usageError("which device? its id or name is missing", "`kintsugi device list` shows your devices")
					}
					a, err := e.unlock()
					if err != nil {
						return err
					}
					ok, err := e.confirm(c, "removing a device", fmt.Sprintf("Remove %q from every journal? It cannot be added back; link it again to use it.", which))
					if err != nil || !ok {
						return err
					}
					d, n, err := a.RemoveDevice(e.ctx, which)
					if errors.Is(err, client.ErrThisDevice) {
						return fail("that is the device you are using", "remove it from another of your devices, or leave with `kintsugi journal leave`")
					}
					if err != nil {
						return err
					}
					e.printf("Removed %s (%s) from %s. The relay no longer lets it in, and nothing new is sealed to it.\n", clean(d.Name), d.ID, plural(n, "journal", "journals"))
					return nil
				},
			},
		},
	}
}

func cmdLeave(e *env) *cli.Command {
	return &cli.Command{
		Name:  "leave",
		Usage: "leave the journal: your partner is told, and nothing new is shared with you",
		Description: "Before leaving you may want a copy of your own words:\n" +
			"  kintsugi export --author me\n" +
			"What is on this device stays readable here. Your partner keeps what they\n" +
			"already read.",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "yes", Usage: "do not ask to confirm"}},
		Action: func(c *cli.Context) error {
			a, j, err := e.open()
			if err != nil {
				return err
			}
			defer j.Close()
			name := clean(partnerName(j))
			ok, err := e.confirm(c, "leaving", fmt.Sprintf("Leave this journal? %s will be told. They keep what they have already read. You can export your own entries first with `kintsugi export --author me`.", name))
			if err != nil || !ok {
				return err
			}
			if err := j.Leave(e.ctx); err != nil {
				return err
			}
			e.follow(a, true)
			e.printf("You have left the journal. %s has been told, and nothing new will be shared with you.\n", name)
			e.printf("Everything already on this device stays readable here; `kintsugi export` still works. %s keeps what they already read.\n", name)
			e.printf("Take care of yourself.\n")
			return nil
		},
	}
}
