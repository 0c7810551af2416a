package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// These tests run the CLI in this process, as the scripts do, where a
// script cannot reach: a Ctrl-C, a relay that is not a relay, a watcher
// left running, a terminal prompt. Each uses its own home and fast key
// derivation.

// syncBuffer is a bytes.Buffer safe to write from one goroutine and read
// from another.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// kintsugi runs one command with ctx, as main does, and returns what it
// printed on stdout and stderr.
func kintsugi(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut syncBuffer
	err = run(ctx, append([]string{"kintsugi"}, args...), strings.NewReader(""), &out, &errOut)
	exitCode(err, &errOut)
	return out.String(), errOut.String(), err
}

// must runs a command that must succeed.
func must(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := kintsugi(t, context.Background(), args...)
	if err != nil {
		t.Fatalf("kintsugi %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// newHome makes an identity in a fresh home and returns the home.
func newHome(t *testing.T) string {
	t.Helper()
	t.Setenv("KINTSUGI_TEST_KDF", "fast")
	t.Setenv("KINTSUGI_PASSPHRASE", "a passphrase for tests")
	home := filepath.Join(t.TempDir(), "home")
	must(t, "--home", home, "init", "--name", "Alex")
	return home
}

// waitFor polls buf until it contains want, failing after a generous
// deadline (a bound for a broken test, not a timing assertion).
func waitFor(t *testing.T, buf *syncBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(buf.String(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 30s; stderr so far:\n%s", want, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A watcher whose relay is down says so once, in one line, however many
// times it retries; it says "lost" only after it had a connection; and it
// says when the relay is back.
func TestWatchSaysAnOutageOnce(t *testing.T) {
	home := newHome(t)
	r := servertest.NewServer(t)
	must(t, "--home", home, "journal", "create", "--relay", r.URL())
	r.Stop()

	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"kintsugi", "--home", home, "sync", "--watch"}, strings.NewReader(""), &syncBuffer{}, &stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; exitStatus(err) != exitInterrupted {
			t.Errorf("watch stopped: %v", err)
		}
	}()

	// Never connected yet: not "lost".
	waitFor(t, &stderr, "kintsugi: cannot reach the relay yet at ")
	r.Start()
	waitFor(t, &stderr, "Connected and up to date.")

	// The relay goes away. Something that is not a relay takes its port
	// and turns the watcher away, so the test can see it retry.
	r.Stop()
	waitFor(t, &stderr, "kintsugi: lost the connection to the relay: it is stopping or restarting. Trying again")
	ln, err := net.Listen("tcp", strings.TrimPrefix(r.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept() // a retry, which must say nothing
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	ln.Close()
	r.Start()
	waitFor(t, &stderr, "Connected again and up to date.")

	out := stderr.String()
	if n := strings.Count(out, "kintsugi:"); n != 2 {
		t.Errorf("%d problem lines, want one per outage:\n%s", n, out)
	}
	if strings.Count(out, "lost the connection") != 1 || strings.Count(out, "cannot reach the relay yet") != 1 {
		t.Errorf("outages not said once each:\n%s", out)
	}
}

// Ctrl-C on a watch stops it calmly and exits 130, as a stopped program
// does, so that a script can tell it from a watch that ended by itself.
func TestWatchStoppedByCtrlC(t *testing.T) {
	home := newHome(t)
	r := servertest.NewServer(t)
	must(t, "--home", home, "journal", "create", "--relay", r.URL())
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"kintsugi", "--home", home, "sync", "--watch"}, strings.NewReader(""), &syncBuffer{}, &stderr)
	}()
	waitFor(t, &stderr, "Connected and up to date.")
	cancel() // Ctrl-C
	err := <-done
	if got := exitCode(err, &stderr); got != exitInterrupted {
		t.Errorf("exit status %d, want %d (stopped)", got, exitInterrupted)
	}
	if out := stderr.String(); !strings.HasSuffix(out, "\nStopped watching. What you write from now on goes with the next `kintsugi sync`.\n") || strings.Contains(out, "kintsugi:") {
		t.Errorf("stderr:\n%s", out)
	}
}

// Ctrl-C during sync says it stopped and that nothing was lost, not that
// the relay could not be reached.
func TestSyncStoppedByCtrlC(t *testing.T) {
	home := newHome(t)
	r := servertest.NewServer(t)
	must(t, "--home", home, "journal", "create", "--relay", r.URL())
	must(t, "--home", home, "write", "kept while the sync stops")

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as if Ctrl-C came before the relay answered
	_, stderr, err := kintsugi(t, ctx, "--home", home, "sync")
	if err == nil {
		t.Fatal("a stopped sync reported success")
	}
	if got := exitStatus(err); got != exitInterrupted {
		t.Errorf("exit status %d, want %d (stopped)", got, exitInterrupted)
	}
	if !strings.Contains(stderr, "kintsugi: sync stopped before it finished\n") || !strings.Contains(stderr, "nothing was lost") {
		t.Errorf("stderr:\n%s", stderr)
	}
	if strings.Contains(stderr, "could not reach") || strings.Contains(stderr, "canceled") {
		t.Errorf("a Ctrl-C reads as a relay problem:\n%s", stderr)
	}
	// The entry is still waiting to be sent, and goes with the next sync.
	out := must(t, "--home", home, "sync")
	if !strings.Contains(out, "Sent 1,") {
		t.Errorf("next sync: %s", out)
	}
}

// An address that answers HTTP but is not a relay says so, instead of
// "websocket: bad handshake"; a proxy whose relay is down still reads as
// unreachable. journal create's hint does not claim anything written is
// safe: nothing was written.
func TestNotARelay(t *testing.T) {
	home := newHome(t)
	for _, c := range []struct {
		status int
		want   string
	}{
		{http.StatusOK, `answered, but not as a kintsugi relay (it said "200 OK")`},
		{http.StatusNotFound, `answered, but not as a kintsugi relay (it said "404 Not Found")`},
		{http.StatusBadGateway, `could not reach the relay at ws://`},
	} {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
				fmt.Fprintln(w, "<html>a web page</html>")
			}))
			defer web.Close()
			_, stderr, err := kintsugi(t, context.Background(), "--home", home, "journal", "create", "--relay", web.URL)
			if err == nil {
				t.Fatal("create succeeded")
			}
			if !strings.Contains(stderr, c.want) || strings.Contains(stderr, "bad handshake") {
				t.Errorf("stderr:\n%s", stderr)
			}
			if !strings.Contains(stderr, "no journal was made on this device yet") || strings.Contains(stderr, "you wrote") {
				t.Errorf("hint:\n%s", stderr)
			}
			if c.status != http.StatusBadGateway && !strings.Contains(stderr, "check the address: it should be the relay's own") {
				t.Errorf("hint:\n%s", stderr)
			}
		})
	}
	// Nothing was made.
	if out := must(t, "--home", home, "status"); !strings.Contains(out, "No journal yet") {
		t.Errorf("a journal was made:\n%s", out)
	}
}

