package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// readBatch is how many blobs a subscription reads from the store at a
// time; both stores also stop a read at about 4 MiB. 1,024 rather than
// 256: a first sync of 10,000 blobs then takes 10 reads, not 40, and fills
// whole 256 KiB frames instead of a full one and a short one per read (a
// short frame also made the client grow its next frame's buffer). The
// raw fetch of 10,000 × 1 KiB took 0.68–0.77× the time
// (`kintsugi-bench --compare --only sync`, docs/performance.md).
const readBatch = 1024

// closeWait bounds writing a close frame.
const closeWait = time.Second

// maxAuthMessage bounds what an unauthenticated peer may send: an Auth
// message is about 200 bytes of JSON.
const maxAuthMessage = 4096

// frame is one item of a connection's send queue: a text message, a
// binary one (version 2), or, when data is nil, a close frame after which
// the writer stops. Its data is never changed once queued: a pushed blob's
// message is shared by every subscriber that sends it.
type frame struct {
	data   []byte
	binary bool   // a binary frame of version 2 (protocol/frames.go)
	code   int    // close code, when data is nil
	text   string // close reason, when data is nil
}

// conn is one WebSocket connection.
//
// Goroutines: serve runs the reader (authentication and requests, in
// order); writer, while there is something to write, is the only
// goroutine that writes messages to ws (conn_write.go), apart from a
// push, a ping or a put's answer written directly to an idle connection
// (writeDirect, holding the write token); while puts wait for the disk,
// an acker answers them (conn_put.go); while a subscription has blobs to
// send, a pump sends them (conn_sub.go). What is not written directly
// goes through the send queue.
type conn struct {
	s  *Server
	ws *websocket.Conn
	nc net.Conn      // ws's connection, when hijacker saw it; see waitReadable
	br *bufio.Reader // ws's read buffer, when hijacker provided it; lent only while reading (see waitReadable)
	// brHolder is an empty bufio.Reader that takes br's buffer back to
	// readBuffers; owned by the reader goroutine.
	brHolder *bufio.Reader
	out      *progressConn // what ws writes to, when hijacker provided it; see writeRun
	slot     *connSlot     // the connection's place in the counts; nil in tests that build a conn by hand
	opened   time.Time

	ctx    context.Context    // canceled when the connection is ending
	cancel context.CancelFunc // see abort
	send   sendQueue          // drained only by writer
	sent   *atomic.Int64      // bytes written to the socket, counted as they go; see progress
	queued atomic.Int64       // bytes of messages in send; see waitRoom
	wdone  chan struct{}      // closed when the writer has ended the connection (finish)

	pingSlot int // the pinger's slot; -1 when not in it; guarded by s.pinger.mu

	// closing is set once a close frame has been queued (by fail).
	closing atomic.Bool
	// authed is set once the device has authenticated.
	authed atomic.Bool

	// req holds a token while the reader handles a request. When the
	// relay shuts down the writer takes the token for good, so the
	// request in flight finishes and its reply goes out before the
	// going-away close, and no new request starts. See drainForShutdown.
	req chan struct{}

	endMu   sync.Mutex // guards endCode and endText
	endCode int        // close code chosen by abort; 0 when none
	endText string     // why the connection ended, for the close frame and log

	subWG        sync.WaitGroup // running subscription pumps
	pumpMu       sync.Mutex     // guards pumpsStopped and subWG.Add
	pumpsStopped bool           // set when the connection ends; guarded by pumpMu

	// version is the connection's protocol version, from the subprotocol
	// the upgrade picked: protocol.Version1 or protocol.Version. Static.
	version uint8

	// Owned by the reader goroutine; log and device are fixed once
	// authentication succeeds, before any other goroutine reads them.
	log     *slog.Logger
	device  [32]byte
	members map[protocol.JournalID]bool // positive membership cache
	subs    map[protocol.JournalID]*subscription
	limiter *rate.Limiter // Config.RequestRate, for requests and pings; nil: no limit
	guard   refusalGuard  // closes a connection that keeps being refused
	pingsIn int           // pings from the client since its last message or pong

	puts putPipe // puts waiting for the disk; see conn_put.go
}

func newConn(s *Server, ws *websocket.Conn, log *slog.Logger, sent *atomic.Int64) *conn {
	c := &conn{
		sent:     sent,
		s:        s,
		ws:       ws,
		version:  uint8(max(protocol.VersionOf(ws.Subprotocol()), protocol.Version1)),
		opened:   time.Now(),
		wdone:    make(chan struct{}),
		pingSlot: -1,
		req:      make(chan struct{}, 1),
		log:      log,
		members:  make(map[protocol.JournalID]bool),
		subs:     make(map[protocol.JournalID]*subscription),
		limiter:  newLimiter(s.cfg.RequestRate, s.cfg.RequestBurst),
	}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.send.init(func() { go c.writer() }, func() bool { return c.ctx.Err() != nil })
	// Once the connection is ending (closed by either side, or the relay
	// shutting down), start the writer if none runs, give it a moment to
	// send its close frame, then cut the socket, so a peer that stopped
	// reading cannot hold a writer (and a graceful shutdown) for a whole
	// write timeout.
	context.AfterFunc(c.ctx, func() {
		c.send.wake()
		time.AfterFunc(2*closeWait, func() { _ = ws.NetConn().Close() })
	})
	return c
}

