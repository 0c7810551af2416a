package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
)

// Reminders without a server. `kintsugi remind on` sets up a user-level
// timer: a systemd user service and timer (in ~/.config/systemd/user,
// enabled with systemctl --user) where a systemd user manager runs, else a
// line in the user's crontab. The timer runs `kintsugi remind check` once
// a day at the chosen time, and (with systemd) a few minutes after login.
//
// remind check never asks for a passphrase. Everything on this device is
// encrypted, so while the journal is locked it can know nothing and stays
// silent; while an unlocked session runs (`kintsugi unlock`) it asks that
// session for the key, reads what is on this device (it does not sync),
// and, only when a question waits on this person or a commitment has no
// check-in for the day or week, shows one notification (notify-send) or
// prints one line. It says so at most once a day, and never names a
// person or quotes an entry: a notification can be seen over a shoulder
// and is kept in the desktop's history.

// remindSys is what reminders touch outside kintsugi's home: the systemd
// user units, the crontab, and the desktop's notifications. Tests use
// their own (KINTSUGI_TEST_REMIND_DIR); nothing else is mutable.
type remindSys struct {
	unitDir      string                         // where systemd user units go
	systemd      func() bool                    // whether a systemd user manager runs
	systemctl    func(args ...string) error     // runs systemctl --user ARGS
	readCrontab  func() (string, error)         // the user's crontab, "" when there is none
	writeCrontab func(string) error             // replaces the user's crontab
	notify       func(title, body string) error // shows a desktop notification
	exe          string                         // this program, as the timer runs it
}

// realRemindSys is the user's own systemd, crontab and desktop. A test
// binary never gets it: without KINTSUGI_TEST_REMIND_DIR it gets an
// error, so no test can touch the real user's timers.
func realRemindSys() (*remindSys, error) {
	if testing.Testing() {
		dir := os.Getenv("KINTSUGI_TEST_REMIND_DIR")
		if dir == "" {
			return nil, errors.New("a test ran remind without KINTSUGI_TEST_REMIND_DIR")
		}
		return testRemindSys(dir), nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	config := os.Getenv("XDG_CONFIG_HOME")
	if config == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return nil, err
		}
		config = filepath.Join(h, ".config")
	}
	return &remindSys{
		unitDir: filepath.Join(config, "systemd", "user"),
		systemd: func() bool {
			run := os.Getenv("XDG_RUNTIME_DIR")
			if run == "" {
				run = fmt.Sprintf("/run/user/%d", os.Getuid())
			}
			_, err := exec.LookPath("systemctl")
			fi, serr := os.Stat(filepath.Join(run, "systemd"))
			return err == nil && serr == nil && fi.IsDir()
		},
		systemctl: func(args ...string) error {
			out, err := exec.Command("systemctl", append([]string{"--user"}, args...)...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("systemctl --user %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
			}
			return nil
		},
		readCrontab: func() (string, error) {
			if _, err := exec.LookPath("crontab"); err != nil {
				return "", errNoCron
			}
			var stderr bytes.Buffer
			cmd := exec.Command("crontab", "-l")
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil && strings.Contains(strings.ToLower(stderr.String()), "no crontab") {
				return "", nil
			}
			if err != nil {
				return "", fmt.Errorf("crontab -l: %v: %s", err, strings.TrimSpace(stderr.String()))
			}
			return string(out), nil
		},
		writeCrontab: func(s string) error {
			cmd := exec.Command("crontab", "-")
			cmd.Stdin = strings.NewReader(s)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("crontab -: %v: %s", err, strings.TrimSpace(string(out)))
			}
			return nil
		},
		notify: func(title, body string) error {
			cmd := exec.Command("notify-send", "--app-name=Kintsugi", title, body)
			if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
				// cron gives no session bus; the desktop's is usually here.
				bus := fmt.Sprintf("/run/user/%d/bus", os.Getuid())
				if _, err := os.Stat(bus); err != nil {
					return errors.New("no desktop session")
				}
				cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS=unix:path="+bus)
			}
			return cmd.Run()
		},
		exe: exe,
	}, nil
}

// testRemindSys keeps everything under dir: units in dir/units, each
// systemctl call appended to dir/systemctl.log, the crontab in
// dir/crontab, each notification appended to dir/notified. A systemd
// user manager "runs" while dir/systemd exists, and notifications work
// while dir/desktop exists.
// errNoCron: there is no crontab command here, so no crontab either.
var errNoCron = errors.New("there is no cron on this computer")