// A full disk is said in words, with what is safe.
func TestDiskFull(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		err := fmt.Errorf("save entry: %w", &fs.PathError{Op: "write", Path: "/home/a/.local/share/kintsugi/journals/ab/log", Err: errno})
		msg, hint := describe(err)
		if msg != "the disk is full, so this could not be saved" || !strings.Contains(hint, "nothing was saved this time, and everything saved before is safe") {
			t.Errorf("%v: %q / %q", errno, msg, hint)
		}
	}
}

// A key file that fails its own check says it may be damaged and points to
// restore; a wrong passphrase on an intact one still says wrong passphrase.
func TestDamagedKeyFile(t *testing.T) {
	home := newHome(t)
	key := filepath.Join(home, "identity.key")
	t.Setenv("KINTSUGI_PASSPHRASE", "not the passphrase")
	_, stderr, _ := kintsugi(t, context.Background(), "--home", home, "status")
	if !strings.Contains(stderr, "kintsugi: that passphrase does not unlock this key file\n") {
		t.Errorf("wrong passphrase:\n%s", stderr)
	}

	t.Setenv("KINTSUGI_PASSPHRASE", "a passphrase for tests")
	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(`"box": "`)) + len(`"box": "`) + 5
	b[i] ^= 0x01 // one flipped bit in the sealed keys, still base64
	if err := os.WriteFile(key, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, _ = kintsugi(t, context.Background(), "--home", home, "status")
	if !strings.Contains(stderr, "kintsugi: your key file "+key+" may be damaged: it does not pass its own check\n") || !strings.Contains(stderr, "`kintsugi restore FILE --home NEW-FOLDER`") {
		t.Errorf("damaged key file:\n%s", stderr)
	}
	if strings.Contains(stderr, "passphrase does not unlock") {
		t.Errorf("damage reads as a wrong passphrase:\n%s", stderr)
	}
	after, _ := os.ReadFile(key)
	if !bytes.Equal(after, b) {
		t.Error("the damaged key file was changed")
	}
}

