package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// limitArgs makes extra positional arguments a usage error for every
// command in cmds (and their subcommands) that takes none, or a fixed
// number, as its ArgsUsage says: they would otherwise be ignored in
// silence, and a person would believe they had been used. path is the
// commands' parent path ("" at the top, "journal" below it).
func limitArgs(cmds []*cli.Command, path string) {
	for _, c := range cmds {
		name := strings.TrimSpace(path + " " + c.Name)
		limitArgs(c.Subcommands, name)
		n, ok := maxArgs(c.ArgsUsage)
		if c.Action == nil || !ok {
			continue
		}
		action, usage, hasSub := c.Action, c.ArgsUsage, len(c.Subcommands) > 0
		c.Action = func(cc *cli.Context) error {
			if cc.NArg() > n {
				return tooManyArgs(name, usage, hasSub, cc.Args().Slice()[n:])
			}
			return action(cc)
		}
	}
}

// maxArgs returns how many positional arguments a command with this
// ArgsUsage takes at most, and false when there is no limit: its last
// word is text, a name, a title or a code, which a person may type as
// several words.
func maxArgs(usage string) (int, bool) {
	words := strings.Fields(usage)
	if len(words) == 0 {
		return 0, true
	}
	last := strings.Trim(words[len(words)-1], "[]")
	for _, open := range []string{"TEXT", "NAME", "TITLE", "CODE"} {
		if strings.Contains(last, open) {
			return 0, false
		}
	}
	return len(words), true
}

// tooManyArgs words the usage error for the arguments extra given to the
// command name.
func tooManyArgs(name, usage string, hasSub bool, extra []string) error {
	quoted := make([]string, len(extra))
	for i, a := range extra {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	given := strings.Join(quoted, " ")
	hint := fmt.Sprintf("nothing was done; `kintsugi help %s` shows what it takes", name)
	if hasSub && usage == "" {
		return usageError(fmt.Sprintf("there is no command \"%s %s\"", name, extra[0]), fmt.Sprintf("nothing was done; `kintsugi help %s` lists its commands", name))
	}
	if usage == "" {
		return usageError(fmt.Sprintf("%s takes no arguments, and was given %s", name, given), hint)
	}
	var what []string
	for _, w := range strings.Fields(usage) {
		w = strings.Trim(w, "[]")
		what = append(what, map[string]string{"ID": "an id", "FILE": "a file name"}[w])
		if what[len(what)-1] == "" {
			what[len(what)-1] = w
		}
	}
	return usageError(fmt.Sprintf("%s takes only %s, and was also given %s", name, strings.Join(what, " and "), given), hint)
}
