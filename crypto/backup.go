package crypto

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/nacl/secretbox"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Identity backups.
//
// A backup file is sealed under a key derived from a recovery phrase: 160
// random bits from crypto/rand, shown once to the person in eight groups of
// five characters. Each group is four data characters and one check
// character, so a mistyped group is named before any decryption is tried.
//
// The backup key comes from HKDF-SHA-256 (RFC 5869) over the phrase's 20
// bytes, with a random per-file salt and the info "kintsugi backup key v1";
// a 16-byte check value ("kintsugi backup check v1") is kept in the file so
// a wrong phrase can be told apart from a damaged file. There is no
// argon2id here on purpose: a slow KDF only helps a secret a person chose,
// which an attacker can guess; guessing a 160-bit random phrase is out of
// reach at any cost per guess, so a memory-hard KDF would only make restore
// slow. HKDF gives independent keys for independent uses (key, check).

// RecoverySecretSize is the entropy of a recovery phrase in bytes (160 bits).
const RecoverySecretSize = 20

// RecoverySecret is the secret a recovery phrase spells. Treat it like a
// private key: never log or store it.
type RecoverySecret [RecoverySecretSize]byte

// phraseAlphabet is Crockford's base32: digits and lowercase letters
// without i, l, o and u, so the characters people confuse most cannot be
// told apart wrongly. When reading, o is taken as 0 and i and l as 1.
const phraseAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

const (
	phraseGroups    = 8 // groups in a phrase
	phraseDataChars = 4 // data characters per group (20 bits)
	phraseGroupLen  = phraseDataChars + 1
)

// NewRecoverySecret draws a recovery secret from rand (crypto/rand.Reader
// outside tests).
func NewRecoverySecret(rand io.Reader) (*RecoverySecret, error) {
	var s RecoverySecret
	if err := randomBytes(rand, s[:]); err != nil {
		return nil, fmt.Errorf("draw a recovery phrase: %w", err)
	}
	return &s, nil
}

// symbols splits s into 32 five-bit values, most significant bits first.
func (s *RecoverySecret) symbols() [phraseGroups * phraseDataChars]byte {
	var out [phraseGroups * phraseDataChars]byte
	for i := range out {
		bit := i * 5
		// Read the 16 bits starting at bit's byte and pick 5 of them.
		var w uint16 = uint16(s[bit/8]) << 8
		if bit/8+1 < len(s) {
			w |= uint16(s[bit/8+1])
		}
		out[i] = byte(w>>(11-bit%8)) & 31
	}
	return out
}

// Phrase returns the recovery phrase: eight groups of five characters
// separated by single spaces.
func (s *RecoverySecret) Phrase() string {
	sym := s.symbols()
	var b strings.Builder
	for g := range phraseGroups {
		if g > 0 {
			b.WriteByte(' ')
		}
		data := sym[g*phraseDataChars : (g+1)*phraseDataChars]
		for _, v := range data {
			b.WriteByte(phraseAlphabet[v])
		}
		b.WriteByte(phraseAlphabet[groupCheck(g, data)])
	}
	return b.String()
}

// groupCheck is the Luhn mod 32 check character of a group, computed over
// the group's position and its four data values. It catches every single
// mistyped character in a group, most swaps of neighbouring characters,
// and most groups typed in the wrong place.
func groupCheck(group int, data []byte) byte {
	vals := append([]byte{byte(group)}, data...)
	factor, sum := 2, 0
	for i := len(vals) - 1; i >= 0; i-- {
		add := factor * int(vals[i])
		factor = 3 - factor
		sum += add/32 + add%32
	}
	return byte((32 - sum%32) % 32)
}

// PhraseError says what is wrong with a recovery phrase as typed. Group is
// 1-based; 0 means the phrase as a whole. It never holds the phrase.
type PhraseError struct {
	Group  int
	Reason string
}

func (e *PhraseError) Error() string {
	if e.Group == 0 {
		return "the recovery phrase " + e.Reason
	}
	return fmt.Sprintf("group %d of the recovery phrase %s", e.Group, e.Reason)
}

