package servertest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/internal/wire"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// ReadTimeout is the failsafe deadline for each read by a [Client]: a test
// that waits longer than this for a message fails instead of hanging.
const ReadTimeout = 20 * time.Second

// Client is a raw-protocol test client: one WebSocket connection driven
// from the test goroutine. It is not safe for concurrent use. The wire
// client does the dialing, handshake and framing; Client adds raw frames
// and fails the test instead of returning errors.
//
// It speaks protocol version 1 unless dialed with [DialVersion] or
// [DialRawVersion]. On version 2 it sends puts as binary frames and
// takes each blob of a blobs frame as the JSON Blob message it stands
// for, so a test reads pushes the same way on either version; BlobFrames
// counts the frames they came in.
type Client struct {
	t       testing.TB
	conn    *wire.Conn
	WS      *websocket.Conn    // conn.WS, for hostile tests
	Key     ed25519.PrivateKey // the device key; nil until Authenticate
	Device  [32]byte           // the device's public key
	Hello   protocol.Hello     // the relay's Hello
	Version int                // the connection's protocol version
	// BlobFrames counts the binary blobs frames read (version 2).
	BlobFrames int
	pushes     [][]byte // Blob and CaughtUp frames read while waiting for replies
}

// NewKey returns a fresh device key.
func NewKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// DialRaw connects to wsURL and reads the relay's Hello, without
// authenticating. The connection is closed when the test ends.
func DialRaw(t testing.TB, wsURL string) *Client {
	t.Helper()
	return DialRawWith(t, &websocket.Dialer{}, wsURL, nil)
}

// Dial connects to wsURL and authenticates as key, failing the test if the
// relay does not welcome the device.
func Dial(t testing.TB, wsURL string, key ed25519.PrivateKey) *Client {
	t.Helper()
	c := DialRaw(t, wsURL)
	if err := c.Authenticate(key); err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return c
}

// Authenticate signs the connection's challenge with key and waits for
// Welcome. A relay Error is returned as a *protocol.RelayError.
func (c *Client) Authenticate(key ed25519.PrivateKey) error {
	c.t.Helper()
	c.Key = key
	copy(c.Device[:], key.Public().(ed25519.PublicKey))
	return c.conn.Authenticate(crypto.AuthKey(key), "")
}

// Send writes one message. On a version 2 connection a *protocol.Put goes
// as a binary put frame.
func (c *Client) Send(m any) {
	c.t.Helper()
	if p, ok := m.(*protocol.Put); ok && c.Version >= protocol.Version {
		c.SendBinary(protocol.AppendPut(nil, p.ID, p.Journal, p.Blob))
		return
	}
	data, err := protocol.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.SendFrame(data)
}

// SendFrame writes one raw text frame.
func (c *Client) SendFrame(data []byte) {
	c.t.Helper()
	if err := c.conn.WriteFrame(data); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// SendBinary writes one raw binary frame.
func (c *Client) SendBinary(data []byte) {
	c.t.Helper()
	if err := c.conn.WriteBinary(data); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// Read reads one frame, returning the read error (for example a
// *websocket.CloseError) if the connection ended.
func (c *Client) Read() ([]byte, error) {
	data, err := c.conn.ReadFrame(ReadTimeout)
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("no message from the relay within %s", ReadTimeout)
	}
	return data, err
}

// ReadMessage is Read that also says whether the frame is binary.
func (c *Client) ReadMessage() (binary bool, data []byte, err error) {
	binary, data, err = c.conn.ReadMessage(ReadTimeout)
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("no message from the relay within %s", ReadTimeout)
	}
	return binary, data, err
}

// ReadFrame reads one frame and fails the test if the connection ended.
func (c *Client) ReadFrame() []byte {
	c.t.Helper()
	data, err := c.Read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return data
}

// NextID returns a fresh request id.
func (c *Client) NextID() uint64 { return c.conn.NextID() }

// Reply reads until the OK or Error for request id and returns it. Blob
// and CaughtUp messages read meanwhile are kept for [Client.Push].
func (c *Client) Reply(id uint64) Reply {
	c.t.Helper()
	r, err := c.conn.Reply(id, ReadTimeout, c.keepPush)
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("no reply to request %d within %s", id, ReadTimeout)
	}
	if err != nil {
		c.t.Fatalf("reply to request %d: %v", id, err)
	}
	return r
}

// Push returns the next Blob or CaughtUp message: one read earlier by Reply,
// or the next frame read.
func (c *Client) Push() (protocol.Envelope, []byte) {
	c.t.Helper()
	for len(c.pushes) == 0 {
		binary, data, err := c.conn.ReadMessage(ReadTimeout)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		c.keepPush(binary, data)
	}
	data := c.pushes[0]
	c.pushes = c.pushes[1:]
	env, err := protocol.Decode(data)
	if err != nil {
		c.t.Fatal(err)
	}
	if env.Type != protocol.TypeBlob && env.Type != protocol.TypeCaughtUp {
		c.t.Fatalf("expected a blob or caught_up message, got %s", data)
	}
	return env, data
}

