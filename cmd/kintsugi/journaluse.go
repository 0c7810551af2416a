package main

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Which journal a command acts on. A home can hold several journals; one
// is current (the last one chosen with `journal use`, created or joined),
// and --journal picks another for one command. Creating or joining one
// makes it current, so both say so, and while a home has more than one,
// write and sync name the journal they acted on.

func cmdJournalUse(e *env) *cli.Command {
	return &cli.Command{
		Name:      "use",
		Usage:     "choose the journal that commands act on, by its id (or its start) or its title",
		ArgsUsage: "ID|TITLE",
		Description: "`kintsugi journal list` shows your journals; the current one has a *.\n" +
			"--journal ID|TITLE chooses another for a single command.",
		Action: func(c *cli.Context) error {
			which := strings.Join(c.Args().Slice(), " ")
			if strings.TrimSpace(which) == "" {
				return usageError("which journal? its id or title is missing", "`kintsugi journal list` shows your journals, like `kintsugi journal use 3f2a`")
			}
			a, err := e.unlock()
			if err != nil {
				return err
			}
			id, err := a.FindJournal(which)
			if err != nil {
				return err
			}
			j, err := a.OpenJournal(id)
			if err != nil {
				return err
			}
			e.track(j)
			defer j.Close()
			if err := a.SetCurrent(id); err != nil {
				return err
			}
			e.printf("Now using %s%s. What you write goes there until you choose another.\n", journalName(j), withWhom(j))
			return nil
		},
	}
}

// sayCurrent says, after create or join, that j is now the current
// journal, and how to go back when there are others.
func (e *env) sayCurrent(a *client.Account, j *client.Journal) {
	ids, err := a.Journals()
	if err != nil || len(ids) < 2 {
		return
	}
	e.printf("%s is now your current journal: what you write goes there. `kintsugi journal use` switches to another (`kintsugi journal list` shows them).\n", upperFirst(journalName(j)))
}

// journalName names a journal in a sentence: its title in quotes, or
// "journal " and its short id when it has none.
func journalName(j *client.Journal) string {
	if t := strings.TrimSpace(clean(j.Title())); t != "" {
		return fmt.Sprintf("%q", t)
	}
	return "journal " + j.ID().String()[:8]
}

// withWhom returns " (with NAME)", or " (your partner has not joined yet)".
func withWhom(j *client.Journal) string {
	if p, err := j.Partner(); err == nil {
		return fmt.Sprintf(" (with %s)", clean(p.Name))
	}
	return " (your partner has not joined yet)"
}

// upperFirst capitalises the first letter of s, for a name that begins a
// sentence.
func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || r == utf8.RuneError {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// alreadyJoined words err, from joining with code, when this home already
// has the code's journal (a second `journal join`, or a person's own
// invite used on their own device): it names the journal, says there is
// nothing more to do, and how to use it. Other errors are returned as
// they are.
func (e *env) alreadyJoined(a *client.Account, code string, err error) error {
	c, perr := protocol.ParseInviteCode(code)
	if perr != nil {
		return err
	}
	ids, lerr := a.Journals()
	if lerr != nil || !slices.Contains(ids, c.Journal) {
		return err
	}
	j, oerr := a.OpenJournal(c.Journal)
	if oerr != nil {
		return err
	}
	e.track(j)
	defer j.Close()
	hint := "there is nothing more to do here: `kintsugi sync` brings what is new"
	if cur, cerr := a.CurrentID(""); cerr == nil && cur != c.Journal {
		hint += fmt.Sprintf(", and `kintsugi journal use %s` makes it the journal you write in", c.Journal.String()[:8])
	}
	hint += ". An invite code from `kintsugi journal invite` is for your partner's own device"
	return &userError{msg: fmt.Sprintf("this device is already in %s%s", journalName(j), withWhom(j)), hint: hint, err: err}
}
