package server

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

func blobsFrame(j protocol.JournalID, seq uint64, blob string) frame {
	f := protocol.AppendBlobsHeader(nil, j)
	return frame{data: protocol.AppendBlobEntry(f, seq, false, []byte(blob)), binary: true}
}

func ackFrame(id uint64) frame {
	return frame{data: protocol.AppendAcks(nil, protocol.Ack{ID: id, Seq: id}), binary: true}
}

// TestFrontRun: the writer merges blobs frames of one journal, and acks
// frames, that are next to each other in the queue, up to the limit; a
// text frame, another journal or a close frame ends a run.
func TestFrontRun(t *testing.T) {
	j1, j2 := protocol.JournalID{1}, protocol.JournalID{2}
	var q sendQueue
	q.init(func() {}, func() bool { return false })
	for _, f := range []frame{
		ackFrame(1), ackFrame(2), ackFrame(3),
		{data: []byte(`{"type":"ok","id":4}`)},
		blobsFrame(j1, 1, "a"), blobsFrame(j1, 2, "b"),
		blobsFrame(j2, 1, "c"),
		blobsFrame(j1, 3, strings.Repeat("d", 100)), blobsFrame(j1, 4, strings.Repeat("e", 100)), blobsFrame(j1, 5, "f"),
		ackFrame(5),
		{code: websocket.CloseNormalClosure},
		ackFrame(6),
	} {
		if ok, _ := q.push(f, 100); !ok {
			t.Fatal("queue full")
		}
	}
	// The third run of j1 is cut at 250 bytes: 17 + 2×113 fit, the
	// third blob does not.
	for _, want := range []int{3, 1, 2, 1, 2, 1, 1, 1, 1} {
		run := q.frontRun(nil, 250)
		if len(run) != want {
			t.Fatalf("run of %d frames, want %d (front: %q)", len(run), want, run[0].data)
		}
		q.popN(len(run))
	}
	if run := q.frontRun(nil, 250); len(run) != 0 {
		t.Fatalf("%d frames left", len(run))
	}
}

// TestWriteRunMerges: what the writer writes for a run is one frame that
// decodes to every blob, or every ack, of the frames it merged, in order.
func TestWriteRunMerges(t *testing.T) {
	j := protocol.JournalID{7}
	wrote := make(chan error, 1)
	up := websocket.Upgrader{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		c := &conn{ws: ws, s: &Server{}}
		c.send.init(func() {}, func() bool { return false }) // the test writes, as the writer would
		for _, f := range []frame{
			blobsFrame(j, 1, "one"), blobsFrame(j, 2, "two"), blobsFrame(j, 3, "three"),
			{data: []byte(`{"type":"caught_up"}`)},
			ackFrame(10), ackFrame(11),
		} {
			c.queued.Add(int64(len(f.data)))
			c.send.push(f, 100)
		}
		wrote <- func() error {
			for {
				closing, ok, err := c.writeRun(time.Now().Add(10 * time.Second))
				if err != nil || closing != nil {
					return fmt.Errorf("writeRun: %v, %v", closing, err)
				}
				if !ok {
					break
				}
			}
			if q := c.queued.Load(); q != 0 {
				return fmt.Errorf("%d bytes still counted as queued", q)
			}
			return nil
		}()
		_, _, _ = ws.ReadMessage() // until the client closes
	}))
	defer hs.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var frames [][]byte
	for range 3 {
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, data)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	blobs, err := protocol.DecodeBlobs(frames[0], nil)
	if err != nil || len(blobs) != 3 || string(blobs[2].Blob) != "three" || blobs[0].Journal != j || blobs[1].Seq != 2 {
		t.Fatalf("merged blobs frame: %+v, %v", blobs, err)
	}
	if string(frames[1]) != `{"type":"caught_up"}` {
		t.Fatalf("second frame %q", frames[1])
	}
	acks, err := protocol.DecodeAcks(frames[2], nil)
	if err != nil || len(acks) != 2 || acks[0].ID != 10 || acks[1].ID != 11 {
		t.Fatalf("merged acks frame: %+v, %v", acks, err)
	}
}

// countingConn is a net.Conn that records each Write.
type countingConn struct {
	net.Conn // nil: only Write and SetWriteDeadline are used
	writes   [][]byte
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(b))
	return len(b), nil
}
func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

// TestProgressConnGathers: while held, writes are gathered and go out in
// one write at flush; a frame too large for the buffer goes out right
// behind what was gathered; control frames are always taken; unheld
// writes go straight through. Every byte is counted as sent.
func TestProgressConnGathers(t *testing.T) {
	cc := &countingConn{}
	var sent atomic.Int64
	p := &progressConn{Conn: cc, sent: &sent} // not chunked: writes are not cut up
	write := func(s string) {
		if _, err := p.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write("direct")
	p.hold()
	write("one")
	write("two")
	if len(cc.writes) != 1 {
		t.Fatalf("%d writes while held", len(cc.writes))
	}
	if err := p.flush(time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(cc.writes) != 2 || string(cc.writes[1]) != "onetwo" {
		t.Fatalf("writes %q", cc.writes)
	}
	// Nothing gathered: flush writes nothing.
	if err := p.flush(time.Now()); err != nil || len(cc.writes) != 2 {
		t.Fatalf("empty flush: %d writes, %v", len(cc.writes), err)
	}
	p.hold()
	write("small")
	big := strings.Repeat("B", holdSize)
	write(big) // does not fit: out with what was gathered
	write(strings.Repeat("c", holdSize-10))
	write("pong frame, always taken") // a control frame past the buffer
	if err := p.flush(time.Now()); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, w := range cc.writes[2:] {
		all.Write(w)
	}
	if want := "small" + big + strings.Repeat("c", holdSize-10) + "pong frame, always taken"; all.String() != want {
		t.Fatalf("bytes written differ from bytes given (%d, want %d)", all.Len(), len(want))
	}
	if n := sent.Load(); n != int64(len("direct")+len("onetwo")+all.Len()) {
		t.Fatalf("sent %d", n)
	}
}
