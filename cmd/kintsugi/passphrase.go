package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
)

func cmdPassphrase(e *env) *cli.Command {
	return &cli.Command{
		Name:  "passphrase",
		Usage: "change the passphrase that locks your keys on this device",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "new-passphrase-file", Usage: "read the new passphrase from this file instead of asking"},
		},
		Action: func(c *cli.Context) error {
			if !e.home.Exists() {
				return client.ErrNoHome
			}
			old, err := e.passphraseAs(askCurrentPassphrase, false)
			if err != nil {
				return err
			}
			defer clear(old)
			// Check the current passphrase before asking for a new one.
			if _, err := client.Unlock(e.home, old); err != nil {
				return err
			}
			var nw []byte
			if f := c.String("new-passphrase-file"); f != "" {
				b, err := os.ReadFile(f)
				if err != nil {
					return noSecret(fmt.Sprintf("could not read the new passphrase file: %v", err), "check the path given to --new-passphrase-file; nothing was changed")
				}
				nw = bytes.TrimRight(b, "\r\n")
				if len(nw) == 0 {
					return noSecret("the new passphrase file is empty", "put the new passphrase on the first line of that file; nothing was changed")
				}
			} else {
				if nw, err = promptPassphrase(askChangedPassphrase, true); err != nil {
					return err
				}
			}
			defer clear(nw)
			if crypto.Equal(old, nw) {
				return fail("the new passphrase is the same as the old one; nothing was changed", "to keep this passphrase there is nothing to do; to change it, choose a different one")
			}
			if err := client.ChangePassphrase(e.home, old, nw, kdf()); err != nil {
				return err
			}
			e.printf("Your passphrase is changed. The old one no longer unlocks this device.\n")
			fmt.Fprint(e.stderr, shortPassphraseNote(nw))
			if e.lockAfterChange() {
				e.printf("Your unlocked session was locked too; `kintsugi unlock` starts a new one with the new passphrase.\n")
			}
			return nil
		},
	}
}
