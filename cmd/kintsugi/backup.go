package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

func cmdBackup(e *env) *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "write an encrypted backup of your identity and journals, opened by a recovery phrase",
		ArgsUsage: "[FILE]",
		Description: "Writes FILE (default: kintsugi-backup-YYYY-MM-DD.ksb in this folder), readable only by you,\n" +
			"and never over an existing file. It prints a new recovery phrase once: the file is\n" +
			"useless without it. Keep the two apart. `kintsugi restore FILE` brings them back on\n" +
			"a new machine. The entries themselves stay on the relay, and a restore fetches them.\n" +
			"A journal you join later is not in this backup: make a new backup after joining one.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts: {file, phrase, journals}. It holds the recovery phrase, so keep that output as safe as the phrase itself"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageError("backup takes at most one file name", "`kintsugi backup` or `kintsugi backup FILE`")
			}
			path := c.Args().First()
			if path == "" {
				path = "kintsugi-backup-" + time.Now().Format("2006-01-02") + ".ksb"
			}
			if _, err := os.Lstat(path); err == nil {
				return fail(fmt.Sprintf("there is already a file called %s, and a backup never replaces a file", path), "give another name: `kintsugi backup FILE`")
			}
			a, err := e.unlock()
			if err != nil {
				return err
			}
			res, err := a.WriteBackup(path)
			if errors.Is(err, client.ErrBackupExists) {
				return fail(fmt.Sprintf("there is already a file called %s, and a backup never replaces a file", path), "give another name: `kintsugi backup FILE`")
			}
			if err != nil {
				return err
			}
			if c.Bool("json") {
				js := res.Journals
				if js == nil {
					js = []client.BackupJournal{}
				}
				return e.json(map[string]any{"file": res.Path, "phrase": res.Phrase, "journals": js})
			}
			groups := strings.Fields(res.Phrase)
			e.printf("Your backup is saved in %s.\n\n", res.Path)
			e.printf("Your recovery phrase, shown only this once:\n\n")
			e.printf("    %s\n    %s\n\n", strings.Join(groups[:4], " "), strings.Join(groups[4:], " "))
			e.printf("Please write it down and keep it somewhere safe, apart from the backup file.\n")
			e.printf("Anyone who has both can read your journal and write as you.\n")
			e.printf("Without the phrase the file cannot be opened, and nobody can recover the phrase for you,\n")
			e.printf("not us and not whoever runs the relay.\n\n")
			switch len(res.Journals) {
			case 0:
				e.printf("It holds your identity and this device's keys; you have no journal yet.\n")
			default:
				e.printf("It holds your identity, this device's keys, and %s:\n", plural(len(res.Journals), "journal", "journals"))
				for _, j := range res.Journals {
					title, with := j.Title, "waiting for your partner to join"
					if title == "" {
						title = "(untitled)"
					}
					if j.Partner != "" {
						with = "with " + j.Partner
					}
					e.printf("    %s  %s, %s\n", j.ID[:8], clean(title), clean(with))
				}
				e.printf("The entries themselves are on the relay; a restore fetches them again.\n")
			}
			e.printf("A journal you join after today is not in this backup: please make a new backup after joining one.\n")
			e.printf("To bring it back on a new machine: kintsugi restore %s\n", res.Path)
			return nil
		},
	}
}

func cmdRestore(e *env) *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "bring back your identity and journals from a backup, on a new machine",
		ArgsUsage: "FILE",
		Description: "Asks for the recovery phrase that `kintsugi backup` printed (or reads it from\n" +
			"--phrase-file or KINTSUGI_RECOVERY_PHRASE) and for a new passphrase for this machine,\n" +
			"then fetches your journals from the relay.\n\n" +
			"This brings back the same device the backup was made on, so it is for a machine\n" +
			"that replaces a lost or broken one. Please do not keep using the old machine\n" +
			"afterwards: two machines writing as one device would split your history.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "phrase-file", Usage: "read the recovery phrase from this file instead of asking"},
			&cli.BoolFlag{Name: "no-sync", Usage: "only restore the files here, and fetch your journals later with kintsugi sync"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError("restore needs the backup file", "`kintsugi restore FILE`, with the .ksb file `kintsugi backup` wrote")
			}
			if e.home.Exists() {
				return fail(fmt.Sprintf("%s already has an identity, so a backup is not restored over it", e.home.Dir), "restore on the new machine, or into another folder with --home DIR; nothing was changed")
			}
			path := c.Args().First()
			data, err := client.ReadBackupFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				return fail(fmt.Sprintf("there is no file called %s", path), "check the path to the backup file")
			}
			if err != nil {
				return err
			}
			text, err := e.recoveryPhrase(c.String("phrase-file"))
			if err != nil {
				return err
			}
			secret, err := crypto.ParseRecoveryPhrase(text)
			if err != nil {
				return err
			}
			defer clear(secret[:])
			b, err := client.OpenBackup(data, secret)
			if err != nil {
				return err
			}
			defer b.Close()
			js := b.Journals()
			e.printf("This backup holds %s's identity, made on %s, with %s.\n", clean(b.Name()), b.Created().Local().Format("2 Jan 2006"), plural(len(js), "journal", "journals"))
			p, err := e.passphrase(true)
			if err != nil {
				return err
			}
			defer clear(p)
			a, err := b.Restore(e.home, p, kdf())
			if err != nil {
				return err
			}
			e.printf("Your identity is back on this machine, locked with your new passphrase.\n")
			if len(js) == 0 {
				return nil
			}
			if c.Bool("no-sync") {
				e.printf("Run `kintsugi sync` when you are ready to fetch your journals; writing waits until then.\n")
				return nil
			}
			failed := false
			for _, bj := range js {
				if !e.restoreSync(a, bj) {
					failed = true
				}
			}
			e.printf("If you still have the old machine, please stop using it for these journals: two machines writing as one device would split your history.\n")
			if failed {
				return &userError{msg: "restore incomplete", silent: true}
			}
			return nil
		},
	}
}