func testRemindSys(dir string) *remindSys {
	exists := func(name string) bool { _, err := os.Stat(filepath.Join(dir, name)); return err == nil }
	appendTo := func(name, line string) error {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(f, line)
		return errors.Join(err, f.Close())
	}
	return &remindSys{
		unitDir:   filepath.Join(dir, "units"),
		systemd:   func() bool { return exists("systemd") },
		systemctl: func(args ...string) error { return appendTo("systemctl.log", strings.Join(args, " ")) },
		readCrontab: func() (string, error) {
			if exists("no-cron") {
				return "", errNoCron
			}
			b, err := os.ReadFile(filepath.Join(dir, "crontab"))
			if errors.Is(err, fs.ErrNotExist) {
				return "", nil
			}
			return string(b), err
		},
		writeCrontab: func(s string) error { return os.WriteFile(filepath.Join(dir, "crontab"), []byte(s), 0o600) },
		notify: func(title, body string) error {
			if !exists("desktop") {
				return errors.New("no desktop session")
			}
			return appendTo("notified", title+": "+body)
		},
		exe: "/usr/local/bin/kintsugi",
	}
}

// remindUnit is the name of the units for the home at dir (absolute):
// one pair per home, so two homes can each have reminders.
func remindUnit(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return fmt.Sprintf("kintsugi-remind-%x", sum[:4])
}

// cronMarker ends the crontab line of the home at dir, so that off
// removes that line and no other.
func cronMarker(dir string) string { return "# kintsugi remind for " + dir }

// systemdQuote quotes a word for a unit's ExecStart.
func systemdQuote(s string) string {
	s = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "$", "$$").Replace(s)
	return `"` + s + `"`
}

// shellQuote quotes a word for the shell cron runs a line with (where %
// also ends the command unless escaped).
func shellQuote(s string) string {
	return "'" + strings.NewReplacer("'", `'\''`, "%", `\%`).Replace(s) + "'"
}

// remindSetup is what `remind on` writes, for the home at dir.
type remindSetup struct {
	sys    *remindSys
	dir    string
	hour   int
	minute int
}

func (r remindSetup) service() string {
	return "[Unit]\n" +
		"Description=Kintsugi: a quiet reminder when something waits for you\n\n" +
		"[Service]\n" +
		"Type=oneshot\n" +
		"ExecStart=" + systemdQuote(r.sys.exe) + " --home " + systemdQuote(r.dir) + " remind check\n"
}

func (r remindSetup) timer() string {
	return "[Unit]\n" +
		"Description=Kintsugi reminder, once a day and after login\n\n" +
		"[Timer]\n" +
		fmt.Sprintf("OnCalendar=*-*-* %02d:%02d:00\n", r.hour, r.minute) +
		"OnStartupSec=3min\n" +
		"Persistent=true\n\n" +
		"[Install]\n" +
		"WantedBy=timers.target\n"
}

func (r remindSetup) cronLine() string {
	return fmt.Sprintf("%d %d * * * %s --home %s remind check >/dev/null 2>&1 %s", r.minute, r.hour, shellQuote(r.sys.exe), shellQuote(r.dir), cronMarker(r.dir))
}

// on sets the timer up (again, replacing an earlier one) and says how.
func (r remindSetup) on() (string, error) {
	unit := remindUnit(r.dir)
	if r.sys.systemd() {
		if err := os.MkdirAll(r.sys.unitDir, 0o700); err != nil {
			return "", err
		}
		for name, body := range map[string]string{unit + ".service": r.service(), unit + ".timer": r.timer()} {
			if err := os.WriteFile(filepath.Join(r.sys.unitDir, name), []byte(body), 0o600); err != nil {
				return "", err
			}
		}
		if err := r.sys.systemctl("daemon-reload"); err != nil {
			return "", err
		}
		if err := r.sys.systemctl("enable", "--now", unit+".timer"); err != nil {
			return "", err
		}
		return "a systemd user timer (" + filepath.Join(r.sys.unitDir, unit+".timer") + ")", nil
	}
	tab, err := r.sys.readCrontab()
	if err != nil {
		return "", err // errNoCron: no timer at all
	}
	tab = withoutLine(tab, cronMarker(r.dir)) + r.cronLine() + "\n"
	if err := r.sys.writeCrontab(tab); err != nil {
		return "", err
	}
	return "a line in your crontab", nil
}