// serve runs the connection to its end.
func (c *conn) serve() {
	// Unauthenticated connections are logged at debug: at info, a flood
	// of them would be a lever on the relay's log volume. Those that end
	// before authenticating get a sampled info line (see logClosed).
	c.log.Debug("connection opened")
	c.s.metrics.connsTotal.Inc()
	c.s.metrics.conns.Inc()
	defer c.s.metrics.conns.Dec()
	c.s.pinger.add(c)
	c.readLoop()
	if !c.closing.Load() {
		// The reader stopped on its own (the peer left, timed out or sent
		// an oversize message): stop the writer too.
		c.abort(0, "")
	}
	<-c.wdone
	c.cancel()
	if c.br != nil {
		c.s.readBuffersLent.Add(-1) // the reader held one to its end
	}
	c.waitPuts()
	c.s.devices.remove(c)
	c.stopPumps()
	c.logClosed()
}

// logClosed logs the end of the connection: at info once it had
// authenticated; otherwise at debug, with at most one info line every
// logSampleInterval for all unauthenticated connections together.
func (c *conn) logClosed() {
	c.endMu.Lock()
	reason := c.endText
	c.endMu.Unlock()
	d := time.Since(c.opened).Round(time.Millisecond)
	if c.authed.Load() {
		c.log.Info("connection closed", "reason", reason, "duration", d)
		return
	}
	if ok, n := c.s.unauthLog.sample(time.Now()); ok {
		c.log.Info("connection closed before authenticating", "reason", reason, "duration", d, "not_logged", n)
		return
	}
	c.log.Debug("connection closed before authenticating", "reason", reason, "duration", d)
}

// evict closes a connection that has not authenticated, to make room for
// a new one (see connCounter). Any goroutine may call it.
func (c *conn) evict() {
	c.fail(reqError(0, protocol.CodeTooManyConnections, "this relay is full and this connection had not logged in yet, so it was closed to make room; try again"), websocket.CloseTryAgainLater)
}

// abort ends the connection: it records why (the first reason wins) and
// cancels the connection's context, which stops the writer and every
// subscription. code, if non-zero, is sent in a close frame.
func (c *conn) abort(code int, text string) {
	c.endMu.Lock()
	if c.endText == "" {
		c.endCode, c.endText = code, text
	}
	c.endMu.Unlock()
	c.cancel()
}

func (c *conn) noteEnd(text string) {
	c.endMu.Lock()
	if c.endText == "" {
		c.endText = text
	}
	c.endMu.Unlock()
}

// writeTimeout bounds writing one frame to the socket.
func (c *conn) writeTimeout() time.Duration {
	return max(10*time.Second, 2*c.s.cfg.PingInterval)
}

// writer is the connection's only message writer. It runs while there is
// something to write, holding the write token (sendQueue.writing): the
// goroutine that gave it work started it. It writes the pings due and
// what is queued until there is nothing left, then ends; or, once the
// connection is ending, it writes the close frame (or, when the relay
// shuts down, what is queued and the going-away close), cuts the socket
// and ends, holding the token for good so that nothing more is written.
func (c *conn) writer() {
	c.s.writersRunning.Add(1)
	c.s.writersStarted.Add(1)
	defer c.s.writersRunning.Add(-1)
	for {
		if c.ctx.Err() != nil {
			c.writeEnd()
			c.finish()
			return
		}
		if c.send.takePing() {
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.writeTimeout())); err != nil {
				c.noteEnd("ping failed: " + err.Error())
				c.finish()
				return
			}
		}
		if !c.writeQueued() {
			c.finish()
			return
		}
		if c.send.releaseIdle() {
			return
		}
	}
}

// finish ends the connection from its writer: it cancels the context,
// closes the socket, which unblocks the reader, and tells serve.
func (c *conn) finish() {
	c.cancel()
	c.s.pinger.remove(c)
	_ = c.ws.Close()
	close(c.wdone)
}

// writeEnd writes what ends a connection whose context is canceled: the
// close frame abort chose, if any; or, when the relay is shutting down,
// the replies to the requests in flight and a going-away close.
func (c *conn) writeEnd() {
	c.endMu.Lock()
	code, text := c.endCode, c.endText
	c.endMu.Unlock()
	if text == "" && c.s.ctx.Err() != nil {
		c.noteEnd("relay shutting down")
		c.drainForShutdown()
		msg, _ := protocol.Marshal(reqError(0, protocol.CodeShuttingDown, "the relay is shutting down; reconnect later"))
		_ = c.ws.SetWriteDeadline(time.Now().Add(closeWait))
		_ = c.ws.WriteMessage(websocket.TextMessage, msg)
		c.writeClose(websocket.CloseGoingAway, string(protocol.CodeShuttingDown))
		return
	}
	if code != 0 {
		c.writeClose(code, text)
	}
}

