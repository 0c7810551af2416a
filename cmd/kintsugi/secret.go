package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/kintsugi-journal/kintsugi/crypto"
)

// passphrase returns the passphrase from, in order: --passphrase-file, the
// KINTSUGI_PASSPHRASE environment variable, or a prompt on the terminal
// with echo off. confirm asks twice (for a new passphrase).
func (e *env) passphrase(confirm bool) ([]byte, error) {
	ask := askPassphrase
	if confirm {
		ask = askNewPassphrase
	}
	return e.passphraseAs(ask, confirm)
}

// Prompts for a passphrase on the terminal.
const (
	askPassphrase        = "passphrase: "
	askCurrentPassphrase = "current passphrase: "
	askNewPassphrase     = "choose a passphrase (it protects your keys on this device; it cannot be recovered if forgotten, so keep it somewhere safe): "
	askChangedPassphrase = "choose a new passphrase (a few words you will remember protect best): "
)

// passphraseAs is passphrase with the terminal prompt given.
func (e *env) passphraseAs(prompt string, confirm bool) ([]byte, error) {
	e.passFrom = ""
	if e.passFile != "" {
		e.passFrom = passFromFile
		b, err := os.ReadFile(e.passFile)
		if err != nil {
			return nil, noSecret(fmt.Sprintf("could not read the passphrase file: %v", err), "check the path given to --passphrase-file")
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, noSecret("the passphrase file is empty", "put your passphrase on the first line of the file given to --passphrase-file")
		}
		return b, nil
	}
	if p := os.Getenv("KINTSUGI_PASSPHRASE"); p != "" {
		e.passFrom = passFromEnv
		return []byte(p), nil
	}
	return promptPassphrase(prompt, confirm)
}

// Where a passphrase came from, when it was not typed (env.passFrom).
const (
	passFromFile = "file"
	passFromEnv  = "env"
)

// fromWhere rewords the hint of a wrong passphrase that was not typed:
// "check caps lock" helps no one whose passphrase came from a file or the
// environment. Other errors are returned as they are.
func (e *env) fromWhere(err error) error {
	var ue *userError
	if !errors.Is(err, crypto.ErrWrongPassphrase) || errors.As(err, &ue) {
		return err
	}
	var hint string
	switch e.passFrom {
	case passFromFile:
		hint = fmt.Sprintf("it came from the file given to --passphrase-file (%s): check that its first line is this device's passphrase, exactly; nothing was changed", e.passFile)
	case passFromEnv:
		hint = "it came from the KINTSUGI_PASSPHRASE environment variable: check that it holds this device's passphrase, exactly, or unset it to be asked; nothing was changed"
	default:
		return err
	}
	msg, _ := describe(err)
	return &userError{msg: msg, hint: hint, err: err}
}

// secretEnv names the environment variables that may carry a secret.
var secretEnv = []string{"KINTSUGI_PASSPHRASE", "KINTSUGI_RECOVERY_PHRASE"}

// childEnv is this process's environment without the variables in
// secretEnv, for the programs kintsugi starts (the editor, the agent):
// they have no business with the passphrase or the recovery phrase.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(secretEnv, name) {
			env = append(env, kv)
		}
	}
	return env
}

// openPrompter opens the terminal to ask for secrets on. Tests replace it.
var openPrompter = openTTY

// prompter asks for a secret on a terminal, with echo off.
type prompter interface {
	ask(prompt string) ([]byte, error)
	Close() error
}

// tty is the real prompter: /dev/tty.
type tty struct{ *os.File }

func openTTY() (prompter, error) {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return tty{f}, nil
}

func (t tty) ask(prompt string) ([]byte, error) {
	fmt.Fprint(t.File, prompt)
	b, err := term.ReadPassword(int(t.Fd()))
	fmt.Fprintln(t.File)
	return b, err
}

// promptPassphrase reads a passphrase from the terminal with echo off,
// asking with prompt; confirm asks for a new one, twice.
//
// An empty passphrase is refused: the key file is sealed under it, and an
// empty one would leave the keys open to anyone who copies the file. A
// short one is accepted (see shortPassphraseNote).
func promptPassphrase(prompt string, confirm bool) ([]byte, error) {
	tty, err := openPrompter()
	if err != nil {
		// The hint names every way that works for this prompt, and no
		// other: a new identity's passphrase comes from the same places
		// as any (KINTSUGI_PASSPHRASE, --passphrase-file); when changing
		// it, those give the current one and only --new-passphrase-file
		// gives the new one; no unlocked session stands in for either.
		switch prompt {
		case askChangedPassphrase:
			return nil, noSecret("a new passphrase is needed and there is no terminal to ask on", "put the new passphrase on the first line of a file and give it with --new-passphrase-file FILE; nothing was changed")
		case askCurrentPassphrase:
			return nil, noSecret("the current passphrase is needed and there is no terminal to ask on", "set KINTSUGI_PASSPHRASE to it, or give a file holding it with --passphrase-file FILE (and the new one with --new-passphrase-file FILE); nothing was changed")
		case askNewPassphrase:
			return nil, noSecret("a new passphrase is needed and there is no terminal to ask on", "set KINTSUGI_PASSPHRASE to the passphrase you choose, or put it on the first line of a file and give it with --passphrase-file FILE")
		}
		return nil, noSecret("a passphrase is needed and there is no terminal to ask on", "run `kintsugi unlock` in a terminal first, or set KINTSUGI_PASSPHRASE, or use --passphrase-file")
	}
	defer tty.Close()
	p, err := tty.ask(prompt)
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		if confirm {
			return nil, noSecret("the passphrase was empty, so nothing was changed", "run the command again and type a passphrase: a few words you will remember protect your keys well")
		}
		return nil, noSecret("the passphrase was empty", "type the passphrase you chose for this device, then press Enter")
	}
	if confirm {
		again, err := tty.ask("once more, to be sure: ")
		if err != nil {
			return nil, err
		}
		if !crypto.Equal(p, again) {
			return nil, noSecret("the two passphrases were different", "nothing was saved; run the command again")
		}
	}
	return p, nil
}