// fakeTTY is a terminal that answers prompts from a list and records them.
type fakeTTY struct {
	answers *[]string // shared by every opening of the terminal
	prompts *[]string
}

func (f *fakeTTY) ask(prompt string) ([]byte, error) {
	*f.prompts = append(*f.prompts, prompt)
	if len(*f.answers) == 0 {
		return nil, errors.New("no more answers")
	}
	a := (*f.answers)[0]
	*f.answers = (*f.answers)[1:]
	return []byte(a), nil
}

func (f *fakeTTY) Close() error { return nil }

// useTTY makes the passphrase prompts read answers and record prompts.
func useTTY(t *testing.T, answers ...string) *[]string {
	t.Helper()
	t.Setenv("KINTSUGI_PASSPHRASE", "")
	prompts := new([]string)
	old := openPrompter
	openPrompter = func() (prompter, error) { return &fakeTTY{answers: &answers, prompts: prompts}, nil }
	t.Cleanup(func() { openPrompter = old })
	return prompts
}

// The passphrase prompts say which passphrase they want; a short new one
// earns a gentle note (not a refusal), an empty one a hint.
func TestPassphrasePrompts(t *testing.T) {
	t.Setenv("KINTSUGI_TEST_KDF", "fast")
	home := filepath.Join(t.TempDir(), "home")

	useTTY(t, "")
	_, stderr, err := kintsugi(t, context.Background(), "--home", home, "init", "--name", "Alex")
	if err == nil || !strings.Contains(stderr, "kintsugi: the passphrase was empty, so nothing was changed\nkintsugi: hint: run the command again and type a passphrase") {
		t.Errorf("empty passphrase: %v\n%s", err, stderr)
	}

	useTTY(t, "abc", "abc")
	_, stderr, err = kintsugi(t, context.Background(), "--home", home, "init", "--name", "Alex")
	if err != nil || !strings.Contains(stderr, "kintsugi: note: a short passphrase is quicker to guess") {
		t.Errorf("short passphrase: %v\n%s", err, stderr)
	}

	prompts := useTTY(t, "abc", "three whole words", "three whole words")
	_, stderr, err = kintsugi(t, context.Background(), "--home", home, "passphrase")
	if err != nil {
		t.Fatalf("passphrase: %v\n%s", err, stderr)
	}
	if len(*prompts) != 3 || (*prompts)[0] != "current passphrase: " || !strings.HasPrefix((*prompts)[1], "choose a new passphrase") {
		t.Errorf("prompts: %q", *prompts)
	}
	if strings.Contains(stderr, "short passphrase") {
		t.Errorf("a long passphrase earned the note:\n%s", stderr)
	}

	prompts = useTTY(t, "")
	_, stderr, _ = kintsugi(t, context.Background(), "--home", home, "status")
	if (*prompts)[0] != "passphrase: " || !strings.Contains(stderr, "kintsugi: hint: type the passphrase you chose for this device") {
		t.Errorf("empty passphrase at unlock: %q\n%s", *prompts, stderr)
	}
}

// noTTY makes the prompts find no terminal, as under cron or a service.
func noTTY(t *testing.T) {
	t.Helper()
	t.Setenv("KINTSUGI_PASSPHRASE", "")
	t.Setenv("KINTSUGI_RECOVERY_PHRASE", "")
	old := openPrompter
	openPrompter = func() (prompter, error) { return nil, errors.New("open /dev/tty: no such device or address") }
	t.Cleanup(func() { openPrompter = old })
}

