// Package protocol defines Kintsugi's wire format: the messages a client and
// a relay exchange over one WebSocket connection, the byte layout of the
// blobs the relay stores, and the invite code partners pass to each other.
//
// The package does no I/O and no cryptography; it only encodes, decodes and
// validates shapes. Sealing and opening live in package crypto, storage in
// package server, and only package client ever decrypts.
//
// # Protocol flow
//
//   - The client opens a WebSocket to /v1/ws offering the subprotocols of
//     the versions it speaks, newest first ([Subprotocol], then
//     [SubprotocolV1]); the relay picks the newest it speaks, and that is
//     the connection's version ([VersionOf]).
//   - The relay sends [Hello]: the version, its relay id and a fresh
//     32-byte challenge.
//   - The client sends [Auth]: its device signing key and an Ed25519
//     signature over [AuthMessage] (context, relay id, challenge). A
//     challenge is valid for one connection and one attempt.
//   - The relay answers [Welcome], or an [Error] and closes.
//   - The client then sends requests, each with a client-chosen id; every
//     request gets exactly one [OK] or [Error] carrying the same id:
//     [Create], [Invite], [Redeem], [Put], [Subscribe], [Purge],
//     [AddDevice], [RemoveDevice], [Leave].
//   - After [Subscribe] the relay sends [Blob] messages for every stored
//     blob after the cursor, in sequence order, then [CaughtUp], then
//     further [Blob] messages as they are stored, until the connection ends.
//
// Every message is one WebSocket text frame holding one JSON object with a
// "type" field. Binary values are standard base64 with padding. On a
// version 2 connection, blob pushes, puts and put acknowledgements are
// binary frames instead (frames.go): [FrameBlobs], [FramePut], [FrameAcks].
//
// # Version history
//
//   - 1: first version. Purge and Blob.Purged were added within version 1
//     (a relay without them answers purge with "malformed"; clients then
//     keep the retracted blob's ciphertext on the relay). AddDevice,
//     RemoveDevice and Leave were added within version 1 too; a relay
//     without them answers "malformed", and clients then say the relay
//     needs updating before devices can be linked or removed.
//     Also within version 1: the codes quota-exceeded, too-many-connections
//     and origin-not-allowed, [Error.RetryAfterMS], and the relay
//     information document at [InfoPath] (clients read unknown codes as
//     internal errors and ignore unknown fields).
//     Also within version 1: the two-person rule. A relay refuses a
//     partner invite redeemed into a journal that already has two people
//     with the code journal-full (an older client shows the relay's
//     sentence as an internal error), and [Invite.Again] marks an invite
//     made again, which the rule lets through; an older relay ignores the
//     field and admits every redeem.
//   - 2: binary frames for blobs, puts and put acknowledgements, several
//     blobs or acknowledgements to a frame; every other message and every
//     rule as in version 1. Negotiated by the WebSocket subprotocol, so
//     clients and relays of either version keep working together over
//     version 1. [AuthMessage] is unchanged. The relay information
//     document gained [RelayInfo.Subprotocols].
package protocol

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Version is the newest protocol version spoken by this package; it
// speaks [Version1] too. A connection's version is the one its WebSocket
// subprotocol names; it is sent in [Hello], [Auth] and [Welcome], and a
// peer sending another one is refused with [CodeBadVersion].
const Version = 2

// Version1 is the first protocol version: JSON text frames only.
const Version1 = 1

// Subprotocol is the WebSocket subprotocol name for [Version].
const Subprotocol = "kintsugi.v2"

// SubprotocolV1 is the WebSocket subprotocol name for [Version1].
const SubprotocolV1 = "kintsugi.v1"

// SubprotocolOf returns the WebSocket subprotocol name of version v, or ""
// for a version this package does not speak.
func SubprotocolOf(v int) string {
	switch v {
	case Version1:
		return SubprotocolV1
	case Version:
		return Subprotocol
	}
	return ""
}

// VersionOf returns the protocol version a relay's answered WebSocket
// subprotocol names: [Version] for [Subprotocol], [Version1] for
// [SubprotocolV1] or none (what every relay before version 2 answered, or
// a proxy that drops the header), and 0 for anything else.
func VersionOf(subprotocol string) int {
	switch subprotocol {
	case Subprotocol:
		return Version
	case SubprotocolV1, "":
		return Version1
	}
	return 0
}

// Path is the HTTP path of the WebSocket endpoint.
const Path = "/v1/ws"

// Limits that are part of the protocol. A relay may enforce lower ones and
// says so in errors.
const (
	// MaxBlobSize is the largest blob a relay must accept, in bytes.
	MaxBlobSize = 1 << 20
	// MaxMessageSize bounds one WebSocket message: a blob in base64 plus
	// the JSON around it, or (version 2) a binary frame.
	MaxMessageSize = MaxBlobSize*4/3 + 4096
	// ChallengeSize is the length of the relay's auth challenge.
	ChallengeSize = 32
	// JournalIDSize is the length of a journal id.
	JournalIDSize = 16
	// MaxInvitePacket bounds the sealed packet stored with an invite.
	MaxInvitePacket = 64 << 10
)

