// Package wire is the one client side of the relay protocol. It dials a
// relay's WebSocket offering the protocol's subprotocols (version 2, then
// version 1; the relay's pick is [Conn.Version]) with the protocol's read
// limit, runs the Hello/Auth/Welcome handshake with a [Signer] (optionally
// only with an expected relay id), frames messages with package protocol,
// and hands out request ids.
//
// Three callers build on [Conn] and add only what is their own: the
// journal client (package client) adds its read loop, pushes and pacer;
// the relay's test kit (server/servertest) adds raw frames for hostile
// tests; the load generator (cmd/kintsugi-bench) adds frames it encodes
// without reflection.
//
// # Errors
//
// [Dialer.Dial] returns the WebSocket dial error as it is, with the HTTP response
// of a refused upgrade, so a caller can read the relay's refusal.
// [Conn.ReadFrame] and [Conn.WriteFrame] return the connection's own
// errors (for example a *websocket.CloseError). Failures of the handshake
// to read or write wrap [ErrUnreachable]; a relay that refuses or speaks
// wrongly returns the protocol's error ([protocol.ErrBadVersion],
// [protocol.ErrMalformed], or the relay's error code as a
// *protocol.RelayError).
package wire

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// ErrUnreachable wraps every failure of the handshake to reach a relay or
// to read or write on the connection.
var ErrUnreachable = errors.New("could not reach the relay")

// ErrRelayChanged means the relay presented a relay id other than the one
// the caller expected.
var ErrRelayChanged = errors.New("the relay at this address is not the one this journal lives on")

// Signer answers a relay's auth challenge for one device. The private key
// stays behind it: crypto.Keyring implements it for a real device and
// crypto.AuthKey for a bare test key.
type Signer interface {
	// SignPublic returns the device's public signing key.
	SignPublic() ed25519.PublicKey
	// SignAuth returns the device's signature of
	// protocol.AuthMessage(relayID, challenge).
	SignAuth(relayID string, challenge []byte) []byte
}

// DefaultTimeout bounds the dial and the handshake when a [Dialer] sets
// no Timeout.
const DefaultTimeout = 10 * time.Second

// Dialer holds the options for connecting to a relay. The zero value
// dials offering every protocol version, with the protocol's read limit
// and [DefaultTimeout].
type Dialer struct {
	// WebSocket is the dialer to copy (TLS settings, proxy); nil means a
	// zero websocket.Dialer. Empty Subprotocols become those of the
	// versions up to MaxVersion, newest first, and a zero HandshakeTimeout
	// becomes Timeout.
	WebSocket *websocket.Dialer
	// MaxVersion is the newest protocol version to offer; 0 means
	// protocol.Version. protocol.Version1 speaks version 1 whatever the
	// relay speaks.
	MaxVersion int
	// Header is sent with the upgrade request (Origin, X-Forwarded-For).
	Header http.Header
	// ReadLimit bounds one incoming frame; 0 means protocol.MaxMessageSize.
	ReadLimit int64
	// Timeout bounds the dial, the read of the Hello and each read of the
	// handshake; 0 means DefaultTimeout.
	Timeout time.Duration
	// WriteTimeout bounds each write; 0 means Timeout.
	WriteTimeout time.Duration
}

// Conn is one WebSocket connection to a relay. Reads must come from one
// goroutine and writes from one goroutine at a time, as gorilla/websocket
// requires; [Conn.NextID] is safe for concurrent use.
type Conn struct {
	WS    *websocket.Conn // static: the connection, for raw access
	URL   string          // static: the address dialed
	Hello protocol.Hello  // static after Dial: the relay's greeting
	// Version is the connection's protocol version, named by the
	// subprotocol the relay picked: protocol.Version1 or protocol.Version.
	// Static.
	Version int

	timeout      time.Duration // static: each read of the handshake
	writeTimeout time.Duration // static: each write
	lastID       atomic.Uint64
	frame        []byte         // ReadNext's buffer for text frames; owned by the reader
	binaryHint   int            // ReadNext: the size of the last binary frame; owned by the reader
	acks         []protocol.Ack // Reply: acks read before their turn; owned by the reader
}