// pingFrame is a ping with no payload, as the relay sends them.
var pingFrame = []byte{wsFinal | websocket.PingMessage, 0}

// ping writes a ping (the pinger calls it every PingInterval): from the
// calling goroutine if the connection is idle and its socket takes it at
// once, as pushDirect does; otherwise its writer writes it.
func (c *conn) ping() {
	if c.ctx.Err() != nil {
		return
	}
	if !c.send.claimIdle() {
		c.send.notePing()
		return
	}
	taken, partial, err := c.out.tryWrite(c.ctx, pingFrame, nil, time.Now().Add(c.writeTimeout()))
	if err != nil {
		c.noteEnd("ping failed: " + err.Error())
		c.cancel() // the writer ends the connection
		taken = true
	}
	c.send.releaseDirect(nil, !taken, partial)
}

// writeQueued writes what is queued, until the queue is empty or the
// connection is ending, and reports whether the writer goes on. A close
// frame in the queue is written, after everything before it, and ends the
// writer.
func (c *conn) writeQueued() bool {
	for {
		deadline := time.Now().Add(c.writeTimeout())
		closing, ok, err := c.writeRun(deadline)
		if err != nil {
			c.noteEnd("write failed: " + err.Error())
			return false
		}
		if !ok || closing != nil || c.ctx.Err() != nil {
			if err := c.flushWrites(deadline); err != nil {
				c.noteEnd("write failed: " + err.Error())
				return false
			}
		}
		if closing != nil {
			c.noteEnd(closing.text)
			c.writeClose(closing.code, closing.text)
			return false
		}
		if !ok || c.ctx.Err() != nil {
			return true // empty, or ending: the writer sees which
		}
	}
}

// drainWait bounds how long a graceful stop waits for a connection's
// request in flight, and then for its pipelined puts to be answered and
// its queued messages to be written.
const drainWait = closeWait

// drainForShutdown runs in the writer when the relay shuts down: it waits
// for the request in flight and for the puts waiting for the disk (whose
// store operations are already under way: an acknowledged write is never
// cut short), and writes what is queued, their replies included, each
// step bounded by drainWait. Subscriptions send nothing more once the
// connection is ending (see pumpOnce), so what is queued from here on is
// replies.
func (c *conn) drainForShutdown() {
	t := time.NewTimer(drainWait)
	defer t.Stop()
	select {
	case c.req <- struct{}{}: // for good: the reader starts nothing new
	case <-t.C:
		c.log.Warn("stopping with a request still in flight")
	}
	deadline := time.Now().Add(drainWait)
	t.Reset(drainWait)
	for {
		// Look at the puts before the queue: a put's answer is queued
		// before it leaves the pipe, so once the pipe is seen empty
		// every answer is in the queue.
		idle, changed := c.putsIdle()
		for {
			closing, ok, err := c.writeRun(deadline)
			if err != nil {
				return
			}
			if !ok {
				break
			}
			if closing != nil {
				c.send.pop() // the going-away close replaces it
			}
		}
		if c.flushWrites(deadline) != nil || idle {
			return
		}
		select {
		case <-changed:
		case <-c.send.ready:
		case <-t.C:
			c.log.Warn("stopping with puts still waiting for the disk")
			return
		}
	}
}

// beginRequest takes the request token before the reader handles a
// request; it returns false, holding nothing, once the connection is
// ending. The reader gives the token back with <-c.req.
func (c *conn) beginRequest() bool {
	select {
	case c.req <- struct{}{}:
	case <-c.ctx.Done():
		return false
	}
	if c.ctx.Err() != nil {
		<-c.req
		return false
	}
	return true
}

func (c *conn) writeClose(code int, text string) {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, truncate(text, 120)), time.Now().Add(closeWait))
}

// enqueue queues a message for the writer. If the queue is full it waits;
// if the client then takes no bytes for SendTimeout (see progress), it is
// not reading: enqueue closes the connection with a policy-violation close frame
// and returns false. It also returns false once the connection is ending.
// Only the connection's own goroutines call enqueue, so a slow client never
// holds up anything else.
func (c *conn) enqueue(data []byte) bool {
	return c.put(frame{data: data})
}

// tryEnqueue queues f, a message pushing a blob of blobBytes, if the send
// queue has room for it right now, by count and by bytes, and reports
// whether it did. It never waits. The blob is counted in the metrics
// before the message can be written.
func (c *conn) tryEnqueue(f frame, blobBytes int) bool {
	return c.tryEnqueueThen(f, func() { c.countBlobOut(blobBytes) })
}

