package crypto

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"

	"golang.org/x/crypto/nacl/secretbox"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// InviteKeys are derived from an invite secret with HKDF-SHA-256 (no salt).
// The relay is given AuthHash when the invite is made and Token when it is
// redeemed; it never learns Key, which seals what the partners exchange.
type InviteKeys struct {
	Token    [32]byte // HKDF info "kintsugi invite token v1": proves the secret to the relay
	AuthHash [32]byte // SHA-256(Token): what the relay stores
	Key      [32]byte // HKDF info "kintsugi invite key v1": seals the member records
}

// DeriveInvite derives the invite keys from a 32-byte secret.
func DeriveInvite(secret [32]byte) (*InviteKeys, error) {
	return deriveInvite(secret, "kintsugi invite token v1", "kintsugi invite key v1")
}

// DeriveLink derives the keys of a device link code from its secret. They
// are InviteKeys for another purpose (HKDF info "kintsugi link token v1"
// and "kintsugi link key v1"), so a link code can never be used as a
// partner invite or the other way round.
func DeriveLink(secret [32]byte) (*InviteKeys, error) {
	return deriveInvite(secret, "kintsugi link token v1", "kintsugi link key v1")
}

func deriveInvite(secret [32]byte, tokenInfo, keyInfo string) (*InviteKeys, error) {
	k := &InviteKeys{}
	t, err := hkdf.Key(sha256.New, secret[:], nil, tokenInfo, 32)
	if err != nil {
		return nil, err
	}
	key, err := hkdf.Key(sha256.New, secret[:], nil, keyInfo, 32)
	if err != nil {
		return nil, err
	}
	copy(k.Token[:], t)
	copy(k.Key[:], key)
	k.AuthHash = sha256.Sum256(k.Token[:])
	return k, nil
}

// ErrInvitePacket is returned when an invite packet or join blob does not
// open under the invite key.
var ErrInvitePacket = errors.New("the invite did not open: it was altered, or the code is not the one for this invite")

// SealInvitePacket seals the inviter's member record for the relay to hand
// to whoever redeems the invite: nonce (24) || secretbox(journal id || record).
func SealInvitePacket(rand io.Reader, k *InviteKeys, journal protocol.JournalID, record []byte) ([]byte, error) {
	var nonce [24]byte
	if err := randomBytes(rand, nonce[:]); err != nil {
		return nil, err
	}
	msg := append(journal[:len(journal):len(journal)], record...)
	return secretbox.Seal(nonce[:], msg, &nonce, &k.Key), nil
}

// OpenInvitePacket opens a packet from [SealInvitePacket] and checks it is
// for journal.
func OpenInvitePacket(k *InviteKeys, journal protocol.JournalID, packet []byte) ([]byte, error) {
	if len(packet) < 24+secretbox.Overhead+protocol.JournalIDSize {
		return nil, ErrInvitePacket
	}
	msg, ok := secretbox.Open(nil, packet[24:], (*[24]byte)(packet[:24]), &k.Key)
	if !ok || subtle.ConstantTimeCompare(msg[:protocol.JournalIDSize], journal[:]) != 1 {
		return nil, ErrInvitePacket
	}
	return msg[protocol.JournalIDSize:], nil
}

// SealJoin builds a join blob: the joiner's member record sealed under the
// invite key, bound to the blob's header and the invite. h.Kind must be
// [protocol.KindJoin].
func SealJoin(rand io.Reader, k *InviteKeys, h protocol.Header, record []byte) ([]byte, error) {
	if h.Kind != protocol.KindJoin {
		return nil, errors.New("seal join: header kind is not join")
	}
	var nonce [24]byte
	if err := randomBytes(rand, nonce[:]); err != nil {
		return nil, err
	}
	blob := h.Marshal(nil)
	blob = append(blob, k.AuthHash[:]...)
	blob = append(blob, nonce[:]...)
	bind := sha256Concat(blob)
	msg := append(bind[:], record...)
	return secretbox.Seal(blob, msg, &nonce, &k.Key), nil
}

// OpenJoin opens a join blob with the invite's keys and returns the member
// record. It checks the binding to the header and the invite.
func OpenJoin(k *InviteKeys, blob []byte) ([]byte, error) {
	j, err := protocol.ParseJoin(blob)
	if err != nil || j.InviteHash != k.AuthHash {
		return nil, ErrInvitePacket
	}
	msg, ok := secretbox.Open(nil, j.Sealed, &j.Nonce, &k.Key)
	if !ok || len(msg) < 32 {
		return nil, ErrInvitePacket
	}
	bind := sha256Concat(blob[:protocol.HeaderSize+32+24])
	if subtle.ConstantTimeCompare(bind[:], msg[:32]) != 1 {
		return nil, ErrInvitePacket
	}
	return msg[32:], nil
}
