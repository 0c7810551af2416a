package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// An invite code is what one partner passes to the other, out of band, to
// pair. It carries the relay address, the journal id and a one-time secret:
//
//	"ks1" || lowercase unpadded base32 of:
//	  0  1   invite version (1)
//	  1  16  journal id
//	 17  32  secret
//	 49  n   relay URL (UTF-8, 1..255 bytes)
//	 49+n 4  checksum: first 4 bytes of SHA-256 of the bytes before it
//
// Spaces, dashes and line breaks are ignored when parsing, so a code that
// was wrapped or grouped by a messenger still works.
//
// A device link code, which one of a person's devices gives another of
// theirs, has the same layout with the prefix "kl1" ([LinkPrefix]).
const (
	InvitePrefix     = "ks1"
	LinkPrefix       = "kl1"
	InviteSecretSize = 32
	inviteVersion    = 1
)

var inviteEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// InviteCode is the decoded content of an invite code.
type InviteCode struct {
	Relay   string
	Journal JournalID
	Secret  [InviteSecretSize]byte
	// Link marks a device link code rather than a partner invite.
	Link bool
}

// ErrBadInviteCode is wrapped by every invite parsing error.
var ErrBadInviteCode = errors.New("that does not look like a whole invite code")

// String encodes the invite code. The result contains the secret: never log it.
func (c *InviteCode) String() string {
	b := []byte{inviteVersion}
	b = append(b, c.Journal[:]...)
	b = append(b, c.Secret[:]...)
	b = append(b, c.Relay...)
	sum := sha256.Sum256(b)
	b = append(b, sum[:4]...)
	prefix := InvitePrefix
	if c.Link {
		prefix = LinkPrefix
	}
	return prefix + strings.ToLower(inviteEncoding.EncodeToString(b))
}

// ParseInviteCode decodes and checks an invite code.
func ParseInviteCode(s string) (*InviteCode, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '\n', '\r', '\t':
			return -1
		}
		return r
	}, strings.ToLower(s))
	rest, link := strings.CutPrefix(s, LinkPrefix)
	if !link {
		var ok bool
		if rest, ok = strings.CutPrefix(s, InvitePrefix); !ok {
			return nil, fmt.Errorf("%w: it should start with %q (a partner invite) or %q (a device link)", ErrBadInviteCode, InvitePrefix, LinkPrefix)
		}
	}
	b, err := inviteEncoding.DecodeString(strings.ToUpper(rest))
	if err != nil {
		return nil, fmt.Errorf("%w: some characters are not part of a code", ErrBadInviteCode)
	}
	if len(b) < 1+JournalIDSize+InviteSecretSize+1+4 || len(b) > 1+JournalIDSize+InviteSecretSize+255+4 {
		return nil, fmt.Errorf("%w: it is too short or too long", ErrBadInviteCode)
	}
	body, sum := b[:len(b)-4], b[len(b)-4:]
	want := sha256.Sum256(body)
	if !bytes.Equal(sum, want[:4]) {
		return nil, fmt.Errorf("%w: a character may have been changed or lost when it was copied", ErrBadInviteCode)
	}
	if body[0] != inviteVersion {
		return nil, fmt.Errorf("%w: it was made by a newer version of kintsugi", ErrBadInviteCode)
	}
	c := &InviteCode{Relay: string(body[1+JournalIDSize+InviteSecretSize:]), Link: link}
	copy(c.Journal[:], body[1:])
	copy(c.Secret[:], body[1+JournalIDSize:])
	return c, nil
}