// tryEnqueueThen queues f if the send queue has room for it right now, by
// count and by bytes, calling added first (before the writer can see f),
// and reports whether it did. It never waits.
func (c *conn) tryEnqueueThen(f frame, added func()) bool {
	n := int64(len(f.data))
	if q := c.queued.Load(); q > 0 && q+n > int64(c.s.cfg.SendQueueBytes) {
		return false
	}
	c.queued.Add(n)
	if !c.send.pushIfRoom(f, c.s.cfg.SendQueue, added) {
		c.queued.Add(-n)
		return false
	}
	return true
}

func (c *conn) put(f frame) bool {
	c.queued.Add(int64(len(f.data)))
	if !c.putFrame(f) {
		c.queued.Add(-int64(len(f.data)))
		return false
	}
	return true
}

// waitRoom waits until the send queue holds fewer than SendQueueBytes, or
// is empty, so that n more bytes can follow. A client that reads nothing
// for SendTimeout is closed as not reading, like a full queue in put.
func (c *conn) waitRoom(n int) bool {
	limit := int64(c.s.cfg.SendQueueBytes)
	if q := c.queued.Load(); q <= 0 || q+int64(n) <= limit {
		return true
	}
	t := time.NewTimer(c.s.cfg.SendTimeout)
	defer t.Stop()
	sent := c.progress()
	for {
		// Take the wake-up channel before looking, so a write between
		// the look and the wait still wakes us.
		left := c.send.left()
		q := c.queued.Load()
		if q <= 0 || q+int64(n) <= limit {
			return true
		}
		select {
		case <-left:
		case <-c.ctx.Done():
			return false
		case <-t.C:
			if n := c.progress(); n != sent {
				sent = n // slow but reading: keep waiting
				t.Reset(c.s.cfg.SendTimeout)
				continue
			}
			c.dropSlow()
			return false
		}
	}
}

// progress is a count that moves whenever the client takes bytes from
// the relay: the bytes written to the connection less those its peer has
// not acknowledged yet (where the system says; elsewhere, the bytes
// written). A client reading a large message slowly moves it long before
// the message is complete, and one that reads nothing leaves it still,
// however much the socket's buffers hold.
func (c *conn) progress() int64 {
	n := c.sent.Load()
	if q, ok := unsentBytes(c.nc); ok {
		n -= q
	}
	return n
}

// dropSlow closes a connection whose client stopped reading.
func (c *conn) dropSlow() {
	const why = "the client is not reading its messages"
	c.log.Warn("closing slow connection", "queued", c.send.len(), "queued_bytes", c.queued.Load())
	c.s.metrics.reject("none", limitSlowReader)
	c.abort(websocket.ClosePolicyViolation, why)
	// The writer may be stuck in a write: send the close frame from here
	// (WriteControl may run concurrently with writes) and drop the socket
	// so the writer wakes up. The close frame waits for the write under
	// way (see progressConn), so the socket is dropped after closeWait
	// whether it went or not.
	t := time.AfterFunc(closeWait, func() { _ = c.ws.NetConn().Close() })
	defer t.Stop()
	c.writeClose(websocket.ClosePolicyViolation, why)
	_ = c.ws.NetConn().Close()
}

func (c *conn) putFrame(f frame) bool {
	// Room in the queue wins even when the connection is ending: a
	// reply queued during a graceful stop is still written (see
	// drainForShutdown).
	ok, left := c.send.push(f, c.s.cfg.SendQueue)
	if ok {
		return true
	}
	if c.ctx.Err() != nil {
		return false
	}
	t := time.NewTimer(c.s.cfg.SendTimeout)
	defer t.Stop()
	sent := c.progress()
	for {
		select {
		case <-left:
			if ok, left = c.send.push(f, c.s.cfg.SendQueue); ok {
				return true
			}
		case <-c.ctx.Done():
			return false
		case <-t.C:
			if n := c.progress(); n != sent {
				sent = n // slow but reading: keep waiting
				t.Reset(c.s.cfg.SendTimeout)
				continue
			}
			c.dropSlow()
			return false
		}
	}
}

// reply queues a message.
func (c *conn) reply(m any) bool {
	data, err := protocol.Marshal(m)
	if err != nil {
		c.log.Error("marshal reply", "err", err)
		c.abort(websocket.CloseInternalServerErr, "internal error")
		return false
	}
	return c.enqueue(data)
}

// fail queues e and then a close frame with closeCode: the connection ends
// once the writer has sent them. Only the first fail on a connection has an
// effect.
func (c *conn) fail(e *protocol.Error, closeCode int) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	lvl := slog.LevelInfo
	if !c.authed.Load() {
		lvl = slog.LevelDebug // see serve
	}
	c.log.Log(context.Background(), lvl, "closing connection", "code", e.Code, "why", e.Message)
	if c.reply(e) {
		c.put(frame{code: closeCode, text: string(e.Code)})
	}
}

