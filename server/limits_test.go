package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// Before authenticating, a peer may send one small message: a large frame
// ends the connection instead of being buffered.
func TestLargeFrameBeforeAuth(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServer(t)
	c := servertest.DialRaw(t, srv.WebSocketURL())
	big := `{"type":"auth","version":1,"device":"` + strings.Repeat("A", 64<<10) + `"}`
	sendOversize(t, c, []byte(big))
	// And a normal device still gets in.
	servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
}

// A subscriber that stops reading holds at most SendQueueBytes of relay
// memory: its subscription waits for room, and once nothing moves for
// SendTimeout the relay closes it, even though the queue's message count
// never fills. Writers and other readers carry on.
func TestStalledSubscriberIsBoundedByBytes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes tens of megabytes")
	}
	forVersions(t, func(t *testing.T, v int) {
		dropped := make(chan struct{})
		var once sync.Once
		logger := slog.New(notifyHandler{msg: "closing slow connection", fn: func() { once.Do(func() { close(dropped) }) }})
		srv := servertest.NewServerWithConfig(t, server.Config{SendQueueBytes: 2 << 20, SendTimeout: 200 * time.Millisecond, Logger: logger})
		writer := servertest.DialVersion(t, srv.WebSocketURL(), servertest.NewKey(t), v)
		j := servertest.NewJournalID()
		servertest.MustOK(t, writer.Create(j))
		ch := servertest.Chain{Journal: j, Author: writer.Device}
		const n = 24 // 24 messages: far under SendQueue's 256, far over 2 MiB
		pad := strings.Repeat("x", protocol.MaxBlobSize-protocol.HeaderSize-200)
		for i := range n {
			servertest.MustOK(t, writer.Put(j, ch.Next(fmt.Sprint(i, pad))))
		}
		stalled := servertest.DialVersion(t, srv.WebSocketURL(), writer.Key, v)
		servertest.MustOK(t, stalled.Subscribe(j, 0))
		// Others are served meanwhile.
		live := servertest.DialVersion(t, srv.WebSocketURL(), writer.Key, v)
		servertest.MustOK(t, live.Subscribe(j, n-1))
		if b := live.NextBlob(); b.Seq != n {
			t.Fatalf("live reader got seq %d", b.Seq)
		}
		// Wait for the relay to give up on the stalled reader (it logs when it
		// does), then read what reached the socket before that.
		select {
		case <-dropped:
		case <-time.After(servertest.ReadTimeout):
			t.Fatal("the relay never closed the stalled reader")
		}
		got := 0
		for {
			binary, data, err := stalled.ReadMessage()
			if err != nil {
				break
			}
			got += blobsIn(t, binary, data)
		}
		if got >= n {
			t.Fatalf("the stalled reader received all %d blobs; it should have been dropped", got)
		}
	})
}

// notifyHandler is a slog.Handler that calls fn for records with message msg.
type notifyHandler struct {
	msg string
	fn  func()
}

func (h notifyHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h notifyHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.fn()
	}
	return nil
}
func (h notifyHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h notifyHandler) WithGroup(string) slog.Handler      { return h }
