package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
