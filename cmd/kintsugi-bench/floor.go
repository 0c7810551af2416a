package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The raw fan-out floor: what pushing a blob to n subscribers costs with
// nothing but gorilla/websocket on loopback, no store, no protocol, no
// authentication. A relay's push latency is read against it, in the same
// run, since the machine's speed and load change from run to run (the
// floor moves with them; the ratio much less).
//
// The floor server runs as a child process like the relay (floorEnv set),
// so that its goroutines compete with the load generator the way the
// relay's do. Each connection says "sub" or "pub" first; the server
// answers "ok". Every binary message from the publisher is written to
// every subscriber in turn from the publisher's reading goroutine, one
// WriteMessage each: the simplest fan-out a Go WebSocket server has.
const floorEnv = "KINTSUGI_BENCH_FLOOR"

// runFloorChild serves the floor on a free port of 127.0.0.1 until its
// standard input closes. It prints "listening <addr>" once it serves.
func runFloorChild() int {
	up := websocket.Upgrader{ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	var mu sync.Mutex
	var subs []*websocket.Conn
	handler := func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_, hello, err := c.ReadMessage()
		if err != nil {
			return
		}
		switch string(hello) {
		case "sub":
			// Answer and join under one lock: a gorilla connection
			// takes one writer at a time, so the publisher must not
			// see it before "ok" is written, and a publisher that
			// dials once every "ok" has arrived must see it (were it
			// added after the lock is let go, the first message could
			// miss it and leave its subscriber waiting for good).
			mu.Lock()
			if c.WriteMessage(websocket.TextMessage, []byte("ok")) != nil {
				mu.Unlock()
				return
			}
			subs = append(subs, c)
			mu.Unlock()
			// Hold the connection until the subscriber goes.
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		case "pub":
			if c.WriteMessage(websocket.TextMessage, []byte("ok")) != nil {
				return
			}
			for {
				_, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				mu.Lock()
				to := subs
				mu.Unlock()
				for _, s := range to {
					_ = s.WriteMessage(websocket.BinaryMessage, msg)
				}
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsugi-bench: floor: %v\n", err)
		return 1
	}
	hs := &http.Server{Handler: http.HandlerFunc(handler), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	fmt.Printf("listening %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = hs.Close()
	return 0
}

// floorResult is the raw fan-out floor at one subscriber count.
type floorResult struct {
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
}

// runFloor measures the floor: subs subscribers, puts messages of size
// bytes sent one at a time (the next when every subscriber has the last),
// a sample per message per subscriber, as runPush does with the relay.
func runFloor(o *options, subs, puts, size int) (*floorResult, error) {
	p, err := startChild("", []string{floorEnv + "=1"})
	if err != nil {
		return nil, err
	}
	defer p.stop()
	url := "ws://" + p.addr + "/"
	dial := func(hello string) (*websocket.Conn, error) {
		d := websocket.Dialer{ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10, HandshakeTimeout: ioTimeout}
		c, _, err := d.Dial(url, nil)
		if err != nil {
			return nil, err
		}
		_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
		if err := c.WriteMessage(websocket.TextMessage, []byte(hello)); err != nil {
			c.Close()
			return nil, err
		}
		if _, ok, err := c.ReadMessage(); err != nil || string(ok) != "ok" {
			c.Close()
			return nil, errors.Join(errors.New("the floor server did not answer"), err)
		}
		return c, nil
	}
	conns := make([]*websocket.Conn, subs)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := parallel(subs, setupParallel, func(i int) (err error) {
		conns[i], err = dial("sub")
		return err
	}); err != nil {
		return nil, err
	}
	pub, err := dial("pub")
	if err != nil {
		return nil, err
	}
	defer pub.Close()

	base := time.Now()
	sent := make([]atomic.Int64, puts+1) // by seq: ns since base when the message was sent
	lat := make([][]time.Duration, subs)
	errs := make([]error, subs)
	got := newSeqCount(puts) // one per subscriber per message
	var readers sync.WaitGroup
	for i, c := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for want := 1; want <= puts; want++ {
				_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
				_, msg, err := c.ReadMessage()
				if err != nil || len(msg) < 8 || int(binary.BigEndian.Uint64(msg)) != want {
					errs[i] = errors.Join(fmt.Errorf("floor subscriber %d: message %d did not arrive", i, want), err)
					got.add(want, puts)
					return
				}
				lat[i] = append(lat[i], time.Since(base)-time.Duration(sent[want].Load()))
				if o.breakFirst && i == 0 {
					c.Close()
				}
				got.add(want, want)
			}
		}()
	}
	msg := make([]byte, max(size, 8))
	for seq := 1; seq <= puts; seq++ {
		binary.BigEndian.PutUint64(msg, uint64(seq))
		sent[seq].Store(int64(time.Since(base)))
		if err := pub.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			return nil, err
		}
		got.wait(seq, subs)
	}
	readers.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	pc := percentiles(all)
	return &floorResult{P50ms: pc.p50, P99ms: pc.p99}, nil
}
