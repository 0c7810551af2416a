package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// userError is an error already worded for a person, with an optional hint.
type userError struct {
	msg, hint string
	silent    bool // already printed
	err       error
}

func (e *userError) Error() string { return e.msg }
func (e *userError) Unwrap() error { return e.err }

func fail(msg, hint string) error { return &userError{msg: msg, hint: hint} }

// errNoSecret is wrapped by every error about a passphrase or recovery
// phrase that kintsugi could not get: no terminal to ask on, an empty or
// unreadable file, nothing typed, two that differ. Like a wrong one, it
// exits with exitPassphrase: either way, what a script must fix is the
// passphrase it gives.
var errNoSecret = errors.New("no passphrase")

// noSecret is an error about a passphrase or phrase kintsugi could not get.
func noSecret(msg, hint string) error {
	return &userError{msg: msg, hint: hint, err: errNoSecret}
}

// describe turns an error into one lowercase sentence and a hint. Every
// message may be read by someone who is hurting: plain words, no blame, and
// where something is safe, say so.
func describe(err error) (msg, hint string) {
	var ue *userError
	if errors.As(err, &ue) {
		return ue.msg, ue.hint
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		// Writes go through a temporary file and a rename, or append a
		// whole record that a reader ignores unless it is complete, so a
		// full disk leaves what was saved before as it was.
		return "the disk is full, so this could not be saved", "nothing was saved this time, and everything saved before is safe. Free some space on this disk, then run the command again"
	}
	msg = lowerFirst(err.Error())
	if h, ok := backupHint(err); ok {
		return msg, h
	}
	switch {
	case errors.Is(err, client.ErrTooLong):
		msg = "this is more than one entry can hold (" + entryLimit + ")"
		hint = "split it into parts and write each as its own entry; nothing was saved"
	case errors.Is(err, client.ErrNoHome):
		hint = "run `kintsugi init --name YOUR-NAME` to make your identity on this device"
	case errors.Is(err, client.ErrHomeExists):
		hint = "your identity is already set up here; use --home to make another one elsewhere"
	case errors.Is(err, crypto.ErrWrongPassphrase):
		hint = "check caps lock and try again; nothing was changed"
	case errors.Is(err, crypto.ErrBadKeyFile):
		hint = keyFileHint
	case errors.Is(err, client.ErrNoJournal):
		hint = "create one with `kintsugi journal create --relay URL`, or join your partner's with `kintsugi journal join CODE`"
	case errors.Is(err, client.ErrJournalPrefix):
		hint = "`kintsugi journal list` shows the journals on this device"
	case errors.Is(err, client.ErrJournalAmbiguous):
		hint = "use more of the id, as `kintsugi journal list` shows it"
	case errors.Is(err, protocol.ErrRateLimited):
		hint = "wait a minute, then `kintsugi sync` again; everything you wrote is safe on this device"
	case errors.Is(err, protocol.ErrQuotaExceeded):
		hint = "everything you wrote is safe on this device and will be sent once there is room; whoever runs the relay can raise its storage limit"
	case errors.Is(err, protocol.ErrShuttingDown), errors.Is(err, protocol.ErrRelayInternal):
		hint = "try again in a little while; everything you wrote is safe on this device"
	case errors.Is(err, protocol.ErrBadVersion):
		hint = "kintsugi and the relay need matching versions; update kintsugi, or ask whoever runs the relay"
	case errors.Is(err, protocol.ErrAuthFailed):
		hint = "this device may have been removed from the journal; `kintsugi status` shows more"
	case errors.Is(err, client.ErrNotPaired):
		hint = "share an invite with `kintsugi journal invite`; when your partner has joined, run `kintsugi sync`"
	case errors.Is(err, client.ErrRelayChanged):
		hint = "ask whoever runs the relay what changed; until then, everything here stays safe on this device"
	case errors.Is(err, client.ErrRelayMisbehaved):
		hint = "everything already on this device is safe; let whoever runs the relay know"
	case errors.Is(err, client.ErrNotARelay):
		hint = notRelayHint + "; anything you wrote is safe on this device"
	case errors.Is(err, client.ErrUnreachable):
		hint = "check the relay address and your connection; anything you wrote is safe on this device and will be sent on the next sync"
	case errors.Is(err, client.ErrLinkUnknown):
		hint = "link codes work once and expire after an hour; make a fresh one with `kintsugi device link` on your other device"
	case errors.Is(err, protocol.ErrJournalFull):
		hint = "nothing was saved here. A journal is for two people, and both are in it. If you are one of them, add this device from one you already use: `kintsugi device link` there, then `kintsugi device join CODE` with a fresh --home here"
	case errors.Is(err, protocol.ErrInviteUnknown):
		hint = "invites work once and expire after a day; ask your partner for a fresh one with `kintsugi journal invite`"
	case errors.Is(err, protocol.ErrBadInviteCode):
		hint = "copy the whole code again, exactly as it was given to you (an invite from your partner, or a link code from your other device)"
	case errors.Is(err, crypto.ErrInvitePacket):
		hint = "ask your partner for a fresh invite, and compare safety numbers once you are paired"
	case errors.Is(err, client.ErrNotYours):
		hint = "you can change or retract only what you wrote; to respond to it, use `kintsugi reply` or `kintsugi ack`"
	case errors.Is(err, client.ErrAmbiguous):
		hint = "use more characters of the id, as shown by `kintsugi log`"
	case errors.Is(err, client.ErrNoSuchAuthor):
		hint = "--author takes me, partner, or the name of one of you as `kintsugi journal members` shows it"
	case errors.Is(err, client.ErrNotFound):
		hint = "`kintsugi log` lists entries with their ids"
	case errors.Is(err, client.ErrLeft):
		hint = "`kintsugi log` and `kintsugi export` still work here"
	case errors.Is(err, client.ErrLinkCodeOnly):
		hint = "on a new device of yours, run `kintsugi device join CODE` instead"
	case errors.Is(err, client.ErrNotALinkCode):
		hint = "to join your partner's journal, run `kintsugi journal join CODE` instead"
	case errors.Is(err, client.ErrNoSuchDevice):
		hint = "`kintsugi device list` shows your devices and their ids"
	case errors.Is(err, client.ErrDamagedState):
		hint = "nothing was changed, and the damaged files are still in the journal's folder. What the relay holds is safe. " + setUpAgain
	case errors.Is(err, client.ErrRepairing):
		hint = "run `kintsugi sync`; writing works again as soon as it has finished (nothing was saved from this command)"
	case errors.Is(err, client.ErrDamagedRecord):
		hint = "`kintsugi repair` checks this journal's files and sets aside what is damaged; what the relay holds is safe"
	case errors.Is(err, client.ErrDeviceAmbiguous):
		hint = "use its id from `kintsugi device list`"
	case errors.Is(err, client.ErrNoSuchNotice):
		hint = "`kintsugi status --json` lists each notice with its id and kind; `kintsugi status --ack all` marks every one read"
	case errors.Is(err, client.ErrNoticeHolds):
		hint = "it goes away by itself once it is settled: a new safety number once you have compared it together (`kintsugi verify`), a restore once `kintsugi sync` can finish it. Nothing was marked read"
	case errors.Is(err, client.ErrRelayTooOld):
		hint = "everything here is safe; try again once the relay is updated"
	case errors.Is(err, protocol.ErrNotMember):
		hint = "if this device was removed, or you left the journal from another device, that is why; everything already here stays readable. Otherwise check the journal with `kintsugi journal list`"
	}
	return msg, hint
}

