package wire_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/internal/wire"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// Both key holders answer the relay's challenge.
var (
	_ wire.Signer = (*crypto.Keyring)(nil)
	_ wire.Signer = crypto.AuthKey(nil)
)

func dial(t *testing.T, wsURL string) *wire.Conn {
	t.Helper()
	return dialVersion(t, wsURL, 0)
}

func dialVersion(t *testing.T, wsURL string, version int) *wire.Conn {
	t.Helper()
	d := wire.Dialer{MaxVersion: version}
	c, _, err := d.Dial(context.Background(), wsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.WS.Close() })
	return c
}

func newKey(t *testing.T) crypto.AuthKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return crypto.AuthKey(k)
}

func TestHandshake(t *testing.T) {
	srv := servertest.NewServer(t)
	dev, err := crypto.NewDevice(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, srv.WebSocketURL())
	if err := c.Handshake(crypto.NewKeyring(dev), srv.Relay().RelayID()); err != nil {
		t.Fatal(err)
	}
	if c.Hello.RelayID != srv.Relay().RelayID() {
		t.Fatalf("hello relay id %q, want %q", c.Hello.RelayID, srv.Relay().RelayID())
	}
	// The relay serves the device it welcomed.
	id := c.NextID()
	if err := c.Send(&protocol.Create{Type: protocol.TypeCreate, ID: id, Journal: servertest.NewJournalID()}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Reply(id, servertest.ReadTimeout, nil)
	if err != nil || r.OK == nil || r.OK.ID != id {
		t.Fatalf("create: %+v, %v", r, err)
	}
}

// TestHandshakeRelayChanged checks that a relay with an unexpected id is
// refused before anything is sent: the same connection can still
// authenticate afterwards, which it could not had an Auth gone out.
func TestHandshakeRelayChanged(t *testing.T) {
	srv := servertest.NewServer(t)
	c := dial(t, srv.WebSocketURL())
	key := newKey(t)
	if err := c.Handshake(key, "another-relay"); !errors.Is(err, wire.ErrRelayChanged) {
		t.Fatalf("err = %v, want ErrRelayChanged", err)
	}
	if err := c.Authenticate(key, ""); err != nil {
		t.Fatalf("authenticate after refusing: %v", err)
	}
}

// TestVersions: the dialer offers version 2 and version 1, and speaks
// what the relay picks: version 2 from a relay that speaks it, version 1
// from one limited to version 1, and version 1 when asked to.
func TestVersions(t *testing.T) {
	for _, tc := range []struct {
		name          string
		relay, client int
		want          int
	}{
		{"both speak version 2", 0, 0, protocol.Version},
		{"relay speaks version 1 only", protocol.Version1, 0, protocol.Version1},
		{"client asks for version 1", 0, protocol.Version1, protocol.Version1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := servertest.NewServerWithConfig(t, server.Config{MaxProtocolVersion: tc.relay})
			c := dialVersion(t, srv.WebSocketURL(), tc.client)
			if c.Version != tc.want || c.WS.Subprotocol() != protocol.SubprotocolOf(tc.want) {
				t.Fatalf("version %d, subprotocol %q; want %d", c.Version, c.WS.Subprotocol(), tc.want)
			}
			if err := c.Handshake(newKey(t), ""); err != nil {
				t.Fatal(err)
			}
			if c.Hello.Version != tc.want {
				t.Fatalf("hello version %d, want %d", c.Hello.Version, tc.want)
			}
		})
	}
}

// TestReply checks that Reply hands the pushes it reads to push, in
// order and without losing any, and returns a relay's refusal as Err, on
// either version.
func TestReply(t *testing.T) {
	for _, v := range []int{protocol.Version1, protocol.Version} {
		t.Run(fmt.Sprint("version ", v), func(t *testing.T) { testReply(t, v) })
	}
}