// off removes what on set up, wherever it is, and reports whether there
// was anything.
func (r remindSetup) off() (bool, error) {
	unit := remindUnit(r.dir)
	found := false
	timer := filepath.Join(r.sys.unitDir, unit+".timer")
	if _, err := os.Stat(timer); err == nil {
		found = true
		if r.sys.systemd() {
			if err := r.sys.systemctl("disable", "--now", unit+".timer"); err != nil {
				return false, err
			}
		}
		for _, name := range []string{unit + ".timer", unit + ".service"} {
			if err := os.Remove(filepath.Join(r.sys.unitDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false, err
			}
		}
		if r.sys.systemd() {
			if err := r.sys.systemctl("daemon-reload"); err != nil {
				return false, err
			}
		}
	}
	tab, err := r.sys.readCrontab()
	if errors.Is(err, errNoCron) {
		return found, nil // nothing can be there
	}
	if err != nil {
		return found, err
	}
	if rest := withoutLine(tab, cronMarker(r.dir)); rest != tab {
		found = true
		if err := r.sys.writeCrontab(rest); err != nil {
			return found, err
		}
	}
	return found, nil
}

// status returns how reminders are set up for the home: "" when they are
// not, and the time they run at.
func (r remindSetup) status() (how, at string, err error) {
	unit := remindUnit(r.dir)
	if b, err := os.ReadFile(filepath.Join(r.sys.unitDir, unit+".timer")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if t, ok := strings.CutPrefix(l, "OnCalendar=*-*-* "); ok {
				at = strings.TrimSuffix(t, ":00")
			}
		}
		return "a systemd user timer", at, nil
	}
	tab, err := r.sys.readCrontab()
	if errors.Is(err, errNoCron) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	for _, l := range strings.Split(tab, "\n") {
		if strings.HasSuffix(l, cronMarker(r.dir)) {
			var m, h int
			if _, err := fmt.Sscanf(l, "%d %d", &m, &h); err == nil {
				at = fmt.Sprintf("%02d:%02d", h, m)
			}
			return "a line in your crontab", at, nil
		}
	}
	return "", "", nil
}