// readLoop authenticates the device and then handles requests until the
// connection fails or the reader decides to close it.
func (c *conn) readLoop() {
	// Until the device has authenticated it may send one small Auth
	// message, not a 1.4 MB frame.
	c.ws.SetReadLimit(maxAuthMessage)
	c.ws.SetPingHandler(c.handlePing)
	if !c.authenticate() {
		return
	}
	c.ws.SetReadLimit(protocol.MaxMessageSize)
	pongWait := 2 * c.s.cfg.PingInterval
	_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
	pong := func() {
		c.pingsIn = 0
		_ = c.ws.SetReadDeadline(time.Now().Add(pongWait))
	}
	c.ws.SetPongHandler(func(string) error {
		pong()
		return nil
	})
	for {
		c.waitReadable(pong)
		mt, buf, err := c.readMessage()
		if err != nil {
			c.noteReadError(err)
			return
		}
		pong() // any message shows the client is there
		binary := mt == websocket.BinaryMessage
		switch {
		case binary && c.version < protocol.Version:
			putFrameBuffer(buf)
			c.fail(reqError(0, protocol.CodeMalformed, "messages must be text frames"), websocket.CloseUnsupportedData)
			return
		case binary && protocol.FrameType(buf.Bytes()) != protocol.FramePut:
			putFrameBuffer(buf)
			c.fail(reqError(0, protocol.CodeMalformed, "the only binary frame a client may send is a put (type 0x01)"), websocket.CloseUnsupportedData)
			return
		case !binary && !utf8.Valid(buf.Bytes()):
			putFrameBuffer(buf)
			c.failInvalidUTF8()
			return
		}
		if !c.beginRequest() {
			putFrameBuffer(buf)
			return
		}
		more := c.handle(buf.Bytes(), binary)
		<-c.req
		putFrameBuffer(buf)
		if !more {
			return
		}
	}
}

// frameBuffers holds buffers for reading request frames. handle keeps
// nothing of a frame (decoding copies what it needs), so a buffer is
// reused for the next frame of any connection.
var frameBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledFrame is the largest buffer returned to frameBuffers: a few
// large blobs must not pin megabytes in the pool.
const maxPooledFrame = 64 << 10

// readMessage reads the next message into a buffer from frameBuffers,
// which the caller returns with putFrameBuffer. Unlike ReadMessage it does
// not grow a new slice from 512 bytes for every frame.
func (c *conn) readMessage() (int, *bytes.Buffer, error) {
	mt, r, err := c.ws.NextReader()
	if err != nil {
		return mt, nil, err
	}
	buf := frameBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		putFrameBuffer(buf)
		return mt, nil, err
	}
	return mt, buf, nil
}

func putFrameBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledFrame {
		frameBuffers.Put(buf)
	}
}

// failInvalidUTF8 closes a connection that sent a text frame that is not
// UTF-8 (RFC 6455 §8.1): JSON decoding would otherwise replace the bad
// bytes silently.
func (c *conn) failInvalidUTF8() {
	c.fail(reqError(0, protocol.CodeMalformed, "text frames must be valid UTF-8"), websocket.CloseInvalidFramePayloadData)
}

func (c *conn) noteReadError(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		c.noteEnd("message over the size limit")
		c.s.metrics.reject(string(protocol.CodeTooLarge), limitMessageSize)
	case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway):
		c.noteEnd("client closed")
	case errors.As(err, &ne) && ne.Timeout() && c.pingsIn > 0:
		c.noteEnd(fmt.Sprintf("client sent only pings (%d) and answered none of the relay's for two ping intervals", c.pingsIn))
	case errors.As(err, &ne) && ne.Timeout():
		c.noteEnd("client sent nothing, not even a pong, for two ping intervals")
	default:
		c.noteEnd("read failed: " + err.Error())
	}
}

// authenticate sends Hello and checks the device's Auth. It returns false,
// after queueing an Error and a close frame where useful, if the device did
// not authenticate.
func (c *conn) authenticate() bool {
	challenge := make([]byte, protocol.ChallengeSize)
	_, _ = rand.Read(challenge)
	if !c.reply(&protocol.Hello{Type: protocol.TypeHello, Version: int(c.version), RelayID: c.s.relayID, Challenge: challenge}) {
		return false
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.AuthTimeout))
	mt, data, err := c.ws.ReadMessage()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.s.metrics.reject(string(protocol.CodeAuthRequired), limitAuthTimeout)
			c.fail(reqError(0, protocol.CodeAuthRequired, "the device did not authenticate within %s", c.s.cfg.AuthTimeout), websocket.ClosePolicyViolation)
			return false
		}
		c.noteReadError(err)
		return false
	}
	if mt != websocket.TextMessage {
		c.fail(reqError(0, protocol.CodeMalformed, "messages must be text frames"), websocket.CloseUnsupportedData)
		return false
	}
	if !utf8.Valid(data) {
		c.failInvalidUTF8()
		return false
	}
	env, err := protocol.Decode(data)
	if err != nil {
		c.fail(reqError(0, protocol.CodeMalformed, "the message is not a json object with a type"), websocket.CloseProtocolError)
		return false
	}
	if env.Type != protocol.TypeAuth {
		c.fail(reqError(env.ID, protocol.CodeAuthRequired, "authenticate before sending requests"), websocket.ClosePolicyViolation)
		return false
	}
	var a protocol.Auth
	if err := protocol.DecodeAs(data, &a); err != nil {
		c.fail(reqError(0, protocol.CodeMalformed, "the auth message is malformed"), websocket.CloseProtocolError)
		return false
	}
	if perr := checkAuth(&a, int(c.version), c.s.relayID, challenge); perr != nil {
		c.fail(perr, websocket.ClosePolicyViolation)
		return false
	}
	if c.slot != nil && !c.slot.authenticated() {
		return false // closed meanwhile to make room (evict)
	}
	c.authed.Store(true)
	copy(c.device[:], a.Device)
	c.s.devices.add(c)
	c.log = c.log.With("device", shortID(c.device[:]))
	c.log.Info("device authenticated")
	return c.reply(&protocol.Welcome{Type: protocol.TypeWelcome, Version: int(c.version)})
}