// With no terminal to ask on and no passphrase given, a command exits as
// one with a wrong passphrase does (4): what a script must fix is the
// passphrase it gives. The same for a backup's recovery phrase.
func TestNoTerminalForSecrets(t *testing.T) {
	home := newHome(t)
	backup := filepath.Join(t.TempDir(), "alex.ksb")
	must(t, "--home", home, "backup", backup)

	noTTY(t)
	_, stderr, err := kintsugi(t, context.Background(), "--home", home, "status")
	if got := exitStatus(err); got != exitPassphrase {
		t.Errorf("locked, no terminal: exit status %d, want %d", got, exitPassphrase)
	}
	if !strings.Contains(stderr, "kintsugi: a passphrase is needed and there is no terminal to ask on\n") ||
		!strings.Contains(stderr, "kintsugi: hint: run `kintsugi unlock` in a terminal first, or set KINTSUGI_PASSPHRASE, or use --passphrase-file\n") {
		t.Errorf("locked, no terminal:\n%s", stderr)
	}

	_, stderr, err = kintsugi(t, context.Background(), "--home", filepath.Join(t.TempDir(), "new"), "restore", backup)
	if got := exitStatus(err); got != exitPassphrase || !strings.Contains(stderr, "the recovery phrase is needed and there is no terminal to ask on") {
		t.Errorf("restore, no terminal: exit status %d\n%s", got, stderr)
	}
}

// With no terminal, the hint for a new passphrase names every way that
// works for that command, and each way it names does work: init takes
// KINTSUGI_PASSPHRASE or --passphrase-file; changing it takes the new
// one only from --new-passphrase-file.
func TestNoTerminalNewPassphraseHint(t *testing.T) {
	home := newHome(t)
	noTTY(t)
	t.Setenv("KINTSUGI_PASSPHRASE", "")
	fresh := filepath.Join(t.TempDir(), "fresh")
	_, stderr, err := kintsugi(t, context.Background(), "--home", fresh, "init", "--name", "Sam")
	if exitStatus(err) != exitPassphrase || stderr != "kintsugi: a new passphrase is needed and there is no terminal to ask on\n"+
		"kintsugi: hint: set KINTSUGI_PASSPHRASE to the passphrase you choose, or put it on the first line of a file and give it with --passphrase-file FILE\n" {
		t.Errorf("init, no terminal: exit %d\n%s", exitStatus(err), stderr)
	}
	file := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(file, []byte("a passphrase from a file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, "--home", fresh, "--passphrase-file", file, "init", "--name", "Sam")

	_, stderr, err = kintsugi(t, context.Background(), "--home", home, "passphrase")
	if exitStatus(err) != exitPassphrase || !strings.Contains(stderr, "kintsugi: the current passphrase is needed and there is no terminal to ask on\n") ||
		!strings.Contains(stderr, "--new-passphrase-file FILE") || strings.Contains(stderr, "unlock") {
		t.Errorf("passphrase, no terminal, none given: exit %d\n%s", exitStatus(err), stderr)
	}
	t.Setenv("KINTSUGI_PASSPHRASE", "a passphrase for tests")
	_, stderr, err = kintsugi(t, context.Background(), "--home", home, "passphrase")
	if exitStatus(err) != exitPassphrase || stderr != "kintsugi: a new passphrase is needed and there is no terminal to ask on\n"+
		"kintsugi: hint: put the new passphrase on the first line of a file and give it with --new-passphrase-file FILE; nothing was changed\n" {
		t.Errorf("passphrase, no terminal for the new one: exit %d\n%s", exitStatus(err), stderr)
	}
}

// A wrong passphrase's hint fits where it came from: caps lock for one
// typed, the file or the variable for one that was not.
func TestWrongPassphraseSaysWhereItCameFrom(t *testing.T) {
	home := newHome(t)
	file := filepath.Join(t.TempDir(), "pass.txt")
	if err := os.WriteFile(file, []byte("not it\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, env, file string
		hint            string
	}{
		{"typed", "", "", "kintsugi: hint: check caps lock and try again; nothing was changed\n"},
		{"variable", "not it either", "", "kintsugi: hint: it came from the KINTSUGI_PASSPHRASE environment variable: check that it holds this device's passphrase, exactly, or unset it to be asked; nothing was changed\n"},
		{"file", "", file, "kintsugi: hint: it came from the file given to --passphrase-file (" + file + "): check that its first line is this device's passphrase, exactly; nothing was changed\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			useTTY(t, "not it")
			t.Setenv("KINTSUGI_PASSPHRASE", c.env)
			args := []string{"--home", home, "status"}
			if c.file != "" {
				args = append(args, "--passphrase-file", c.file)
			}
			_, stderr, err := kintsugi(t, context.Background(), args...)
			if exitStatus(err) != exitPassphrase || !strings.Contains(stderr, "kintsugi: that passphrase does not unlock this key file\n"+c.hint) {
				t.Errorf("exit status %d:\n%s", exitStatus(err), stderr)
			}
		})
	}
}

// journal join checks the code before it asks for the passphrase (and
// waits for the key derivation).
func TestJoinChecksTheCodeFirst(t *testing.T) {
	home := newHome(t)
	prompts := useTTY(t, "a passphrase for tests")
	_, stderr, err := kintsugi(t, context.Background(), "--home", home, "journal", "join", "ks1abcdefghij")
	if err == nil || !strings.Contains(stderr, "does not look like a whole invite code") {
		t.Errorf("truncated code: %v\n%s", err, stderr)
	}
	if len(*prompts) != 0 {
		t.Errorf("asked %q before checking the code", *prompts)
	}
}

// useEditor makes the editor the shell script body (run with the file as
// $1) and stdin a terminal, as a person writing in their editor has.
func useEditor(t *testing.T, body string) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "editor")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VISUAL", "")
	t.Setenv("EDITOR", script)
	old := stdinIsTerminal
	stdinIsTerminal = func(io.Reader) bool { return true }
	t.Cleanup(func() { stdinIsTerminal = old })
}

