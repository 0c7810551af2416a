package server_test

import (
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// TestPingsKeepIdleConnectionsOpen runs the relay with a short ping
// interval over real loopback sockets. A subscribed client that reads (so
// its WebSocket library answers pings) and sends nothing stays connected
// for several intervals, and then still gets answers and pushes; a client
// that stops reading, and so answers no pings, is disconnected after about
// two intervals. The exact deadlines are tested in virtual time
// (synctest_test.go); this test keeps wide margins, so that a busy
// machine's scheduling delays do not look like a silent client.
func TestPingsKeepIdleConnectionsOpen(t *testing.T) {
	t.Parallel()
	const interval = 250 * time.Millisecond
	srv := servertest.NewServerWithConfig(t, server.Config{PingInterval: interval, Logger: slog.New(slog.DiscardHandler)})
	c := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	j := servertest.NewJournalID()
	servertest.MustOK(t, c.Create(j))
	servertest.MustOK(t, c.Subscribe(j, 0))
	c.NextCaughtUp()

	frames := make(chan []byte, 8)
	readErr := make(chan error, 1)
	go func() {
		for {
			_ = c.WS.SetReadDeadline(time.Now().Add(servertest.ReadTimeout))
			_, data, err := c.WS.ReadMessage() // answers pings meanwhile
			if err != nil {
				readErr <- err
				return
			}
			frames <- data
		}
	}()
	time.Sleep(4 * interval)

	ch := servertest.Chain{Journal: j, Author: c.Device}
	put, _ := protocol.Marshal(&protocol.Put{Type: protocol.TypePut, ID: 99, Journal: j, Blob: ch.Next("after the pings")})
	_ = c.WS.SetWriteDeadline(time.Now().Add(servertest.ReadTimeout))
	if err := c.WS.WriteMessage(websocket.TextMessage, put); err != nil {
		t.Fatalf("the relay closed an idle connection that answered its pings: %v", err)
	}
	var gotOK, gotBlob bool
	for !gotOK || !gotBlob {
		select {
		case data := <-frames:
			env, err := protocol.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			gotOK = gotOK || env.Type == protocol.TypeOK && env.ID == 99
			gotBlob = gotBlob || env.Type == protocol.TypeBlob
		case err := <-readErr:
			t.Fatalf("the relay closed an idle connection that answered its pings: %v", err)
		}
	}

	// A client that reads nothing answers no pings.
	mute := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	time.Sleep(4 * interval)
	for {
		_, err := mute.Read()
		if err == nil {
			continue // pings queued before the relay gave up
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the relay kept a connection that answered no pings")
		}
		break
	}
}