// Exit statuses, for scripts. exitStatuses says what each means, for
// docs/cli.md and the man page; like the relay's error codes they are
// append-only: a status, once published, keeps its meaning. 1 to 7 are our
// own small set (sysexits.h's 64 and up would say little more); 2 for
// usage is what Go's flag package, most shells and kintsugi-relay use; 130
// is what a shell reports for Ctrl-C.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitPassphrase  = 4
	exitUnreachable = 5
	exitRefused     = 6
	exitDamaged     = 7
	exitInterrupted = 130
)

// exitStatuses documents each exit status.
var exitStatuses = []struct {
	code    int
	meaning string
}{
	{exitOK, "done"},
	{exitFailure, "something else went wrong; the message says what"},
	{exitUsage, "the command line is wrong: an unknown command or option, or a missing or bad value (an invite code that is not whole, an entry of the wrong kind for the command, a confirmation that needs --yes without a terminal)"},
	{exitNotFound, "what was named or needed is not here: no identity in this home, no journal, no such entry, device or notice (or an id too short to name just one)"},
	{exitPassphrase, "the passphrase, or a backup's recovery phrase, does not unlock, or there was none to use (no terminal to ask on, an empty or unreadable file)"},
	{exitUnreachable, "the relay could not be reached, is shutting down, or failed for a moment itself (its store did not answer); try again later"},
	{exitRefused, "the relay answered and refused: not a member, an unknown or used invite, a rate or storage limit, another protocol version"},
	{exitDamaged, "data on this device is damaged: a journal's files, the key file, or a backup file"},
	{exitInterrupted, "stopped by Ctrl-C or a signal"},
}