// Dial connects to the relay at wsURL. On a failed upgrade the error is
// the WebSocket's and the response, if any, is the relay's refusal.
func (d *Dialer) Dial(ctx context.Context, wsURL string) (*Conn, *http.Response, error) {
	timeout := d.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	var wd websocket.Dialer
	if d.WebSocket != nil {
		wd = *d.WebSocket
	}
	if len(wd.Subprotocols) == 0 {
		v := d.MaxVersion
		if v == 0 {
			v = protocol.Version
		}
		for ; v >= protocol.Version1; v-- {
			wd.Subprotocols = append(wd.Subprotocols, protocol.SubprotocolOf(v))
		}
	}
	if wd.HandshakeTimeout == 0 {
		wd.HandshakeTimeout = timeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ws, resp, err := wd.DialContext(dctx, wsURL, d.Header)
	if err != nil {
		return nil, resp, err
	}
	limit := d.ReadLimit
	if limit == 0 {
		limit = protocol.MaxMessageSize
	}
	ws.SetReadLimit(limit)
	c := &Conn{WS: ws, URL: wsURL, Version: protocol.VersionOf(ws.Subprotocol()), timeout: timeout, writeTimeout: d.WriteTimeout}
	if c.Version == 0 {
		ws.Close()
		return nil, resp, fmt.Errorf("%w: the relay picked the subprotocol %q, which this client does not speak", protocol.ErrBadVersion, ws.Subprotocol())
	}
	if c.writeTimeout == 0 {
		c.writeTimeout = timeout
	}
	return c, resp, nil
}

// Handshake reads the relay's Hello and authenticates with s: [Conn.ReadHello]
// then [Conn.Authenticate].
func (c *Conn) Handshake(s Signer, wantRelayID string) error {
	if err := c.ReadHello(); err != nil {
		return err
	}
	return c.Authenticate(s, wantRelayID)
}

// ReadHello reads the relay's first message into c.Hello.
func (c *Conn) ReadHello() error {
	return c.readAs(protocol.TypeHello, &c.Hello)
}

// Authenticate checks the Hello that [Conn.ReadHello] read, signs its challenge with s and
// waits for Welcome. If wantRelayID is not empty, a relay presenting
// another id is refused with [ErrRelayChanged] before anything is signed
// or sent. A relay whose Hello names another version than the connection's
// is refused with [protocol.ErrBadVersion].
func (c *Conn) Authenticate(s Signer, wantRelayID string) error {
	h := &c.Hello
	if h.Version != c.Version {
		return fmt.Errorf("%w (it speaks version %d on a connection of version %d)", protocol.ErrBadVersion, h.Version, c.Version)
	}
	if len(h.Challenge) != protocol.ChallengeSize {
		return fmt.Errorf("%w: the relay sent a malformed challenge", ErrUnreachable)
	}
	if wantRelayID != "" && h.RelayID != wantRelayID {
		return fmt.Errorf("%w (%s): nothing was sent or signed", ErrRelayChanged, c.URL)
	}
	auth := &protocol.Auth{Type: protocol.TypeAuth, Version: c.Version, Device: s.SignPublic(), Signature: s.SignAuth(h.RelayID, h.Challenge)}
	if err := c.Send(auth); err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	var w protocol.Welcome
	return c.readAs(protocol.TypeWelcome, &w)
}

// readAs reads one frame of the handshake and decodes it as want.
func (c *Conn) readAs(want string, v any) error {
	frame, err := c.ReadFrame(c.timeout)
	c.WS.SetReadDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return DecodeAs(frame, want, v)
}

// DecodeAs decodes frame into v if it is a message of type want. An Error
// message becomes its error (a *protocol.RelayError); any other type is
// [protocol.ErrMalformed].
func DecodeAs(frame []byte, want string, v any) error {
	env, err := protocol.Decode(frame)
	if err != nil {
		return err
	}
	if env.Type == protocol.TypeError {
		var e protocol.Error
		if err := protocol.DecodeAs(frame, &e); err != nil {
			return err
		}
		return e.Err()
	}
	if env.Type != want {
		return fmt.Errorf("%w: relay sent %q, expected %q", protocol.ErrMalformed, env.Type, want)
	}
	return protocol.DecodeAs(frame, v)
}

// NextID returns a fresh request id: 1, 2, 3 and so on.
func (c *Conn) NextID() uint64 { return c.lastID.Add(1) }

// Send encodes m with protocol.Marshal and writes it as one frame.
func (c *Conn) Send(m any) error {
	b, err := protocol.Marshal(m)
	if err != nil {
		return err
	}
	return c.WriteFrame(b)
}

// WriteFrame writes one text frame as it is.
func (c *Conn) WriteFrame(frame []byte) error {
	c.WS.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	return c.WS.WriteMessage(websocket.TextMessage, frame)
}

// WriteBinary writes one binary frame (version 2) as it is.
func (c *Conn) WriteBinary(frame []byte) error {
	c.WS.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	return c.WS.WriteMessage(websocket.BinaryMessage, frame)
}

// SendPut writes a put of blob to journal j as request id: a binary put
// frame on a version 2 connection, a JSON one on version 1. buf, if not
// nil, is reused for the frame.
func (c *Conn) SendPut(buf []byte, id uint64, j protocol.JournalID, blob []byte) ([]byte, error) {
	if c.Version >= protocol.Version {
		buf = protocol.AppendPut(buf[:0], id, j, blob)
		return buf, c.WriteBinary(buf)
	}
	b, err := protocol.Marshal(&protocol.Put{Type: protocol.TypePut, ID: id, Journal: j, Blob: blob})
	if err != nil {
		return buf, err
	}
	return buf, c.WriteFrame(b)
}

// ReadFrame reads one frame, text or binary. A timeout above zero sets
// the read deadline; zero leaves the deadline as it is.
func (c *Conn) ReadFrame(timeout time.Duration) ([]byte, error) {
	_, frame, err := c.ReadMessage(timeout)
	return frame, err
}

// ReadMessage is ReadFrame that also says whether the frame is binary.
func (c *Conn) ReadMessage(timeout time.Duration) (binary bool, frame []byte, err error) {
	if timeout > 0 {
		c.WS.SetReadDeadline(time.Now().Add(timeout))
	}
	mt, frame, err := c.WS.ReadMessage()
	return mt == websocket.BinaryMessage, frame, err
}

// ReadNext reads one frame for a reader of a long history (thousands of
// frames), with as few allocations and copies as it can. A text frame is
// read into a buffer the Conn keeps: it is valid only until the next
// read, so the caller must copy what it keeps. A binary frame (version 2)
// is read into a buffer of its own, sized after the previous one, which
// the caller owns: the blobs decoded from it may stay slices of it, so
// their bytes are copied once, from the connection into the frame. Only
// one goroutine may read.
func (c *Conn) ReadNext(timeout time.Duration) (binary bool, frame []byte, err error) {
	if timeout > 0 {
		c.WS.SetReadDeadline(time.Now().Add(timeout))
	}
	mt, r, err := c.WS.NextReader()
	if err != nil {
		return false, nil, err
	}
	if mt == websocket.BinaryMessage {
		b, err := readAll(r, make([]byte, 0, max(c.binaryHint, 512)))
		if err != nil {
			return false, nil, err
		}
		c.binaryHint = nextHint(c.binaryHint, len(b))
		return true, b, nil
	}
	b, err := readAll(r, c.frame[:0])
	if err != nil {
		return false, nil, err
	}
	// A rare large frame is not kept for the rest of the connection.
	if cap(b) <= 64<<10 {
		c.frame = b
	}
	return false, b, nil
}

// nextHint returns the buffer size for the next binary frame after one of
// n bytes read into a buffer of hint bytes. The buffer has room for an
// eighth more than the frame, so a frame a little larger than the last
// is still read without a copy. While a history streams, the relay sends
// full frames with a shorter one after each store read: the hint shrinks
// slowly after a frame of at least a quarter of it, so the full frame
// after a short one needs no copy either (docs/performance.md: a first
// sync's raw fetch took about 0.85x the time). A much smaller frame, a
// live push, sets it at once: a pushed blob may keep its frame's buffer
// alive, and that should not be a history frame's size.
func nextHint(hint, n int) int {
	next := n + n/8
	if n >= hint/4 {
		next = max(next, hint-hint/16)
	}
	return next
}

// readAll reads r to its end into b's spare room, growing b as needed.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Reply is the answer to one request: exactly one of OK and Err is set.
type Reply struct {
	OK  *protocol.OK
	Err *protocol.Error
}

// Reply reads frames until the OK or Error for request id, each read
// bounded by timeout. Blob and CaughtUp frames, and (version 2) blobs
// frames, read meanwhile are passed to push, or dropped if push is nil. A
// reply to another request, or any other message, is an error: a Conn
// that uses Reply has one request in flight at a time, except that puts
// sent as binary frames may be answered in bursts (one acks frame for
// several): Reply keeps the acks after id's for the next calls, which
// must ask for them in order.
func (c *Conn) Reply(id uint64, timeout time.Duration, push func(binary bool, frame []byte)) (Reply, error) {
	for {
		if len(c.acks) > 0 {
			a := c.acks[0]
			c.acks = c.acks[1:]
			if a.ID != id {
				return Reply{}, fmt.Errorf("%w: ack for request %d while waiting for %d", protocol.ErrMalformed, a.ID, id)
			}
			return Reply{OK: a.OK()}, nil
		}
		binary, frame, err := c.ReadMessage(timeout)
		if err != nil {
			return Reply{}, err
		}
		if binary {
			switch protocol.FrameType(frame) {
			case protocol.FrameAcks:
				if c.acks, err = protocol.DecodeAcks(frame, c.acks); err != nil {
					return Reply{}, err
				}
			case protocol.FrameBlobs:
				if _, err := protocol.DecodeBlobs(frame, nil); err != nil {
					return Reply{}, err
				}
				if push != nil {
					push(true, frame)
				}
			default:
				return Reply{}, fmt.Errorf("%w: unexpected binary frame of type %#02x while waiting for reply %d", protocol.ErrMalformed, protocol.FrameType(frame), id)
			}
			continue
		}
		env, err := protocol.Decode(frame)
		if err != nil {
			return Reply{}, err
		}
		switch env.Type {
		case protocol.TypeBlob, protocol.TypeCaughtUp:
			if push != nil {
				push(false, frame)
			}
		case protocol.TypeOK:
			var ok protocol.OK
			if err := protocol.DecodeAs(frame, &ok); err != nil {
				return Reply{}, err
			}
			if ok.ID != id {
				return Reply{}, fmt.Errorf("%w: ok for request %d while waiting for %d", protocol.ErrMalformed, ok.ID, id)
			}
			return Reply{OK: &ok}, nil
		case protocol.TypeError:
			var e protocol.Error
			if err := protocol.DecodeAs(frame, &e); err != nil {
				return Reply{}, err
			}
			if e.ID != id {
				return Reply{}, fmt.Errorf("%w: error for request %d while waiting for %d: %s: %s", protocol.ErrMalformed, e.ID, id, e.Code, e.Message)
			}
			return Reply{Err: &e}, nil
		default:
			return Reply{}, fmt.Errorf("%w: unexpected %s message while waiting for reply %d", protocol.ErrMalformed, env.Type, id)
		}
	}
}