// ErrBadPhrase is wrapped by every [PhraseError].
var ErrBadPhrase = errors.New("the recovery phrase is not right")

func (e *PhraseError) Unwrap() error { return ErrBadPhrase }

// ParseRecoveryPhrase reads a phrase as a person types it: any case, with
// spaces, dashes or nothing between the groups, and o, i or l where 0 or 1
// were meant. A mistake is reported as a [*PhraseError] naming the group.
func ParseRecoveryPhrase(text string) (*RecoverySecret, error) {
	fields := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return r == ' ' || r == '-' || r == '\t' || r == '\n' || r == '\r' || r == '.' || r == ','
	})
	joined := strings.Join(fields, "")
	var groups []string
	switch {
	case len(fields) == phraseGroups:
		groups = fields
	case len(fields) == 1 && len(joined) == phraseGroups*phraseGroupLen:
		for i := 0; i < len(joined); i += phraseGroupLen {
			groups = append(groups, joined[i:i+phraseGroupLen])
		}
	case len(joined) == 0:
		return nil, &PhraseError{Reason: "is empty"}
	default:
		return nil, &PhraseError{Reason: fmt.Sprintf("has %d groups; it should have %d groups of %d characters", len(fields), phraseGroups, phraseGroupLen)}
	}
	var sym [phraseGroups * phraseDataChars]byte
	for g, text := range groups {
		if len(text) != phraseGroupLen {
			return nil, &PhraseError{Group: g + 1, Reason: fmt.Sprintf("has %d characters; each group has %d", len(text), phraseGroupLen)}
		}
		var vals [phraseGroupLen]byte
		for i := range len(text) {
			v, ok := phraseValue(text[i])
			if !ok {
				return nil, &PhraseError{Group: g + 1, Reason: "has a character that is never used in recovery phrases (they use 0-9 and the letters a-z without i, l, o and u)"}
			}
			vals[i] = v
		}
		if groupCheck(g, vals[:phraseDataChars]) != vals[phraseDataChars] {
			return nil, &PhraseError{Group: g + 1, Reason: "looks mistyped (its check character does not match)"}
		}
		copy(sym[g*phraseDataChars:], vals[:phraseDataChars])
	}
	var s RecoverySecret
	for i, v := range sym {
		bit := i * 5
		// Spread 5 bits over at most two bytes.
		w := uint16(v) << (11 - bit%8)
		s[bit/8] |= byte(w >> 8)
		if bit/8+1 < len(s) {
			s[bit/8+1] |= byte(w)
		}
	}
	return &s, nil
}

func phraseValue(c byte) (byte, bool) {
	switch c {
	case 'o':
		c = '0'
	case 'i', 'l':
		c = '1'
	}
	i := strings.IndexByte(phraseAlphabet, c)
	return byte(i), i >= 0
}

// Backup file layout (every byte is checked or authenticated):
//
//	0   16  magic "kintsugi backup\n"
//	16  1   version (1)
//	17  32  salt, random
//	49  16  check: HKDF-SHA-256(secret, salt, "kintsugi backup check v1"), 16 bytes
//	65  24  nonce, random
//	89  n   secretbox(contents, nonce, HKDF-SHA-256(secret, salt, "kintsugi backup key v1"))
//
// The magic and version are compared exactly; the salt feeds both
// derivations and the nonce is authenticated by secretbox, so changing any
// byte makes opening fail.
const (
	backupMagic      = "kintsugi backup\n"
	backupVersion    = 1
	backupSaltSize   = 32
	backupCheckSize  = 16
	backupHeaderSize = len(backupMagic) + 1 + backupSaltSize + backupCheckSize + 24
	backupKeyInfo    = "kintsugi backup key v1"
	backupCheckInfo  = "kintsugi backup check v1"
)

// Errors from opening a backup file.
var (
	// ErrNotBackup: the file does not start like a backup file.
	ErrNotBackup = errors.New("this is not a kintsugi backup file")
	// ErrBackupVersion: a newer kintsugi made the file.
	ErrBackupVersion = errors.New("this backup was made by a newer version of kintsugi")
	// ErrWrongRecoveryPhrase: the file is well formed but the phrase is
	// not the one it was sealed with (or its header was altered).
	ErrWrongRecoveryPhrase = errors.New("that recovery phrase does not open this backup file")
	// ErrBackupDamaged: the phrase is right but the contents do not
	// authenticate: the file was changed or damaged after it was made.
	ErrBackupDamaged = errors.New("this backup file was changed or damaged after it was made, so it cannot be trusted")
)

