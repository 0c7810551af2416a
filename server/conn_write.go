package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// The write path.
//
// A connection's writer (conn.writer) writes what its send queue holds. Two
// things keep that cheap when much is queued:
//
//   - On a version 2 connection, frames that can be one frame are written
//     as one: binary blobs frames of one journal, one after the other, and
//     acks frames (writeRun, sendQueue.frontRun). A subscriber that fell
//     behind by a hundred pushes, or a burst of pipelined puts answered
//     together, costs one frame.
//   - Whatever the writer writes while more is queued behind it, of either
//     version, is gathered in a buffer and written with one system call
//     when the queue runs dry, or when the buffer is full (progressConn).
//     A drained queue of small frames costs one write(2), not one each.
//
// gorilla/websocket writes each message, and each control frame, with one
// or two Write calls on the net.Conn it was given, under its own lock, so
// the buffer always ends at a frame boundary; control frames other
// goroutines write meanwhile (a pong from the reader) join the buffer and
// go out with it.

// mergeLimit bounds a frame merged from several queued ones, and a
// history frame a subscription builds (conn_sub.go): about 180 blobs of
// 1.4 KiB, well under protocol.MaxMessageSize.
const mergeLimit = 256 << 10

// holdSize is the buffer a connection's writer gathers frames in. A
// frame that does not fit goes out right behind what is gathered, in the
// same system call.
const holdSize = 64 << 10

var holdBufs = sync.Pool{New: func() any { b := make([]byte, 0, holdSize); return &b }}

var mergeBufs = sync.Pool{New: func() any { b := make([]byte, 0, mergeLimit); return &b }}

// progressChunk is the most a progressConn writes in one call where the
// system cannot say how much of what was written the peer has taken
// (unsentBytes): it is then the unit in which a slow reader's progress is
// seen, and a client must take at least this much every
// Config.SendTimeout while its queue is full.
const progressChunk = 16 << 10

// progressConn is the net.Conn gorilla writes to. It counts the bytes
// written as they go, so that a client reading a large frame slowly is
// seen to make progress before the frame is complete (see conn.waitRoom),
// and, while the connection's writer holds it, gathers writes in a buffer
// that the writer flushes with one system call.
//
// Its mutex orders every write to the connection and the write deadline
// that goes with it, whichever goroutine writes; SetWriteDeadline only
// notes the deadline for the writes that follow.
type progressConn struct {
	net.Conn
	sent    *atomic.Int64
	chunked bool // static: write at most progressChunk bytes a call

	raw syscall.RawConn // static: nc's descriptor, for tryWrite; nil where there is none (TLS, a pipe)

	held     bool       // guarded by mu: writes are gathered in buf
	mu       sync.Mutex // orders writes and their deadlines
	deadline int64      // guarded by mu: set by SetWriteDeadline, unix nanoseconds; 0: none
	buf      *[]byte    // guarded by mu: what is gathered; nil when nothing is
	pending  []byte     // guarded by mu: the unwritten tail of a frame tryWrite began; written before anything else
}

// init makes p write to nc, counting into sent.
func (p *progressConn) init(nc net.Conn, sent *atomic.Int64) {
	p.Conn, p.sent = nc, sent
	_, known := unsentBytes(nc)
	p.chunked = !known
	p.raw = rawConn(nc)
}

// SetWriteDeadline notes t as the deadline of the writes that follow.
func (p *progressConn) SetWriteDeadline(t time.Time) error {
	var d int64
	if !t.IsZero() {
		d = t.UnixNano()
	}
	p.mu.Lock()
	p.deadline = d
	p.mu.Unlock()
	return nil
}

// Write writes b, or, while the writer holds the connection, adds it to
// what is gathered. A frame that does not fit goes out with what is
// gathered, in one system call where the connection allows it (writev).
func (p *progressConn) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writePendingLocked(p.deadline); err != nil {
		return 0, err
	}
	if p.held {
		if p.buf == nil {
			p.buf = holdBufs.Get().(*[]byte)
		}
		// A control frame (at most 131 bytes) is always taken: it may
		// come from another goroutine, which must not write here.
		if len(*p.buf)+len(b) <= cap(*p.buf) || len(b) <= 131 {
			*p.buf = append(*p.buf, b...)
			return len(b), nil
		}
		err := p.writeLocked(p.deadline, *p.buf, b)
		p.releaseLocked()
		if err != nil {
			return 0, err
		}
		return len(b), nil
	}
	if err := p.writeLocked(p.deadline, nil, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// hold makes writes gather until flush. Only the connection's writer
// calls it.
func (p *progressConn) hold() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
}

