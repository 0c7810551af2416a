package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/internal/wire"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// ErrRelayChanged means the relay at a journal's address presents a
// different relay id than the one the journal was created or joined on.
// It is the wire client's error, so the handshake can return it.
var ErrRelayChanged = wire.ErrRelayChanged

// ErrUnreachable wraps every failure to reach or stay connected to a relay,
// so the CLI can say "saved here; it will sync later" instead of failing.
// It is the wire client's error, so the handshake can return it.
var ErrUnreachable = wire.ErrUnreachable

// ErrConnectionLost: the connection to the relay was made, and then lost
// while in use (the relay stopped or restarted, the network dropped). It
// is an ErrUnreachable: what was not sent is sent on the next sync.
var ErrConnectionLost error = &lostError{}

type lostError struct{}

func (*lostError) Error() string        { return "the connection to the relay was lost" }
func (*lostError) Is(target error) bool { return target == ErrUnreachable }

// connectionLost words err, a failure to read from or write to an
// established connection, as ErrConnectionLost with what happened in
// plain words rather than the socket's.
func connectionLost(err error) error {
	var ce *websocket.CloseError
	var netErr net.Error
	why := ""
	switch {
	case errors.As(err, &ce) && ce.Code == websocket.CloseGoingAway:
		why = "the relay is stopping or restarting"
	// 1006 means no close frame came: its text is gorilla's, not the relay's.
	case errors.As(err, &ce) && ce.Text != "" && ce.Code != websocket.CloseAbnormalClosure:
		why = "the relay closed it: " + ce.Text
	case errors.As(err, &netErr) && netErr.Timeout():
		why = "the relay stopped answering"
	case errors.As(err, &ce), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		why = "it closed without a word; the relay may have stopped or restarted, or the network dropped"
	default:
		why = plainNetError(err)
	}
	return fmt.Errorf("%w (%s)", ErrConnectionLost, why)
}

// ErrNotARelay means something answered at the relay's address, but not
// as a Kintsugi relay: a web site, a wrong path, or a proxy that does not
// pass WebSocket connections on. An error that is ErrNotARelay is also
// ErrUnreachable.
var ErrNotARelay = errors.New("the address answered, but not as a kintsugi relay")