// withoutLine returns tab without the lines ending in marker.
func withoutLine(tab, marker string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(tab, "\n") {
		if l == "" || strings.HasSuffix(strings.TrimRight(l, "\n"), marker) {
			continue
		}
		b.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// parseClock reads --at: "19:00", "7:30".
func parseClock(s string) (hour, minute int, err error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hour, herr := strconv.Atoi(h)
	minute, merr := strconv.Atoi(m)
	if !ok || herr != nil || merr != nil || hour < 0 || hour > 23 || minute < 0 || minute > 59 || len(m) != 2 {
		return 0, 0, usageError(fmt.Sprintf("%q is not a time of day", s), "write it on a 24-hour clock, like --at 19:00 or --at 7:30")
	}
	return hour, minute, nil
}

// shownPath is where remind check notes the day it last said something:
// a date, nothing else.
func (e *env) shownPath() string { return filepath.Join(e.home.Dir, "remind-shown") }

// remindMessage words what waits, or "" when nothing does. It names no
// one and quotes nothing.
func remindMessage(d client.Due) string {
	var parts []string
	switch {
	case d.Questions == 1:
		parts = append(parts, "a question is waiting for your answer")
	case d.Questions > 1:
		parts = append(parts, fmt.Sprintf("%d questions are waiting for your answer", d.Questions))
	}
	switch {
	case d.Checkins == 1:
		parts = append(parts, "a commitment has no check-in yet for today or this week")
	case d.Checkins > 1:
		parts = append(parts, fmt.Sprintf("%d commitments have no check-in yet for today or this week", d.Checkins))
	}
	if len(parts) == 0 {
		return ""
	}
	return upperFirst(strings.Join(parts, ", and ")) + ". Whenever you are ready; there is no hurry."
}

func cmdRemind(e *env) *cli.Command {
	setup := func() (remindSetup, error) {
		sys, err := realRemindSys()
		if err != nil {
			return remindSetup{}, err
		}
		dir, err := filepath.Abs(e.home.Dir)
		if err != nil {
			return remindSetup{}, err
		}
		return remindSetup{sys: sys, dir: dir, hour: 19}, nil
	}
	return &cli.Command{
		Name:  "remind",
		Usage: "a quiet daily reminder on this computer when something waits for you (opt-in)",
		Description: "`kintsugi remind on` sets up a timer for your user (systemd, or cron where there is\n" +
			"no systemd) that runs `kintsugi remind check` once a day, and after you log in.\n" +
			"It never asks for your passphrase: while your journal is locked it cannot read\n" +
			"anything, so it stays silent. While you are unlocked (`kintsugi unlock`), it shows\n" +
			"one notification, at most once a day, when a question waits for your answer or a\n" +
			"commitment has no check-in yet. It names no one and quotes nothing.",
		Subcommands: []*cli.Command{
			{
				Name:  "on",
				Usage: "set up the daily reminder for this home",
				Flags: []cli.Flag{&cli.StringFlag{Name: "at", Value: "19:00", Usage: "the time of day, on a 24-hour clock"}},
				Action: func(c *cli.Context) error {
					if !e.home.Exists() {
						return client.ErrNoHome
					}
					r, err := setup()
					if err != nil {
						return err
					}
					if r.hour, r.minute, err = parseClock(c.String("at")); err != nil {
						return err
					}
					if _, err := r.off(); err != nil { // one timer per home, wherever it was
						return err
					}
					how, err := r.on()
					if errors.Is(err, errNoCron) {
						return fail("this computer has no timer kintsugi can use: no systemd user session and no cron", "nothing was set up; `kintsugi remind check` can still run at login, for example from ~/.profile or your desktop's startup programs")
					}
					if err != nil {
						return fail(fmt.Sprintf("could not set up the reminder: %v", err), "`kintsugi remind off` removes whatever part of it was set up")
					}
					e.printf("Reminders are on: %s runs `kintsugi remind check` each day at %02d:%02d.\n", how, r.hour, r.minute)
					e.printf("It never asks for your passphrase, so it can only see anything while you are unlocked (`kintsugi unlock`).\n")
					e.printf("`kintsugi remind off` turns them off.\n")
					return nil
				},
			},
			{
				Name:  "off",
				Usage: "remove the daily reminder",
				Action: func(c *cli.Context) error {
					r, err := setup()
					if err != nil {
						return err
					}
					found, err := r.off()
					if err != nil {
						return fail(fmt.Sprintf("could not remove the reminder: %v", err), "try again; `kintsugi remind status` shows what is set up")
					}
					if !found {
						e.printf("Reminders were not on for this home; nothing to remove.\n")
						return nil
					}
					e.printf("Reminders are off; the timer is removed.\n")
					return nil
				},
			},
			{
				Name:  "status",
				Usage: "say whether reminders are on, and what they can see now",
				Action: func(c *cli.Context) error {
					r, err := setup()
					if err != nil {
						return err
					}
					how, at, err := r.status()
					if err != nil {
						return err
					}
					if how == "" {
						e.printf("Reminders are off. `kintsugi remind on` sets up a quiet daily one.\n")
						return nil
					}
					e.printf("Reminders are on: %s, each day at %s.\n", how, at)
					if b, err := os.ReadFile(e.shownPath()); err == nil {
						e.printf("Last reminder: %s.\n", strings.TrimSpace(string(b)))
					}
					if e.home.Exists() && e.unlockFromAgent() != nil {
						e.printf("You are unlocked now, so a reminder can see what waits for you.\n")
					} else {
						e.printf("You are locked now, so a reminder cannot see anything and stays silent.\n")
					}
					return nil
				},
			},
			{
				Name:   "check",
				Usage:  "what the timer runs: say once a day if something waits for you (never asks for a passphrase)",
				Action: func(c *cli.Context) error { return e.remindCheck(time.Now()) },
			},
		},
	}
}

// remindCheck is `remind check`: quiet unless something waits and this
// is the first time today; never asks for a passphrase.
func (e *env) remindCheck(now time.Time) error {
	if !e.home.Exists() {
		return nil
	}
	today := now.Format("2006-01-02")
	if b, err := os.ReadFile(e.shownPath()); err == nil && strings.TrimSpace(string(b)) == today {
		return nil
	}
	a := e.unlockFromAgent()
	if a == nil {
		return nil // locked: nothing here can be read, and nothing is asked
	}
	ids, err := a.Journals()
	if err != nil {
		return err
	}
	var due client.Due
	for _, id := range ids {
		j, err := a.OpenJournal(id)
		if err != nil {
			return err
		}
		e.track(j)
		r, err := j.Reader()
		var d client.Due
		if err == nil {
			d, err = r.Due(now)
		}
		j.Close()
		if err != nil {
			return err
		}
		due.Questions += d.Questions
		due.Checkins += d.Checkins
	}
	msg := remindMessage(due)
	if msg == "" {
		return nil
	}
	sys, err := realRemindSys()
	if err != nil {
		return err
	}
	if err := sys.notify("Kintsugi", msg); err != nil {
		e.printf("Kintsugi: %s\n", msg)
	}
	return os.WriteFile(e.shownPath(), []byte(today+"\n"), 0o600)
}
