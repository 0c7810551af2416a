package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestJSONDocsCoverEveryCommand fails when a command takes --json and
// docs/cli-json.md has no section for it ("## `kintsugi PATH ..."), or
// when a section names a command that no longer exists. What each section
// says is checked by running the commands (testdata/script/json-shapes.txtar).
func TestJSONDocsCoverEveryCommand(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "cli-json.md"))
	if err != nil {
		t.Fatal(err)
	}
	var headings []string // what follows "## `kintsugi " on each section's line
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "## `kintsugi "); ok {
			headings = append(headings, h)
		}
	}
	// names reports whether heading h is about the command at path: the
	// path, then its flags or arguments (" --json", " ID"), not a
	// subcommand's name (so "journal list" does not stand for "journal").
	names := func(h, path string) bool {
		rest, ok := strings.CutPrefix(h, path)
		if !ok {
			return false
		}
		if strings.HasPrefix(rest, "`") {
			return true
		}
		next, ok := strings.CutPrefix(rest, " ")
		return ok && next != "" && (next[0] == '-' || next[0] >= 'A' && next[0] <= 'Z')
	}
	documents := func(path string) bool {
		return slices.ContainsFunc(headings, func(h string) bool { return names(h, path) })
	}

	app := appForTest()
	var commands []string // every command's path, like "journal list"
	var walk func(cmds []*cli.Command, prefix string)
	walk = func(cmds []*cli.Command, prefix string) {
		for _, c := range cmds {
			path := prefix + c.Name
			commands = append(commands, path)
			takesJSON := slices.ContainsFunc(c.Flags, func(f cli.Flag) bool { return slices.Contains(f.Names(), "json") })
			if takesJSON && !c.Hidden && !documents(path) {
				t.Errorf("`kintsugi %s` takes --json, but docs/cli-json.md has no section \"## `kintsugi %s --json`\" describing what it prints", path, path)
			}
			walk(c.Subcommands, path+" ")
		}
	}
	walk(app.Commands, "")
	if len(commands) < 20 {
		t.Fatalf("found only %d commands; the walk is broken", len(commands))
	}

	// Every section names a command there is.
	for _, h := range headings {
		if !slices.ContainsFunc(commands, func(path string) bool { return names(h, path) }) {
			t.Errorf("docs/cli-json.md has a section \"## `kintsugi %s\" for a command that does not exist", h)
		}
	}
}