func backupKeys(s *RecoverySecret, salt []byte) (key *[32]byte, check []byte, err error) {
	k, err := hkdf.Key(sha256.New, s[:], salt, backupKeyInfo, 32)
	if err != nil {
		return nil, nil, err
	}
	check, err = hkdf.Key(sha256.New, s[:], salt, backupCheckInfo, backupCheckSize)
	if err != nil {
		return nil, nil, err
	}
	key = new([32]byte)
	copy(key[:], k)
	clear(k)
	return key, check, nil
}

// SealBackup seals contents into a backup file under s, with a fresh salt
// and nonce from rand.
func SealBackup(rand io.Reader, s *RecoverySecret, contents []byte) ([]byte, error) {
	out := make([]byte, 0, backupHeaderSize+len(contents)+secretbox.Overhead)
	out = append(out, backupMagic...)
	out = append(out, backupVersion)
	salt := make([]byte, backupSaltSize)
	if err := randomBytes(rand, salt); err != nil {
		return nil, err
	}
	key, check, err := backupKeys(s, salt)
	if err != nil {
		return nil, err
	}
	defer clear(key[:])
	var nonce [24]byte
	if err := randomBytes(rand, nonce[:]); err != nil {
		return nil, err
	}
	out = append(out, salt...)
	out = append(out, check...)
	out = append(out, nonce[:]...)
	return secretbox.Seal(out, contents, &nonce, key), nil
}

// CheckBackupHeader reports whether file starts like a backup this
// version can open, without needing the phrase: [ErrNotBackup] or
// [ErrBackupVersion] if not.
func CheckBackupHeader(file []byte) error {
	if len(file) < len(backupMagic)+1 || !bytes.Equal(file[:len(backupMagic)], []byte(backupMagic)) {
		return ErrNotBackup
	}
	switch v := file[len(backupMagic)]; {
	case v == backupVersion:
	case v > backupVersion:
		return ErrBackupVersion
	default:
		return ErrNotBackup
	}
	if len(file) < backupHeaderSize+secretbox.Overhead {
		return ErrBackupDamaged
	}
	return nil
}

// OpenBackup opens a backup file with s. It returns [ErrNotBackup] or
// [ErrBackupVersion] for a file it cannot read, [ErrWrongRecoveryPhrase]
// when the phrase does not match the file's check value, and
// [ErrBackupDamaged] when the phrase matches but the contents do not
// authenticate.
func OpenBackup(s *RecoverySecret, file []byte) ([]byte, error) {
	if err := CheckBackupHeader(file); err != nil {
		return nil, err
	}
	p := file[len(backupMagic)+1:]
	salt, p := p[:backupSaltSize], p[backupSaltSize:]
	check, p := p[:backupCheckSize], p[backupCheckSize:]
	nonce, sealed := (*[24]byte)(p[:24]), p[24:]
	key, want, err := backupKeys(s, salt)
	if err != nil {
		return nil, err
	}
	defer clear(key[:])
	if subtle.ConstantTimeCompare(check, want) != 1 {
		return nil, ErrWrongRecoveryPhrase
	}
	plain, ok := secretbox.Open(nil, sealed, nonce, key)
	if !ok {
		return nil, ErrBackupDamaged
	}
	return plain, nil
}

// CheckSentGrant checks that g, a grant whose header names this keyring's
// device as its author, was sealed for the device whose box key is to: its
// key id names to, and its binding box over the header and items opens
// with the key this device shares with to. Only this device, or the device
// it was sent to, can make a grant that passes (the box key is shared by
// both); the relay cannot. A restored device uses it to tell its own
// grants on the relay from forgeries.
func (o *Keyring) CheckSentGrant(g *protocol.Grant, to [32]byte) error {
	return o.checkGrant(g, to, to)
}
