package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/internal/wire"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// rawConn is one authenticated device connection speaking the wire
// protocol directly, as a client would, through the wire client: the
// newest version the relay speaks (--protocol limits it), with the frames
// of that version. It is used by one goroutine at a time.
type rawConn struct {
	w      *wire.Conn
	ws     *websocket.Conn // w.WS
	device [32]byte
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
	return dialAs(wsURL, crypto.AuthKey(key))
}

// dialAs connects to wsURL and authenticates as the device s signs for,
// offering every protocol version.
func dialAs(wsURL string, s wire.Signer) (*rawConn, error) {
	d := wire.Dialer{ReadLimit: 2 * protocol.MaxMessageSize, Timeout: ioTimeout}
	w, _, err := d.Dial(context.Background(), wsURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the relay: %w", err)
	}
	if err := w.Handshake(s, ""); err != nil {
		w.WS.Close()
		return nil, err
	}
	c := &rawConn{w: w, ws: w.WS}
	copy(c.device[:], s.SignPublic())
	return c, nil
}

func (c *rawConn) close() { _ = c.ws.Close() }

func (c *rawConn) send(m any) error { return c.w.Send(m) }

// sendPut sends a put of blob to j as request id, as a client of the
// connection's version does: a binary put frame on version 2, a JSON put
// (built by putFrame) on version 1. buf is reused for the frame.
func (c *rawConn) sendPut(buf []byte, id uint64, j protocol.JournalID, blob []byte) ([]byte, error) {
	if c.w.Version >= protocol.Version {
		buf = protocol.AppendPut(buf[:0], id, j, blob)
		return buf, c.w.WriteBinary(buf)
	}
	buf = putFrame(buf, id, j, blob)
	return buf, c.w.WriteFrame(buf)
}

func (c *rawConn) read() ([]byte, error) { return c.w.ReadFrame(ioTimeout) }

// readMessage reads one frame and says whether it is binary.
func (c *rawConn) readMessage() (bool, []byte, error) { return c.w.ReadMessage(ioTimeout) }

// readAs reads one message and decodes it as type want; an Error from the
// relay is returned as an error.
func (c *rawConn) readAs(want string, v any) error {
	data, err := c.read()
	if err != nil {
		return err
	}
	return wire.DecodeAs(data, want, v)
}

// id returns a fresh request id.
func (c *rawConn) id() uint64 { return c.w.NextID() }

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
	r, err := c.w.Reply(id, ioTimeout, nil)
	if err != nil {
		return nil, err
	}
	if r.Err != nil {
		return nil, fmt.Errorf("the relay refused request %d: %s: %s", id, r.Err.Code, r.Err.Message)
	}
	return r.OK, nil
}

func (c *rawConn) create(j protocol.JournalID) error {
	_, err := c.call(func(id uint64) any { return &protocol.Create{Type: protocol.TypeCreate, ID: id, Journal: j} })
	return err
}

// addDevice makes device a member of j, filed under this connection's
// person: the bench's many devices in one journal are one person's, since
// a journal takes only two people by invite.
func (c *rawConn) addDevice(j protocol.JournalID, device [32]byte) error {
	_, err := c.call(func(id uint64) any {
		return &protocol.AddDevice{Type: protocol.TypeAddDevice, ID: id, Journal: j, Device: device[:]}
	})
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

// blobSeqs appends to dst the seqs of the blobs a frame pushes: those of a
// binary blobs frame (version 2, which may hold several), or of a JSON
// Blob message (see frameSeq). Any other frame adds nothing.
func blobSeqs(binary bool, frame []byte, dst []uint64) ([]uint64, error) {
	if !binary {
		if seq, ok := frameSeq(frame); ok {
			dst = append(dst, seq)
		}
		return dst, nil
	}
	if protocol.FrameType(frame) != protocol.FrameBlobs {
		return dst, nil
	}
	blobs, err := protocol.DecodeBlobs(frame, nil)
	for _, b := range blobs {
		dst = append(dst, b.Seq)
	}
	return dst, err
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
