package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// testBinaryAs returns a path that runs this test binary as the command
// name registered in TestMain.
func testBinaryAs(t *testing.T, name string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// A `kintsugi write` killed outright (SIGKILL) while the editor is open
// leaves its draft folder, with the words in the clear; the next kintsugi
// command, whatever it is, wipes it and says so.
func TestDraftLeftByAKilledWriteIsWiped(t *testing.T) {
	t.Parallel()
	shm := t.TempDir() // stands in for /dev/shm
	editor := filepath.Join(t.TempDir(), "editor")
	// The editor saves, then the kintsugi process dies before it can
	// clean up.
	script := "#!/bin/sh\nprintf 'words I never meant to leave lying around' > \"$1\"\nkill -KILL \"$KINTSUGI_TEST_PID\"\nsleep 5\n"
	if err := os.WriteFile(editor, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "KINTSUGI_TEST_DRAFT_DIR="+shm, "VISUAL=", "EDITOR="+editor)
	cmd := exec.Command(testBinaryAs(t, "kintsugi-edit"))
	cmd.Env = env
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the editing process was not killed: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(shm, draftPrefix+"*", "entry.txt"))
	if len(left) != 1 {
		t.Fatalf("the killed write left %q; the test proves nothing", left)
	}
	if b, _ := os.ReadFile(left[0]); !bytes.Contains(b, []byte("never meant")) {
		t.Fatalf("the left draft holds %q", b)
	}

	// Any later command sweeps it.
	run := exec.Command(testBinaryAs(t, "kintsugi"), "--home", filepath.Join(t.TempDir(), "home"), "status")
	run.Env = env
	var stderr bytes.Buffer
	run.Stderr = &stderr
	run.Run()
	if ents, _ := os.ReadDir(shm); len(ents) != 0 {
		t.Fatalf("after the next command, %s still holds %v", shm, ents)
	}
	if !strings.Contains(stderr.String(), "kintsugi: note: a draft that an earlier kintsugi left open in the editor when it was stopped suddenly was wiped") {
		t.Errorf("the next command did not say so:\n%s", stderr.String())
	}
}

