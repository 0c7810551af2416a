package main

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/internal/version"
)

// This file holds what every command shares and no command words for
// itself: --version, `kintsugi help CMD`, and how a command line typed
// wrongly is answered (one line naming the problem and a hint pointing to
// `kintsugi help CMD`, never the whole help). Global flags after the
// command are handled by reorderArgs (args.go).

// versionFlag asks for the version line instead of running a command. A
// new one for each app: a flag keeps state when it is parsed.
func versionFlag() cli.Flag {
	return &cli.BoolFlag{Name: "version", Usage: "print the version and the commit kintsugi was built from", DisableDefaultText: true}
}

// globalNote ends each command's help, because the global options work
// after a command too.
const globalNote = `
GLOBAL OPTIONS:
   --home, --journal and --passphrase-file work here too (` + "`kintsugi help`" + ` says what they do)
`

// errUsage is wrapped by every error about how the command line was typed
// (exitCode maps it to exitUsage).
var errUsage = errors.New("usage")

// usageError is an error in how the command line was typed.
func usageError(msg, hint string) error {
	return &userError{msg: msg, hint: hint, err: errUsage}
}

// helpHint points to the help of the command at path (none: the app).
func helpHint(path []string) string {
	if len(path) == 0 {
		return "`kintsugi help` lists the commands and the options they share"
	}
	return fmt.Sprintf("`kintsugi help %s` shows what it takes", strings.Join(path, " "))
}

// commandPath returns the names of the command c runs, below the app, as
// in ["journal", "invite"].
func commandPath(c *cli.Context) []string {
	if c.Command == nil {
		return nil
	}
	f := strings.Fields(c.Command.HelpName)
	if len(f) < 2 {
		return nil
	}
	return f[1:]
}

// unknownCommand is the error for a command name that does not exist
// under path.
func unknownCommand(path []string, name string) error {
	full := strings.Join(append(path[:len(path):len(path)], name), " ")
	if len(path) == 0 {
		return usageError(fmt.Sprintf("there is no command %q", full), "`kintsugi help` lists the commands")
	}
	return usageError(fmt.Sprintf("there is no command %q", full), fmt.Sprintf("`kintsugi help %s` lists its commands", strings.Join(path, " ")))
}

// finishApp adds what every command shares to app: --version, the help
// command, and (in every command) usage errors worded as one line with a
// hint, and required flags checked the same way. It runs once, when the
// app is built; notFound receives the error for an unknown subcommand,
// which urfave/cli reports only through App.CommandNotFound.
func finishApp(app *cli.App, e *env, notFound *error) {
	// urfave/cli adds --help only to an app without a help command of
	// its own.
	app.Flags = append(app.Flags, versionFlag(), cli.HelpFlag)
	app.OnUsageError = onUsageError
	app.Action = func(c *cli.Context) error {
		if c.Args().Present() {
			return unknownCommand(nil, c.Args().First())
		}
		if c.Bool("version") {
			e.printf("kintsugi %s\n", version.Get())
			return nil
		}
		return cli.ShowAppHelp(c)
	}
	app.CommandNotFound = func(c *cli.Context, name string) {
		*notFound = unknownCommand(commandPath(c), name)
	}
	app.Commands = append(app.Commands, cmdCompletion(), cmdHelp(app), cmdDocs(), cmdComplete(e, app))
	finishCommands(app.Commands, app.Name)
}

func finishCommands(cmds []*cli.Command, parent string) {
	for _, cmd := range cmds {
		cmd.OnUsageError = onUsageError
		if len(cmd.Subcommands) > 0 && cmd.UsageText == "" {
			cmd.UsageText = parent + " " + cmd.Name + " COMMAND [options]"
		}
		checkRequired(cmd)
		if len(cmd.Subcommands) == 0 && cmd.CustomHelpTemplate == "" {
			cmd.CustomHelpTemplate = cli.CommandHelpTemplate + globalNote
		}
		// `kintsugi help journal invite` and --help show a
		// subcommand's help; no "journal help" besides.
		cmd.HideHelpCommand = true
		finishCommands(cmd.Subcommands, parent+" "+cmd.Name)
	}
}

