// Package crypto holds Kintsugi's cryptography as pure functions: keys and
// device certificates, the passphrase-protected key file, sealing and opening
// entries, re-boxing content keys, invites, safety numbers, and identity
// backups with their recovery phrases.
//
// It does no I/O. Every primitive comes from the standard library or
// golang.org/x/crypto: Ed25519 for identities and device certificates,
// nacl/box (X25519, XSalsa20-Poly1305) for content keys, nacl/secretbox for
// payloads, key files and backups, argon2id for passphrases, HKDF-SHA-256
// for invite and backup keys, SHA-256 and SHA-512 for hashes.
//
// # Keys
//
// A person has an identity key (Ed25519). Each device has a box key pair
// (X25519) for entries and a signing key pair (Ed25519) for relay
// authentication; a [DeviceCert] signed by the identity key binds both to
// the person. Partners pin each other's identity key when they pair and
// compare a [SafetyNumber].
//
// # Entries
//
// See [SealEntry]: a fresh content key per entry, the padded payload sealed
// with secretbox, the content key and a hash of the sealed content boxed
// from the author's device to every recipient device. Opening fails closed
// with [ErrCannotOpen], one opaque error whatever went wrong.
package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Identity is a person's long-term signing key.
type Identity struct {
	Public  ed25519.PublicKey
	Private ed25519.PrivateKey
}

// NewIdentity generates an identity key from rand.
func NewIdentity(rand io.Reader) (*Identity, error) {
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generate identity key: %w", err)
	}
	return &Identity{Public: pub, Private: priv}, nil
}

// IdentityFromSeed rebuilds an identity from its 32-byte seed.
func IdentityFromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, errors.New("identity seed must be 32 bytes")
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return &Identity{Public: priv.Public().(ed25519.PublicKey), Private: priv}, nil
}

// Device holds one device's private keys.
type Device struct {
	BoxPublic   [32]byte
	BoxPrivate  [32]byte
	SignPublic  ed25519.PublicKey
	SignPrivate ed25519.PrivateKey
}

// NewDevice generates a device's box and signing key pairs from rand.
func NewDevice(rand io.Reader) (*Device, error) {
	bpub, bpriv, err := box.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generate box key: %w", err)
	}
	spub, spriv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return &Device{BoxPublic: *bpub, BoxPrivate: *bpriv, SignPublic: spub, SignPrivate: spriv}, nil
}

// DeviceFromSeeds rebuilds a device from its box private key and signing seed.
func DeviceFromSeeds(boxPrivate, signSeed []byte) (*Device, error) {
	if len(boxPrivate) != 32 || len(signSeed) != ed25519.SeedSize {
		return nil, errors.New("device keys must be 32 bytes each")
	}
	d := &Device{}
	copy(d.BoxPrivate[:], boxPrivate)
	pub, err := publicFromPrivate(&d.BoxPrivate)
	if err != nil {
		return nil, err
	}
	d.BoxPublic = pub
	d.SignPrivate = ed25519.NewKeyFromSeed(signSeed)
	d.SignPublic = d.SignPrivate.Public().(ed25519.PublicKey)
	return d, nil
}

// SignKey returns the device's signing public key as an array.
func (d *Device) SignKey() [32]byte {
	var k [32]byte
	copy(k[:], d.SignPublic)
	return k
}

// AuthKey is a bare device signing key that can do one thing: answer a
// relay's auth challenge. Relay tests and the load generator use it for
// devices that never seal or open entries; a real device signs through its
// [Keyring].
type AuthKey ed25519.PrivateKey

// SignPublic returns the key's public half.
func (k AuthKey) SignPublic() ed25519.PublicKey {
	return ed25519.PrivateKey(k).Public().(ed25519.PublicKey)
}

// SignAuth signs [protocol.AuthMessage](relayID, challenge) and nothing
// else.
func (k AuthKey) SignAuth(relayID string, challenge []byte) []byte {
	return ed25519.Sign(ed25519.PrivateKey(k), protocol.AuthMessage(relayID, challenge))
}

// KeyID returns the 8-byte id of a box public key used in recipient tables:
// the first 8 bytes of its SHA-256.
func KeyID(boxPublic [32]byte) [protocol.KeyIDSize]byte {
	sum := sha256.Sum256(boxPublic[:])
	var id [protocol.KeyIDSize]byte
	copy(id[:], sum[:])
	return id
}

// DeviceCert binds a device's box and signing keys to a person's identity.
//
// Layout (all of it signed except the signature itself):
//
//	0   1   version (1)
//	1   32  identity public key (Ed25519)
//	33  32  device signing public key (Ed25519)
//	65  32  device box public key (X25519)
//	97  8   created, unix seconds, big-endian
//	105 1   name length n (0..64)
//	106 n   device name, UTF-8
//	... 64  Ed25519 signature by the identity key over certContext || bytes before it
type DeviceCert struct {
	Identity [32]byte
	Sign     [32]byte
	Box      [32]byte
	Created  time.Time
	Name     string
	Raw      []byte
}

const (
	certVersion    = 1
	certContext    = "kintsugi device cert v1\x00"
	maxDeviceName  = 64
	certFixedSize  = 106
	certSignatureN = ed25519.SignatureSize
)

// ErrBadCert is returned for a device certificate that is malformed or whose
// signature does not verify.
var ErrBadCert = errors.New("device certificate is not valid")

// NewDeviceCert signs a certificate for d with id.
func NewDeviceCert(id *Identity, d *Device, name string, created time.Time) ([]byte, error) {
	if len(name) > maxDeviceName {
		return nil, fmt.Errorf("device name is longer than %d bytes", maxDeviceName)
	}
	b := []byte{certVersion}
	b = append(b, id.Public...)
	b = append(b, d.SignPublic...)
	b = append(b, d.BoxPublic[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(created.Unix()))
	b = append(b, byte(len(name)))
	b = append(b, name...)
	sig := ed25519.Sign(id.Private, append([]byte(certContext), b...))
	return append(b, sig...), nil
}

// ParseDeviceCert parses a certificate and verifies its signature against
// the identity key it names. The caller must still check that the identity
// is the one it expects.
func ParseDeviceCert(raw []byte) (*DeviceCert, error) {
	if len(raw) < certFixedSize+certSignatureN || raw[0] != certVersion {
		return nil, ErrBadCert
	}
	n := int(raw[105])
	if n > maxDeviceName || len(raw) != certFixedSize+n+certSignatureN {
		return nil, ErrBadCert
	}
	body, sig := raw[:certFixedSize+n], raw[certFixedSize+n:]
	if !ed25519.Verify(ed25519.PublicKey(raw[1:33]), append([]byte(certContext), body...), sig) {
		return nil, ErrBadCert
	}
	c := &DeviceCert{
		Created: time.Unix(int64(binary.BigEndian.Uint64(raw[97:105])), 0).UTC(),
		Name:    string(raw[106 : 106+n]),
		Raw:     bytes.Clone(raw),
	}
	copy(c.Identity[:], raw[1:33])
	copy(c.Sign[:], raw[33:65])
	copy(c.Box[:], raw[65:97])
	return c, nil
}