// exitStatus maps err to an exit status. It is the one place that does:
// the first row that matches wins.
func exitStatus(err error) int {
	var relayErr *protocol.RelayError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, crypto.ErrWrongPassphrase), errors.Is(err, crypto.ErrWrongRecoveryPhrase), errors.Is(err, crypto.ErrBadPhrase),
		errors.Is(err, errNoSecret):
		return exitPassphrase
	case errors.Is(err, protocol.ErrBadInviteCode), errors.Is(err, client.ErrLinkCodeOnly), errors.Is(err, client.ErrNotALinkCode),
		errors.Is(err, client.ErrNotYours):
		// A code that is not whole, or of the other kind: a bad value
		// on the command line (or pasted in).
		return exitUsage
	case errors.Is(err, client.ErrDamagedState), errors.Is(err, client.ErrDamagedRecord),
		errors.Is(err, crypto.ErrBadKeyFile), errors.Is(err, crypto.ErrCorrupt), errors.Is(err, crypto.ErrBackupDamaged):
		return exitDamaged
	case errors.Is(err, client.ErrNoHome), errors.Is(err, client.ErrNoJournal), errors.Is(err, client.ErrJournalPrefix),
		errors.Is(err, client.ErrNotFound), errors.Is(err, client.ErrAmbiguous),
		errors.Is(err, client.ErrNoSuchDevice), errors.Is(err, client.ErrDeviceAmbiguous), errors.Is(err, client.ErrNoSuchNotice),
		errors.Is(err, client.ErrJournalAmbiguous), errors.Is(err, client.ErrNoSuchAuthor):
		return exitNotFound
	case errors.Is(err, client.ErrUnreachable), errors.Is(err, client.ErrNotARelay), errors.Is(err, protocol.ErrShuttingDown),
		errors.As(err, &relayErr) && relayErr.Code == protocol.CodeInternal:
		// The relay failing for a moment (its database down) is a passing
		// fault, not a refusal: a script should try again later.
		return exitUnreachable
	case errors.As(err, &relayErr), errors.Is(err, protocol.ErrBadVersion), errors.Is(err, protocol.ErrAuthFailed),
		errors.Is(err, protocol.ErrNotMember), errors.Is(err, protocol.ErrInviteUnknown), errors.Is(err, protocol.ErrJournalFull):
		return exitRefused
	}
	return exitFailure
}

// inHome names the place in an error about the home's identity, so a
// person sees where kintsugi looked: the folder when there is no identity
// in it (they may have meant another --home), the key file when it fails
// its own check. Other errors are returned as they are.
func inHome(home client.Home, err error) error {
	var ue *userError
	if home.Dir == "" || errors.As(err, &ue) {
		return err
	}
	switch {
	case errors.Is(err, client.ErrNoHome):
		return &userError{
			msg:  fmt.Sprintf("there is no kintsugi identity in %s yet", home.Dir),
			hint: "run `kintsugi init --name YOUR-NAME` to make your identity there; if yours is in another folder, point --home (or KINTSUGI_HOME) at it",
			err:  err,
		}
	case errors.Is(err, crypto.ErrBadKeyFile):
		return &userError{
			msg:  fmt.Sprintf("your key file %s may be damaged: it does not pass its own check", home.KeyPath()),
			hint: keyFileHint,
			err:  err,
		}
	}
	return err
}

// notRelayHint is the start of the hint for an address that answered,
// but not as a relay.
const notRelayHint = "check the address: it should be the relay's own, as whoever runs it gave it to you (a web page, a wrong path, or a proxy that does not pass WebSocket connections on answers like this)"

// keyFileHint is the hint for a key file that fails its own check.
const keyFileHint = "nothing was changed, and the file stays where it is. " + setUpAgain

// setUpAgain says what brings a person's journals back when what this
// home holds of them cannot be read. A plain invite would not do: the
// relay turns it away once a journal has both partners, and the
// partner's client makes none then. An invite made again is for a
// partner who set kintsugi up again with new keys (an identity whose
// journal files are lost cannot carry on its own history without
// splitting it), so the new keys are compared as a safety number.
const setUpAgain = "If you made a backup, `kintsugi restore FILE --home NEW-FOLDER` brings your identity and journals back in a new folder. " +
	"If not, set kintsugi up again in a new folder (`kintsugi init --name YOUR-NAME --home NEW-FOLDER`) and ask your partner for a code from `kintsugi journal invite --again`"

