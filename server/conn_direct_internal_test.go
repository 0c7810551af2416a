//go:build linux

package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection, with small
// socket buffers so that a few frames fill them.
func tcpPair(t *testing.T) (relay, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-done
	if sc == nil {
		t.Fatal("accept failed")
	}
	relay, client = sc.(*net.TCPConn), cc.(*net.TCPConn)
	_ = relay.SetWriteBuffer(4096)
	_ = client.SetReadBuffer(4096)
	t.Cleanup(func() { relay.Close(); client.Close() })
	return relay, client
}

// TestTryWriteNeverWaits: tryWrite writes frames while the socket has
// room and, once it has none, takes part of a frame or nothing, without
// waiting; the part not written goes out first at the next flush, and
// while it waits tryWrite takes nothing more. The peer reads exactly the
// frames taken, in order, every byte counted as sent.
func TestTryWriteNeverWaits(t *testing.T) {
	relay, client := tcpPair(t)
	var sent atomic.Int64
	p := &progressConn{}
	p.init(relay, &sent)
	if p.raw == nil {
		t.Fatal("no descriptor for a TCP connection")
	}
	ctx := context.Background()
	var want bytes.Buffer
	partial := false
	for i := 0; i < 10000 && !partial; i++ {
		data := bytes.Repeat([]byte{byte('a' + i%26)}, 3000+i%7)
		hdr := appendFrameHeader(nil, true, len(data))
		taken, part, err := p.tryWrite(ctx, hdr, data, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if !taken {
			if part {
				t.Fatal("partial without taking the frame")
			}
			continue // the socket is full: nothing written
		}
		want.Write(hdr)
		want.Write(data)
		partial = part
	}
	if !partial {
		t.Skip("the socket never took part of a frame")
	}
	if taken, _, _ := p.tryWrite(ctx, []byte{0x82, 1}, []byte{'z'}, time.Now().Add(time.Minute)); taken {
		t.Fatal("tryWrite took a frame while another's tail waited")
	}
	got := make(chan []byte)
	go func() {
		b := make([]byte, want.Len())
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.ReadFull(client, b)
		got <- b[:n]
	}()
	if err := p.flush(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("the peer read %d bytes that differ from the %d taken", len(b), want.Len())
	}
	if n := sent.Load(); n != int64(want.Len()) {
		t.Fatalf("sent %d, want %d", n, want.Len())
	}
}

// TestTryWriteRefusesAnEndedConnection: once the connection's context is
// canceled (a close frame may have been written), nothing more is.
func TestTryWriteRefusesAnEndedConnection(t *testing.T) {
	relay, _ := tcpPair(t)
	var sent atomic.Int64
	p := &progressConn{}
	p.init(relay, &sent)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if taken, _, err := p.tryWrite(ctx, []byte{0x82, 1}, []byte{'z'}, time.Now().Add(time.Minute)); taken || err != nil || sent.Load() != 0 {
		t.Fatalf("taken %v, err %v, sent %d", taken, err, sent.Load())
	}
}

// TestFrameHeader: the header of each length encoding, as RFC 6455
// §5.2 lays it out for an unmasked final frame. (That gorilla reads
// them is shown by every push test: pushes to idle subscribers are
// written with it.)
func TestFrameHeader(t *testing.T) {
	for _, tc := range []struct {
		binary bool
		n      int
		want   []byte
	}{
		{false, 0, []byte{0x81, 0}},
		{true, 125, []byte{0x82, 125}},
		{true, 126, []byte{0x82, 126, 0, 126}},
		{false, 65535, []byte{0x81, 126, 0xff, 0xff}},
		{true, 65536, []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		if got := appendFrameHeader(nil, tc.binary, tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("binary %v, %d bytes: header % x, want % x", tc.binary, tc.n, got, tc.want)
		}
	}
}

// BenchmarkPeek measures the MSG_PEEK system call the reader makes before
// a message when its read buffer is empty (waitSocketReadable), on a
// socket with data waiting: its cost per message on a busy connection,
// recorded in docs/performance.md.
func BenchmarkPeek(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Write([]byte("x"))
			defer c.Close()
			time.Sleep(time.Minute)
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	if !waitSocketReadable(nc) { // the byte has arrived
		b.Fatal("cannot wait on a TCP connection")
	}
	for b.Loop() {
		waitSocketReadable(nc)
	}
}