// An entry too long for one entry, written in the editor, is kept as a
// sealed draft, not erased; the error gives its size and the limit in
// words, and how to get it back. Opened again with --draft and shortened,
// it is saved, and the draft goes.
func TestTooLongDraftIsKept(t *testing.T) {
	home := newHome(t)
	r := servertest.NewServer(t)
	must(t, "--home", home, "journal", "create", "--relay", r.URL())

	// 700,000 bytes: "I keep replaying that night." over and over.
	useEditor(t, `yes 'I keep replaying that night.' | head -c 700000 > "$1"`)
	_, stderr, err := kintsugi(t, context.Background(), "--home", home, "write")
	if err == nil {
		t.Fatal("a too long entry was saved")
	}
	if !strings.Contains(stderr, "kintsugi: what you wrote is about 700 KB, more than one entry can hold (about 500 KB, roughly 80,000 words)\n") {
		t.Errorf("stderr:\n%s", stderr)
	}
	m := regexp.MustCompile("kept, locked, on this device as draft ([0-9a-f]{8}): `kintsugi write --draft ([0-9a-f]{8})`").FindStringSubmatch(stderr)
	if m == nil || m[1] != m[2] {
		t.Fatalf("no draft named:\n%s", stderr)
	}
	id := m[1]

	// Sealed: the text is nowhere in the home in the clear.
	filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); bytes.Contains(b, []byte("replaying that night")) {
				t.Errorf("%s holds the draft in the clear", path)
			}
		}
		return err
	})
	if out := must(t, "--home", home, "draft"); !strings.Contains(out, id+"  ") || !strings.Contains(out, "entry, about 700 KB: “I keep replaying that night. I keep replaying…”") {
		t.Errorf("draft list:\n%s", out)
	}
	if out := must(t, "--home", home, "draft", "show", id[:4]); len(out) != 700001 || !strings.HasPrefix(out, "I keep replaying that night.\n") {
		t.Errorf("draft show: %d bytes, %.40q", len(out), out)
	}

	// Shortened in the editor, it is saved, and the draft is gone.
	useEditor(t, `head -c 29 "$1" > "$1.short" && mv "$1.short" "$1"`)
	out := must(t, "--home", home, "write", "--draft", id)
	if !strings.Contains(out, "Saved your entry") || !strings.Contains(out, "Draft "+id+" is saved now") {
		t.Errorf("write --draft:\n%s", out)
	}
	if out := must(t, "--home", home, "draft"); !strings.Contains(out, "No drafts are kept") {
		t.Errorf("draft list after use:\n%s", out)
	}
	if out := must(t, "--home", home, "log"); !strings.Contains(out, "    I keep replaying that night.\n") {
		t.Errorf("log:\n%s", out)
	}
}