// shortPassphrase is the length under which a new passphrase earns a
// gentle note. It is a note and not a refusal: the person chooses, and
// a short passphrase they remember beats a long one they write on a
// sticky note. Twelve characters is about three short words.
const shortPassphrase = 12

// shortPassphraseNote returns a note for a new passphrase shorter than
// shortPassphrase characters, or "".
func shortPassphraseNote(p []byte) string {
	if utf8.RuneCount(p) >= shortPassphrase {
		return ""
	}
	return "kintsugi: note: a short passphrase is quicker to guess if someone ever copies this device's files. " +
		"A longer phrase, a few words you will remember, protects better; `kintsugi passphrase` changes it whenever you like.\n"
}

// kdf returns the key derivation cost for new key files. A test binary may
// lower it with KINTSUGI_TEST_KDF=fast so the suite stays quick; a real
// kintsugi binary ignores that variable.
func kdf() crypto.KDFParams {
	if testing.Testing() && os.Getenv("KINTSUGI_TEST_KDF") == "fast" {
		return crypto.TestingKDF
	}
	return crypto.DefaultKDF
}

// readText returns the text of an entry: args if given, else piped stdin,
// else what the user writes in $VISUAL or $EDITOR.
func (e *env) readText(args []string, what string) (string, error) {
	return e.readTextWith(args, what, "")
}

// stdinIsTerminal reports whether r is a terminal, where the editor can
// run. Tests replace it.
var stdinIsTerminal = func(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// readTextWith is readText with the editor starting from initial. With
// --draft (e.draftID), the editor starts from that kept draft instead.
// What comes back from the editor is remembered (e.edited), so that it is
// kept as a draft if the command then fails (settleDraft).
func (e *env) readTextWith(args []string, what, initial string) (string, error) {
	if e.draftID != "" {
		d, err := e.openDraft(args)
		if err != nil {
			return "", err
		}
		initial = d.Text
	} else if len(args) > 0 {
		return strings.TrimSpace(strings.Join(args, " ")), nil
	} else if !stdinIsTerminal(e.stdin) {
		b, err := io.ReadAll(io.LimitReader(e.stdin, crypto.MaxPayload+1))
		if err != nil {
			return "", err
		}
		defer clear(b)
		if len(b) > crypto.MaxPayload {
			// The reader stopped at the limit: the real size is unknown.
			return "", fail("the text piped in is more than one entry can hold ("+entryLimit+")", "split it into parts and pipe in each as its own entry; nothing was saved")
		}
		return strings.TrimSpace(string(b)), nil
	}
	text, err := editText(what, initial)
	if text != "" && text != strings.TrimSpace(initial) {
		e.edited = &edited{what: what, text: text}
	}
	return text, err
}

// editText opens the user's editor on a private file and returns what was
// written, also when the editor fails (with the error), so that it can be
// kept as a sealed draft. The file lives in a 0700 directory on a
// RAM-backed file system where one exists (/dev/shm), is overwritten with
// zeros before it is removed, and is removed however the editor exits, so
// no plaintext is left behind in a temporary file. If this process is
// killed outright while the editor runs, the folder stays until the next
// kintsugi command wipes it (sweepDrafts, editor.go).
func editText(what, initial string) (string, error) {
	editor := os.Getenv("VISUAL")
	if editor == "" {
		editor = os.Getenv("EDITOR")
	}
	if editor == "" {
		return "", fail("there is no editor to write in", "give the text as an argument, pipe it in, or set $EDITOR")
	}
	base := ramDir()
	if base == "" {
		fmt.Fprintln(os.Stderr, "kintsugi: note: this system has no RAM-backed /dev/shm, so the draft is written to the temporary folder on disk; it is overwritten and removed afterwards, but a disk may keep traces. Piping the text in avoids this.")
	}
	dir, err := newDraftDir(base)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	path := filepath.Join(dir.path, "entry.txt")
	if err := os.WriteFile(path, []byte(initial), 0o600); err != nil {
		return "", err
	}
	edErr := runEditor(editor, path)
	b, err := os.ReadFile(path)
	if err != nil && edErr == nil {
		return "", err
	}
	text := strings.TrimSpace(string(b))
	clear(b)
	if edErr != nil && editorInterrupted(edErr) {
		// Ctrl-C is the person choosing to stop, not the editor failing:
		// say so, and exit as a stopped command does (exitInterrupted).
		// What they wrote is kept as a draft all the same (settleDraft).
		if text == "" || text == strings.TrimSpace(initial) {
			return "", &userError{msg: "you stopped the editor, so nothing new was written", hint: "nothing was saved; run the command again whenever you are ready", err: context.Canceled}
		}
		return text, &userError{msg: fmt.Sprintf("you stopped the editor, so what you wrote there was not saved as your %s", what), err: context.Canceled}
	}
	if edErr != nil {
		if text == "" || text == strings.TrimSpace(initial) {
			return "", fail(fmt.Sprintf("the editor closed with an error (%v), and nothing new was written", edErr), "run the command again when you are ready; save and quit the editor normally to keep what you write")
		}
		return text, fmt.Errorf("the editor closed with an error (%v)", edErr)
	}
	if text == "" {
		return "", fmt.Errorf("the %s was empty, so nothing was saved", what)
	}
	return text, nil
}