// checkAuth verifies an Auth message against the connection's version
// and challenge.
func checkAuth(a *protocol.Auth, version int, relayID string, challenge []byte) *protocol.Error {
	if a.Version != version {
		return reqError(0, protocol.CodeBadVersion, "this connection speaks protocol version %d, not %d", version, a.Version)
	}
	if len(a.Device) != ed25519.PublicKeySize {
		return reqError(0, protocol.CodeAuthFailed, "the device key is %d bytes, want %d", len(a.Device), ed25519.PublicKeySize)
	}
	if len(a.Signature) != ed25519.SignatureSize {
		return reqError(0, protocol.CodeAuthFailed, "the signature is %d bytes, want %d", len(a.Signature), ed25519.SignatureSize)
	}
	if !ed25519.Verify(a.Device, protocol.AuthMessage(relayID, challenge), a.Signature) {
		return reqError(0, protocol.CodeAuthFailed, "the signature does not verify for this relay and connection")
	}
	return nil
}

// handle answers one request frame: JSON text, or a binary put frame
// (version 2). It returns false when the connection must stop reading. It
// must keep nothing of frame, whose buffer is reused (readMessage):
// decoding copies what a request needs.
func (c *conn) handle(frame []byte, binary bool) bool {
	start := time.Now()
	now := c.s.cfg.Now()
	k := checker{Device: c.device, MaxBlobSize: c.s.cfg.MaxBlobSize, InviteMaxTTL: c.s.cfg.InviteMaxTTL, Now: now}
	var r *request
	var perr *protocol.Error
	if binary {
		r, perr = k.parsePutFrame(frame)
	} else {
		r, perr = k.parse(frame)
	}
	if perr != nil || r.Type != protocol.TypePut {
		// Everything but a put is handled after the puts before it.
		c.waitPuts()
	}
	if perr != nil && perr.ID == 0 {
		c.fail(perr, websocket.CloseProtocolError)
		return false
	}
	var id uint64
	if perr != nil {
		id = perr.ID
	} else {
		id = r.ID
	}
	if wait, ok := take(c.limiter, now); !ok {
		return c.rateLimited(id, wait, now)
	}
	c.guard.note(now, false)
	if perr != nil {
		if perr.Code == protocol.CodeTooLarge {
			c.s.metrics.reject(string(perr.Code), limitSize)
		}
		c.log.Debug("request refused", "code", perr.Code, "why", perr.Message)
		return c.reply(perr)
	}
	switch r.Type {
	case protocol.TypeCreate:
		return c.handleCreate(r)
	case protocol.TypeInvite:
		return c.handleInvite(r)
	case protocol.TypeRedeem:
		return c.handleRedeem(r)
	case protocol.TypePut:
		return c.handlePut(r, start, now)
	case protocol.TypePurge:
		return c.handlePurge(r)
	case protocol.TypeSubscribe:
		return c.handleSubscribe(r)
	case protocol.TypeAddDevice:
		return c.handleAddDevice(r)
	case protocol.TypeRemoveDevice:
		return c.handleRemoveDevice(r)
	case protocol.TypeLeave:
		return c.handleLeave(r)
	}
	return c.reply(reqError(r.ID, protocol.CodeMalformed, "%q is not a request type", r.Type))
}

func (c *conn) ok(id uint64) *protocol.OK { return &protocol.OK{Type: protocol.TypeOK, ID: id} }

// internal answers a request whose store operation failed.
func (c *conn) internal(r *request, err error) bool {
	if c.ctx.Err() != nil {
		return false // shutting down or gone; the writer says so
	}
	c.log.Error("store operation failed", "request", r.Type, "journal", r.Journal.String(), "err", err)
	// People read this sentence through their client: no protocol words.
	return c.reply(reqError(r.ID, protocol.CodeInternal, "the relay could not store or read that just now (its storage did not answer); nothing was changed"))
}