// flush writes what is gathered, with deadline, and stops gathering.
// Only the connection's writer calls it.
func (p *progressConn) flush(deadline time.Time) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = false
	if err := p.writePendingLocked(deadline.UnixNano()); err != nil {
		return err
	}
	if p.buf == nil {
		return nil
	}
	err := p.writeLocked(deadline.UnixNano(), *p.buf, nil)
	p.releaseLocked()
	return err
}

// writePendingLocked writes what is left of a frame tryWrite began, with
// deadline (unix nanoseconds; 0: none).
func (p *progressConn) writePendingLocked(deadline int64) error {
	if p.pending == nil {
		return nil
	}
	err := p.writeLocked(deadline, p.pending, nil)
	p.pending = nil
	return err
}

// tryWrite writes the frame hdr+data to the socket from the calling
// goroutine without ever waiting: with one non-blocking system call, and
// only if nothing else is being written or waits to be written and ctx is
// live. It reports whether it took the frame. If the socket took only
// part of it, the rest is kept and goes out before anything else (see
// flush), and partial is true: the caller must make sure a writer
// flushes it. If the socket
// took nothing, or p was busy, the frame was not taken and nothing was
// written. An error means the connection is broken.
//
// The caller must hold the connection's write token (sendQueue.claimIdle),
// so that no message gorilla is writing can be split by this frame: every
// other write to the connection is then a control frame, which gorilla
// writes with one call to Write.
func (p *progressConn) tryWrite(ctx context.Context, hdr, data []byte, deadline time.Time) (taken, partial bool, err error) {
	if p == nil || p.raw == nil || !p.mu.TryLock() {
		return false, false, nil
	}
	defer p.mu.Unlock()
	// The context is looked at under the lock: a close frame written
	// once the connection is ending is written after it was canceled, so
	// no frame of this follows it.
	if p.held || p.buf != nil || p.pending != nil || ctx.Err() != nil {
		return false, false, nil
	}
	// The descriptor refuses to write once an earlier deadline has
	// passed; this write itself never waits for it.
	if err := p.Conn.SetWriteDeadline(deadline); err != nil {
		return false, false, err
	}
	n, err := writeOnce(p.raw, hdr, data)
	if n > 0 {
		p.sent.Add(int64(n))
	}
	if err != nil {
		return false, false, err
	}
	if n == 0 {
		return false, false, nil
	}
	if n < len(hdr)+len(data) {
		rest := make([]byte, 0, len(hdr)+len(data)-n)
		if n < len(hdr) {
			rest = append(append(rest, hdr[n:]...), data...)
		} else {
			rest = append(rest, data[n-len(hdr):]...)
		}
		p.pending = rest
		return true, true, nil
	}
	return true, false, nil
}

// releaseLocked returns the gathering buffer to the pool.
func (p *progressConn) releaseLocked() {
	*p.buf = (*p.buf)[:0]
	holdBufs.Put(p.buf)
	p.buf = nil
}

// writeLocked writes a then b to the connection with deadline (unix
// nanoseconds; 0: none), counting the bytes as they go.
func (p *progressConn) writeLocked(deadline int64, a, b []byte) error {
	var t time.Time
	if deadline != 0 {
		t = time.Unix(0, deadline)
	}
	if err := p.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	if !p.chunked && len(a) > 0 && len(b) > 0 {
		bufs := net.Buffers{a, b}
		n, err := bufs.WriteTo(p.Conn)
		p.sent.Add(n)
		return err
	}
	for _, s := range [][]byte{a, b} {
		for len(s) > 0 {
			w := s
			if p.chunked && len(w) > progressChunk {
				w = w[:progressChunk]
			}
			n, err := p.Conn.Write(w)
			p.sent.Add(int64(n))
			if err != nil {
				return err
			}
			s = s[n:]
		}
	}
	return nil
}

// mergeKey says whether f is a frame that merges with the same kind of
// frame right behind it in the queue (see writeRun), and how many bytes
// of header such a frame has, which a merged frame keeps once.
func mergeKey(f *frame) (header int, ok bool) {
	if !f.binary {
		return 0, false
	}
	switch protocol.FrameType(f.data) {
	case protocol.FrameAcks:
		return 1, true
	case protocol.FrameBlobs:
		return protocol.BlobsFrameHeader, len(f.data) > protocol.BlobsFrameHeader
	}
	return 0, false
}

// mergesWith reports whether next can be merged into a frame that starts
// with first: same kind, and for blobs the same journal.
func mergesWith(first, next *frame, header int) bool {
	h, ok := mergeKey(next)
	return ok && h == header && bytes.Equal(first.data[:header], next.data[:header])
}

