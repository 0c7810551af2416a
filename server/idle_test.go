package server_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// waitIdle waits until srv runs no writer goroutine and no subscription
// pump: every connection has written everything and every subscription
// is idle.
func waitIdle(t *testing.T, srv *servertest.Server) {
	t.Helper()
	for deadline := time.Now().Add(servertest.ReadTimeout); server.WritersRunning(srv.Relay()) != 0 || server.PumpsRunning(srv.Relay()) != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d writer goroutines and %d pumps still run for idle connections", server.WritersRunning(srv.Relay()), server.PumpsRunning(srv.Relay()))
		}
		time.Sleep(time.Millisecond)
	}
}

// A push to caught-up subscribers is written by the goroutine that
// stored the blob, and a subscriber that reads nothing holds up neither
// that goroutine nor anyone else: every put is acknowledged and the
// subscribers that read get every blob, in order, while it fills its
// socket's buffers and is dropped.
func TestSlowSubscriberDoesNotHoldUpFanOut(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes megabytes")
	}
	forVersions(t, func(t *testing.T, v int) {
		srv := servertest.NewServerWithConfig(t, server.Config{SendQueue: 4, SendTimeout: 100 * time.Millisecond})
		writer := servertest.DialVersion(t, srv.WebSocketURL(), servertest.NewKey(t), v)
		j := servertest.NewJournalID()
		servertest.MustOK(t, writer.Create(j))
		slow := servertest.DialSmallBuffer(t, srv.WebSocketURL(), writer.Key, v)
		servertest.MustOK(t, slow.Subscribe(j, 0))
		slow.NextCaughtUp() // and then reads nothing
		live := make([]*servertest.Client, 3)
		for i := range live {
			live[i] = servertest.DialVersion(t, srv.WebSocketURL(), writer.Key, v)
			servertest.MustOK(t, live[i].Subscribe(j, 0))
			live[i].NextCaughtUp()
		}
		// Blobs small enough to be written directly: 12.5 MiB of them,
		// three times what the slow subscriber's socket buffers may hold
		// (its fixed 128 KiB, and the relay's send buffer, which TCP
		// grows to 4 MiB at most here; it took 73 and 98 blobs).
		ch := servertest.Chain{Journal: j, Author: writer.Device}
		const n = 320
		pad := strings.Repeat("x", 40<<10)
		waitIdle(t, srv) // the subscriptions' first pumps have ended
		before := server.DirectPushes(srv.Relay())
		for i := range n {
			servertest.MustOK(t, writer.Put(j, ch.Next(fmt.Sprint(i, pad))))
			for _, c := range live {
				if b := c.NextBlob(); b.Seq != uint64(i+1) {
					t.Fatalf("a live subscriber got seq %d, want %d", b.Seq, i+1)
				}
			}
		}
		// Each live subscriber was idle when each blob came: every push
		// to it was written directly.
		if got := server.DirectPushes(srv.Relay()) - before; got < int64(n*len(live)) {
			t.Fatalf("%d pushes written directly, want at least %d", got, n*len(live))
		}
		got := 0
		for {
			binary, data, err := slow.ReadMessage()
			if err != nil {
				break
			}
			got += blobsIn(t, binary, data)
		}
		if got >= n {
			t.Fatalf("the subscriber that read nothing received all %d blobs; it should have been dropped", got)
		}
	})
}

// An idle subscribed connection has no writer goroutine, and a push to it
// is written without starting one; neither is a put's acknowledgement to
// an idle connection: a put and its push start no writer at all.
func TestIdleSubscriberHasNoWriter(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, v int) {
		srv := servertest.NewServer(t) // pings every 30 s: none during the test
		writer := servertest.DialVersion(t, srv.WebSocketURL(), servertest.NewKey(t), v)
		j := servertest.NewJournalID()
		servertest.MustOK(t, writer.Create(j))
		sub := servertest.DialVersion(t, srv.WebSocketURL(), writer.Key, v)
		servertest.MustOK(t, sub.Subscribe(j, 0))
		sub.NextCaughtUp()
		ch := servertest.Chain{Journal: j, Author: writer.Device}
		for i := range 3 {
			// Both connections have written everything: their writers end.
			waitIdle(t, srv)
			started := server.WritersStarted(srv.Relay())
			servertest.MustOK(t, writer.Put(j, ch.Next(fmt.Sprint("entry ", i))))
			if b := sub.NextBlob(); b.Seq != uint64(i+1) {
				t.Fatalf("pushed seq %d, want %d", b.Seq, i+1)
			}
			if got := server.WritersStarted(srv.Relay()) - started; got != 0 {
				t.Fatalf("a put and its push started %d writers, want none", got)
			}
		}
	})
}

// An idle connection holds no read buffer: it is lent while a message is
// read and given back while the connection waits for the next one.
func TestIdleConnectionHoldsNoReadBuffer(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServer(t)
	writer := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	j := servertest.NewJournalID()
	servertest.MustOK(t, writer.Create(j))
	sub := servertest.Dial(t, srv.WebSocketURL(), writer.Key)
	servertest.MustOK(t, sub.Subscribe(j, 0))
	sub.NextCaughtUp()
	idle := func() {
		t.Helper()
		for deadline := time.Now().Add(servertest.ReadTimeout); server.ReadBuffersLent(srv.Relay()) != 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%d idle connections hold a read buffer", server.ReadBuffersLent(srv.Relay()))
			}
			time.Sleep(time.Millisecond)
		}
	}
	idle()
	ch := servertest.Chain{Journal: j, Author: writer.Device}
	for i := range 3 {
		servertest.MustOK(t, writer.Put(j, ch.Next(fmt.Sprint("entry ", i))))
		if b := sub.NextBlob(); b.Seq != uint64(i+1) {
			t.Fatalf("pushed seq %d, want %d", b.Seq, i+1)
		}
		idle()
	}
}

// A subscriber that stops reading for a while, and then reads on, gets
// every blob whole and in order: pushes written directly until its
// socket is full, one the socket took only part of, whose rest the
// writer sends, and the ones queued behind it.
func TestLaggingSubscriberGetsEveryBlobInOrder(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes megabytes")
	}
	forVersions(t, func(t *testing.T, v int) {
		srv := servertest.NewServer(t)
		writer := servertest.DialVersion(t, srv.WebSocketURL(), servertest.NewKey(t), v)
		j := servertest.NewJournalID()
		servertest.MustOK(t, writer.Create(j))
		lag := servertest.DialVersion(t, srv.WebSocketURL(), writer.Key, v)
		servertest.MustOK(t, lag.Subscribe(j, 0))
		lag.NextCaughtUp()
		waitIdle(t, srv)
		// 6 MB in all, more than loopback's socket buffers hold and less
		// than the send queue (8 MiB), so lag is not dropped.
		ch := servertest.Chain{Journal: j, Author: writer.Device}
		const n = 150
		sent := make([][]byte, n)
		before := server.DirectPushes(srv.Relay())
		for i := range n {
			sent[i] = ch.Next(fmt.Sprint(i, strings.Repeat(string(rune('a'+i%26)), 40<<10)))
			servertest.MustOK(t, writer.Put(j, sent[i]))
		}
		if server.DirectPushes(srv.Relay()) == before {
			t.Fatal("no push was written directly")
		}
		for i := range n {
			b := lag.NextBlob()
			if b.Seq != uint64(i+1) || !bytes.Equal(b.Blob, sent[i]) {
				t.Fatalf("blob %d: got seq %d, %d bytes, same as sent: %v", i+1, b.Seq, len(b.Blob), bytes.Equal(b.Blob, sent[i]))
			}
		}
	})
}
