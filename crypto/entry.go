package crypto

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
	"golang.org/x/crypto/nacl/secretbox"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// ErrCannotOpen is the one error opening returns, whatever failed: the blob
// was altered, truncated, written by someone else, moved from another
// journal, or not sealed for this device. Callers that need to know which
// can compare headers themselves; the cryptography stays opaque.
var ErrCannotOpen = errors.New("this entry could not be opened")

// MaxPayload is the largest plaintext payload an entry may carry.
const MaxPayload = 512 << 10

// ContentKey is what is boxed to each recipient of an entry: the secretbox
// key of the payload and the SHA-256 of the sealed content (header, payload
// nonce and ciphertext). The hash commits every recipient's box to one
// ciphertext, so a recipient who knows the key cannot re-use another
// recipient's box with a payload of its own.
type ContentKey struct {
	Key  [32]byte
	Hash [32]byte
}

func (k *ContentKey) bytes() []byte {
	b := make([]byte, 0, 64)
	b = append(b, k.Key[:]...)
	return append(b, k.Hash[:]...)
}

// Pad returns the payload framed and padded for sealing: a 4-byte
// big-endian length, the payload, then zeros up to the bucket size. Buckets
// are 256 bytes, then each power of two up to 64 KiB, then multiples of
// 64 KiB, so the relay learns only a coarse size.
func Pad(payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("entry is %d bytes; the most one entry can hold is %d", len(payload), MaxPayload)
	}
	n := PaddedSize(len(payload))
	b := make([]byte, n)
	binary.BigEndian.PutUint32(b, uint32(len(payload)))
	copy(b[4:], payload)
	return b, nil
}

// PaddedSize returns the padded size for a payload of n bytes.
func PaddedSize(n int) int {
	need := n + 4
	size := 256
	for size < need && size < 64<<10 {
		size *= 2
	}
	if need > size {
		size = (need + (64 << 10) - 1) / (64 << 10) * (64 << 10)
	}
	return size
}

// Unpad reverses [Pad]. It rejects any framing that Pad would not produce,
// including non-zero padding.
func Unpad(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, ErrCannotOpen
	}
	n := int(binary.BigEndian.Uint32(b))
	if n > len(b)-4 || PaddedSize(n) != len(b) {
		return nil, ErrCannotOpen
	}
	var nz byte
	for _, c := range b[4+n:] {
		nz |= c
	}
	if nz != 0 {
		return nil, ErrCannotOpen
	}
	return b[4 : 4+n], nil
}

// SealEntry seals payload as an entry blob from author to every box key in
// recipients (duplicates are dropped; include the author's own key so the
// author's devices can read it back). h.Kind must be [protocol.KindEntry].
// It returns the blob and the content key, which the author needs to re-box
// the entry for devices that join later.
func SealEntry(rand io.Reader, author *Device, h protocol.Header, recipients [][32]byte, payload []byte) ([]byte, ContentKey, error) {
	return NewKeyring(author).SealEntry(rand, h, recipients, payload)
}

// SealEntry is [SealEntry] from the keyring's device, with cached box keys.
func (o *Keyring) SealEntry(rand io.Reader, h protocol.Header, recipients [][32]byte, payload []byte) ([]byte, ContentKey, error) {
	var ck ContentKey
	if h.Kind != protocol.KindEntry {
		return nil, ck, errors.New("seal entry: header kind is not entry")
	}
	rcpts := dedupe(recipients)
	if len(rcpts) == 0 || len(rcpts) > protocol.MaxRecipients {
		return nil, ck, fmt.Errorf("seal entry: %d recipients is outside 1..%d", len(rcpts), protocol.MaxRecipients)
	}
	padded, err := Pad(payload)
	if err != nil {
		return nil, ck, err
	}
	var nonce [24]byte
	if err := randomBytes(rand, ck.Key[:]); err != nil {
		return nil, ck, err
	}
	if err := randomBytes(rand, nonce[:]); err != nil {
		return nil, ck, err
	}
	hdr := h.Marshal(nil)
	ct := secretbox.Seal(nil, padded, &nonce, &ck.Key)
	ck.Hash = sha256Concat(hdr, nonce[:], ct)

	blob := make([]byte, 0, len(hdr)+24+1+len(rcpts)*protocol.RecipientSize+len(ct))
	blob = append(blob, hdr...)
	blob = append(blob, nonce[:]...)
	blob = append(blob, byte(len(rcpts)))
	for _, r := range rcpts {
		blob, err = o.boxKey(rand, blob, r, &ck)
		if err != nil {
			return nil, ck, err
		}
	}
	blob = append(blob, ct...)
	return blob, ck, nil
}