// NormalizeRelayURL accepts http(s):// or ws(s):// and returns the
// WebSocket URL of the relay's endpoint.
func NormalizeRelayURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("relay address %q is not a URL like https://relay.example.org", s)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("relay address %q should start with https://, http://, wss:// or ws://", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = protocol.Path
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// relayConn is one authenticated connection to a relay. One goroutine reads
// (readLoop); writes are serialised by wmu, as gorilla/websocket requires.
//
// It speaks the protocol version the relay picked (w.Version): on version
// 2, puts go out as binary frames, and blobs and put acknowledgements come
// in binary frames (docs/protocol.md §20); on version 1 (an older relay),
// everything is JSON.
type relayConn struct {
	w       *wire.Conn      // static: dialing, handshake, framing, request ids
	ws      *websocket.Conn // static: w.WS
	relayID string          // static after the handshake: the id the relay gave in Hello

	wmu    sync.Mutex // serialises writes
	putBuf []byte     // guarded by wmu: the last binary put frame, reused

	mu      sync.Mutex
	waiting map[uint64]chan reply // owned by mu
	err     error                 // set once when the read loop ends

	pushes  chan any      // *protocol.Blob and *protocol.CaughtUp, in order
	done    chan struct{} // closed when the read loop ends
	closing chan struct{} // closed by Close, so the read loop never blocks on pushes
	once    sync.Once
	pace    pacer // resends requests refused as rate-limited (ratelimit.go)
}

type reply struct {
	ok  *protocol.OK
	err error
}

const (
	dialTimeout  = 10 * time.Second
	replyTimeout = 30 * time.Second
	// readIdle bounds silence from the relay. Relays ping every 30s by
	// default, and each ping or message extends the deadline, so only a
	// relay (or network) that has gone away silently hits it.
	readIdle = 75 * time.Second
)

// dialRelay connects and authenticates as the device s signs for. If
// wantID is not empty, a relay presenting another relay id is refused
// before anything is signed.
func dialRelay(ctx context.Context, relayURL string, s wire.Signer, wantID string) (*relayConn, error) {
	// A device holds one or two connections, and a first sync reads
	// thousands of small frames: a 64 KiB read buffer takes them in a few
	// system calls rather than one or two each.
	d := wire.Dialer{Timeout: dialTimeout, WriteTimeout: replyTimeout, WebSocket: &websocket.Dialer{ReadBufferSize: 64 << 10}}
	w, resp, err := d.Dial(ctx, relayURL)
	if err != nil {
		return nil, dialError(relayURL, resp, err)
	}
	ws := w.WS
	if err := w.Handshake(s, wantID); err != nil {
		ws.Close()
		return nil, err
	}
	c := &relayConn{w: w, ws: ws, relayID: w.Hello.RelayID, waiting: make(map[uint64]chan reply), pushes: make(chan any, 256), done: make(chan struct{}), closing: make(chan struct{})}
	ws.SetPingHandler(func(data string) error {
		ws.SetReadDeadline(time.Now().Add(readIdle))
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(dialTimeout))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	go c.readLoop()
	return c, nil
}

func (c *relayConn) send(m any) error {
	if p, ok := m.(*protocol.Put); ok {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		var err error
		if c.putBuf, err = c.w.SendPut(c.putBuf, p.ID, p.Journal, p.Blob); err != nil {
			return connectionLost(err)
		}
		if cap(c.putBuf) > 64<<10 {
			c.putBuf = nil // a rare large blob's frame is not kept
		}
		return nil
	}
	b, err := protocol.Marshal(m)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.w.WriteFrame(b); err != nil {
		return connectionLost(err)
	}
	return nil
}

func (c *relayConn) readLoop() {
	defer close(c.done)
	defer close(c.pushes)
	var err error
	for {
		var frame []byte
		var binary bool
		// A text frame is decoded into copies below; a binary one is
		// this loop's to keep, and the blobs decoded from it keep
		// pointing into it.
		binary, frame, err = c.w.ReadNext(readIdle)
		if err != nil {
			err = connectionLost(err)
			break
		}
		if binary {
			if err = c.binaryFrame(frame); err != nil {
				break
			}
			continue
		}
		// Blobs are most of the bytes of version 1: decode a plainly
		// encoded one in a single pass without encoding/json.
		if b, ok := protocol.FastBlob(frame); ok {
			if err = c.push(&b); err != nil {
				break
			}
			continue
		}
		// One decode per frame: parsing twice (envelope, then body) was
		// half of a first sync.
		var in inbound
		if err = protocol.DecodeAs(frame, &in); err != nil {
			break
		}
		switch in.Type {
		case protocol.TypeOK:
			c.deliver(in.ID, reply{ok: &protocol.OK{Type: in.Type, ID: in.ID, Journal: in.Journal, Packet: in.Packet, Seq: in.Seq, BlobID: in.BlobID, Duplicate: in.Duplicate}})
		case protocol.TypeError:
			e := &protocol.Error{Type: in.Type, ID: in.ID, Code: in.Code, Message: in.Message, RetryAfterMS: in.RetryMS}
			if e.ID == 0 {
				err = e.Err()
				break
			}
			if !c.retryLater(e) {
				c.deliver(e.ID, reply{err: e.Err()})
			}
		case protocol.TypeBlob, protocol.TypeCaughtUp:
			if in.Journal == nil {
				err = fmt.Errorf("%w: %s without a journal", protocol.ErrMalformed, in.Type)
				break
			}
			if in.Type == protocol.TypeBlob {
				err = c.push(&protocol.Blob{Type: in.Type, Journal: *in.Journal, Seq: in.Seq, Blob: in.Blob, Purged: in.Purged})
			} else {
				err = c.push(&protocol.CaughtUp{Type: in.Type, Journal: *in.Journal, Seq: in.Seq})
			}
		case "":
			err = fmt.Errorf("%w: message has no type", protocol.ErrMalformed)
		default:
			// Unknown messages from a newer relay are ignored.
		}
		if err != nil {
			break
		}
	}
	c.mu.Lock()
	c.err = err
	for id, ch := range c.waiting {
		ch <- reply{err: err}
		delete(c.waiting, id)
	}
	c.mu.Unlock()
}

// binaryFrame takes a binary frame of version 2: blobs are pushed, acks
// delivered to the puts they answer. A frame that does not decode ends
// the connection, as an undecodable JSON message does; one of a type this
// client does not know is ignored, as unknown JSON messages are.
func (c *relayConn) binaryFrame(frame []byte) error {
	switch protocol.FrameType(frame) {
	case protocol.FrameBlobs:
		blobs, err := protocol.DecodeBlobs(frame, nil)
		if err != nil {
			return err
		}
		for i := range blobs {
			if err := c.push(&blobs[i]); err != nil {
				return err
			}
		}
	case protocol.FrameAcks:
		acks, err := protocol.DecodeAcks(frame, nil)
		if err != nil {
			return err
		}
		for _, a := range acks {
			c.deliver(a.ID, reply{ok: a.OK()})
		}
	}
	return nil
}

// inbound is the union of the fields of every message a relay sends, so a
// frame is decoded once whatever its type.
type inbound struct {
	Type      string              `json:"type"`
	ID        uint64              `json:"id"`
	Journal   *protocol.JournalID `json:"journal"`
	Packet    []byte              `json:"packet"`
	Seq       uint64              `json:"seq"`
	BlobID    []byte              `json:"blob_id"`
	Duplicate bool                `json:"duplicate"`
	Blob      []byte              `json:"blob"`
	Purged    bool                `json:"purged"`
	Code      protocol.Code       `json:"code"`
	Message   string              `json:"message"`
	RetryMS   uint64              `json:"retry_after_ms"`
}

func (c *relayConn) push(m any) error {
	select {
	case c.pushes <- m:
		return nil
	case <-c.closing:
		return net.ErrClosed
	}
}

func (c *relayConn) deliver(id uint64, r reply) {
	c.pace.forget(id)
	c.mu.Lock()
	ch, ok := c.waiting[id]
	delete(c.waiting, id)
	c.mu.Unlock()
	if ok {
		ch <- r
	}
}

// start sends a request and returns a channel for its reply. setID is
// called with the request's id before it is sent.
func (c *relayConn) start(setID func(uint64) any) (<-chan reply, error) {
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	id := c.w.NextID()
	c.waiting[id] = ch
	c.mu.Unlock()
	msg := setID(id)
	c.pace.remember(id, msg)
	if err := c.send(msg); err != nil {
		c.pace.forget(id)
		c.mu.Lock()
		delete(c.waiting, id)
		c.mu.Unlock()
		return nil, err
	}
	return ch, nil
}

func (c *relayConn) wait(ctx context.Context, ch <-chan reply) (*protocol.OK, error) {
	t := time.NewTimer(replyTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.ok, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("%w: no reply within %s", ErrUnreachable, replyTimeout)
	}
}

func (c *relayConn) request(ctx context.Context, setID func(uint64) any) (*protocol.OK, error) {
	ch, err := c.start(setID)
	if err != nil {
		return nil, err
	}
	return c.wait(ctx, ch)
}

func (c *relayConn) Close() error {
	c.once.Do(func() { close(c.closing) })
	c.wmu.Lock()
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	err := c.ws.Close()
	<-c.done
	return err
}

// AuthSigner returns what signs relay auth challenges for the account's
// device, for tools that speak the wire protocol themselves, such as the
// load generator. It signs nothing else.
func (a *Account) AuthSigner() wire.Signer { return a.keys }
