package protocol

import (
	"errors"
	"time"
)

// Code is a stable, machine-readable error code sent in [Error]. Codes are
// append-only: a code, once published, keeps its meaning forever.
type Code string

// Error codes. The comment is the sentence a relay sends with it.
const (
	CodeMalformed     Code = "malformed"      // the message could not be parsed
	CodeBadVersion    Code = "bad-version"    // the peer speaks another protocol version
	CodeAuthRequired  Code = "auth-required"  // a request came before authentication
	CodeAuthFailed    Code = "auth-failed"    // the signature did not verify
	CodeNotMember     Code = "not-member"     // the device is not a member of the journal
	CodeExists        Code = "exists"         // the journal already exists
	CodeNotFound      Code = "not-found"      // no such journal
	CodeInvalid       Code = "invalid"        // the request is well formed but not acceptable
	CodeTooLarge      Code = "too-large"      // a blob or message is over the limit
	CodeInviteUnknown Code = "invite-unknown" // no invite matches (mistyped, expired or used)
	CodeRateLimited   Code = "rate-limited"   // too many requests; try again later
	CodeInternal      Code = "internal"       // the relay failed; nothing was stored
	CodeShuttingDown  Code = "shutting-down"  // the relay is stopping; reconnect later

	// Added within version 1, with the relay's limits.
	CodeQuotaExceeded      Code = "quota-exceeded"       // the journal holds as many bytes as the relay allows
	CodeTooManyConnections Code = "too-many-connections" // the relay, or this address, has too many connections; try again later
	CodeOriginNotAllowed   Code = "origin-not-allowed"   // the request's Origin is not one the relay accepts

	// Added within version 1, with the two-person rule.
	CodeJournalFull Code = "journal-full" // the journal already has its two people; the invite was used up
)

// Sentinel errors that callers branch on. [Error.Err] maps a wire error to
// one of these, so client code can use errors.Is.
var (
	ErrNotMember     = errors.New("this device is not a member of that journal")
	ErrExists        = errors.New("that journal already exists")
	ErrNotFound      = errors.New("no such journal")
	ErrInviteUnknown = errors.New("no invite matches that code: it may be mistyped, expired or already used")
	ErrAuthFailed    = errors.New("the relay did not accept this device's signature")
	ErrTooLarge      = errors.New("too large for the relay")
	ErrRateLimited   = errors.New("the relay is busy and asked kintsugi to wait")
	ErrRelayInternal = errors.New("the relay had an internal problem")
	ErrInvalid       = errors.New("the relay refused the request as invalid")
	ErrShuttingDown  = errors.New("the relay is shutting down")
	ErrBadVersion    = errors.New("the relay speaks another protocol version")
	ErrQuotaExceeded = errors.New("this journal has reached the relay's storage limit")
	ErrJournalFull   = errors.New("this journal already has both of its people, so the invite cannot add anyone else")
)

// codeErrors is the one table that maps codes to sentinel errors. The first
// code listed for an error is the one [CodeOf] returns.
var codeErrors = []struct {
	code Code
	err  error
}{
	{CodeMalformed, ErrMalformed},
	{CodeBadVersion, ErrBadVersion},
	{CodeAuthFailed, ErrAuthFailed},
	{CodeAuthRequired, ErrAuthFailed},
	{CodeNotMember, ErrNotMember},
	{CodeExists, ErrExists},
	{CodeNotFound, ErrNotFound},
	{CodeInvalid, ErrInvalid},
	{CodeTooLarge, ErrTooLarge},
	{CodeInviteUnknown, ErrInviteUnknown},
	{CodeRateLimited, ErrRateLimited},
	{CodeInternal, ErrRelayInternal},
	{CodeShuttingDown, ErrShuttingDown},
	{CodeQuotaExceeded, ErrQuotaExceeded},
	{CodeTooManyConnections, ErrRateLimited},
	{CodeOriginNotAllowed, ErrInvalid},
	{CodeJournalFull, ErrJournalFull},
}

// CodeOf returns the wire code for err, or CodeInternal.
func CodeOf(err error) Code {
	for _, ce := range codeErrors {
		if errors.Is(err, ce.err) {
			return ce.code
		}
	}
	return CodeInternal
}

// Err returns the error a client should see for e: it wraps the sentinel for
// e.Code (or ErrRelayInternal for unknown codes) and carries the relay's
// message.
func (e *Error) Err() error {
	s := ErrRelayInternal
	for _, ce := range codeErrors {
		if ce.code == e.Code {
			s = ce.err
			break
		}
	}
	return &RelayError{Code: e.Code, Message: e.Message, RetryAfter: e.RetryAfter(), sentinel: s}
}

// RetryAfter returns the relay's hint for when to try again, capped at a
// day; zero when it gave none.
func (e *Error) RetryAfter() time.Duration {
	return time.Duration(min(e.RetryAfterMS, maxRetryAfterMS)) * time.Millisecond
}

// maxRetryAfterMS caps a relay's retry hint at a day, so a hostile value
// cannot overflow a time.Duration.
const maxRetryAfterMS = 24 * 60 * 60 * 1000

// RelayError is an error reply from a relay.
type RelayError struct {
	Code    Code
	Message string
	// RetryAfter is the relay's hint for when to try again; zero when it
	// gave none.
	RetryAfter time.Duration
	sentinel   error
}

// Error returns the relay's message, or the sentinel's words when the
// relay sent none, so the error never reads as blank.
func (e *RelayError) Error() string {
	if e.Message == "" {
		return e.sentinel.Error()
	}
	return e.Message
}

// Unwrap returns the sentinel error for the code.
func (e *RelayError) Unwrap() error { return e.sentinel }
