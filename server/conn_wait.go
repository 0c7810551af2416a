package server

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// Idle connections and their reader's stack.
//
// A connection's reader spends nearly all its life waiting for the next
// message. Waiting inside gorilla's ReadMessage parks it about 1.5 KB deep,
// which (with the runtime's margin) keeps its stack at 8 KB: the runtime
// halves a parked goroutine's stack only while it uses less than a
// quarter of it. So the reader first waits for the socket to become
// readable at a shallow depth (waitReadable), where its stack shrinks to
// 4 KB, and only then enters ReadMessage. It can only do so when it knows
// the read buffer is empty, which is why the connection keeps a handle on
// the buffer gorilla reads through (hijacker).

// hijacker hands gorilla's Upgrade a read buffer of readBufferSize over the
// hijacked connection, and remembers both. Gorilla writes through a
// progressConn (conn_write.go), which counts the bytes into sent and lets
// the connection's writer gather its frames.
type hijacker struct {
	http.ResponseWriter
	nc   net.Conn
	br   *bufio.Reader
	out  progressConn // in here, not apart: one allocation less per connection
	sent atomic.Int64
}

// Hijack implements http.Hijacker.
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the HTTP server cannot hand over connections")
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Reader.Buffered() == 0 {
		// Otherwise Upgrade refuses the connection: the client sent
		// data before the handshake finished.
		brw.Reader = bufio.NewReaderSize(nc, readBufferSize)
		h.nc, h.br = nc, brw.Reader
	}
	h.out.init(nc, &h.sent)
	return &h.out, brw, nil
}

// waitReadable returns when a message may be read without the reader
// blocking deep inside gorilla: when the read buffer holds data, or the
// socket has data, an error, or the read deadline has passed. Pongs that
// arrive meanwhile (the answers to the relay's pings, which come to an
// idle connection every PingInterval) it takes itself, doing what the
// pong handler does: otherwise the first pong would put the reader back
// inside ReadMessage, waiting there for the next message.
//
// While it waits, the read buffer, which is empty then, goes back to a
// pool (readBuffers): an idle connection holds none.
func (c *conn) waitReadable(pong func()) {
	if c.br == nil {
		return
	}
	for {
		if c.br.Buffered() == 0 {
			c.returnReadBuffer()
			ok := waitSocketReadable(c.nc)
			c.borrowReadBuffer()
			if !ok {
				return
			}
		}
		if !c.skipPong() {
			return
		}
		pong()
	}
}

// readBuffers holds read buffers of readBufferSize, each in a
// bufio.Reader that reads nothing (a holder), for connections to borrow
// while they read.
var readBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

// returnReadBuffer gives c's read buffer, which must hold no data, back
// to readBuffers, leaving c.br without a buffer until borrowReadBuffer.
// gorilla keeps its pointer to c.br; only the reader goroutine, which
// calls both, uses it.
func (c *conn) returnReadBuffer() {
	h := c.brHolder
	if h == nil {
		h = new(bufio.Reader)
	}
	c.brHolder = nil
	*h, *c.br = *c.br, bufio.Reader{}
	readBuffers.Put(h)
	c.s.readBuffersLent.Add(-1)
}

// borrowReadBuffer gives c.br a buffer from readBuffers, reading from the
// connection, and keeps the emptied holder for returnReadBuffer.
func (c *conn) borrowReadBuffer() {
	h := readBuffers.Get().(*bufio.Reader)
	*c.br, *h = *h, bufio.Reader{}
	c.br.Reset(c.nc)
	c.brHolder = h
	c.s.readBuffersLent.Add(1)
}

// WebSocket frame header bits (RFC 6455, section 5.2).
const (
	wsFinal      = 0x80
	wsOpPong     = 0x0A
	wsMasked     = 0x80
	wsMaxControl = 125
)

// skipPong consumes a complete pong frame at the head of the read buffer
// and reports whether it did. It is called only between messages, where
// gorilla next expects a frame header, so a whole frame taken out of the
// buffer leaves gorilla's state as it was. Anything but a well-formed
// pong from a client (final, no extension bits, masked, at most 125
// bytes) is left to gorilla.
func (c *conn) skipPong() bool {
	hdr, err := c.br.Peek(2)
	if err != nil || hdr[0] != wsFinal|wsOpPong || hdr[1]&wsMasked == 0 || int(hdr[1]&^wsMasked) > wsMaxControl {
		return false
	}
	n := 2 + 4 + int(hdr[1]&^wsMasked)
	if _, err := c.br.Peek(n); err != nil {
		return false
	}
	_, _ = c.br.Discard(n)
	return true
}