// requireMember answers r with not-member unless the device is a member of
// r.Journal. It returns (continue, member).
func (c *conn) requireMember(r *request) (bool, bool) {
	if c.members[r.Journal] {
		return true, true
	}
	ok, err := c.s.cfg.Store.IsMember(c.ctx, r.Journal, c.device)
	if err != nil {
		return c.internal(r, err), false
	}
	if !ok {
		c.log.Info("request refused: not a member", "request", r.Type, "journal", r.Journal.String())
		return c.reply(reqError(r.ID, protocol.CodeNotMember, "this device is not a member of journal %s", r.Journal)), false
	}
	c.members[r.Journal] = true
	return true, true
}

func (c *conn) handleCreate(r *request) bool {
	err := c.s.cfg.Store.CreateJournal(c.ctx, r.Journal, c.device)
	if errors.Is(err, protocol.ErrExists) {
		return c.reply(reqError(r.ID, protocol.CodeExists, "journal %s already exists", r.Journal))
	}
	if err != nil {
		return c.internal(r, err)
	}
	c.members[r.Journal] = true
	c.log.Info("journal created", "journal", r.Journal.String())
	return c.reply(c.ok(r.ID))
}

func (c *conn) handleInvite(r *request) bool {
	if cont, member := c.requireMember(r); !member {
		return cont
	}
	inv := Invite{Journal: r.Journal, AuthHash: r.AuthHash, Kind: InvitePartner, Expires: r.Expires, Packet: r.Packet}
	switch {
	case r.Link:
		inv.Kind = InviteLink
	case r.Again:
		inv.Kind = InviteAgain
	}
	err := c.s.cfg.Store.PutInvite(c.ctx, inv)
	if errors.Is(err, ErrInviteExists) {
		return c.reply(reqError(r.ID, protocol.CodeInvalid, "an invite with that auth hash already exists"))
	}
	if errors.Is(err, protocol.ErrNotFound) {
		return c.reply(reqError(r.ID, protocol.CodeNotFound, "journal %s does not exist", r.Journal))
	}
	if err != nil {
		return c.internal(r, err)
	}
	c.log.Info("invite stored", "journal", r.Journal.String(), "link", r.Link, "again", r.Again, "expires", r.Expires.UTC().Format(time.RFC3339), "packet_bytes", len(r.Packet))
	return c.reply(c.ok(r.ID))
}

func (c *conn) handleRedeem(r *request) bool {
	j, packet, err := Redeem(c.ctx, c.s.cfg.Store, r.AuthHash, c.device, c.s.cfg.Now(), JournalPersons)
	if errors.Is(err, protocol.ErrInviteUnknown) {
		c.log.Info("invite redemption refused")
		return c.reply(reqError(r.ID, protocol.CodeInviteUnknown, "%s", protocol.ErrInviteUnknown.Error()))
	}
	if errors.Is(err, protocol.ErrJournalFull) {
		// The sentence is what an older client, which reads the code as
		// an internal error, shows the person: plain, and true.
		c.log.Info("invite redemption refused: the journal already has two people")
		return c.reply(reqError(r.ID, protocol.CodeJournalFull, "%s", protocol.ErrJournalFull.Error()))
	}
	if err != nil {
		return c.internal(r, err)
	}
	// A link adds no member; the cache fills on the next request.
	c.log.Info("invite redeemed", "journal", j.String())
	ok := c.ok(r.ID)
	ok.Journal, ok.Packet = &j, packet
	return c.reply(ok)
}

func (c *conn) handlePut(r *request, start, now time.Time) bool {
	if cont, member := c.requireMember(r); !member {
		return cont
	}
	if cont, allowed := c.checkPutLimits(r, now); !allowed {
		return cont
	}
	c.startPut(r, start)
	return true // answered by the acker
}

// answerPuts answers puts whose results the acker has, in order: a run
// of binary puts stored without error shares one acks frame, and any
// other put is answered on its own. alone says no other put of the
// connection waits for its answer.
func (c *conn) answerPuts(puts []*pendingPut, alone bool) {
	for len(puts) > 0 {
		n := 1
		if puts[0].err == nil && puts[0].r.Binary {
			for n < len(puts) && puts[n].err == nil && puts[n].r.Binary {
				n++
			}
		}
		c.answerRun(puts[:n], alone && n == len(puts))
		puts = puts[n:]
	}
}

