package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runEditor runs editor (which may carry arguments, like "code -w") on path
// through the shell, attached to the terminal, as git does: so an editor
// set as `FOO=1 vim` or `emacsclient -t || vi` runs as it would typed. (An
// "exec" in front would take FOO=1 for the program.) An editor killed by
// Ctrl-C ends the shell by the signal or with status 130: editorInterrupted
// reads both.
func runEditor(editor, path string) error {
	cmd := exec.Command("/bin/sh", "-c", editor+` "$1"`, "kintsugi-editor", path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = childEnv()
	return cmd.Run()
}

// editorInterrupted reports whether err, from runEditor, says the editor
// was ended by Ctrl-C: killed by SIGINT, or exiting 130 as a shell (or a
// wrapper script around the editor) reports a command killed so. Editors
// that catch Ctrl-C themselves (vim, emacs) never end this way.
func editorInterrupted(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal() == syscall.SIGINT
	}
	return ee.ExitCode() == exitInterrupted
}

// Draft folders. The editor needs the text in a file, in the clear, while
// it runs. Each run of the editor gets a folder of its own, named
// draftPrefix and a random suffix, made 0700 in ramDir() (or the temporary
// folder where there is none), and holds an exclusive flock(2) on it for as
// long as the folder exists. The lock is what marks a folder as in use: the
// kernel drops it when the process ends, however it ends. A folder is made
// under draftNewPrefix, locked, and only then renamed to draftPrefix, so no
// other process ever sees a draft folder of ours unlocked while we live.
// A process killed outright (SIGKILL, a crash, the power) leaves its folder
// and the text in it; sweepDrafts, run at the start of every later
// kintsugi command, wipes such folders.
const (
	draftPrefix    = "kintsugi-draft-"
	draftNewPrefix = ".kintsugi-draft-new-"
	// legacyDraftPrefix named the folders of versions before the lock:
	// "kintsugi-" and digits. Those are swept once legacyDraftAge old.
	legacyDraftPrefix = "kintsugi-"
	legacyDraftAge    = 24 * time.Hour
)

// ramDir is the RAM-backed folder drafts go to: /dev/shm where it exists,
// or "" (none). A test binary may name another with
// KINTSUGI_TEST_DRAFT_DIR, so tests do not leave folders in the real one.
func ramDir() string {
	if testing.Testing() {
		if d := os.Getenv("KINTSUGI_TEST_DRAFT_DIR"); d != "" {
			return d
		}
	}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return ""
}

// draftDir is a locked draft folder; Close wipes what is in it, removes it,
// and drops the lock.
type draftDir struct {
	path string
	lock *os.File
}

// newDraftDir makes a locked draft folder in base ("" for the temporary
// folder).
func newDraftDir(base string) (*draftDir, error) {
	tmp, err := os.MkdirTemp(base, draftNewPrefix)
	if err != nil {
		return nil, err
	}
	lock, err := os.Open(tmp)
	if err == nil {
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	path := filepath.Join(filepath.Dir(tmp), draftPrefix+strings.TrimPrefix(filepath.Base(tmp), draftNewPrefix))
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		os.RemoveAll(tmp)
		return nil, err
	}
	return &draftDir{path: path, lock: lock}, nil
}

// Close wipes and removes the folder, then drops the lock.
func (d *draftDir) Close() {
	wipeDir(d.path)
	d.lock.Close()
}

// sweepDrafts wipes the draft folders in bases that a kintsugi process
// left behind when it was killed while the editor ran: only folders (never
// a symbolic link, which is not followed) owned by this user, named as
// kintsugi names them, that no live process holds locked (or, for folders
// of earlier versions, which had no lock, last changed more than
// legacyDraftAge before now). It returns how many it wiped; a folder it
// cannot read or lock is left alone.
func sweepDrafts(bases []string, now time.Time) int {
	n := 0
	uid := os.Getuid()
	for _, base := range bases {
		ents, err := os.ReadDir(base)
		if err != nil {
			continue
		}
		for _, ent := range ents {
			name := ent.Name()
			legacy := isLegacyDraftName(name)
			// A folder still named draftNewPrefix is empty: the text is
			// written only once it is locked and renamed.
			if !ent.IsDir() || !(legacy || strings.HasPrefix(name, draftPrefix)) {
				continue // ReadDir does not follow links: a link is not a dir
			}
			if sweepDraft(filepath.Join(base, name), uid, legacy, now) {
				n++
			}
		}
	}
	return n
}

// isLegacyDraftName reports whether name is "kintsugi-" and digits, as
// os.MkdirTemp named draft folders before draftPrefix.
func isLegacyDraftName(name string) bool {
	rest, ok := strings.CutPrefix(name, legacyDraftPrefix)
	return ok && rest != "" && strings.Trim(rest, "0123456789") == ""
}

// sweepDraft wipes one folder if it is a stale draft folder of uid's.
func sweepDraft(path string, uid int, legacy bool, now time.Time) bool {
	// O_NOFOLLOW: if the name was swapped for a link since ReadDir, the
	// open fails instead of following it.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || int(st.Uid) != uid || st.Mode&0o077 != 0 {
		return false // someone else's, or not made the way kintsugi makes them
	}
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return false // a live kintsugi is using it
	}
	if legacy {
		// Nothing locked folders then: only an old one is surely stale.
		names, err := f.Readdirnames(-1)
		if err != nil || len(names) > 1 || (len(names) == 1 && names[0] != "entry.txt") {
			return false
		}
		newest := time.Unix(st.Mtim.Unix())
		for _, name := range names {
			var fst unix.Stat_t
			if unix.Fstatat(fd, name, &fst, unix.AT_SYMLINK_NOFOLLOW) != nil {
				return false
			}
			if t := time.Unix(fst.Mtim.Unix()); t.After(newest) {
				newest = t
			}
		}
		if now.Sub(newest) < legacyDraftAge {
			return false
		}
	}
	wipeDir(path)
	return true
}

// wipeDir overwrites each regular file in dir with zeros and removes it
// (links are removed, not followed), then removes dir.
func wipeDir(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, ent := range ents {
		p := filepath.Join(dir, ent.Name())
		if ent.Type().IsRegular() {
			wipe(p)
		} else {
			os.RemoveAll(p)
		}
	}
	os.Remove(dir)
}

// wipe overwrites a regular file with zeros, syncs it, and removes it. It
// does not follow a link.
func wipe(path string) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil {
		f := os.NewFile(uintptr(fd), path)
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			f.Write(make([]byte, fi.Size()))
			f.Sync()
		}
		f.Close()
	}
	os.Remove(path)
}

// sweepStaleDrafts runs sweepDrafts over the places drafts are written and
// tells the person, on w, if it wiped any.
func sweepStaleDrafts(w io.Writer) {
	bases := []string{os.TempDir()}
	if d := ramDir(); d != "" {
		bases = append([]string{d}, bases...)
	}
	if n := sweepDrafts(bases, time.Now()); n > 0 {
		what := "a draft that an earlier kintsugi left open in the editor when it was stopped suddenly was"
		if n > 1 {
			what = fmt.Sprintf("%d drafts that an earlier kintsugi left open in the editor when it was stopped suddenly were", n)
		}
		fmt.Fprintf(w, "kintsugi: note: %s wiped from this machine's temporary files, so the words do not stay there in the clear; they had not been saved\n", what)
	}
}
