package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// Protocol version 2 (docs/protocol.md §20): negotiation, binary frames
// and what version 1 clients keep. The tests of what connections do on
// either version run through forVersions (server_test.go).

// TestVersionNegotiation: a relay picks version 2 for a client that
// offers it and version 1 for one that offers only that (an older
// client, which then works as before); a relay limited to version 1
// gives every client version 1, and says so in its information document.
func TestVersionNegotiation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		relay, client int
		want          int
	}{
		{"v2 client, v2 relay", 0, protocol.Version, protocol.Version},
		{"v1 client, v2 relay", 0, protocol.Version1, protocol.Version1},
		{"v2 client, relay limited to v1", protocol.Version1, protocol.Version, protocol.Version1},
		{"v1 client, relay limited to v1", protocol.Version1, protocol.Version1, protocol.Version1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := servertest.NewServerWithConfig(t, server.Config{MaxProtocolVersion: tc.relay})
			c := servertest.DialVersion(t, srv.WebSocketURL(), servertest.NewKey(t), tc.client)
			if c.Version != tc.want || c.Hello.Version != tc.want || c.WS.Subprotocol() != protocol.SubprotocolOf(tc.want) {
				t.Fatalf("version %d, hello version %d, subprotocol %q; want %d", c.Version, c.Hello.Version, c.WS.Subprotocol(), tc.want)
			}
			// The connection works end to end in the version it speaks.
			j := servertest.NewJournalID()
			servertest.MustOK(t, c.Create(j))
			ch := servertest.Chain{Journal: j, Author: c.Device}
			blob := ch.Next("hello")
			if ok := servertest.MustOK(t, c.Put(j, blob)); ok.Seq != 1 {
				t.Fatalf("put: %+v", ok)
			}
			servertest.MustOK(t, c.Subscribe(j, 0))
			if b := c.NextBlob(); b.Seq != 1 || !bytes.Equal(b.Blob, blob) {
				t.Fatalf("blob %+v", b)
			}
			c.NextCaughtUp()
			if got := c.BlobFrames > 0; got != (tc.want == protocol.Version) {
				t.Fatalf("%d binary blobs frames on version %d", c.BlobFrames, tc.want)
			}
		})
	}
	t.Run("info", func(t *testing.T) {
		t.Parallel()
		for _, relay := range []int{0, protocol.Version1} {
			srv := servertest.NewServerWithConfig(t, server.Config{MaxProtocolVersion: relay})
			info := readInfo(t, srv)
			want := []string{protocol.Subprotocol, protocol.SubprotocolV1}
			wantVersion := protocol.Version
			if relay == protocol.Version1 {
				want, wantVersion = want[1:], protocol.Version1
			}
			if info.ProtocolVersion != wantVersion || info.Subprotocol != want[0] || !slices.Equal(info.Subprotocols, want) {
				t.Errorf("relay limited to %d: info says %d, %q, %q", relay, info.ProtocolVersion, info.Subprotocol, info.Subprotocols)
			}
		}
	})
	t.Run("no version in common", func(t *testing.T) {
		srv := servertest.NewServerWithConfig(t, server.Config{MaxProtocolVersion: protocol.Version1})
		resp, body := servertest.Refused(t, srv.WebSocketURL(), nil, protocol.Subprotocol)
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains([]byte(body), []byte(protocol.SubprotocolV1)) {
			t.Fatalf("status %d, body %q", resp.StatusCode, body)
		}
	})
	t.Run("no such version", func(t *testing.T) {
		st, err := server.OpenBadger(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := server.New(server.Config{Store: st, MaxProtocolVersion: protocol.Version + 1}); err == nil {
			t.Fatal("a relay started for a protocol version it does not speak")
		}
	})
}

