package server

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// request is a decoded request that passed every check that needs no
// store: shape, sizes, expiry bounds and, for Put, the blob header.
type request struct {
	Type     string // protocol.TypeCreate, TypeInvite, ...
	ID       uint64 // non-zero
	Journal  protocol.JournalID
	AuthHash [32]byte        // invite: as sent; redeem: SHA-256 of the token
	Token    [32]byte        // redeem
	Expires  time.Time       // invite
	Packet   []byte          // invite
	Link     bool            // invite: a device link
	Again    bool            // invite: a partner invite made again
	Blob     []byte          // put
	Header   protocol.Header // put: the parsed blob header
	Binary   bool            // put: sent as a binary frame (version 2), answered with an ack
	After    uint64          // subscribe
	BlobID   protocol.BlobID // purge
	ChainID  protocol.BlobID // purge
	Device   [32]byte        // add_device, remove_device
}

// checker validates requests from one authenticated device.
type checker struct {
	Device       [32]byte      // the authenticated device
	MaxBlobSize  int           // Config.MaxBlobSize
	InviteMaxTTL time.Duration // Config.InviteMaxTTL
	Now          time.Time     // the time to judge invite expiry against
}

// reqError builds the Error reply for request id.
func reqError(id uint64, code protocol.Code, format string, args ...any) *protocol.Error {
	return &protocol.Error{Type: protocol.TypeError, ID: id, Code: code, Message: fmt.Sprintf(format, args...)}
}

// parse decodes and checks one frame sent after authentication. It returns
// the request, or the Error to send. An Error with ID zero means the frame
// could not be tied to a request and the connection must be closed; any
// other Error answers that request and the connection stays open.
func (k *checker) parse(frame []byte) (*request, *protocol.Error) {
	// Puts are nearly all the traffic: decode a plainly encoded one in a
	// single pass. Anything else takes the general path below.
	if m, ok := protocol.FastPut(frame); ok {
		return k.checkPut(&request{Type: protocol.TypePut, ID: m.ID}, &m)
	}
	env, err := protocol.Decode(frame)
	if err != nil {
		return nil, reqError(0, protocol.CodeMalformed, "the message is not a json object with a type")
	}
	switch env.Type {
	case protocol.TypeCreate, protocol.TypeInvite, protocol.TypeRedeem, protocol.TypePut, protocol.TypeSubscribe, protocol.TypePurge,
		protocol.TypeAddDevice, protocol.TypeRemoveDevice, protocol.TypeLeave:
	case protocol.TypeAuth:
		if env.ID == 0 {
			return nil, reqError(0, protocol.CodeInvalid, "this connection is already authenticated")
		}
		return nil, reqError(env.ID, protocol.CodeInvalid, "this connection is already authenticated")
	default:
		if env.ID == 0 {
			return nil, reqError(0, protocol.CodeMalformed, "%q is not a request type", truncate(env.Type, 32))
		}
		return nil, reqError(env.ID, protocol.CodeMalformed, "%q is not a request type", truncate(env.Type, 32))
	}
	if env.ID == 0 {
		return nil, reqError(0, protocol.CodeMalformed, "the %s request has no id (ids must not be zero)", env.Type)
	}
	r := &request{Type: env.Type, ID: env.ID}
	bad := func(code protocol.Code, format string, args ...any) (*request, *protocol.Error) {
		return nil, reqError(r.ID, code, format, args...)
	}
	undecodable := func(err error) (*request, *protocol.Error) {
		detail := strings.TrimPrefix(err.Error(), protocol.ErrMalformed.Error()+": ")
		return bad(protocol.CodeMalformed, "the %s request is malformed: %s", env.Type, truncate(detail, 200))
	}
	switch env.Type {
	case protocol.TypeCreate:
		var m protocol.Create
		if err := protocol.DecodeAs(frame, &m); err != nil {
			return undecodable(err)
		}
		r.Journal = m.Journal
	case protocol.TypeInvite:
		var m protocol.Invite
		if err := protocol.DecodeAs(frame, &m); err != nil {
			return undecodable(err)
		}
		r.Journal = m.Journal
		if len(m.AuthHash) != len(r.AuthHash) {
			return bad(protocol.CodeInvalid, "the invite auth hash is %d bytes, want %d", len(m.AuthHash), len(r.AuthHash))
		}
		copy(r.AuthHash[:], m.AuthHash)
		if len(m.Packet) == 0 {
			return bad(protocol.CodeInvalid, "the invite packet is empty")
		}
		if len(m.Packet) > protocol.MaxInvitePacket {
			return bad(protocol.CodeTooLarge, "the invite packet is %d bytes; the limit is %d", len(m.Packet), protocol.MaxInvitePacket)
		}
		r.Packet, r.Link, r.Again = m.Packet, m.Link, m.Again
		if r.Link && r.Again {
			return bad(protocol.CodeInvalid, "an invite cannot be both a device link and an invite made again")
		}
		r.Expires = time.Unix(m.Expires, 0)
		if !r.Expires.After(k.Now) {
			return bad(protocol.CodeInvalid, "the invite expiry is not in the future")
		}
		if r.Expires.After(k.Now.Add(k.InviteMaxTTL)) {
			return bad(protocol.CodeInvalid, "the invite expiry is too far ahead: invites may last at most %s", humanDuration(k.InviteMaxTTL))
		}
	case protocol.TypeRedeem:
		var m protocol.Redeem
		if err := protocol.DecodeAs(frame, &m); err != nil {
			return undecodable(err)
		}
		if len(m.Token) != len(r.Token) {
			return bad(protocol.CodeInvalid, "the invite token is %d bytes, want %d", len(m.Token), len(r.Token))
		}
		copy(r.Token[:], m.Token)
		r.AuthHash = inviteAuthHash(r.Token)
		return r, nil
	case protocol.TypePut:
		var m protocol.Put
		if err := protocol.DecodeAs(frame, &m); err != nil {
			return undecodable(err)
		}
		return k.checkPut(r, &m)
	case protocol.TypePurge:
		var m protocol.Purge
		if err := protocol.DecodeAs(frame, &m); err != nil {
			return undecodable(err)
		}
		r.Journal = m.Journal
		if len(m.BlobID) != 32 || len(m.ChainID) != 32 {
			return bad(protocol.CodeInvalid, "blob_id and chain_id must be 32 bytes each")
		}
		copy(r.BlobID[:], m.BlobID)
		copy(r.ChainID[:], m.ChainID)
	case protocol.TypeAddDevice, protocol.TypeRemoveDevice:
		var m protocol.AddDevice // RemoveDevice has the same fields
		if err := protocol.DecodeAs(frame, &m); err != nil {
			return undecodable(err)
		}
		r.Journal = m.Journal
		if len(m.Device) != len(r.Device) {
			return bad(protocol.CodeInvalid, "the device key is %d bytes, want %d", len(m.Device), len(r.Device))
		}
		copy(r.Device[:], m.Device)
	case protocol.TypeLeave:
		var m protocol.Leave
		if err := protocol.DecodeAs(frame, &m); err != nil {
			return undecodable(err)
		}
		r.Journal = m.Journal
	case protocol.TypeSubscribe:
		var m protocol.Subscribe
		if err := protocol.DecodeAs(frame, &m); err != nil {
			return undecodable(err)
		}
		r.Journal, r.After = m.Journal, m.After
	}
	if r.Journal == (protocol.JournalID{}) {
		return bad(protocol.CodeInvalid, "the journal id is missing or all zeros")
	}
	return r, nil
}

