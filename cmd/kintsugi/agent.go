package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/client/agent"
	"github.com/kintsugi-journal/kintsugi/crypto"
)

// An unlocked session: `kintsugi unlock` checks the passphrase once and
// starts an agent (package client/agent) that holds the key file's file key
// for a while; env.unlock asks it first and falls back to the passphrase.
// `kintsugi passphrase` locks the session: its key opens only the old key
// file, and someone changing their passphrase may fear the old one is
// known.

const (
	defaultSession = 30 * time.Minute
	maxSession     = 24 * time.Hour
	minSession     = time.Minute
	// agentCommand is the hidden command the agent process runs.
	agentCommand = "_agent"
)

// minSessionLength is the shortest --for. A test binary may lower it to a
// second with KINTSUGI_TEST_SHORT_SESSION=1, to see a session expire; a
// real kintsugi binary ignores that variable.
func minSessionLength() time.Duration {
	if testing.Testing() && os.Getenv("KINTSUGI_TEST_SHORT_SESSION") == "1" {
		return time.Second
	}
	return minSession
}

// parseSession reads --for: Go durations ("30m", "1h30m") and the words
// people write ("45 minutes", "2 hours", "1 hour 30 min").
func parseSession(s string) (time.Duration, error) {
	hint := "write how long, like --for 30m, --for 2h or --for 1h30m"
	if strings.TrimSpace(s) == "" {
		return 0, usageError("--for needs a length of time", hint)
	}
	d, bare, err := parseLength(s)
	if bare {
		return 0, usageError(fmt.Sprintf("--for %s needs a unit", s), hint)
	}
	if err != nil {
		return 0, usageError(fmt.Sprintf("--for %q is not a length of time kintsugi understands", s), hint)
	}
	if min := minSessionLength(); d < min {
		return 0, usageError(fmt.Sprintf("--for %s is shorter than %s, the shortest an unlocked session can be", s, span(min)), hint)
	}
	if d > maxSession {
		return 0, usageError(fmt.Sprintf("--for %s is longer than a day, the longest an unlocked session can last", s), "choose a shorter time, such as --for 8h, and unlock again when you need to")
	}
	return d, nil
}

func cmdUnlock(e *env) *cli.Command {
	return &cli.Command{
		Name:  "unlock",
		Usage: "keep your keys unlocked for a while, so commands do not ask for your passphrase each time",
		Description: "Asks for your passphrase once, then a small agent process keeps the key that opens your\n" +
			"key file in memory, reachable only by you, until the time is up or you run `kintsugi lock`.\n" +
			"Running it again while unlocked starts a fresh session for the new length of time.\n" +
			"Changing your passphrase locks the session.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "for", Usage: "how long to stay unlocked, up to 24h", Value: "30m"},
			&cli.BoolFlag{Name: "status", Usage: "only say whether you are unlocked, and for how long"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("status") {
				return e.sessionStatus(c.Bool("json"))
			}
			d, err := parseSession(c.String("for"))
			if err != nil {
				return err
			}
			if !e.home.Exists() {
				return client.ErrNoHome
			}
			dir, err := filepath.Abs(e.home.Dir)
			if err != nil {
				return err
			}
			p, err := e.passphrase(false)
			if err != nil {
				return err
			}
			_, key, err := client.UnlockKey(e.home, p)
			clear(p)
			if err != nil {
				return err
			}
			defer clear(key[:])
			// A second unlock replaces the session: the old agent wipes its
			// key and exits before the new one starts.
			replaced := false
			ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
			err = agent.Lock(ctx, dir)
			cancel()
			if err == nil {
				replaced = true
			}
			expires := time.Now().Add(d)
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the kintsugi program to start the unlocked session: %w", err)
			}
			args := []string{os.Args[0], "--home", dir, agentCommand}
			pid, err := agent.Start(exe, args, childEnv(), key, expires)
			if err != nil {
				return describeAgent(err, dir)
			}
			if c.Bool("json") {
				return e.json(map[string]any{"unlocked": true, "until": expires.UTC().Format(time.RFC3339), "seconds": int(d.Seconds()), "replaced": replaced, "pid": pid})
			}
			again := ""
			if replaced {
				again = " again"
			}
			e.printf("Unlocked%s for %s, until %s. Commands will not ask for your passphrase until then.\n", again, span(d), clock(expires))
			e.printf("While it is unlocked, anyone who can use this computer as you can read your journal too; `kintsugi lock` locks it sooner.\n")
			return nil
		},
	}
}

