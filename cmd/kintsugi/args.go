package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs lets flags follow positional arguments, as in
// `kintsugi ack ID --note "..."` or `kintsugi answer ID --need-time`:
// urfave/cli v2 stops reading flags at the first positional argument, so
// the flags of the command named in args are moved before its positional
// arguments. A "--" ends flag handling, as usual.
//
// Global flags (--home, --journal, --passphrase-file: the app's flags but
// --version) may also follow the command, as in `kintsugi log --home DIR`:
// they are moved before the command, after any global flags given there,
// so they mean the same in either place and, as with any flag given
// twice, the last one wins. A command's own flag of the same name would
// take precedence (none has one).
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	var global []cli.Flag
	for _, f := range app.Flags {
		// --help stays where it is: after a command it asks for that
		// command's help, which urfave/cli prints in full (with the
		// subcommands) only once the command itself runs.
		if n := f.Names()[0]; n != "version" && n != "help" {
			global = append(global, f)
		}
	}
	i := 1
	// take consumes the flag at args[i], and its value if flags say it
	// takes one.
	take := func(flags []cli.Flag) []string {
		n := 1
		if takesValue(flags, args[i]) && i+1 < len(args) {
			n = 2
		}
		i += n
		return args[i-n : i]
	}
	// isGlobal reports whether a is a global flag to move. One that
	// needs a value and has none is left where it is, so that the
	// command's flags report it (flagProblem).
	isGlobal := func(flags []cli.Flag, a string) bool {
		return len(a) > 1 && lookup(flags, a) == nil && lookup(global, a) != nil &&
			(!takesValue(global, a) || i+1 < len(args))
	}
	var root, hoisted, path []string
	flags := app.Flags
	cmds := app.Commands
	// Global flags and the command path.
	for i < len(args) {
		a := args[i]
		switch {
		case a == "--":
		case strings.HasPrefix(a, "-") && len(path) > 0 && isGlobal(flags, a):
			hoisted = append(hoisted, take(global)...)
			continue
		case strings.HasPrefix(a, "-") && len(path) > 0:
			path = append(path, take(flags)...)
			continue
		case strings.HasPrefix(a, "-"):
			root = append(root, take(flags)...)
			continue
		}
		c := findCommand(cmds, a)
		if c == nil {
			break
		}
		path = append(path, a)
		i++
		flags, cmds = c.Flags, c.Subcommands
		if len(cmds) == 0 {
			break
		}
	}
	var moved, pos []string
	help := false       // --help follows the command: its positionals do not matter
	unfinished := false // a flag that needs a value ends the line without one
	for i < len(args) {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1 && isFlag(flags, a):
			help = help || flagName(a) == "help" || flagName(a) == "h"
			unfinished = takesValue(flags, a) && i+1 == len(args)
			moved = append(moved, take(flags)...)
		case strings.HasPrefix(a, "-") && len(path) > 0 && isGlobal(flags, a):
			hoisted = append(hoisted, take(global)...)
		case len(pos) > 0 && looksLikeOption(a):
			// A mistyped option after the text (`write "..."
			// --listen-onyl`) goes with the flags, to be refused as
			// an option, instead of joining the text. Text that starts
			// with a dash goes after --.
			moved = append(moved, a)
			i++
		default:
			pos = append(pos, a)
			i++
		}
	}
	out := append([]string{args[0]}, root...)
	out = append(out, hoisted...)
	out = append(out, path...)
	out = append(out, moved...)
	if help || unfinished {
		// Help needs no positionals (urfave/cli would read the first
		// as a subcommand to help with); a flag left without its value
		// must not take the first positional as one: without them, the
		// command line is refused for the flag.
		return out
	}
	return append(out, pos...)
}

// looksLikeOption reports whether a is written as an option is: one or
// two dashes and a name of letters, digits and dashes that starts with a
// letter, perhaps with =value. "-5 degrees" and "- I'm sorry" do not.
func looksLikeOption(a string) bool {
	name := flagName(a)
	if !strings.HasPrefix(a, "-") || name == "" || strings.HasPrefix(a, "---") {
		return false
	}
	for i, r := range name {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || r != '-' && (r < '0' || r > '9')) {
			return false
		}
	}
	return true
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func flagName(a string) string {
	a = strings.TrimLeft(a, "-")
	if i := strings.IndexByte(a, '='); i >= 0 {
		a = a[:i]
	}
	return a
}

func lookup(flags []cli.Flag, a string) cli.Flag {
	name := flagName(a)
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func isFlag(flags []cli.Flag, a string) bool {
	return lookup(flags, a) != nil || flagName(a) == "help" || flagName(a) == "h"
}

// takesValue reports whether a (without "=value") needs the next argument.
func takesValue(flags []cli.Flag, a string) bool {
	if strings.Contains(a, "=") {
		return false
	}
	f := lookup(flags, a)
	if f == nil {
		return false
	}
	_, isBool := f.(*cli.BoolFlag)
	return !isBool
}

// typedWord writes s as it would be typed at a shell prompt, for a
// command a person may paste: bare when it is only letters, digits and
// . _ / -, else in single quotes (an inner ' as '\”), so that nothing
// in it is expanded or splits it. (shellQuote is cron's, which also
// escapes %.)
func typedWord(s string) string {
	bare := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._/-", r)) {
			bare = false
			break
		}
	}
	if bare {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