// AuthContext prefixes the bytes a device signs to authenticate.
const AuthContext = "kintsugi auth v1\x00"

// AuthMessage returns the bytes a device signs in [Auth]: the context, the
// relay id and the connection's challenge. Binding the relay id stops a
// signature made for one relay from being used at another; the challenge is
// fresh per connection, so a recorded signature cannot be replayed.
func AuthMessage(relayID string, challenge []byte) []byte {
	m := make([]byte, 0, len(AuthContext)+1+len(relayID)+len(challenge))
	m = append(m, AuthContext...)
	m = append(m, byte(len(relayID)))
	m = append(m, relayID...)
	m = append(m, challenge...)
	return m
}

// Message types.
const (
	TypeHello        = "hello"
	TypeAuth         = "auth"
	TypeWelcome      = "welcome"
	TypeCreate       = "create"
	TypeInvite       = "invite"
	TypeRedeem       = "redeem"
	TypePut          = "put"
	TypeSubscribe    = "subscribe"
	TypePurge        = "purge"
	TypeAddDevice    = "add_device"
	TypeRemoveDevice = "remove_device"
	TypeLeave        = "leave"
	TypeOK           = "ok"
	TypeError        = "error"
	TypeBlob         = "blob"
	TypeCaughtUp     = "caught_up"
)

// JournalID names a journal. It is 16 random bytes chosen by the creator.
type JournalID [JournalIDSize]byte

// String returns the id in lowercase hex.
func (j JournalID) String() string { return hex.EncodeToString(j[:]) }

// ParseJournalID parses the hex form of a journal id.
func ParseJournalID(s string) (JournalID, error) {
	var j JournalID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != JournalIDSize {
		return j, fmt.Errorf("journal id %q is not 32 hex digits", s)
	}
	copy(j[:], b)
	return j, nil
}