func readInfo(t *testing.T, srv *servertest.Server) protocol.RelayInfo {
	t.Helper()
	resp, err := http.Get(srv.URL() + protocol.InfoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var info protocol.RelayInfo
	if err := protocol.DecodeAs(body, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// TestMalformedBinaryFrames: on a version 2 connection a binary frame
// that is not a put, or a put frame that cannot be tied to a request,
// closes the connection (1003, 1002); a put whose blob is refused is
// answered with a JSON error for its id and the connection goes on.
func TestMalformedBinaryFrames(t *testing.T) {
	t.Parallel()
	srv, c, ch := setupVersion(t, protocol.Version)
	good := ch.Next("good")
	put := protocol.AppendPut(nil, 7, ch.Journal, good)
	for name, tc := range map[string]struct {
		frame []byte
		close int
	}{
		"empty":                 {[]byte{}, websocket.CloseUnsupportedData},
		"unknown type":          {[]byte{0x09, 1, 2, 3}, websocket.CloseUnsupportedData},
		"a relay's frame":       {protocol.AppendAcks(nil, protocol.Ack{ID: 1}), websocket.CloseUnsupportedData},
		"JSON in binary":        {[]byte(`{"type":"create","id":1}`), websocket.CloseUnsupportedData},
		"put cut short":         {put[:protocol.PutFrameHeader-1], websocket.CloseProtocolError},
		"put with request id 0": {protocol.AppendPut(nil, 0, ch.Journal, good), websocket.CloseProtocolError},
	} {
		t.Run(name, func(t *testing.T) {
			d := servertest.DialVersion(t, srv.WebSocketURL(), c.Key, protocol.Version)
			d.SendBinary(tc.frame)
			e, err := readClosingError(t, d)
			if e.Code != protocol.CodeMalformed || e.ID != 0 || closeCode(err) != tc.close {
				t.Fatalf("got %+v, %v; want malformed and close %d", e, err, tc.close)
			}
		})
	}
	t.Run("before auth", func(t *testing.T) {
		d := servertest.DialRawVersion(t, srv.WebSocketURL(), protocol.Version)
		d.SendBinary(put)
		e, err := readClosingError(t, d)
		if e.Code != protocol.CodeMalformed || closeCode(err) != websocket.CloseUnsupportedData {
			t.Fatalf("got %+v, %v", e, err)
		}
	})
	t.Run("on version 1", func(t *testing.T) {
		d := servertest.DialVersion(t, srv.WebSocketURL(), c.Key, protocol.Version1)
		d.SendBinary(put)
		e, err := readClosingError(t, d)
		if e.Code != protocol.CodeMalformed || closeCode(err) != websocket.CloseUnsupportedData {
			t.Fatalf("got %+v, %v", e, err)
		}
	})
	// Refusals of the put itself: a JSON error with its id.
	refuse := func(id uint64, frame []byte, code protocol.Code) {
		t.Helper()
		c.SendBinary(frame)
		if e := wantError(t, c.Reply(id), code); e.ID != id {
			t.Fatalf("error for %d, want %d", e.ID, id)
		}
	}
	refuse(101, protocol.AppendPut(nil, 101, protocol.JournalID{}, good), protocol.CodeInvalid)
	refuse(102, protocol.AppendPut(nil, 102, ch.Journal, nil), protocol.CodeInvalid)
	refuse(103, protocol.AppendPut(nil, 103, ch.Journal, append(bytes.Clone(good), make([]byte, protocol.MaxBlobSize)...)), protocol.CodeTooLarge)
	refuse(104, protocol.AppendPut(nil, 104, servertest.NewJournalID(), good), protocol.CodeInvalid)
	// A JSON put is still taken on version 2, and answered in JSON.
	id := c.NextID()
	data, _ := protocol.Marshal(&protocol.Put{Type: protocol.TypePut, ID: id, Journal: ch.Journal, Blob: good})
	c.SendFrame(data)
	binary, reply, err := c.ReadMessage()
	if err != nil || binary {
		t.Fatalf("reply to a JSON put: binary %v, %v", binary, err)
	}
	var ok protocol.OK
	if err := protocol.DecodeAs(reply, &ok); err != nil || ok.Type != protocol.TypeOK || ok.ID != id || ok.Seq != 1 {
		t.Fatalf("reply to a JSON put: %s", reply)
	}
	// And the binary put of the same blob is its duplicate.
	if ok := servertest.MustOK(t, c.Put(ch.Journal, good)); ok.Seq != 1 || !ok.Duplicate {
		t.Fatalf("binary put: %+v", ok)
	}
}

// TestHistoryComesBatched: on version 2 a subscriber's history arrives
// in a few frames of many blobs each, in order, then caught_up.
func TestHistoryComesBatched(t *testing.T) {
	t.Parallel()
	srv, c, ch := setupVersion(t, protocol.Version)
	const n = 600
	var blobs [][]byte
	for len(blobs) < n {
		// Pipelined, 50 at a time.
		var ids []uint64
		for range 50 {
			b := ch.Next(fmt.Sprint("history ", len(blobs)))
			blobs = append(blobs, b)
			id := c.NextID()
			ids = append(ids, id)
			c.Send(&protocol.Put{Type: protocol.TypePut, ID: id, Journal: ch.Journal, Blob: b})
		}
		for _, id := range ids {
			servertest.MustOK(t, c.Reply(id))
		}
	}
	sub := servertest.DialVersion(t, srv.WebSocketURL(), c.Key, protocol.Version)
	servertest.MustOK(t, sub.Subscribe(ch.Journal, 0))
	for i, want := range blobs {
		if b := sub.NextBlob(); b.Seq != uint64(i+1) || !bytes.Equal(b.Blob, want) || b.Purged {
			t.Fatalf("blob %d: %+v", i, b)
		}
	}
	if cu := sub.NextCaughtUp(); cu.Seq != n {
		t.Fatalf("caught up at %d", cu.Seq)
	}
	// 600 blobs of about 150 bytes: a frame for each store read (256
	// blobs at most), not one per blob.
	if sub.BlobFrames > 10 {
		t.Fatalf("%d blobs came in %d frames", n, sub.BlobFrames)
	}
}

// TestPurgedBlobsAreServed: a blob purged by its author is served at its
// seq as its purged record, on either version, and only its author may
// purge it.
func TestPurgedBlobsAreServed(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, v int) {
		srv, c, ch := setupVersion(t, v)
		var blobs [][]byte
		for i := range 3 {
			b := ch.Next(fmt.Sprint("entry ", i))
			blobs = append(blobs, b)
			servertest.MustOK(t, c.Put(ch.Journal, b))
		}
		purge := func(c *servertest.Client, blob []byte) servertest.Reply {
			id, chain := protocol.IDOf(blob), protocol.ChainID(blob)
			return c.Do(func(n uint64) any {
				return &protocol.Purge{Type: protocol.TypePurge, ID: n, Journal: ch.Journal, BlobID: id[:], ChainID: chain[:]}
			})
		}
		partner := servertest.DialVersion(t, srv.WebSocketURL(), servertest.NewKey(t), v)
		invite(t, c, ch.Journal, partner)
		wantError(t, purge(partner, blobs[1]), protocol.CodeInvalid)
		if ok := servertest.MustOK(t, purge(c, blobs[1])); ok.Seq != 2 {
			t.Fatalf("purge answered seq %d", ok.Seq)
		}
		servertest.MustOK(t, partner.Subscribe(ch.Journal, 0))
		for i, want := range blobs {
			b := partner.NextBlob()
			if b.Seq != uint64(i+1) || b.Purged != (i == 1) {
				t.Fatalf("blob %d: seq %d purged %v", i, b.Seq, b.Purged)
			}
			if i != 1 {
				if !bytes.Equal(b.Blob, want) {
					t.Fatalf("blob %d changed", i)
				}
				continue
			}
			h, chain, err := protocol.ParsePurged(b.Blob)
			if err != nil || h.Seq != 2 || chain != protocol.ChainID(want) || !bytes.Equal(b.Blob[:protocol.HeaderSize], want[:protocol.HeaderSize]) {
				t.Fatalf("purged record %x: %v", b.Blob, err)
			}
		}
		partner.NextCaughtUp()
	})
}

// TestLivePushesOnVersion2: blobs put while a version 2 subscriber is
// caught up reach it, in order, whoever puts them and on whichever
// version.
func TestLivePushesOnVersion2(t *testing.T) {
	t.Parallel()
	srv, c, ch := setupVersion(t, protocol.Version)
	servertest.MustOK(t, c.Subscribe(ch.Journal, 0))
	c.NextCaughtUp()
	old := servertest.DialVersion(t, srv.WebSocketURL(), c.Key, protocol.Version1)
	var want [][]byte
	for i := range 40 {
		b := ch.Next(fmt.Sprint("live ", i))
		want = append(want, b)
		w := c
		if i%2 == 1 {
			w = old
		}
		id := w.NextID()
		w.Send(&protocol.Put{Type: protocol.TypePut, ID: id, Journal: ch.Journal, Blob: b})
		servertest.MustOK(t, w.Reply(id))
	}
	for i, b := range want {
		got := c.NextBlob()
		if got.Seq != uint64(i+1) || !bytes.Equal(got.Blob, b) {
			t.Fatalf("push %d: seq %d", i, got.Seq)
		}
	}
}