// An editor that closes with an error does not lose what was written.
func TestEditorErrorKeepsDraft(t *testing.T) {
	home := newHome(t)
	r := servertest.NewServer(t)
	must(t, "--home", home, "journal", "create", "--relay", r.URL())
	useEditor(t, `echo 'Where were you really?' > "$1"; exit 3`)
	_, stderr, err := kintsugi(t, context.Background(), "--home", home, "ask")
	if err == nil || !strings.Contains(stderr, "kintsugi: the editor closed with an error (exit status 3)\n") || !strings.Contains(stderr, "`kintsugi ask --draft ") {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if out := must(t, "--home", home, "draft"); !strings.Contains(out, "question, about 22 bytes: “Where were you really?”") {
		t.Errorf("draft list:\n%s", out)
	}
	// An edit's text is kept as an edit of that entry: the way back is
	// into `edit`, not `write --draft`, which would make a new entry.
	out := must(t, "--home", home, "write", "first words")
	id := regexp.MustCompile(`entry \(([0-9a-f]{8})\)`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("write said:\n%s", out)
	}
	useEditor(t, `echo 'second words' > "$1"; exit 3`)
	_, stderr, err = kintsugi(t, context.Background(), "--home", home, "edit", id[1])
	if err == nil || !strings.Contains(stderr, "to copy from or pipe into `kintsugi edit "+id[1]+"` again") || strings.Contains(stderr, "write --draft") {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if out := must(t, "--home", home, "draft"); !strings.Contains(out, "edit "+id[1]+", about 12 bytes: “second words”") {
		t.Errorf("draft list:\n%s", out)
	}
	// Nothing written: nothing kept, and it says so.
	useEditor(t, `exit 3`)
	_, stderr, _ = kintsugi(t, context.Background(), "--home", home, "write")
	if !strings.Contains(stderr, "nothing new was written") {
		t.Errorf("empty editor error:\n%s", stderr)
	}
}

// Piped text over the limit says "more than", since the reader stops at
// the limit and the real size is not known.
func TestPipedTooLong(t *testing.T) {
	home := newHome(t)
	r := servertest.NewServer(t)
	must(t, "--home", home, "journal", "create", "--relay", r.URL())
	var out, errOut syncBuffer
	err := run(context.Background(), []string{"kintsugi", "--home", home, "write"}, strings.NewReader(strings.Repeat("words ", 200000)), &out, &errOut)
	exitCode(err, &errOut)
	if !strings.Contains(errOut.String(), "kintsugi: the text piped in is more than one entry can hold (about 500 KB, roughly 80,000 words)\n") {
		t.Errorf("stderr:\n%s", errOut.String())
	}
}

// watchingLaptop links a laptop to a phone with a journal on relay r and
// starts `sync --watch` on the laptop, stopped when the test ends. It
// returns the phone's home and the watch's output.
func watchingLaptop(t *testing.T, r *servertest.Server) (phone string, stdout, stderr *syncBuffer) {
	t.Helper()
	phone = newHome(t)
	must(t, "--home", phone, "journal", "create", "--relay", r.URL())
	link := strings.TrimSpace(must(t, "--home", phone, "device", "link", "--name", "laptop"))
	laptop := filepath.Join(t.TempDir(), "laptop")
	must(t, "--home", laptop, "device", "join", link)

	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"kintsugi", "--home", laptop, "sync", "--watch"}, strings.NewReader(""), stdout, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; exitStatus(err) != exitInterrupted {
			t.Errorf("watch stopped: %v", err)
		}
	})
	waitFor(t, stderr, "Connected and up to date.")
	return phone, stdout, stderr
}

// A watch that connects again follows what the person did meanwhile on
// another device: a journal created there is named.
func TestWatchFollowsOtherDevicesWhenItConnectsAgain(t *testing.T) {
	r := servertest.NewServer(t)
	phone, stdout, stderr := watchingLaptop(t, r)
	must(t, "--home", phone, "journal", "create", "--relay", r.URL(), "--title", "made meanwhile")
	r.Stop()
	waitFor(t, stderr, "lost the connection to the relay")
	r.Start()
	waitFor(t, stderr, "Connected again and up to date.")
	waitFor(t, stdout, `The journal "made meanwhile" followed from another of your devices`)
}

// A watch that stays connected follows the other devices every so often
// too (followEvery, shortened here).
func TestWatchFollowsOtherDevicesWhileConnected(t *testing.T) {
	old := followEvery
	followEvery = 100 * time.Millisecond
	t.Cleanup(func() { followEvery = old })
	r := servertest.NewServer(t)
	phone, stdout, _ := watchingLaptop(t, r)
	must(t, "--home", phone, "journal", "create", "--relay", r.URL(), "--title", "made meanwhile")
	waitFor(t, stdout, `The journal "made meanwhile" followed from another of your devices`)
	if strings.Count(stdout.String(), "followed from another of your devices") != 1 {
		t.Errorf("said more than once:\n%s", stdout.String())
	}
}
