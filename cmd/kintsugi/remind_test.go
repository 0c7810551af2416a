package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRemindSystemdFiles: on writes a service that runs remind check for
// this home (quoted for systemd, whatever the path holds) and a daily
// timer, enables it; off disables it and removes both files.
func TestRemindSystemdFiles(t *testing.T) {
	sys := t.TempDir()
	if err := os.Mkdir(filepath.Join(sys, "systemd"), 0o700); err != nil {
		t.Fatal(err)
	}
	home := "/home/al ex/100% \"mine\"/kintsugi"
	r := remindSetup{sys: testRemindSys(sys), dir: home, hour: 8, minute: 5}
	if _, err := r.on(); err != nil {
		t.Fatal(err)
	}
	unit := remindUnit(home)
	svc, err := os.ReadFile(filepath.Join(sys, "units", unit+".service"))
	if err != nil {
		t.Fatal(err)
	}
	want := `ExecStart="/usr/local/bin/kintsugi" --home "/home/al ex/100%% \"mine\"/kintsugi" remind check`
	if !strings.Contains(string(svc), want+"\n") {
		t.Errorf("service:\n%s\nwant a line %s", svc, want)
	}
	timer, err := os.ReadFile(filepath.Join(sys, "units", unit+".timer"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"OnCalendar=*-*-* 08:05:00", "WantedBy=timers.target", "Persistent=true"} {
		if !strings.Contains(string(timer), l+"\n") {
			t.Errorf("timer:\n%s\nwant a line %s", timer, l)
		}
	}
	if how, at, err := r.status(); err != nil || how == "" || at != "08:05" {
		t.Errorf("status = %q, %q, %v; want a systemd timer at 08:05", how, at, err)
	}
	if found, err := r.off(); err != nil || !found {
		t.Fatalf("off = %v, %v", found, err)
	}
	left, _ := os.ReadDir(filepath.Join(sys, "units"))
	if len(left) != 0 {
		t.Errorf("off left %d files in the unit folder", len(left))
	}
	log, _ := os.ReadFile(filepath.Join(sys, "systemctl.log"))
	if got, want := string(log), "daemon-reload\nenable --now "+unit+".timer\ndisable --now "+unit+".timer\ndaemon-reload\n"; got != want {
		t.Errorf("systemctl calls:\n%s\nwant:\n%s", got, want)
	}
}

// TestRemindCrontab: on adds one line for this home, quoted for the
// shell and for cron's %; on again replaces it; off removes it and
// leaves every other line, another home's reminder included.
func TestRemindCrontab(t *testing.T) {
	sys := t.TempDir()
	other := "0 6 * * * backup-photos\n" + remindSetup{sys: testRemindSys(sys), dir: "/srv/other", hour: 9}.cronLine() + "\n"
	if err := os.WriteFile(filepath.Join(sys, "crontab"), []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	home := "/home/o'neil/50%/kintsugi"
	r := remindSetup{sys: testRemindSys(sys), dir: home, hour: 21, minute: 0}
	for range 2 {
		if _, err := r.on(); err != nil {
			t.Fatal(err)
		}
	}
	tab, _ := os.ReadFile(filepath.Join(sys, "crontab"))
	want := `0 21 * * * '/usr/local/bin/kintsugi' --home '/home/o'\''neil/50\%/kintsugi' remind check >/dev/null 2>&1 # kintsugi remind for ` + home
	if got := string(tab); got != other+want+"\n" {
		t.Errorf("crontab:\n%s\nwant:\n%s%s", got, other, want)
	}
	if how, at, err := r.status(); err != nil || how == "" || at != "21:00" {
		t.Errorf("status = %q, %q, %v; want a crontab line at 21:00", how, at, err)
	}
	if found, err := r.off(); err != nil || !found {
		t.Fatalf("off = %v, %v", found, err)
	}
	if tab, _ := os.ReadFile(filepath.Join(sys, "crontab")); string(tab) != other {
		t.Errorf("after off, crontab:\n%s\nwant:\n%s", tab, other)
	}
	if found, err := r.off(); err != nil || found {
		t.Errorf("a second off = %v, %v; want nothing found", found, err)
	}
}

func TestParseClock(t *testing.T) {
	for s, want := range map[string][2]int{"19:00": {19, 0}, "7:30": {7, 30}, " 00:05 ": {0, 5}} {
		h, m, err := parseClock(s)
		if err != nil || h != want[0] || m != want[1] {
			t.Errorf("parseClock(%q) = %d, %d, %v", s, h, m, err)
		}
	}
	for _, s := range []string{"24:00", "7", "7:3", "7:60", "seven", ""} {
		if _, _, err := parseClock(s); err == nil {
			t.Errorf("parseClock(%q) accepted it", s)
		}
	}
}