// answerRun answers the puts of a run (see answerPuts) with one frame.
func (c *conn) answerRun(run []*pendingPut, alone bool) {
	r := run[0].r
	if err := run[0].err; err != nil {
		c.internal(r, err)
		return
	}
	var answer frame
	if r.Binary {
		// Acks queued together go out as one frame too (writeRun).
		var buf [8]protocol.Ack
		acks := buf[:0]
		for _, p := range run {
			acks = append(acks, protocol.Ack{ID: p.r.ID, Seq: p.seq, BlobID: p.id, Duplicate: p.dup})
		}
		answer = frame{data: protocol.AppendAcks(make([]byte, 0, 1+len(acks)*protocol.AckEntrySize), acks...), binary: true}
	} else {
		ok := c.ok(r.ID)
		ok.Seq, ok.BlobID, ok.Duplicate = run[0].seq, run[0].id[:], run[0].dup
		data, err := protocol.Marshal(ok)
		if err != nil {
			c.log.Error("marshal reply", "err", err)
			c.abort(websocket.CloseInternalServerErr, "internal error")
			return
		}
		answer = frame{data: data}
	}
	for _, p := range run {
		if c.log.Enabled(c.ctx, slog.LevelDebug) { // the arguments cost more than the call, on every put
			c.log.Debug("blob stored", "journal", p.r.Journal.String(), "seq", p.seq, "bytes", len(p.r.Blob), "kind", p.r.Header.Kind.String(), "duplicate", p.dup)
		}
		if p.dup {
			c.s.metrics.dupsIn.Inc()
		} else {
			c.s.metrics.blobsIn.Inc()
			c.s.metrics.bytesIn.Add(float64(len(p.r.Blob)))
		}
		c.s.metrics.putAck.Observe(time.Since(p.start).Seconds())
	}
	// The answer goes before the blobs are announced when that takes no
	// waiting: the announcement writes to idle subscribers itself
	// (pushDirect), and the putting device need not wait for that.
	// Answers with no put waiting behind them on an idle connection (a
	// device that waits for each answer) are written from here, as
	// pushDirect writes, sparing a writer goroutine per put; otherwise
	// the answer is queued. When the queue is full, the announcements,
	// which never wait, go first. (On a connection subscribed to the
	// same journal, a put's answer and its own push may so come in
	// either order.)
	queued := (alone && c.writeDirect(answer, false, 0)) || c.tryEnqueueThen(answer, func() {})
	for _, p := range run {
		if !p.dup {
			c.s.hub.announce(p.r.Journal, p.seq, p.r.Blob)
		}
	}
	if !queued {
		c.put(answer)
	}
}

func (c *conn) handlePurge(r *request) bool {
	if cont, member := c.requireMember(r); !member {
		return cont
	}
	seq, err := c.s.cfg.Store.Purge(c.ctx, r.Journal, r.BlobID, c.device, r.ChainID)
	switch {
	case errors.Is(err, protocol.ErrNotFound):
		return c.reply(reqError(r.ID, protocol.CodeNotFound, "this journal holds no such blob"))
	case errors.Is(err, protocol.ErrInvalid):
		return c.reply(reqError(r.ID, protocol.CodeInvalid, "only the device that wrote a blob may purge it"))
	case err != nil:
		return c.internal(r, err)
	}
	c.log.Info("blob purged", "journal", r.Journal.String(), "seq", seq)
	ok := c.ok(r.ID)
	ok.Seq = seq
	return c.reply(ok)
}

func (c *conn) handleSubscribe(r *request) bool {
	if cont, member := c.requireMember(r); !member {
		return cont
	}
	if c.subs[r.Journal] != nil {
		return c.reply(reqError(r.ID, protocol.CodeInvalid, "this connection is already subscribed to journal %s", r.Journal))
	}
	if n := c.s.cfg.MaxSubscriptions; n >= 0 && len(c.subs) >= n {
		c.s.metrics.reject(string(protocol.CodeInvalid), limitSubscriptions)
		return c.reply(reqError(r.ID, protocol.CodeInvalid, "this connection already has %d subscriptions, the most this relay allows; use another connection", n))
	}
	last, err := c.s.cfg.Store.LastSeq(c.ctx, r.Journal)
	if err != nil {
		return c.internal(r, err)
	}
	if r.After > last {
		return c.reply(reqError(r.ID, protocol.CodeInvalid, "the cursor %d is past the last blob the relay holds for journal %s (%d)", r.After, r.Journal, last))
	}
	sub := &subscription{c: c, journal: r.Journal, after: r.After, cursor: r.After}
	// Held as if a pump ran, so that appends announced from now on only
	// mark it kicked: nothing is sent before the OK.
	sub.state.Store(pumpRunning)
	// Register before the first read so no append can slip between the
	// read and the wait. The connection removes it when it ends.
	c.s.hub.add(sub, last)
	c.subs[r.Journal] = sub
	if !c.reply(c.ok(r.ID)) {
		c.s.hub.remove(sub)
		delete(c.subs, r.Journal)
		return false
	}
	c.log.Info("subscribed", "journal", r.Journal.String(), "after", r.After)
	c.s.metrics.subs.Inc()
	c.startPump(sub) // send the history, then CaughtUp
	return true
}

// shortID is the first 8 hex digits of a key, for logs.
func shortID(key []byte) string {
	if len(key) > 4 {
		key = key[:4]
	}
	return hex.EncodeToString(key)
}