// boxKey appends one recipient slot to b: key id, nonce, boxed content key.
func (o *Keyring) boxKey(rand io.Reader, b []byte, to [32]byte, ck *ContentKey) ([]byte, error) {
	k, err := o.sharedKey(to)
	if err != nil {
		return nil, err
	}
	var nonce [24]byte
	if err := randomBytes(rand, nonce[:]); err != nil {
		return nil, err
	}
	id := KeyID(to)
	b = append(b, id[:]...)
	b = append(b, nonce[:]...)
	return box.SealAfterPrecomputation(b, ck.bytes(), &nonce, k), nil
}

func dedupe(keys [][32]byte) [][32]byte {
	seen := make(map[[32]byte]bool, len(keys))
	out := make([][32]byte, 0, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// lowOrderScalar is any fixed non-zero scalar: X25519 with it returns an
// error exactly when the point has low order.
var lowOrderScalar = [32]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

// ErrBadKey is returned for a box public key of low order, which would make
// every shared secret with it predictable.
var ErrBadKey = errors.New("box public key is not usable (low order)")

// CheckBoxKey rejects low-order X25519 public keys.
func CheckBoxKey(pub [32]byte) error {
	if _, err := curve25519.X25519(lowOrderScalar[:], pub[:]); err != nil {
		return ErrBadKey
	}
	return nil
}

// Keyring seals and opens entries and grants for one device, and answers
// relay auth challenges for it: the one place a device's private keys are
// used once the device is unlocked. It caches the precomputed box
// key for each peer (after checking the peer's key is not of low order), so
// sealing to or opening from the same device again costs no X25519
// operation. It is safe for concurrent use.
type Keyring struct {
	dev *Device // static after construction

	mu     sync.Mutex
	shared map[[32]byte]*[32]byte // peer box key → precomputed box key
}

// NewKeyring returns a Keyring for d.
func NewKeyring(d *Device) *Keyring {
	return &Keyring{dev: d, shared: make(map[[32]byte]*[32]byte)}
}

// SignPublic returns the device's public signing key, by which relays
// know the device.
func (o *Keyring) SignPublic() ed25519.PublicKey { return o.dev.SignPublic }

// SignAuth signs a relay's auth challenge for the device: the bytes of
// [protocol.AuthMessage](relayID, challenge) and nothing else.
func (o *Keyring) SignAuth(relayID string, challenge []byte) []byte {
	return AuthKey(o.dev.SignPrivate).SignAuth(relayID, challenge)
}

func (o *Keyring) sharedKey(peer [32]byte) (*[32]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if k, ok := o.shared[peer]; ok {
		return k, nil
	}
	if err := CheckBoxKey(peer); err != nil {
		return nil, err
	}
	k := new([32]byte)
	box.Precompute(k, &peer, &o.dev.BoxPrivate)
	o.shared[peer] = k
	return k, nil
}

// EntryKey finds this device's slot in e and opens the content key boxed
// by authorBox, the box key of the device named in e's header. It checks
// that the key's content hash matches e.
func (o *Keyring) EntryKey(e *protocol.Entry, authorBox [32]byte) (ContentKey, error) {
	id := KeyID(o.dev.BoxPublic)
	for i := range e.Recipients {
		r := &e.Recipients[i]
		if r.KeyID != id {
			continue
		}
		ck, err := o.openSlot(r, authorBox)
		if err != nil {
			continue // a colliding key id; keep looking
		}
		if checkHash(e, &ck) != nil {
			return ContentKey{}, ErrCannotOpen
		}
		return ck, nil
	}
	return ContentKey{}, ErrCannotOpen
}

// OpenGrant checks a grant addressed to this device: its key id, and the
// binding box from granterBox over the header and items. The caller must
// check that the grant's author is the author of each entry it names.
func (o *Keyring) OpenGrant(g *protocol.Grant, granterBox [32]byte) error {
	return o.checkGrant(g, o.dev.BoxPublic, granterBox)
}

// checkGrant checks that g's key id names the device whose box key is
// recipient, and that its binding box over the header and items opens
// with the key this device shares with peer.
func (o *Keyring) checkGrant(g *protocol.Grant, recipient, peer [32]byte) error {
	if g.KeyID != KeyID(recipient) {
		return ErrCannotOpen
	}
	k, err := o.sharedKey(peer)
	if err != nil {
		return ErrCannotOpen
	}
	var buf [32]byte
	sum, ok := box.OpenAfterPrecomputation(buf[:0], g.BindBox, &g.BindNonce, k)
	want := sha256.Sum256(g.Bound)
	if !ok || subtle.ConstantTimeCompare(sum, want[:]) != 1 {
		return ErrCannotOpen
	}
	return nil
}

// GrantKey opens one item of a grant that [Keyring.OpenGrant] accepted, and
// checks the key against the entry it names.
func (o *Keyring) GrantKey(item *protocol.GrantItem, granterBox [32]byte, e *protocol.Entry) (ContentKey, error) {
	if item.Entry != e.ContentHash() {
		return ContentKey{}, ErrCannotOpen
	}
	ck, err := o.openBoxed(item.Boxed, &item.Nonce, granterBox)
	if err != nil {
		return ContentKey{}, err
	}
	if checkHash(e, &ck) != nil {
		return ContentKey{}, ErrCannotOpen
	}
	return ck, nil
}

func (o *Keyring) openSlot(r *protocol.Recipient, from [32]byte) (ContentKey, error) {
	return o.openBoxed(r.Boxed, &r.Nonce, from)
}

func (o *Keyring) openBoxed(boxed []byte, nonce *[24]byte, from [32]byte) (ContentKey, error) {
	var ck ContentKey
	k, err := o.sharedKey(from)
	if err != nil {
		return ck, ErrCannotOpen
	}
	var buf [64]byte
	out, ok := box.OpenAfterPrecomputation(buf[:0], boxed, nonce, k)
	if !ok || len(out) != 64 {
		return ck, ErrCannotOpen
	}
	copy(ck.Key[:], out[:32])
	copy(ck.Hash[:], out[32:])
	return ck, nil
}

func checkHash(e *protocol.Entry, ck *ContentKey) error {
	sum := e.ContentHash()
	if subtle.ConstantTimeCompare(sum[:], ck.Hash[:]) != 1 {
		return ErrCannotOpen
	}
	return nil
}

// OpenPayload decrypts e's payload with ck and removes the padding.
func OpenPayload(e *protocol.Entry, ck ContentKey) ([]byte, error) {
	if checkHash(e, &ck) != nil {
		return nil, ErrCannotOpen
	}
	padded, ok := secretbox.Open(nil, e.Ciphertext, &e.Nonce, &ck.Key)
	if !ok {
		return nil, ErrCannotOpen
	}
	return Unpad(padded)
}

// OpenEntry parses blob, checks that it belongs to journal, and opens it for
// this device given the author device's box key. It is [protocol.ParseEntry],
// [Keyring.EntryKey] and [OpenPayload] in one call.
func (o *Keyring) OpenEntry(blob []byte, journal protocol.JournalID, authorBox [32]byte) ([]byte, error) {
	e, err := protocol.ParseEntry(blob)
	if err != nil || e.Header.Journal != journal {
		return nil, ErrCannotOpen
	}
	ck, err := o.EntryKey(e, authorBox)
	if err != nil {
		return nil, err
	}
	return OpenPayload(e, ck)
}

// GrantInput is one content key to re-box in a grant.
type GrantInput struct {
	Entry protocol.BlobID // the entry's chain id
	Key   ContentKey
}

// SealGrant builds a grant blob from granter to the device with box key to:
// each item's content key boxed to it, and a binding box over the header
// and items. h.Kind must be [protocol.KindGrant].
func SealGrant(rand io.Reader, granter *Device, h protocol.Header, to [32]byte, items []GrantInput) ([]byte, error) {
	return NewKeyring(granter).SealGrant(rand, h, to, items)
}

// SealGrant is [SealGrant] from the keyring's device, with cached box keys.
func (o *Keyring) SealGrant(rand io.Reader, h protocol.Header, to [32]byte, items []GrantInput) ([]byte, error) {
	if h.Kind != protocol.KindGrant {
		return nil, errors.New("seal grant: header kind is not grant")
	}
	if len(items) == 0 || len(items) > protocol.MaxGrantItems {
		return nil, fmt.Errorf("seal grant: %d items is outside 1..%d", len(items), protocol.MaxGrantItems)
	}
	k, err := o.sharedKey(to)
	if err != nil {
		return nil, err
	}
	id := KeyID(to)
	blob := h.Marshal(nil)
	blob = append(blob, id[:]...)
	blob = binary.BigEndian.AppendUint16(blob, uint16(len(items)))
	var nonce [24]byte
	for i := range items {
		it := &items[i]
		if err := randomBytes(rand, nonce[:]); err != nil {
			return nil, err
		}
		blob = append(blob, it.Entry[:]...)
		blob = append(blob, nonce[:]...)
		blob = box.SealAfterPrecomputation(blob, it.Key.bytes(), &nonce, k)
	}
	sum := sha256.Sum256(blob)
	if err := randomBytes(rand, nonce[:]); err != nil {
		return nil, err
	}
	blob = append(blob, nonce[:]...)
	return box.SealAfterPrecomputation(blob, sum[:], &nonce, k), nil
}
