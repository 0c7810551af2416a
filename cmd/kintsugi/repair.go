package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/term"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
)

// The client heals damaged local files by itself (client/repair.go) and
// reports what it did as client.Repair values; this file words them. A
// person reading these has just learnt something went wrong on their
// device: say what happened, that what the relay holds is safe, exactly
// what could not be recovered, and what (if anything) to do.

// noteRepairs prints, on stderr, what the client repaired in the journals
// this command opened.
// A watch said its repairs as they happened (e.repairsSaid, the first
// ones of the journal it watched); they are not said twice.
func (e *env) noteRepairs() {
	for _, j := range e.opened {
		reps := j.Repairs()
		for _, r := range reps[min(e.repairsSaid[j], len(reps)):] {
			e.noteRepair(r, false)
		}
	}
}

// noteRepair words one repair. watching says a `sync --watch` found it:
// the watcher fetches again at once what the relay holds.
func (e *env) noteRepair(r client.Repair, watching bool) {
	say := func(format string, args ...any) { fmt.Fprintf(e.stderr, "kintsugi: note: "+format+"\n", args...) }
	kept := func() {
		switch {
		case r.SetAside == "":
		case r.SetAsideEnd:
			say("(the damaged end of the file was kept, unchanged, at %s)", r.SetAside)
		default:
			say("(the damaged file was kept, unchanged, at %s)", r.SetAside)
		}
	}
	switch r.Kind {
	case client.RepairIndex:
		say("this journal's index on this device could not be read, so it was rebuilt from the journal itself; nothing was lost")
		kept()
	case client.RepairState:
		if r.SetAside == "" {
			say("this journal's settings file on this device was missing, so its earlier copy was used; nothing you wrote was lost")
		} else {
			say("this journal's settings file on this device was damaged, so its earlier copy was used; nothing you wrote was lost")
		}
		say("if you confirmed a safety number or made an invite just before this, please do it again")
		kept()
	case client.RepairUnsent:
		// The list only names what waits to be sent; the entries are in
		// the journal's file (a damaged log is a repair of its own).
		say("the list this device keeps of your entries not yet sent could not be read. It only names them: what you wrote is in this journal's file, and any damage to that file is told on its own")
		switch {
		case r.SetAside == "":
			say("the list could not be moved aside, so it was left as it is; `kintsugi log` shows what you wrote, and `kintsugi sync` sends what waits")
			return
		case r.Kept == 1:
			say("the list was made again from that file: 1 entry of yours is waiting to be sent, and `kintsugi sync` sends it")
		case r.Kept > 1:
			say("the list was made again from that file: %s are waiting to be sent, and `kintsugi sync` sends them", plural(r.Kept, "entry of yours", "entries of yours"))
		default:
			say("the list was made again from that file: nothing of yours is waiting to be sent")
		}
		if r.Unknown {
			say("the new list could not be saved; nothing you wrote is affected, and this device tries again next time")
		}
		kept()
	case client.RepairLog:
		if r.Kept == 0 && len(r.Lost) == 0 && !r.Refetch && !r.Unknown && !r.Waits {
			// The unfinished end of a save that was interrupted (a
			// crash, a power cut): nothing anyone was told was saved.
			say("a save on this device was interrupted last time and has been tidied up; nothing you were told was saved is missing")
			if r.SetAside != "" {
				say("(the unfinished part was kept at %s)", r.SetAside)
			}
			return
		}
		say("part of this journal's file on this device was damaged or missing, and has been repaired")
		switch {
		case r.Refetch && watching:
			say("everything your partner wrote, and everything of yours that was sent, is safe on the relay and is being fetched again now")
		case r.Refetch:
			say("everything your partner wrote, and everything of yours that was sent, is safe on the relay and comes back with your next `kintsugi sync`")
		}
		if r.Kept > 0 {
			// Only what was saved last can be read back from a cut end.
			say("what you saved last on this device could still be read in full, so it was kept")
		}
		if len(r.Lost) > 0 {
			say("we are sorry: %s had not been sent yet and could not be read back:", plural(len(r.Lost), "entry of yours", "entries of yours"))
			// The first words go only to a person at a terminal, not
			// into a service's log.
			words := isTerminal(e.stderr)
			for _, l := range r.Lost {
				say("  %s", lostLine(l, words))
			}
		}
		if r.Unknown {
			say("if you wrote anything here since your last sync, it may not have been kept; once you have synced, `kintsugi log` shows what is here")
		}
		switch {
		case r.Waits && watching:
			say("writing waits until your own earlier entries are back, so your history stays whole")
		case r.Waits:
			say("writing waits until that sync has collected your own earlier entries, so your history stays whole")
		}
		kept()
	}
}

// lostLine names an entry that could not be read back: its kind, when it
// was written, its first words if asked, and its id.
func lostLine(l client.LostItem, words bool) string {
	what := "an entry"
	if l.Kind != "" {
		what = article(kindWord(l.Kind))
	}
	if !l.Created.IsZero() {
		what += " written " + l.Created.Local().Format("Mon 2 Jan 2006, 15:04")
	}
	if words && l.Words != "" {
		what += fmt.Sprintf(" that began %q", clean(l.Words))
	}
	return fmt.Sprintf("%s (%s)", what, shortOf(l.ID))
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// article puts "a" or "an" before a word.
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an " + word
	}
	return "a " + word
}

func cmdRepair(e *env) *cli.Command {
	return &cli.Command{
		Name:  "repair",
		Usage: "check this journal's files on this device, and mend what is damaged",
		Description: "Kintsugi checks what it reads as it goes and mends damage by itself. This reads\n" +
			"everything at once. Damaged files are kept aside, never deleted; what the relay\n" +
			"holds is fetched again on the next sync.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"},
		},
		Action: func(c *cli.Context) error {
			_, j, err := e.open()
			if err != nil {
				return err
			}
			defer j.Close()
			if err := j.Verify(); err != nil {
				return err
			}
			reps := j.Repairs()
			if c.Bool("json") {
				e.opened = nil // said in the JSON instead
				if reps == nil {
					reps = []client.Repair{}
				}
				return e.json(map[string]any{"repairs": reps})
			}
			if len(reps) == 0 {
				e.printf("Checked this journal's files on this device: all is well.\n")
			}
			return nil
		},
	}
}

// withoutWords returns reps with the first words of lost entries left
// out, for a watch's JSON lines: a watch runs for hours, often as a
// service whose output is kept in a log, where no words of an entry
// belong. (`repair --json` and `status --json`, asked for once, keep
// them.)
func withoutWords(reps []client.Repair) []client.Repair {
	out := slices.Clone(reps)
	for i := range out {
		out[i].Lost = slices.Clone(out[i].Lost)
		for k := range out[i].Lost {
			out[i].Lost[k].Words = ""
		}
	}
	return out
}