func cmdLock(e *env) *cli.Command {
	return &cli.Command{
		Name:  "lock",
		Usage: "forget the unlocked keys now; commands ask for your passphrase again",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"}},
		Action: func(c *cli.Context) error {
			dir, err := filepath.Abs(e.home.Dir)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
			defer cancel()
			err = agent.Lock(ctx, dir)
			was := err == nil
			if err != nil && !errors.Is(err, agent.ErrNotRunning) {
				return describeAgent(err, dir)
			}
			if c.Bool("json") {
				return e.json(map[string]any{"locked": true, "was_unlocked": was})
			}
			if was {
				e.printf("Locked. Your keys are no longer held in memory; commands will ask for your passphrase again.\n")
			} else {
				e.printf("Nothing was unlocked, so there was nothing to lock. Your keys are locked.\n")
			}
			return nil
		},
	}
}

// cmdAgent is the agent process that `kintsugi unlock` starts.
func cmdAgent(e *env) *cli.Command {
	return &cli.Command{
		Name:   agentCommand,
		Hidden: true,
		Usage:  "the unlocked session's agent (started by `kintsugi unlock`)",
		Action: func(c *cli.Context) error {
			agent.Harden()
			recordTestAgent()
			return agent.RunChild(e.ctx, e.home.Dir)
		},
	}
}

// recordTestAgent notes the agent's pid in $KINTSUGI_TEST_AGENT_PIDS, so
// the test harness can check that no agent outlives its test. A real
// kintsugi binary ignores that variable.
func recordTestAgent() {
	dir := os.Getenv("KINTSUGI_TEST_AGENT_PIDS")
	if !testing.Testing() || dir == "" {
		return
	}
	pid := strconv.Itoa(os.Getpid())
	if os.MkdirAll(dir, 0o700) == nil {
		os.WriteFile(filepath.Join(dir, pid), []byte(pid), 0o600)
	}
}

// unlockFromAgent returns the account opened with the unlocked session's
// key, or nil when there is no session (or a stale or unreadable one): the
// caller then asks for the passphrase, as without a session.
func (e *env) unlockFromAgent() *client.Account {
	dir, err := filepath.Abs(e.home.Dir)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	key, err := agent.Key(ctx, dir)
	if err != nil {
		return nil
	}
	defer clear(key[:])
	a, err := client.UnlockWithKey(e.home, key)
	if errors.Is(err, crypto.ErrWrongFileKey) {
		agent.Lock(ctx, dir)
		fmt.Fprintln(e.stderr, "kintsugi: note: your key file has changed since you unlocked, so that session is locked now; your passphrase is needed again")
		return nil
	}
	if err != nil {
		return nil
	}
	return a
}

// lockAfterChange locks the unlocked session after the passphrase changed,
// and reports whether there was one.
func (e *env) lockAfterChange() bool {
	dir, err := filepath.Abs(e.home.Dir)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	return agent.Lock(ctx, dir) == nil
}