// checkRequired checks cmd's required flags itself, so that a missing one
// is a usage error like any other instead of urfave/cli's full help: each
// is marked "(required)" in the help and no longer required for
// urfave/cli, and cmd's Before reports the first one missing.
func checkRequired(cmd *cli.Command) {
	var required []*cli.StringFlag
	for _, f := range cmd.Flags {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Required {
			sf.Required = false
			sf.Usage += " (required)"
			required = append(required, sf)
		}
	}
	if len(required) == 0 {
		return
	}
	before := cmd.Before
	cmd.Before = func(c *cli.Context) error {
		for _, f := range required {
			if !c.IsSet(f.Name) {
				path := commandPath(c)
				return usageError(fmt.Sprintf("%s needs --%s, %s", strings.Join(path, " "), f.Name, strings.TrimSuffix(f.Usage, " (required)")), helpHint(path))
			}
		}
		if before != nil {
			return before(c)
		}
		return nil
	}
}

// onUsageError words a flag the command line got wrong.
func onUsageError(c *cli.Context, err error, _ bool) error {
	path := commandPath(c)
	flags := c.App.Flags
	if c.Command != nil && len(path) > 0 {
		flags = c.Command.Flags
	}
	// The flag package names the flag as "-" and what followed the
	// dashes it took.
	if words, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: "); ok && len(path) > 0 && !looksLikeOption(words) {
		// Not an option mistyped but words that start with a dash,
		// as in `write "- I'm sorry"`. They are not repeated here: they
		// may be a whole entry, and this line may go to a log.
		return usageError("what you wrote starts with a dash, so it was read as an option; nothing was saved",
			fmt.Sprintf("put -- before words that start with a dash, as in: kintsugi %s -- '- like this'", strings.Join(path, " ")))
	}
	return usageError(flagProblem(path, flags, c.App.Flags, err), helpHint(path))
}

var invalidValue = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-([^:]+):`)

// flagProblem words err, an error of the standard flag package about the
// flags of the command at path, as one lowercase line.
func flagProblem(path []string, flags, global []cli.Flag, err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		if lookup(global, name) != nil {
			// A global flag reaches a command only without its value
			// (reorderArgs).
			return fmt.Sprintf("%s needs a value", dashed(name))
		}
		if len(path) == 0 {
			return fmt.Sprintf("there is no option %s", dashed(name))
		}
		return fmt.Sprintf("%s has no option %s", strings.Join(path, " "), dashed(name))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return fmt.Sprintf("%s needs a value", dashed(name))
	}
	if m := invalidValue.FindStringSubmatch(msg); m != nil {
		val, uerr := strconv.Unquote(m[1])
		if uerr != nil {
			val = m[1]
		}
		name := m[2]
		what := "a value it can take"
		switch lookup(flags, name).(type) {
		case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
			what = "a whole number"
		case *cli.Float64Flag:
			what = "a number"
		case *cli.DurationFlag:
			what = "a length of time, such as 30m or 2h"
		case *cli.BoolFlag:
			what = "true or false, or nothing"
		}
		return fmt.Sprintf("%s needs %s, not %q", dashed(name), what, val)
	}
	return lowerFirst(msg)
}

// dashed writes a flag's name as it is typed: -n, --home.
func dashed(name string) string {
	name = strings.TrimLeft(name, "-")
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// cmdHelp is `kintsugi help [COMMAND [SUBCOMMAND]]`: the same help as
// `kintsugi COMMAND --help`.
func cmdHelp(app *cli.App) *cli.Command {
	return &cli.Command{
		Name:      "help",
		Usage:     "show what a command does and what it takes, as in `kintsugi help journal invite`",
		ArgsUsage: "[COMMAND [SUBCOMMAND]]",
		Action: func(c *cli.Context) error {
			path := c.Args().Slice()
			if len(path) == 0 {
				return cli.ShowAppHelp(c)
			}
			cmds := app.Commands
			for i, name := range path {
				cmd := findCommand(cmds, name)
				if cmd == nil || cmd.Hidden {
					return unknownCommand(path[:i], name)
				}
				cmds = cmd.Subcommands
			}
			// The help urfave/cli prints for `kintsugi PATH --help`.
			return app.RunContext(c.Context, append(append([]string{app.Name}, path...), "--help"))
		},
	}
}

// flagHelp returns a flag's placeholder and its usage as help shows them.
// urfave/cli takes the first `quoted` word of a flag's Usage as the
// placeholder for its value ("--draft ID") and drops those backticks, so
// a Usage names its value that way and writes a command in backticks only
// after it (TestFlagPlaceholders checks every flag).
func flagHelp(f cli.Flag) (placeholder, usage string) {
	df, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return "", ""
	}
	usage = df.GetUsage()
	before, rest, ok := strings.Cut(usage, "`")
	if !ok {
		return "", usage
	}
	placeholder, after, ok := strings.Cut(rest, "`")
	if !ok {
		return "", usage
	}
	return placeholder, before + placeholder + after
}
