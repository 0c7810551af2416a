package server

import (
	"bufio"
	"errors"
	"net"
	"net/http"
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
// hijacked connection, and remembers both.
type hijacker struct {
	http.ResponseWriter
	nc net.Conn
	br *bufio.Reader
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
	return nc, brw, nil
}

// waitReadable returns when a message may be read without the reader
// blocking deep inside gorilla: when the read buffer holds data, or the
// socket has data, an error, or the read deadline has passed.
func (c *conn) waitReadable() {
	if c.br == nil || c.br.Buffered() > 0 {
		return
	}
	waitSocketReadable(c.nc)
}
