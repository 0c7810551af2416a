package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// rawConn is one authenticated device connection speaking the wire
// protocol directly, as a client would. It is used by one goroutine at a
// time.
type rawConn struct {
	ws     *websocket.Conn
	key    ed25519.PrivateKey
	device [32]byte
	nextID uint64
}

// ioTimeout bounds every read and write of the load generator, so a stuck
// relay fails the run instead of hanging it.
const ioTimeout = 60 * time.Second

// dialDevice connects to wsURL and authenticates as a new device.
func dialDevice(wsURL string) (*rawConn, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return dialAs(wsURL, key)
}

// dialAs connects to wsURL and authenticates as key.
func dialAs(wsURL string, key ed25519.PrivateKey) (*rawConn, error) {
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}, HandshakeTimeout: ioTimeout}
	ws, _, err := d.Dial(wsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to the relay: %w", err)
	}
	ws.SetReadLimit(2 * protocol.MaxMessageSize)
	c := &rawConn{ws: ws, key: key}
	copy(c.device[:], key.Public().(ed25519.PublicKey))
	var hello protocol.Hello
	if err := c.readAs(protocol.TypeHello, &hello); err != nil {
		ws.Close()
		return nil, err
	}
	sig := ed25519.Sign(key, protocol.AuthMessage(hello.RelayID, hello.Challenge))
	if err := c.send(&protocol.Auth{Type: protocol.TypeAuth, Version: protocol.Version, Device: c.device[:], Signature: sig}); err != nil {
		ws.Close()
		return nil, err
	}
	var w protocol.Welcome
	if err := c.readAs(protocol.TypeWelcome, &w); err != nil {
		ws.Close()
		return nil, err
	}
	return c, nil
}

func (c *rawConn) close() { _ = c.ws.Close() }

func (c *rawConn) send(m any) error {
	data, err := protocol.Marshal(m)
	if err != nil {
		return err
	}
	return c.sendFrame(data)
}

func (c *rawConn) sendFrame(data []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(ioTimeout))
	return c.ws.WriteMessage(websocket.TextMessage, data)
}

func (c *rawConn) read() ([]byte, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(ioTimeout))
	_, data, err := c.ws.ReadMessage()
	return data, err
}

// readAs reads one message and decodes it as type want; an Error from the
// relay is returned as an error.
func (c *rawConn) readAs(want string, v any) error {
	data, err := c.read()
	if err != nil {
		return err
	}
	env, err := protocol.Decode(data)
	if err != nil {
		return err
	}
	if env.Type == protocol.TypeError {
		var e protocol.Error
		_ = protocol.DecodeAs(data, &e)
		return fmt.Errorf("the relay refused: %s: %s", e.Code, e.Message)
	}
	if env.Type != want {
		return fmt.Errorf("expected %s from the relay, got %s", want, env.Type)
	}
	return protocol.DecodeAs(data, v)
}

// id returns a fresh request id.
func (c *rawConn) id() uint64 {
	c.nextID++
	return c.nextID
}

// call sends a request made by mk with a fresh id and waits for its OK.
func (c *rawConn) call(mk func(id uint64) any) (*protocol.OK, error) {
	id := c.id()
	if err := c.send(mk(id)); err != nil {
		return nil, err
	}
	return c.waitOK(id)
}

// waitOK reads until the reply to request id, which must be OK. Pushes
// read meanwhile are dropped.
func (c *rawConn) waitOK(id uint64) (*protocol.OK, error) {
	for {
		data, err := c.read()
		if err != nil {
			return nil, err
		}
		env, err := protocol.Decode(data)
		if err != nil {
			return nil, err
		}
		switch env.Type {
		case protocol.TypeBlob, protocol.TypeCaughtUp:
			continue
		case protocol.TypeError:
			var e protocol.Error
			_ = protocol.DecodeAs(data, &e)
			return nil, fmt.Errorf("the relay refused request %d: %s: %s", e.ID, e.Code, e.Message)
		case protocol.TypeOK:
			var ok protocol.OK
			if err := protocol.DecodeAs(data, &ok); err != nil {
				return nil, err
			}
			if ok.ID != id {
				return nil, fmt.Errorf("the relay answered request %d while request %d was waiting", ok.ID, id)
			}
			return &ok, nil
		default:
			return nil, fmt.Errorf("unexpected %s message from the relay", env.Type)
		}
	}
}

