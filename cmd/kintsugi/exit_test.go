package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// TestExitStatus maps representative failures, as the client and the
// relay return them (wrapped, as they reach main), to their exit status.
// testdata/script/conventions.txtar checks the same through the binary.
func TestExitStatus(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("send 1a2b3c4d: %w", err) }
	relay := func(code protocol.Code) error { return (&protocol.Error{Code: code, Message: "from the relay"}).Err() }
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"ok", nil, exitOK},
		{"worded failure", fail("there is no text to save", "write the text after the command"), exitFailure},
		{"plain error", errors.New("disk on fire"), exitFailure},
		{"unknown command", unknownCommand([]string{"journal"}, "frob"), exitUsage},
		{"bad flag", usageError("log has no option --bogus", helpHint([]string{"log"})), exitUsage},
		{"interrupted", wrap(fmt.Errorf("%w: %w", client.ErrUnreachable, context.Canceled)), exitInterrupted},
		{"wrong passphrase", crypto.ErrWrongPassphrase, exitPassphrase},
		{"no passphrase to be had", noSecret("a passphrase is needed and there is no terminal to ask on", ""), exitPassphrase},
		{"invite code cut short", fmt.Errorf("%w: it is too short or too long", protocol.ErrBadInviteCode), exitUsage},
		{"link code given to journal join", client.ErrLinkCodeOnly, exitUsage},
		{"invite given to device join", client.ErrNotALinkCode, exitUsage},
		{"someone else's entry to change", client.ErrNotYours, exitUsage},
		{"wrong recovery phrase", wrap(crypto.ErrWrongRecoveryPhrase), exitPassphrase},
		{"mistyped phrase group", crypto.ErrBadPhrase, exitPassphrase},
		{"damaged state", wrap(client.ErrDamagedState), exitDamaged},
		{"damaged record", client.ErrDamagedRecord, exitDamaged},
		{"not a key file", crypto.ErrBadKeyFile, exitDamaged},
		{"damaged backup", crypto.ErrBackupDamaged, exitDamaged},
		{"no identity", client.ErrNoHome, exitNotFound},
		{"no journal", client.ErrNoJournal, exitNotFound},
		{"no such journal", client.ErrJournalPrefix, exitNotFound},
		{"no such entry", fmt.Errorf("find zzzz: %w", client.ErrNotFound), exitNotFound},
		{"ambiguous id", client.ErrAmbiguous, exitNotFound},
		{"no such device", client.ErrNoSuchDevice, exitNotFound},
		{"no such notice", client.ErrNoSuchNotice, exitNotFound},
		{"two journals match", client.ErrJournalAmbiguous, exitNotFound},
		{"no such author", client.ErrNoSuchAuthor, exitNotFound},
		{"not a relay", client.ErrNotARelay, exitUnreachable},
		{"journal full", wrap(protocol.ErrJournalFull), exitRefused},
		{"bad value", usageError("-n needs 1 or more, not -1", ""), exitUsage},
		{"disk full", wrap(syscall.ENOSPC), exitFailure},
		{"unreachable", wrap(client.ErrUnreachable), exitUnreachable},
		{"relay shutting down", relay(protocol.CodeShuttingDown), exitUnreachable},
		{"relay failed for a moment (its store down)", wrap(relay(protocol.CodeInternal)), exitUnreachable},
		{"invite unknown", relay(protocol.CodeInviteUnknown), exitRefused},
		{"link unknown", client.ErrLinkUnknown, exitRefused},
		{"not a member", wrap(relay(protocol.CodeNotMember)), exitRefused},
		{"rate limited", relay(protocol.CodeRateLimited), exitRefused},
		{"quota", relay(protocol.CodeQuotaExceeded), exitRefused},
		{"unknown relay code", relay("something-new"), exitRefused},
		{"bad version", protocol.ErrBadVersion, exitRefused},
		{"auth failed", protocol.ErrAuthFailed, exitRefused},
		{"relay misbehaved", client.ErrRelayMisbehaved, exitFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if got := exitCode(tc.err, &out); got != tc.want {
				t.Errorf("exit status %d, want %d", got, tc.want)
			}
			if (tc.err == nil) != (out.Len() == 0) {
				t.Errorf("printed %q for %v", out.String(), tc.err)
			}
		})
	}
}
