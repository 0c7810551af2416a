package server

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// The write path.
//
// A connection's writer (writeLoop) writes what its send queue holds. Two
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

	held     bool       // guarded by mu: writes are gathered in buf
	mu       sync.Mutex // orders writes and their deadlines
	deadline int64      // guarded by mu: set by SetWriteDeadline, unix nanoseconds; 0: none
	buf      *[]byte    // guarded by mu: what is gathered; nil when nothing is
}

// init makes p write to nc, counting into sent.
func (p *progressConn) init(nc net.Conn, sent *atomic.Int64) {
	p.Conn, p.sent = nc, sent
	_, known := unsentBytes(nc)
	p.chunked = !known
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
	if p.buf == nil {
		return nil
	}
	err := p.writeLocked(deadline.UnixNano(), *p.buf, nil)
	p.releaseLocked()
	return err
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