// MarshalText implements encoding.TextMarshaler (hex).
func (j JournalID) MarshalText() ([]byte, error) { return []byte(j.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (hex).
func (j *JournalID) UnmarshalText(b []byte) error {
	p, err := ParseJournalID(string(b))
	if err != nil {
		return err
	}
	*j = p
	return nil
}

// Envelope is the part every message shares. Decode a frame into an
// Envelope first, then into the concrete type named by Type.
type Envelope struct {
	Type string `json:"type"`
	ID   uint64 `json:"id,omitempty"`
}

// Hello is the relay's first message on a connection.
type Hello struct {
	Type      string `json:"type"` // "hello"
	Version   int    `json:"version"`
	RelayID   string `json:"relay_id"`  // stable per relay, at most 255 bytes
	Challenge []byte `json:"challenge"` // ChallengeSize random bytes
}

// Auth is the client's answer to [Hello].
type Auth struct {
	Type      string `json:"type"` // "auth"
	Version   int    `json:"version"`
	Device    []byte `json:"device"`    // Ed25519 public key, 32 bytes
	Signature []byte `json:"signature"` // Ed25519 over AuthMessage
}

// Welcome tells the client it is authenticated.
type Welcome struct {
	Type    string `json:"type"` // "welcome"
	Version int    `json:"version"`
}

// Create asks the relay to create a journal whose only member is the
// authenticated device.
type Create struct {
	Type    string    `json:"type"` // "create"
	ID      uint64    `json:"id"`
	Journal JournalID `json:"journal"`
}

// Invite stores a one-time invite. The relay keeps only AuthHash, never the
// invite secret: AuthHash is SHA-256 of the invite's auth token, and the
// packet is sealed under a key the relay cannot derive.
type Invite struct {
	Type     string    `json:"type"` // "invite"
	ID       uint64    `json:"id"`
	Journal  JournalID `json:"journal"`
	AuthHash []byte    `json:"auth_hash"` // 32 bytes
	Expires  int64     `json:"expires"`   // unix seconds
	Packet   []byte    `json:"packet"`    // at most MaxInvitePacket bytes
	// Link marks a device link: redeeming it only hands over the packet
	// and adds no member (the linking device adds the new device itself
	// with [AddDevice]), so any authenticated device may redeem it.
	Link bool `json:"link,omitempty"`
	// Again marks a partner invite made again, for a partner already in
	// the journal who set kintsugi up anew: redeeming it may add a person
	// to a journal that already has two (see [CodeJournalFull]). Not for
	// a link.
	Again bool `json:"again,omitempty"`
}

// Redeem uses an invite: the relay hashes Token, and if an unexpired, unused
// invite has that hash it marks it used, adds the authenticated device to the
// journal (unless the invite is a device link) and answers OK with Journal
// and Packet set. A partner invite into a journal that already has its two
// people adds nobody and is answered [CodeJournalFull] (the invite is used
// up all the same), unless it was made again ([Invite.Again]).
type Redeem struct {
	Type  string `json:"type"` // "redeem"
	ID    uint64 `json:"id"`
	Token []byte `json:"token"` // 32 bytes
}

// Put stores a blob in a journal's log. The relay answers OK with Seq and
// BlobID once the blob is durable; putting a blob the journal already holds
// answers OK with the original Seq and Duplicate set.
type Put struct {
	Type    string    `json:"type"` // "put"
	ID      uint64    `json:"id"`
	Journal JournalID `json:"journal"`
	Blob    []byte    `json:"blob"`
}

// Subscribe asks for every blob of a journal with a sequence number greater
// than After, then live pushes.
type Subscribe struct {
	Type    string    `json:"type"` // "subscribe"
	ID      uint64    `json:"id"`
	Journal JournalID `json:"journal"`
	After   uint64    `json:"after"`
}

// Purge asks the relay to drop the bytes of a blob its author retracted.
// Only the device that wrote the blob may purge it. The relay keeps the
// blob's place in the log, and from then on serves it as a purged record
// ([Blob.Purged]): the blob's 90-byte header and the chain id its author
// gave, so clients can still account for it in the author's hash chain.
// Purging is idempotent.
type Purge struct {
	Type    string    `json:"type"` // "purge"
	ID      uint64    `json:"id"`
	Journal JournalID `json:"journal"`
	BlobID  []byte    `json:"blob_id"`  // 32 bytes: which blob
	ChainID []byte    `json:"chain_id"` // 32 bytes: its chain id, kept in the purged record
}

// AddDevice makes another device a member of a journal, on behalf of the
// same person: the relay files the new device under the requesting
// device's person (the device that created or redeemed its way into the
// journal, and every device added through it). The relay cannot check who
// a device belongs to; clients decide whom they trust from device
// certificates inside the journal, so a device the relay adds on its own
// can read nothing and write nothing anyone accepts. A device that was
// removed from the journal cannot be added again.
type AddDevice struct {
	Type    string    `json:"type"` // "add_device"
	ID      uint64    `json:"id"`
	Journal JournalID `json:"journal"`
	Device  []byte    `json:"device"` // Ed25519 public key, 32 bytes
}

// RemoveDevice removes one of the same person's devices from a journal.
// The relay refuses the device from then on: it closes the device's open
// connections and answers not-member to anything it asks. A device cannot
// remove itself (see [Leave]) or another person's device.
type RemoveDevice struct {
	Type    string    `json:"type"` // "remove_device"
	ID      uint64    `json:"id"`
	Journal JournalID `json:"journal"`
	Device  []byte    `json:"device"` // Ed25519 public key, 32 bytes
}

// Leave removes every device of the requesting device's person from a
// journal, the requesting device included, with the same effect as
// [RemoveDevice] for each. The journal and its blobs stay for the others.
type Leave struct {
	Type    string    `json:"type"` // "leave"
	ID      uint64    `json:"id"`
	Journal JournalID `json:"journal"`
}

// PurgedRecordSize is the length of a purged record: header || chain id.
const PurgedRecordSize = HeaderSize + 32

// OK is the success reply to a request. Fields not meaningful for the
// request are omitted.
type OK struct {
	Type      string     `json:"type"` // "ok"
	ID        uint64     `json:"id"`
	Journal   *JournalID `json:"journal,omitempty"`   // redeem
	Packet    []byte     `json:"packet,omitempty"`    // redeem
	Seq       uint64     `json:"seq,omitempty"`       // put
	BlobID    []byte     `json:"blob_id,omitempty"`   // put
	Duplicate bool       `json:"duplicate,omitempty"` // put
}

// Blob carries one stored blob to a subscriber.
type Blob struct {
	Type    string    `json:"type"` // "blob"
	Journal JournalID `json:"journal"`
	Seq     uint64    `json:"seq"`
	Blob    []byte    `json:"blob"`
	// Purged marks a blob its author retracted and purged: Blob then holds
	// only the purged record, header (90 bytes) || chain id (32 bytes).
	Purged bool `json:"purged,omitempty"`
}

// CaughtUp marks the end of stored history for a subscription: every blob
// up to and including Seq has been sent.
type CaughtUp struct {
	Type    string    `json:"type"` // "caught_up"
	Journal JournalID `json:"journal"`
	Seq     uint64    `json:"seq"`
}

// Error is the failure reply to a request (ID set) or a connection-level
// failure (ID zero), after which the relay closes the connection.
type Error struct {
	Type    string `json:"type"` // "error"
	ID      uint64 `json:"id,omitempty"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// RetryAfterMS, when not zero, is how many milliseconds the relay asks
	// the client to wait before sending the request again (rate-limited).
	RetryAfterMS uint64 `json:"retry_after_ms,omitempty"`
}

// Marshal encodes a message as the JSON text of one frame.
func Marshal(m any) ([]byte, error) { return json.Marshal(m) }

// Decode reads the envelope of a frame. Use [DecodeAs] for the body.
func Decode(frame []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(frame, &e); err != nil {
		return e, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if e.Type == "" {
		return e, fmt.Errorf("%w: message has no type", ErrMalformed)
	}
	return e, nil
}

// DecodeAs decodes a frame into v, a pointer to a message struct.
func DecodeAs(frame []byte, v any) error {
	if err := json.Unmarshal(frame, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed message")