// keepPush keeps a pushed frame for Push: a JSON frame as it is, a blobs
// frame as the JSON Blob message of each of its blobs.
func (c *Client) keepPush(binary bool, frame []byte) {
	c.t.Helper()
	if !binary {
		c.pushes = append(c.pushes, frame)
		return
	}
	blobs, err := protocol.DecodeBlobs(frame, nil)
	if err != nil {
		c.t.Fatalf("a binary frame that is not a blobs frame: %v", err)
	}
	c.BlobFrames++
	for _, b := range blobs {
		data, err := protocol.Marshal(&b)
		if err != nil {
			c.t.Fatal(err)
		}
		c.pushes = append(c.pushes, data)
	}
}

// NextBlob reads the next push and fails unless it is a Blob.
func (c *Client) NextBlob() protocol.Blob {
	c.t.Helper()
	env, data := c.Push()
	var b protocol.Blob
	if env.Type != protocol.TypeBlob {
		c.t.Fatalf("expected a blob, got %s", data)
	}
	if err := protocol.DecodeAs(data, &b); err != nil {
		c.t.Fatal(err)
	}
	return b
}

// NextCaughtUp reads the next push and fails unless it is CaughtUp.
func (c *Client) NextCaughtUp() protocol.CaughtUp {
	c.t.Helper()
	env, data := c.Push()
	var cu protocol.CaughtUp
	if env.Type != protocol.TypeCaughtUp {
		c.t.Fatalf("expected caught_up, got %s", data)
	}
	if err := protocol.DecodeAs(data, &cu); err != nil {
		c.t.Fatal(err)
	}
	return cu
}

// Create sends Create and returns the reply.
func (c *Client) Create(j protocol.JournalID) Reply {
	c.t.Helper()
	id := c.NextID()
	c.Send(&protocol.Create{Type: protocol.TypeCreate, ID: id, Journal: j})
	return c.Reply(id)
}

// Put sends Put and returns the reply.
func (c *Client) Put(j protocol.JournalID, blob []byte) Reply {
	c.t.Helper()
	id := c.NextID()
	c.Send(&protocol.Put{Type: protocol.TypePut, ID: id, Journal: j, Blob: blob})
	return c.Reply(id)
}

// Invite stores an invite for token and returns the reply.
func (c *Client) Invite(j protocol.JournalID, token [32]byte, expires time.Time, packet []byte) Reply {
	c.t.Helper()
	id := c.NextID()
	h := sha256.Sum256(token[:])
	c.Send(&protocol.Invite{Type: protocol.TypeInvite, ID: id, Journal: j, AuthHash: h[:], Expires: expires.Unix(), Packet: packet})
	return c.Reply(id)
}

// Redeem sends Redeem and returns the reply.
func (c *Client) Redeem(token [32]byte) Reply {
	c.t.Helper()
	id := c.NextID()
	c.Send(&protocol.Redeem{Type: protocol.TypeRedeem, ID: id, Token: token[:]})
	return c.Reply(id)
}

// Subscribe sends Subscribe and returns the reply.
func (c *Client) Subscribe(j protocol.JournalID, after uint64) Reply {
	c.t.Helper()
	id := c.NextID()
	c.Send(&protocol.Subscribe{Type: protocol.TypeSubscribe, ID: id, Journal: j, After: after})
	return c.Reply(id)
}

// Reply is the answer to one request: exactly one of OK and Err is set.
type Reply = wire.Reply

// MustOK fails the test unless the reply was OK, and returns it.
func MustOK(t testing.TB, r Reply) *protocol.OK {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("relay refused: %s: %s", r.Err.Code, r.Err.Message)
	}
	return r.OK
}

// NewJournalID returns a random journal id.
func NewJournalID() protocol.JournalID {
	var j protocol.JournalID
	rand.Read(j[:])
	return j
}

// JoinBlob returns a valid join blob: the simplest well-formed blob. The
// body after the header is an invite hash, a nonce and sealed, padded to the
// 16-byte minimum; vary sealed (or seq and prev) to make distinct blobs.
func JoinBlob(j protocol.JournalID, author [32]byte, seq uint64, prev protocol.BlobID, sealed []byte) []byte {
	h := protocol.Header{Kind: protocol.KindJoin, Journal: j, Author: author, Seq: seq, Prev: prev}
	b := h.Marshal(nil)
	b = append(b, make([]byte, 32+protocol.NonceSize)...)
	b = append(b, sealed...)
	for len(b) < protocol.HeaderSize+32+protocol.NonceSize+protocol.SecretboxOverhead {
		b = append(b, 0)
	}
	return b
}

// Chain builds a device's successive blobs for one journal, each linked
// to the previous one as the blob format requires.
type Chain struct {
	Journal protocol.JournalID
	Author  [32]byte
	seq     uint64
	prev    protocol.BlobID
}

// Next returns the next blob in the chain, with body as its sealed part.
func (ch *Chain) Next(body string) []byte {
	ch.seq++
	b := JoinBlob(ch.Journal, ch.Author, ch.seq, ch.prev, []byte(body))
	ch.prev = protocol.IDOf(b)
	return b
}

// Do sends the request that make builds with a fresh id and returns the
// reply: for requests without a helper of their own.
func (c *Client) Do(make func(id uint64) any) Reply {
	c.t.Helper()
	id := c.NextID()
	c.Send(make(id))
	return c.Reply(id)
}
