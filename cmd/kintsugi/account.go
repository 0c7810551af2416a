package main

import (
	"errors"
	"fmt"

	"github.com/kintsugi-journal/kintsugi/client"
)

// follow syncs the record this person's devices share (client.SyncAccount)
// and says what followed from the other devices: journals created or
// joined there, journals left there, partners verified there. A home with
// no such record (one device, or linked before devices shared one) has
// nothing to follow. It never fails the command: what could not be
// followed now is followed at the next sync, and it says so on stderr.
// quiet leaves out what followed (for --json, which reports it itself).
func (e *env) follow(a *client.Account, quiet bool) *client.AccountResult {
	res, err := a.SyncAccount(e.ctx)
	if errors.Is(err, client.ErrNoAccountJournal) || errors.Is(err, client.ErrNotServed) {
		// None, or this device was removed: the journal's own sync says
		// so, in its words, and trying again would change nothing.
		return nil
	}
	if err != nil {
		msg, _ := describe(err)
		fmt.Fprintf(e.stderr, "kintsugi: this device could not catch up with your other devices just now (%s); the next `kintsugi sync` tries again\n", msg)
		return res
	}
	if quiet {
		return res
	}
	for _, jn := range res.Added {
		e.printf("The journal %s followed from another of your devices; it is here now too (`kintsugi journal use %s` to write there).\n", followedName(jn), followedName(jn))
	}
	for _, jn := range res.Left {
		e.printf("You left the journal %s on another of your devices, so this device no longer syncs it; what it holds stays readable.\n", followedName(jn))
	}
	for _, who := range res.Verified {
		e.printf("You confirmed %s's safety number on another of your devices; it counts here too.\n", clean(who))
	}
	return res
}

// followedName names a journal that followed from another device.
func followedName(jn client.JournalName) string {
	if jn.Title != "" {
		return fmt.Sprintf("%q", clean(jn.Title))
	}
	return jn.ID.String()[:8]
}