// The sweep wipes only stale draft folders of this user's: never one a
// live process holds, never a link (nor what it points to), never a
// folder of another name, and folders of earlier versions only once they
// are a day old.
func TestSweepDraftsOnlyStaleOnes(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	now := time.Now()
	mk := func(name string, mtime time.Time) string {
		t.Helper()
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "entry.txt"), []byte("private words"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{filepath.Join(p, "entry.txt"), p} {
			if err := os.Chtimes(q, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	stale := mk(draftPrefix+"111", now)
	oldLegacy := mk("kintsugi-222", now.Add(-48*time.Hour))
	newLegacy := mk("kintsugi-333", now.Add(-time.Hour))
	demo := mk("kintsugi-demo-444", now.Add(-48*time.Hour))
	// A live draft: a process of ours holds it (this test, here).
	live, err := newDraftDir(base)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := os.WriteFile(filepath.Join(live.path, "entry.txt"), []byte("being written"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A link named like a draft, to a folder that is not one.
	target := mk("elsewhere", now.Add(-48*time.Hour))
	link := filepath.Join(base, draftPrefix+"666")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	// A draft-named folder others may read is not one kintsugi made.
	loose := mk(draftPrefix+"777", now.Add(-48*time.Hour))
	if err := os.Chmod(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	var foreign string
	if os.Getuid() == 0 {
		foreign = mk(draftPrefix+"888", now.Add(-48*time.Hour))
		if err := os.Chown(foreign, 4242, 4242); err != nil {
			t.Fatal(err)
		}
	}

	if n := sweepDrafts([]string{base}, now); n != 2 {
		t.Errorf("swept %d folders, want 2 (the stale draft and the old legacy one)", n)
	}
	for _, gone := range []string{stale, oldLegacy} {
		if _, err := os.Lstat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was not swept: %v", filepath.Base(gone), err)
		}
	}
	for _, kept := range []string{newLegacy, demo, live.path, link, filepath.Join(target, "entry.txt"), loose, foreign} {
		if kept == "" {
			continue
		}
		if _, err := os.Lstat(kept); err != nil {
			t.Errorf("%s was swept: %v", kept, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(target, "entry.txt")); string(b) != "private words" {
		t.Errorf("the link's target was changed: %q", b)
	}
}

// Ctrl-C in the editor, as a terminal sends it to the whole foreground
// process group (kintsugi, the shell and the editor), is the person
// stopping: kintsugi exits 130, says so kindly, keeps what was written as
// a draft and says how to pick it up again, without the advice for an
// entry that is too long.
func TestEditorInterruptKeepsDraft(t *testing.T) {
	home := newHome(t)
	r := servertest.NewServer(t)
	must(t, "--home", home, "journal", "create", "--relay", r.URL())
	editor := filepath.Join(t.TempDir(), "editor")
	script := "#!/bin/sh\nprintf 'I could not finish this tonight' > \"$1\"\nkill -INT 0\nsleep 5\n"
	if err := os.WriteFile(editor, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VISUAL", "")
	t.Setenv("EDITOR", editor)
	cmd := exec.Command(testBinaryAs(t, "kintsugi-tty"), "--home", home, "write")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, as a terminal's foreground job
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("write stopped with %v, want exit status %d\n%s", err, exitInterrupted, stderr.String())
	}
	got := stderr.String()
	m := regexp.MustCompile("(?m)^kintsugi: you stopped the editor, so what you wrote there was not saved as your entry\nkintsugi: hint: what you wrote is kept, locked, on this device as draft ([0-9a-f]{8}): `kintsugi write --draft ([0-9a-f]{8})` opens it in your editor again, and `kintsugi draft show [0-9a-f]{8}` prints it\n$").FindStringSubmatch(got)
	if m == nil || m[1] != m[2] {
		t.Fatalf("stderr:\n%s", got)
	}
	for _, wrong := range []string{"closed with an error", "signal", "shorten", "in parts"} {
		if strings.Contains(got, wrong) {
			t.Errorf("stderr says %q:\n%s", wrong, got)
		}
	}
	if out := must(t, "--home", home, "draft", "show", m[1]); out != "I could not finish this tonight\n" {
		t.Errorf("draft show: %q", out)
	}
}

// An editor killed by Ctrl-C on its own, or exiting 130 as a shell
// reports it, is stopped too; with nothing written, nothing is kept and
// it says so, with the same exit status.
func TestEditorInterruptWithNothingWritten(t *testing.T) {
	home := newHome(t)
	r := servertest.NewServer(t)
	must(t, "--home", home, "journal", "create", "--relay", r.URL())
	for _, body := range []string{`kill -INT $$`, `exit 130`} {
		useEditor(t, body)
		_, stderr, err := kintsugi(t, context.Background(), "--home", home, "ask")
		if exitStatus(err) != exitInterrupted || stderr != "kintsugi: you stopped the editor, so nothing new was written\nkintsugi: hint: nothing was saved; run the command again whenever you are ready\n" {
			t.Errorf("editor %q: exit %d\n%s", body, exitStatus(err), stderr)
		}
		useEditor(t, `echo 'Where were you really?' > "$1"; `+body)
		_, stderr, err = kintsugi(t, context.Background(), "--home", home, "ask")
		if exitStatus(err) != exitInterrupted || !strings.Contains(stderr, "kintsugi: you stopped the editor, so what you wrote there was not saved as your question\n") || !strings.Contains(stderr, "`kintsugi ask --draft ") {
			t.Errorf("editor %q: exit %d\n%s", body, exitStatus(err), stderr)
		}
	}
	if out := must(t, "--home", home, "draft"); strings.Count(out, "“Where were you really?”") != 2 {
		t.Errorf("draft list:\n%s", out)
	}
}

// An editor setting is a line of shell, as for git: one that sets a
// variable first, or falls back to another editor, runs as typed; an
// editor killed by Ctrl-C reads as stopped through the shell either way.
func TestRunEditorTakesAShellLine(t *testing.T) {
	dir := t.TempDir()
	editor := filepath.Join(dir, "editor")
	if err := os.WriteFile(editor, []byte("#!/bin/sh\nprintf '%s' \"$WORDS\" > \"$1\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "text")
	for _, line := range []string{"WORDS=hello " + editor, "false || WORDS=hello " + editor} {
		if err := runEditor(line, path); err != nil {
			t.Fatalf("editor %q: %v", line, err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != "hello" {
			t.Errorf("editor %q wrote %q, %v", line, b, err)
		}
	}
	if err := runEditor(`sh -c 'kill -INT $$'`, path); !editorInterrupted(err) {
		t.Errorf("an editor killed by SIGINT: %v, not read as stopped", err)
	}
}