// restoreSync fetches one restored journal and says how it went. It
// reports false for a problem the person should know about (not for being
// offline, which a later sync fixes).
func (e *env) restoreSync(a *client.Account, bj client.BackupJournal) bool {
	title := bj.Title
	if title == "" {
		title = "(untitled)"
	}
	label := fmt.Sprintf("%s (%s)", clean(title), bj.ID[:8])
	id, err := protocol.ParseJournalID(bj.ID)
	if err != nil {
		return false
	}
	j, err := a.OpenJournal(id)
	if err != nil {
		printError(e.stderr, label, err)
		return false
	}
	e.track(j)
	defer j.Close()
	_, err = j.Sync(e.ctx)
	switch {
	case errors.Is(err, client.ErrUnreachable):
		e.printf("%s: could not reach the relay just now. Run `kintsugi sync` when you are online; writing waits until then, so your history stays in one piece.\n", label)
		return true
	case err != nil:
		printError(e.stderr, label, err)
		return false
	}
	st, err := j.Status()
	if err != nil {
		return false
	}
	e.printf("%s: your history is back, %s readable here.\n", label, plural(st.Entries, "entry", "entries"))
	return true
}

// recoveryPhrase returns the recovery phrase from, in order: --phrase-file,
// KINTSUGI_RECOVERY_PHRASE, or a prompt on the terminal with echo off.
func (e *env) recoveryPhrase(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", noSecret(fmt.Sprintf("could not read the recovery phrase file: %v", err), "check the path given to --phrase-file")
		}
		s := string(bytes.TrimSpace(b))
		clear(b)
		if s == "" {
			return "", noSecret("the recovery phrase file is empty", "put the recovery phrase that `kintsugi backup` printed in that file, or leave out --phrase-file to type it; nothing was changed")
		}
		return s, nil
	}
	if p := os.Getenv("KINTSUGI_RECOVERY_PHRASE"); p != "" {
		return p, nil
	}
	tty, err := openPrompter()
	if err != nil {
		return "", noSecret("the recovery phrase is needed and there is no terminal to ask on", "set KINTSUGI_RECOVERY_PHRASE or use --phrase-file")
	}
	defer tty.Close()
	b, err := tty.ask("recovery phrase (8 groups; it is not shown as you type): ")
	if err != nil {
		return "", err
	}
	s := string(b)
	clear(b)
	return s, nil
}

// backupHint is the hint for errors about backups and restores.
func backupHint(err error) (string, bool) {
	switch {
	case errors.Is(err, crypto.ErrBadPhrase):
		var pe *crypto.PhraseError
		if errors.As(err, &pe) && pe.Group == 0 {
			return "type the whole phrase as it was written down, its groups separated by spaces; nothing was changed", true
		}
		return "check that group against the phrase you wrote down; nothing was changed", true
	case errors.Is(err, crypto.ErrWrongRecoveryPhrase):
		return "each backup has its own phrase: check it is the one written down with this file; nothing was changed", true
	case errors.Is(err, crypto.ErrBackupDamaged):
		return "use another copy of the backup if you have one; nothing was changed", true
	case errors.Is(err, crypto.ErrNotBackup):
		return "give the .ksb file that `kintsugi backup` wrote; nothing was changed", true
	case errors.Is(err, crypto.ErrBackupVersion):
		return "update kintsugi, then restore again; nothing was changed", true
	case errors.Is(err, client.ErrBadBackup):
		return "update kintsugi, or use another backup; nothing was changed", true
	case errors.Is(err, client.ErrHomeHasJournal):
		return "restore into a new folder with --home DIR; nothing was changed", true
	case errors.Is(err, client.ErrRestoring):
		return "run `kintsugi sync` (it needs the relay); everything you had is safe", true
	case errors.Is(err, client.ErrOwnHistoryOlder):
		return "the relay may have been restored from an older copy of its data: let whoever runs it know, then `kintsugi sync` again. Everything on this device is safe", true
	case errors.Is(err, client.ErrOwnHistoryForked):
		return "this happens when the old machine is still used after a restore: please keep only one of them, and let whoever runs the relay know if you did not expect this", true
	}
	return "", false
}
