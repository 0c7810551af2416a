package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
)

// What a person writes in the editor is never thrown away. If the command
// then fails (the text is too long for one entry, the editor closed with
// an error or was stopped with Ctrl-C, the disk is full), the text is
// kept as a draft, sealed with the storage key in the home
// (client.SaveDraft), and the error says how to get it back: `kintsugi
// write --draft ID` opens it in the editor again, `kintsugi draft show
// ID` prints it (to split it, or pipe it into another command). A draft
// used by a command that succeeds is removed.

// drafts is the part of env that keeps what was written in the editor.
type drafts struct {
	acct    *client.Account // the account this command unlocked, if any
	edited  *edited         // what came back from the editor, if anything
	draftID string          // --draft: the kept draft the editor starts from
	used    string          // the full id of that draft, once found
}

// edited is text that came back from the editor.
type edited struct {
	what, text string
}

var draftFlag = &cli.StringFlag{Name: "draft", Usage: "open the kept draft `ID` in your editor, and save it as this (`kintsugi draft` lists them)"}

// entryLimit says in words how much one entry holds (crypto.MaxPayload,
// 512 KiB): about 500 KB, roughly 80,000 words of English at about six and
// a half bytes a word, space included.
var entryLimit = fmt.Sprintf("about %d KB, roughly %s words", crypto.MaxPayload/1000/100*100, humanize.Comma(int64(crypto.MaxPayload*10/65/10000*10000)))

// openDraft finds the draft --draft names, for the editor to start from.
func (e *env) openDraft(args []string) (client.Draft, error) {
	if len(args) > 0 {
		return client.Draft{}, usageError("give either the text or --draft, not both", "--draft opens the kept draft in your editor")
	}
	if !stdinIsTerminal(e.stdin) {
		return client.Draft{}, fail("--draft opens the draft in your editor, and there is no terminal for it here", "`kintsugi draft show "+e.draftID+"` prints the draft, to pipe in a part at a time")
	}
	if e.acct == nil {
		return client.Draft{}, client.ErrNoHome // text is read after unlocking
	}
	d, err := e.acct.Draft(e.draftID)
	if err != nil {
		return client.Draft{}, err
	}
	if d.Damaged {
		return client.Draft{}, fail(fmt.Sprintf("draft %s could not be read: its file may be damaged", d.ID), "it is left where it is; `kintsugi draft` lists the others")
	}
	e.used = d.ID
	return d, nil
}

// settleDraft runs when a command ends. If it failed after text came back
// from the editor, the text is kept as a draft and the error says so; if
// it succeeded with a draft from --draft, that draft is removed.
func (e *env) settleDraft(err error) error {
	if e.acct == nil {
		return err
	}
	if err == nil {
		if e.used != "" && e.acct.DeleteDraft(e.used) == nil {
			e.printf("Draft %s is saved now, so it is no longer kept as a draft.\n", e.used)
		}
		return nil
	}
	if e.edited == nil {
		return err
	}
	msg, hint := describe(err)
	tooLong := errors.Is(err, client.ErrTooLong)
	if tooLong {
		msg = fmt.Sprintf("what you wrote is about %s, more than one entry can hold (%s)", size(len(e.edited.text)), entryLimit)
		hint = ""
	}
	d, serr := e.acct.SaveDraft(e.edited.what, e.edited.text)
	if serr != nil {
		dmsg, _ := describe(serr)
		return &userError{msg: msg, hint: strings.TrimPrefix(hint+"; ", "; ") + "what you wrote could not be kept as a draft either: " + dmsg, err: err}
	}
	if e.used != "" {
		e.acct.DeleteDraft(e.used) // the new draft replaces it
	}
	keep := fmt.Sprintf("what you wrote is kept, locked, on this device as draft %s: %s", d.ID, draftWays(d, tooLong))
	if hint != "" {
		keep += ". " + upperFirst(hint)
	}
	return &userError{msg: msg, hint: keep, err: err}
}

