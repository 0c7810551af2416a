package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestExtraArgsRefused runs every command that takes no positional
// arguments, or a fixed number, with one too many, and expects a usage
// error that names the extra one before anything else happens (the home
// does not even exist).
func TestExtraArgsRefused(t *testing.T) {
	var notFound error
	app := newApp(&env{}, &notFound)
	checked := 0
	eachCommand(app.Commands, nil, func(p []string, c *cli.Command) {
		n, ok := maxArgs(c.ArgsUsage)
		// help and completion check their own arguments, and the
		// hidden commands are for scripts and docs.
		if c.Action == nil || !ok || c.Hidden || c.Name == "help" || c.Name == "completion" {
			return
		}
		args := append([]string{"kintsugi", "--home", t.TempDir() + "/none"}, p...)
		for _, f := range c.Flags {
			// finishApp checks required flags itself (see checkRequired).
			if sf, ok := f.(*cli.StringFlag); ok && strings.HasSuffix(sf.Usage, "(required)") {
				args = append(args, "--"+f.Names()[0]+"=x")
			}
		}
		for i := range n {
			args = append(args, "abcd"+strings.Repeat("0", i))
		}
		args = append(args, "one-too-many")
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "one-too-many") || exitStatus(err) != exitUsage {
			t.Errorf("%s: got %v (exit %d), want a usage error naming \"one-too-many\"", strings.Join(args[3:], " "), err, exitStatus(err))
		}
		checked++
	})
	if checked < 20 {
		t.Errorf("checked %d commands, want every fixed-argument one", checked)
	}
}

func TestMaxArgs(t *testing.T) {
	for usage, want := range map[string]int{"": 0, "ID": 1, "[FILE]": 1, "FILE": 1, "ID [TEXT]": -1, "TEXT": -1, "[CODE]": -1, "ID|NAME": -1} {
		n, ok := maxArgs(usage)
		if !ok {
			n = -1
		}
		if n != want {
			t.Errorf("maxArgs(%q) = %d, want %d", usage, n, want)
		}
	}
}

// eachCommand calls fn with every command under cmds, subcommands first,
// and the path of names that runs it (path and then its own name).
func eachCommand(cmds []*cli.Command, path []string, fn func(path []string, c *cli.Command)) {
	for _, c := range cmds {
		p := append(append([]string{}, path...), c.Name)
		eachCommand(c.Subcommands, p, fn)
		fn(p, c)
	}
}
