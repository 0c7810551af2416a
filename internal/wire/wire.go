// Package wire is the one client side of the relay protocol. It dials a
// relay's WebSocket with the protocol's subprotocol and read limit, runs
// the Hello/Auth/Welcome handshake with a [Signer] (optionally only with
// an expected relay id), frames messages with package protocol, and hands out
// request ids.
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
// dials with the protocol's subprotocol, read limit and [DefaultTimeout].
type Dialer struct {
	// WebSocket is the dialer to copy (TLS settings, proxy); nil means a
	// zero websocket.Dialer. Empty Subprotocols become the protocol's and
	// a zero HandshakeTimeout becomes Timeout.
	WebSocket *websocket.Dialer
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

	timeout      time.Duration // static: each read of the handshake
	writeTimeout time.Duration // static: each write
	lastID       atomic.Uint64
	frame        []byte // ReadFrameReused's buffer; owned by the reader
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
		wd.Subprotocols = []string{protocol.Subprotocol}
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
	c := &Conn{WS: ws, URL: wsURL, timeout: timeout, writeTimeout: d.WriteTimeout}
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
// or sent. A relay speaking another protocol version is refused with
// [protocol.ErrBadVersion].
func (c *Conn) Authenticate(s Signer, wantRelayID string) error {
	h := &c.Hello
	if h.Version != protocol.Version {
		return fmt.Errorf("%w (it speaks version %d, this kintsugi speaks %d)", protocol.ErrBadVersion, h.Version, protocol.Version)
	}
	if len(h.Challenge) != protocol.ChallengeSize {
		return fmt.Errorf("%w: the relay sent a malformed challenge", ErrUnreachable)
	}
	if wantRelayID != "" && h.RelayID != wantRelayID {
		return fmt.Errorf("%w (%s): nothing was sent or signed", ErrRelayChanged, c.URL)
	}
	auth := &protocol.Auth{Type: protocol.TypeAuth, Version: protocol.Version, Device: s.SignPublic(), Signature: s.SignAuth(h.RelayID, h.Challenge)}
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

// ReadFrame reads one frame. A timeout above zero sets the read deadline;
// zero leaves the deadline as it is.
func (c *Conn) ReadFrame(timeout time.Duration) ([]byte, error) {
	if timeout > 0 {
		c.WS.SetReadDeadline(time.Now().Add(timeout))
	}
	_, frame, err := c.WS.ReadMessage()
	return frame, err
}

// ReadFrameReused is ReadFrame into a buffer the Conn keeps: the frame
// is valid only until the next read, so the caller must copy what it
// keeps. A reader of a long history (thousands of frames) saves an
// allocation, and the copies of a growing one, per frame. Only one
// goroutine may read.
func (c *Conn) ReadFrameReused(timeout time.Duration) ([]byte, error) {
	if timeout > 0 {
		c.WS.SetReadDeadline(time.Now().Add(timeout))
	}
	_, r, err := c.WS.NextReader()
	if err != nil {
		return nil, err
	}
	b := c.frame[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	// A rare large frame is not kept for the rest of the connection.
	if cap(b) <= 64<<10 {
		c.frame = b
	}
	return b, nil
}

// Reply is the answer to one request: exactly one of OK and Err is set.
type Reply struct {
	OK  *protocol.OK
	Err *protocol.Error
}

// Reply reads frames until the OK or Error for request id, each read
// bounded by timeout. Blob and CaughtUp frames read meanwhile are passed
// to push, or dropped if push is nil. A reply to another request, or any
// other message, is an error: a Conn that uses Reply has one request in
// flight at a time.
func (c *Conn) Reply(id uint64, timeout time.Duration, push func(frame []byte)) (Reply, error) {
	for {
		frame, err := c.ReadFrame(timeout)
		if err != nil {
			return Reply{}, err
		}
		env, err := protocol.Decode(frame)
		if err != nil {
			return Reply{}, err
		}
		switch env.Type {
		case protocol.TypeBlob, protocol.TypeCaughtUp:
			if push != nil {
				push(frame)
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