// parsePutFrame decodes and checks a binary put frame (version 2), as
// parse does a JSON put. A frame that is too short or has id 0 is
// answered with an Error with ID zero: the connection must be closed.
// The blob is copied out of frame, whose buffer is reused.
func (k *checker) parsePutFrame(frame []byte) (*request, *protocol.Error) {
	m, err := protocol.DecodePut(frame)
	if err != nil {
		detail := strings.TrimPrefix(err.Error(), protocol.ErrMalformed.Error()+": ")
		return nil, reqError(0, protocol.CodeMalformed, "%s", detail)
	}
	if len(m.Blob) > k.MaxBlobSize {
		// Refused before the copy.
		return nil, reqError(m.ID, protocol.CodeTooLarge, "the blob is %d bytes; this relay accepts at most %d", len(m.Blob), k.MaxBlobSize)
	}
	m.Blob = bytes.Clone(m.Blob)
	return k.checkPut(&request{Type: protocol.TypePut, ID: m.ID, Binary: true}, &m)
}

// checkPut checks a decoded Put for request r.
func (k *checker) checkPut(r *request, m *protocol.Put) (*request, *protocol.Error) {
	bad := func(code protocol.Code, format string, args ...any) (*request, *protocol.Error) {
		return nil, reqError(r.ID, code, format, args...)
	}
	r.Journal = m.Journal
	if len(m.Blob) > k.MaxBlobSize {
		return bad(protocol.CodeTooLarge, "the blob is %d bytes; this relay accepts at most %d", len(m.Blob), k.MaxBlobSize)
	}
	h, err := protocol.ParseHeader(m.Blob)
	if err != nil {
		detail := strings.TrimPrefix(err.Error(), protocol.ErrBadBlob.Error()+": ")
		return bad(protocol.CodeInvalid, "the blob is malformed: %s", detail)
	}
	if h.Journal != m.Journal {
		return bad(protocol.CodeInvalid, "blob belongs to another journal")
	}
	if h.Author != k.Device {
		return bad(protocol.CodeInvalid, "the blob's author is not this device")
	}
	if r.Journal == (protocol.JournalID{}) {
		return bad(protocol.CodeInvalid, "the journal id is missing or all zeros")
	}
	r.Blob, r.Header = m.Blob, h
	return r, nil
}

func humanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d%day == 0 && d == day:
		return "1 day"
	case d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return d.String()
}

// truncate shortens s to at most n bytes for use in a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// inviteAuthHash is what the relay stores for an invite token: its SHA-256.
func inviteAuthHash(token [32]byte) [32]byte { return sha256.Sum256(token[:]) }