func testReply(t *testing.T, version int) {
	srv := servertest.NewServer(t)
	key := newKey(t)
	c := dialVersion(t, srv.WebSocketURL(), version)
	if err := c.Handshake(key, ""); err != nil {
		t.Fatal(err)
	}
	j := servertest.NewJournalID()
	var dev [32]byte
	copy(dev[:], key.SignPublic())
	ch := servertest.Chain{Journal: j, Author: dev}
	var pushed []string
	push := func(binary bool, frame []byte) {
		if binary {
			blobs, err := protocol.DecodeBlobs(frame, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range blobs {
				pushed = append(pushed, fmt.Sprintf("blob %d", b.Seq))
			}
			return
		}
		var in struct {
			Type string `json:"type"`
			Seq  uint64 `json:"seq"`
		}
		if err := protocol.DecodeAs(frame, &in); err != nil {
			t.Fatal(err)
		}
		pushed = append(pushed, fmt.Sprintf("%s %d", in.Type, in.Seq))
	}
	call := func(mk func(id uint64) any) wire.Reply {
		t.Helper()
		id := c.NextID()
		if err := c.Send(mk(id)); err != nil {
			t.Fatal(err)
		}
		r, err := c.Reply(id, servertest.ReadTimeout, push)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	servertest.MustOK(t, call(func(id uint64) any { return &protocol.Create{Type: protocol.TypeCreate, ID: id, Journal: j} }))
	servertest.MustOK(t, call(func(id uint64) any { return &protocol.Subscribe{Type: protocol.TypeSubscribe, ID: id, Journal: j} }))
	for _, body := range []string{"one", "two"} {
		id := c.NextID()
		if _, err := c.SendPut(nil, id, j, ch.Next(body)); err != nil {
			t.Fatal(err)
		}
		r, err := c.Reply(id, servertest.ReadTimeout, push)
		if err != nil {
			t.Fatal(err)
		}
		if ok := servertest.MustOK(t, r); ok.ID != id || ok.Seq == 0 || len(ok.BlobID) != 32 {
			t.Fatalf("put: %+v", ok)
		}
	}
	other := servertest.Chain{Journal: servertest.NewJournalID(), Author: dev}
	r := call(func(id uint64) any {
		return &protocol.Put{Type: protocol.TypePut, ID: id, Journal: other.Journal, Blob: other.Next("three")}
	})
	if r.Err == nil || !errors.Is(r.Err.Err(), protocol.ErrNotMember) {
		t.Fatalf("put to a journal the device is not in: %+v", r)
	}
	// Whatever Reply did not read is still on the connection.
	for len(pushed) < 3 {
		binary, frame, err := c.ReadMessage(servertest.ReadTimeout)
		if err != nil {
			t.Fatal(err)
		}
		push(binary, frame)
	}
	want := []string{"caught_up 0", "blob 1", "blob 2"}
	if fmt.Sprint(pushed) != fmt.Sprint(want) {
		t.Fatalf("pushes %q, want %q", pushed, want)
	}
}

// TestReplyBurst: acks for several pipelined puts in one frame are
// returned one call at a time, in order.
func TestReplyBurst(t *testing.T) {
	srv := servertest.NewServer(t)
	key := newKey(t)
	c := dial(t, srv.WebSocketURL())
	if err := c.Handshake(key, ""); err != nil {
		t.Fatal(err)
	}
	j := servertest.NewJournalID()
	var dev [32]byte
	copy(dev[:], key.SignPublic())
	ch := servertest.Chain{Journal: j, Author: dev}
	id := c.NextID()
	if err := c.Send(&protocol.Create{Type: protocol.TypeCreate, ID: id, Journal: j}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reply(id, servertest.ReadTimeout, nil); err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for range 20 {
		id := c.NextID()
		if _, err := c.SendPut(nil, id, j, ch.Next("x")); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for i, id := range ids {
		r, err := c.Reply(id, servertest.ReadTimeout, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ok := servertest.MustOK(t, r); ok.ID != id || ok.Seq != uint64(i+1) {
			t.Fatalf("reply %d: %+v", i, ok)
		}
	}
}

// TestReadNext: frames come back whole and in order, whether shorter or
// longer than the one before (the buffer grows, and a very large text
// frame is not kept); a binary frame is the caller's to keep, untouched
// by the reads after it.
func TestReadNext(t *testing.T) {
	sizes := []int{10, 5000, 3, 0, 100 << 10, 7, 64<<10 + 1, 2000}
	frame := func(i, n int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, n) }
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for i, n := range sizes {
			typ := websocket.TextMessage
			if i%2 == 1 {
				typ = websocket.BinaryMessage
			}
			if err := ws.WriteMessage(typ, frame(i, n)); err != nil {
				return
			}
		}
		ws.ReadMessage() // until the client closes
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c := &wire.Conn{WS: ws}
	kept := make(map[int][]byte)
	for i, n := range sizes {
		binary, got, err := c.ReadNext(servertest.ReadTimeout)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, frame(i, n)) || binary != (i%2 == 1) {
			t.Fatalf("frame %d: %d bytes read (binary %v), want %d of %q", i, len(got), binary, n, rune('a'+i))
		}
		if binary {
			kept[i] = got
		}
	}
	for i, got := range kept {
		if !bytes.Equal(got, frame(i, sizes[i])) {
			t.Errorf("binary frame %d changed after later reads", i)
		}
	}
}