// writeRun writes the front of the send queue: one frame, or, on a
// version 2 connection, the frames at the front that merge into one (see
// mergeKey), and removes what it wrote. While more is queued behind what
// it writes, it holds the connection's writes for one system call
// (progressConn); the caller flushes once the queue is empty. It returns
// the close frame at the front, if that is what is there, without
// removing it, and ok false when the queue is empty.
func (c *conn) writeRun(deadline time.Time) (closing *frame, ok bool, err error) {
	var one [1]frame // most runs are one frame: no allocation for them
	run := c.send.frontRun(one[:0], mergeLimit)
	if len(run) == 0 {
		return nil, false, nil
	}
	if run[0].data == nil {
		f := run[0]
		return &f, true, nil
	}
	if c.send.len() > len(run) {
		c.out.hold()
	}
	data, mt, total := run[0].data, websocket.TextMessage, len(run[0].data)
	if run[0].binary {
		mt = websocket.BinaryMessage
	}
	var merged *[]byte
	if len(run) > 1 {
		header, _ := mergeKey(&run[0])
		merged = mergeBufs.Get().(*[]byte)
		m := append((*merged)[:0], run[0].data...)
		for _, f := range run[1:] {
			m = append(m, f.data[header:]...)
			total += len(f.data)
		}
		data, *merged = m, m
	}
	_ = c.ws.SetWriteDeadline(deadline)
	err = c.ws.WriteMessage(mt, data)
	if merged != nil {
		if cap(*merged) <= mergeLimit {
			*merged = (*merged)[:0]
			mergeBufs.Put(merged)
		}
	}
	for i := range run {
		run[i] = frame{} // the writer keeps no message
	}
	if err != nil {
		return nil, true, err
	}
	c.queued.Add(-int64(total))
	c.send.popN(len(run))
	return nil, true, nil
}

// flushWrites writes what the writer gathered (see writeRun).
func (c *conn) flushWrites(deadline time.Time) error {
	return c.out.flush(deadline)
}

// maxDirectFrame bounds a pushed frame that an announcer writes itself
// (see conn.pushDirect): one that does not fit in the socket at once is
// copied until the writer sends the rest.
const maxDirectFrame = holdSize

// appendFrameHeader appends the header of an unmasked, final WebSocket
// frame of n bytes, text or binary (RFC 6455 §5.2), as the relay sends
// them: no extension bits, so no compression.
func appendFrameHeader(b []byte, binaryFrame bool, n int) []byte {
	op := byte(websocket.TextMessage)
	if binaryFrame {
		op = websocket.BinaryMessage
	}
	b = append(b, wsFinal|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// pushDirect writes f, a frame pushing a blob of blobBytes, from the
// calling goroutine (the one that announces the blob, see hub.announce)
// if the connection is idle: nothing queued and nothing being written.
// It never waits: if the socket takes nothing at once, f is queued for
// the writer instead; if it takes part, the writer is woken to write the
// rest. It reports false, having done nothing, if the connection is not
// idle or cannot be written to this way; the caller then queues f.
//
// This spares a caught-up subscriber's writer a wake-up, and the
// announcer a goroutine switch, per pushed blob: most pushes go to
// subscribers that are idle.
func (c *conn) pushDirect(f frame, blobBytes int) bool {
	return c.writeDirect(f, true, blobBytes)
}

// writeDirect writes f from the calling goroutine as pushDirect does; a
// push (push set) of blobBytes is counted as one. answerRun writes a
// put's answer this way: a device that waits for each answer (most do)
// leaves its connection idle between puts, and starting a writer
// goroutine for every answer cost a goroutine start, a stack grown
// through gorilla's write path and a switch, per put.
func (c *conn) writeDirect(f frame, push bool, blobBytes int) bool {
	if c.out == nil || c.out.raw == nil || len(f.data) > maxDirectFrame || !c.send.claimIdle() {
		return false
	}
	// Counted before it can arrive, as tryEnqueue does.
	if push {
		c.countBlobOut(blobBytes)
	}
	var hb [10]byte
	taken, partial, err := c.out.tryWrite(c.ctx, appendFrameHeader(hb[:0], f.binary, len(f.data)), f.data, time.Now().Add(c.writeTimeout()))
	if err != nil {
		c.noteEnd("write failed: " + err.Error())
		c.cancel() // the writer ends the connection
		taken = true
	}
	var rest *frame
	if taken {
		if push {
			c.s.directPushes.Add(1)
		}
	} else {
		c.queued.Add(int64(len(f.data)))
		rest = &f
	}
	c.send.releaseDirect(rest, false, partial)
	return true
}