// beforeAnything rewords the hint of a relay error from a command that
// had nothing of the person's to keep yet (journal create): the usual
// hints say that what was written is safe, which would be no comfort and
// not quite true here. done says what state things are in. Other errors
// are returned as they are.
func beforeAnything(err error, done string) error {
	var hint string
	switch {
	case errors.Is(err, protocol.ErrRateLimited):
		hint = "wait a minute, then run the command again"
	case errors.Is(err, protocol.ErrQuotaExceeded):
		hint = "the relay has no room for now; whoever runs it can raise its storage limit"
	case errors.Is(err, protocol.ErrShuttingDown), errors.Is(err, protocol.ErrRelayInternal):
		hint = "try again in a little while"
	case errors.Is(err, client.ErrRelayMisbehaved):
		hint = "let whoever runs the relay know"
	case errors.Is(err, client.ErrNotARelay):
		hint = notRelayHint
	case errors.Is(err, client.ErrUnreachable):
		hint = "check the relay address and your connection, then run the command again"
	default:
		return err
	}
	msg, _ := describe(err)
	return &userError{msg: msg, hint: hint + "; " + done, err: err}
}

// responseError words why a response of kind does not fit the entry t, as
// client.CheckResponse reports it; partner is the partner's name. An entry
// of the wrong kind for the command is a bad value on the command line
// (exitUsage); an agreement settled meanwhile is not.
func responseError(err error, t *client.Entry, kind, partner string) error {
	switch {
	case errors.Is(err, client.ErrRetracted):
		who := clean(t.Author)
		if t.Mine {
			who = "you"
		}
		return usageError(fmt.Sprintf("%s was retracted (%s withdrew it), so nothing more can be added to it", t.Short, who),
			"`kintsugi show "+t.Short+"` shows its thread as it stands")
	case errors.Is(err, client.ErrNotAQuestion):
		return usageError(fmt.Sprintf("%s is not a question", t.Short), "`kintsugi reply "+t.Short+"` responds to an entry")
	case errors.Is(err, client.ErrOwnQuestion):
		return usageError(fmt.Sprintf("%s is your own question; it is %s's to answer", t.Short, partner), "`kintsugi followup "+t.Short+"` adds to it")
	case errors.Is(err, client.ErrReplyToQuestion):
		return usageError(fmt.Sprintf("%s is a question", t.Short), "`kintsugi answer "+t.Short+"` answers it; `kintsugi followup "+t.Short+"` adds to it")
	case errors.Is(err, client.ErrListenOnly):
		return usageError(fmt.Sprintf("%s asked to be heard, not answered", clean(t.Author)), "`kintsugi ack "+t.Short+"` lets them know you read it; add --note for a few words")
	case errors.Is(err, client.ErrOwnEntry) && kind == client.KindDecision:
		return usageError(fmt.Sprintf("%s is your own proposal; it is %s's to accept or decline", t.Short, partner),
			fmt.Sprintf("`kintsugi agreements` shows where it stands. To change it before %s decides, propose a new version: `kintsugi agree propose --revises %s TEXT`", partner, t.Short))
	case errors.Is(err, client.ErrOwnEntry) && kind == client.KindAck:
		return usageError(fmt.Sprintf("%s is your own entry", t.Short),
			fmt.Sprintf("ack lets %s know you read one of theirs (`kintsugi log --author partner` lists them); to add to your own, `kintsugi reply %s`", partner, t.Short))
	case errors.Is(err, client.ErrOwnEntry):
		return usageError(fmt.Sprintf("%s is your own entry", t.Short), "")
	case errors.Is(err, client.ErrNotYourCommitment):
		return usageError(fmt.Sprintf("%s is not one of your commitments", t.Short), "`kintsugi commitments` lists them")
	case errors.Is(err, client.ErrNotAnAgreement):
		return usageError(fmt.Sprintf("%s is not an agreement", t.Short), "`kintsugi agreements` lists them")
	case errors.Is(err, client.ErrAgreementSettled):
		return fail(fmt.Sprintf("that agreement is already %s", t.State), "`kintsugi agreements` shows where each one stands")
	}
	return err
}

// printError prints err for a person, as describe words it: a
// "kintsugi: " line, after label if one is given, and the hint's line.
func printError(w io.Writer, label string, err error) {
	msg, hint := describe(err)
	if label != "" {
		msg = label + ": " + msg
	}
	fmt.Fprintf(w, "kintsugi: %s\n", msg)
	if hint != "" {
		fmt.Fprintf(w, "kintsugi: hint: %s\n", hint)
	}
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
