package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/client/agent"
	"github.com/kintsugi-journal/kintsugi/ui"
)

// `kintsugi ui`: the journal as pages in the person's own browser, served
// by this process on 127.0.0.1 (package ui holds the server and says how
// it is kept safe). This file owns what a command owns: flags, the
// listener, the browser and when to stop.

func cmdUI(e *env) *cli.Command {
	return &cli.Command{
		Name:  "ui",
		Usage: "read and write in your browser, served by kintsugi on this computer only",
		Description: "Prints a link that works once, in one browser, and opens it when a browser is available.\n" +
			"The pages come from this process on 127.0.0.1: your keys stay here and nothing is hosted anywhere.\n" +
			"While it runs it stays in sync, so your partner's entries appear on the open page.\n" +
			"Ctrl-C (or closing the terminal) stops it; it locks itself after 30 minutes without use.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "the loopback address and port to serve on", Value: "127.0.0.1:0", DefaultText: "127.0.0.1 and a free port"},
			&cli.StringFlag{Name: "for", Usage: "stop after this long, like 2h (default: until Ctrl-C)"},
			&cli.BoolFlag{Name: "no-open", Usage: "only print the link; do not start a browser"},
		},
		Action: func(c *cli.Context) error {
			addr := c.String("listen")
			if err := ui.CheckListen(addr); err != nil {
				if errors.Is(err, ui.ErrNotLoopback) {
					return usageError(fmt.Sprintf("--listen %s could be reached from other computers, and kintsugi ui only serves this one", addr), "use a loopback address, like --listen 127.0.0.1:8080, or leave --listen out for a free port")
				}
				return usageError(fmt.Sprintf("--listen %q is not an address and port", addr), "write it like --listen 127.0.0.1:8080")
			}
			ctx := e.ctx
			if s := c.String("for"); s != "" {
				d, bare, err := parseLength(s)
				hint := "write how long, like --for 30m or --for 2h"
				switch {
				case bare:
					return usageError(fmt.Sprintf("--for %s needs a unit", s), hint)
				case err != nil || d <= 0:
					return usageError(fmt.Sprintf("--for %q is not a length of time kintsugi understands", s), hint)
				}
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			if !e.home.Exists() {
				return client.ErrNoHome
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fail(fmt.Sprintf("could not listen on %s (%v)", addr, err), "another program may be using that port; leave --listen out to use a free one")
			}
			srv, err := ui.New(ui.Config{
				Keys: uiKeys{e},
				Open: func(a *client.Account) (*client.Journal, error) {
					return a.Current(e.journal)
				},
				Describe: describe,
				Head: func(en client.Entry, byID ui.Entries) (string, bool) {
					return entryHead(en, byID, toYou)
				},
				Notes: func(j *client.Journal) []string {
					// What `kintsugi log` notes under its listing, in
					// the same words: printed into a buffer by a copy of
					// the environment (requests run concurrently).
					var b strings.Builder
					quiet := *e
					quiet.stdout = &b
					quiet.notes(j, notesUnderLog, true)
					return strings.FieldsFunc(b.String(), func(r rune) bool { return r == '\n' })
				},
				Sentence: sentence,
				Export:   exportBytes,
				Feelings: feelingWords,
				Kinds:    knownKinds,
				IdleLock: defaultSession,
			}, ln)
			if err != nil {
				ln.Close()
				return err
			}
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx) }()
			e.printf("Your journal is at this link, on this computer only (it works once, in one browser):\n\n  %s\n\n", srv.URL())
			if !c.Bool("no-open") {
				if cleanup, ok := openBrowser(srv.URL()); ok {
					defer cleanup()
					e.printf("Opening it in your browser now.\n")
				}
			}
			e.printf("Press Ctrl-C to stop. The page locks itself after %s without use.\n", span(defaultSession))
			err = <-done
			if err != nil {
				return err
			}
			if e.ctx.Err() != nil {
				fmt.Fprintf(e.stderr, "Stopped. The pages no longer answer; everything you wrote is saved on this device.\n")
				return &userError{silent: true, err: context.Canceled}
			}
			e.printf("Stopped after the time you asked for. Everything you wrote is saved on this device.\n")
			return nil
		},
	}
}

// uiKeys gives the ui server the unlock agent and the key file, as the
// other commands use them.
type uiKeys struct{ e *env }

func (k uiKeys) Agent(context.Context) *client.Account { return k.e.unlockFromAgent() }

func (k uiKeys) Passphrase(p []byte) (*client.Account, error) { return client.Unlock(k.e.home, p) }

func (k uiKeys) LockAgent(ctx context.Context) {
	if dir, err := filepath.Abs(k.e.home.Dir); err == nil {
		agent.Lock(ctx, dir)
	}
}

// openBrowser opens url in the person's browser when there is one to
// open: a desktop session (a display on Linux and the BSDs) and
// xdg-open, or open on macOS. It never fails the command. The link is
// passed through a private file that redirects to it, as Jupyter does,
// so the token is not in a command line other users can read; cleanup
// removes the file.
func openBrowser(url string) (cleanup func(), ok bool) {
	opener := "xdg-open"
	switch runtime.GOOS {
	case "darwin":
		opener = "open"
	case "windows":
		return nil, false
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return nil, false
		}
	}
	path, err := exec.LookPath(opener)
	if err != nil {
		return nil, false
	}
	dir, err := os.MkdirTemp("", "kintsugi-ui-")
	if err != nil {
		return nil, false
	}
	cleanup = func() { os.RemoveAll(dir) }
	page := filepath.Join(dir, "open.html")
	html := fmt.Sprintf("<!doctype html><meta charset=utf-8><meta name=referrer content=no-referrer><meta http-equiv=refresh content=\"0;url=%s\"><title>Kintsugi</title><a href=\"%s\">Open your journal</a>\n", url, url)
	if err := os.WriteFile(page, []byte(html), 0o600); err != nil {
		cleanup()
		return nil, false
	}
	cmd := exec.Command(path, page)
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, false
	}
	go cmd.Wait()
	return cleanup, true
}