func (c *rawConn) create(j protocol.JournalID) error {
	_, err := c.call(func(id uint64) any { return &protocol.Create{Type: protocol.TypeCreate, ID: id, Journal: j} })
	return err
}

// invite stores an invite to j and returns its token.
func (c *rawConn) invite(j protocol.JournalID) ([32]byte, error) {
	var token [32]byte
	rand.Read(token[:])
	h := sha256.Sum256(token[:])
	_, err := c.call(func(id uint64) any {
		return &protocol.Invite{Type: protocol.TypeInvite, ID: id, Journal: j, AuthHash: h[:], Expires: time.Now().Add(time.Hour).Unix(), Packet: []byte("bench")}
	})
	return token, err
}

func (c *rawConn) redeem(token [32]byte) error {
	_, err := c.call(func(id uint64) any { return &protocol.Redeem{Type: protocol.TypeRedeem, ID: id, Token: token[:]} })
	return err
}

// subscribe subscribes to j after cursor after. The relay then sends the
// history and CaughtUp, which the caller reads.
func (c *rawConn) subscribe(j protocol.JournalID, after uint64) error {
	_, err := c.call(func(id uint64) any {
		return &protocol.Subscribe{Type: protocol.TypeSubscribe, ID: id, Journal: j, After: after}
	})
	return err
}

// newJournalID returns a random journal id.
func newJournalID() protocol.JournalID {
	var j protocol.JournalID
	rand.Read(j[:])
	return j
}

// putFrame encodes a Put exactly as protocol.Marshal does (the test checks
// that), without reflection, so the load generator spends little of the
// machine's CPU on encoding.
func putFrame(buf []byte, id uint64, j protocol.JournalID, blob []byte) []byte {
	buf = append(buf[:0], `{"type":"put","id":`...)
	buf = strconv.AppendUint(buf, id, 10)
	buf = append(buf, `,"journal":"`...)
	buf = hex.AppendEncode(buf, j[:])
	buf = append(buf, `","blob":"`...)
	buf = base64.StdEncoding.AppendEncode(buf, blob)
	return append(buf, `"}`...)
}

// chain makes one device's successive entry blobs for one journal: valid
// headers linked as the format requires, and random bytes where a real
// client puts nonces, sealed keys and ciphertext.
type chain struct {
	journal protocol.JournalID
	author  [32]byte
	seq     uint64
	prev    protocol.BlobID
	size    int
}

// entryRecipients is how many recipient slots bench entries carry: two
// partners' devices.
const entryRecipients = 2

// minEntrySize is the smallest entry blob with entryRecipients slots.
const minEntrySize = protocol.HeaderSize + protocol.NonceSize + 1 + entryRecipients*protocol.RecipientSize + protocol.SecretboxOverhead

// next returns the chain's next blob, size bytes long.
func (ch *chain) next() []byte {
	ch.seq++
	h := protocol.Header{Kind: protocol.KindEntry, Journal: ch.journal, Author: ch.author, Seq: ch.seq, Prev: ch.prev}
	b := h.Marshal(make([]byte, 0, ch.size))
	b = b[:ch.size]
	rand.Read(b[protocol.HeaderSize:])
	b[protocol.HeaderSize+protocol.NonceSize] = entryRecipients
	ch.prev = protocol.ChainID(b)
	return b
}

// frameSeq returns the seq of a Blob frame without a full decode, which
// costs the load generator a base64 decode per push; ok is false for any
// other frame.
func frameSeq(frame []byte) (seq uint64, ok bool) {
	if !bytes.HasPrefix(frame, []byte(`{"type":"blob"`)) {
		return 0, false
	}
	i := bytes.Index(frame, []byte(`"seq":`))
	if i < 0 {
		return 0, false
	}
	rest := frame[i+len(`"seq":`):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	return seq, err == nil
}