// sessionStatus prints whether an unlocked session is running.
func (e *env) sessionStatus(asJSON bool) error {
	dir, err := filepath.Abs(e.home.Dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	info, err := agent.Status(ctx, dir)
	if err != nil && !errors.Is(err, agent.ErrNotRunning) {
		return describeAgent(err, dir)
	}
	on := err == nil
	if asJSON {
		out := map[string]any{"unlocked": on}
		if on {
			out["until"] = info.Expires.UTC().Format(time.RFC3339)
			out["seconds_left"] = max(0, int(time.Until(info.Expires).Seconds()))
			out["pid"] = info.PID
		}
		return e.json(out)
	}
	if on {
		e.printf("Unlocked for %s, until %s. `kintsugi lock` locks it now.\n", left(info.Expires), clock(info.Expires))
	} else {
		e.printf("Locked: commands ask for your passphrase.\n")
	}
	return nil
}

// sessionLine is a line for `kintsugi status` when a session is unlocked.
func (e *env) sessionLine() {
	dir, err := filepath.Abs(e.home.Dir)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	if info, err := agent.Status(ctx, dir); err == nil {
		e.printf("Unlocked:   for %s (`kintsugi lock` locks it now)\n", left(info.Expires))
	}
}

// describeAgent words an agent error for a person.
func describeAgent(err error, dir string) error {
	switch {
	case errors.Is(err, agent.ErrRunning):
		return fail("another unlocked session is running here and did not answer", "wait a moment and try again; `kintsugi lock` ends it")
	case errors.Is(err, agent.ErrPathTooLong):
		return fail(fmt.Sprintf("the path of your kintsugi home (%s) is too long for an unlocked session", dir), "use a shorter --home; commands still work with your passphrase")
	case errors.Is(err, agent.ErrHomeOpen):
		return fail(fmt.Sprintf("your kintsugi home (%s) can be opened by other users, so an unlocked session there would not be private", dir), fmt.Sprintf("make it private with `chmod 700 %s`, then unlock again", dir))
	case errors.Is(err, agent.ErrOtherUser):
		return fail("the unlocked session's socket belongs to another user, so kintsugi will not use it", fmt.Sprintf("remove %s and unlock again", agent.SocketPath(dir)))
	case errors.Is(err, agent.ErrProtocol):
		return fail("the unlocked session is from a different version of kintsugi", "end it with `kill` on its process, or wait for it to expire; commands still work with your passphrase")
	}
	return err
}

// span says a duration in words: "30 minutes", "1 hour 30 minutes".
func span(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	var parts []string
	if h > 0 {
		parts = append(parts, plural(h, "hour", "hours"))
	}
	if m > 0 {
		parts = append(parts, plural(m, "minute", "minutes"))
	}
	if s > 0 && h == 0 {
		parts = append(parts, plural(s, "second", "seconds"))
	}
	if len(parts) == 0 {
		return "no time"
	}
	return strings.Join(parts, " ")
}

// left says how much longer a session lasts, until t: "another hour",
// "another 2 hours and 5 minutes" (see remaining).
func left(t time.Time) string { return remaining(time.Until(t)) }

// remaining says how much longer something lasts that has d to go,
// rounded up to minutes, after "for": "another hour", "another 10
// minutes", "another hour and 30 minutes", "less than a minute more".
func remaining(d time.Duration) string {
	if d < time.Minute {
		return "less than a minute more"
	}
	d = (d + time.Minute - 1).Truncate(time.Minute)
	h, m := int(d.Hours()), int(d.Minutes())%60
	var parts []string
	switch {
	case h == 1:
		parts = append(parts, "hour")
	case h > 1:
		parts = append(parts, plural(h, "hour", "hours"))
	}
	switch {
	case m == 1 && h == 0:
		parts = append(parts, "minute")
	case m > 0:
		parts = append(parts, plural(m, "minute", "minutes"))
	}
	return "another " + strings.Join(parts, " and ")
}

// clock says when t is: "15:04" today, else with the day.
func clock(t time.Time) string {
	t = t.Local()
	if y, m, d := t.Date(); y == time.Now().Year() && m == time.Now().Month() && d == time.Now().Day() {
		return t.Format("15:04")
	}
	return t.Format("Mon 2 Jan 15:04")
}