// draftWays says how to get draft d back; tooLong says it was kept for
// being more than one entry holds, so the way back is to shorten it or
// split it (advice that would only puzzle someone who stopped the editor).
func draftWays(d client.Draft, tooLong bool) string {
	show := "`kintsugi draft show " + d.ID + "` prints it"
	switch d.What {
	case client.KindEntry:
		why := ""
		if tooLong {
			why = " (to shorten it, or to save it in parts)"
		}
		return "`kintsugi write --draft " + d.ID + "` opens it in your editor again" + why + ", and " + show
	case client.KindQuestion:
		return "`kintsugi ask --draft " + d.ID + "` opens it in your editor again, and " + show
	}
	if strings.HasPrefix(d.What, "edit ") {
		// An edit's text (edit.go): `write --draft` would make it a new
		// entry.
		return show + ", to copy from or pipe into `kintsugi " + clean(d.What) + "` again"
	}
	return show + ", to copy from or pipe into the command again"
}

// size says n bytes as people read it, as entryLimit does: "700 KB",
// "1.9 MB".
func size(n int) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d bytes", n)
	case n < 1000*1000:
		return fmt.Sprintf("%d KB", n/1000)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

func cmdDraft(e *env) *cli.Command {
	find := func(c *cli.Context) (*client.Account, client.Draft, error) {
		if c.NArg() != 1 {
			return nil, client.Draft{}, usageError("which draft? the id is missing", "`kintsugi draft` lists the drafts with their ids")
		}
		a, err := e.unlock()
		if err != nil {
			return nil, client.Draft{}, err
		}
		d, err := a.Draft(c.Args().First())
		if errors.Is(err, client.ErrNoSuchDraft) {
			return nil, client.Draft{}, fail(lowerFirst(err.Error()), "`kintsugi draft` lists the drafts with their ids")
		}
		return a, d, err
	}
	return &cli.Command{
		Name:  "draft",
		Usage: "list what you wrote that could not be saved as an entry (kept, locked, on this device)",
		Description: "When an entry cannot be saved (too long for one entry, the editor closed with an\n" +
			"error, or you stopped it with Ctrl-C), what you wrote in the editor is kept here as a\n" +
			"draft, sealed like the rest of your journal. `kintsugi write --draft ID` opens one in\n" +
			"your editor again.",
		Subcommands: []*cli.Command{
			{
				Name:      "show",
				Usage:     "print a draft, to split it or pipe it into a command",
				ArgsUsage: "ID",
				Action: func(c *cli.Context) error {
					_, d, err := find(c)
					if err != nil {
						return err
					}
					if d.Damaged {
						return fail(fmt.Sprintf("draft %s could not be read: its file may be damaged", d.ID), "it is left where it is")
					}
					e.printf("%s\n", d.Text)
					return nil
				},
			},
			{
				Name:      "delete",
				Usage:     "delete a draft you no longer need",
				ArgsUsage: "ID",
				Action: func(c *cli.Context) error {
					a, d, err := find(c)
					if err != nil {
						return err
					}
					if err := a.DeleteDraft(d.ID); err != nil {
						return err
					}
					e.printf("Draft %s is deleted.\n", d.ID)
					return nil
				},
			},
		},
		Action: func(c *cli.Context) error {
			a, err := e.unlock()
			if err != nil {
				return err
			}
			ds, err := a.Drafts()
			if err != nil {
				return err
			}
			if len(ds) == 0 {
				e.printf("No drafts are kept on this device.\n")
				return nil
			}
			for _, d := range ds {
				if d.Damaged {
					e.printf("%s  could not be read: its file may be damaged (it is left where it is)\n", d.ID)
					continue
				}
				e.printf("%s  %s  %s, about %s: %s\n", d.ID, d.Created.Local().Format("Mon 2 Jan 15:04"), kindWord(d.What), size(len(d.Text)), firstWords(d.Text, 8))
			}
			e.printf("\n`kintsugi draft show ID` prints one; `kintsugi write --draft ID` opens it in your editor; `kintsugi draft delete ID` removes it.\n")
			return nil
		},
	}
}

// firstWords returns the first n words of s on one line, quoted, with an
// ellipsis if there is more.
func firstWords(s string, n int) string {
	w := strings.Fields(clean(s))
	more := len(w) > n
	w = w[:min(n, len(w))]
	out := strings.Join(w, " ")
	if more {
		out += "…"
	}
	return "“" + out + "”"
}
