package main

//go:generate go run . __docs ../../docs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/urfave/cli/v2"
)

// docFiles are the files cliDocs writes, under docs/.
var docFiles = []string{"cli.md", filepath.Join("man", "kintsugi.1")}

// cliDocs returns docs/cli.md and docs/man/kintsugi.1, written from the
// command definitions and the exit statuses, so that they cannot drift
// from the code. `go generate ./cmd/kintsugi` writes them;
// TestDocsUpToDate fails when the committed ones are stale.
func cliDocs() (md, man string, err error) {
	app := newApp(&env{ctx: context.Background(), stdout: io.Discard, stderr: io.Discard}, new(error))
	// urfave/cli writes only each command's Usage: add how it is typed
	// and its description (in this copy of the app, not the one run).
	var describe func(cmds []*cli.Command, path string)
	describe = func(cmds []*cli.Command, path string) {
		for _, c := range cmds {
			p := path + " " + c.Name
			synopsis := p
			if len(c.Subcommands) > 0 {
				synopsis += " COMMAND"
			} else if len(c.VisibleFlags()) > 0 {
				synopsis += " [options]"
			}
			if c.ArgsUsage != "" {
				synopsis += " " + c.ArgsUsage
			}
			c.Usage += "\n\n`" + synopsis + "`"
			if c.Description != "" {
				c.Usage += "\n\n" + c.Description
			}
			describe(c.Subcommands, p)
		}
	}
	describe(app.Commands, app.Name)
	body, err := app.ToMarkdown()
	if err != nil {
		return "", "", err
	}
	var exit strings.Builder
	exit.WriteString("\n# EXIT STATUS\n\n| status | meaning |\n| --- | --- |\n")
	for _, s := range exitStatuses {
		fmt.Fprintf(&exit, "| %d | %s |\n", s.code, s.meaning)
	}
	body = strings.TrimRight(body, "\n") + "\n" + exit.String()
	md = "<!-- Generated from the command definitions by `go generate ./cmd/kintsugi`; do not edit. -->\n\n" + body
	man = string(md2man.Render([]byte("% kintsugi 1\n\n" + body)))
	return md, man, nil
}

// cmdDocs is the hidden `kintsugi __docs DIR`, which writes cliDocs'
// files under DIR (go generate runs it).
func cmdDocs() *cli.Command {
	return &cli.Command{
		Name:   "__docs",
		Hidden: true,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError("__docs takes the docs folder", "")
			}
			md, man, err := cliDocs()
			if err != nil {
				return err
			}
			for i, text := range []string{md, man} {
				path := filepath.Join(c.Args().First(), docFiles[i])
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
