package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// gatedStore lets the relay pipeline puts (it starts appends on the real
// store) and, while armed, holds the answer of each append it starts once
// that append is durable: the moment a relay has made a write durable but
// not yet acknowledged it.
type gatedStore struct {
	server.Store
	armed   chan struct{} // closed to arm the gate
	started chan struct{} // receives once per append started while armed
	entered chan struct{} // receives when the first held append is durable
	release chan struct{} // closed to let held appends be answered
}

func (g *gatedStore) StartAppend(ctx context.Context, j protocol.JournalID, blob []byte) *server.PendingAppend {
	p := g.Store.StartAppend(ctx, j, blob)
	select {
	case <-g.armed:
		server.HoldAppend(p, func() {
			select {
			case g.entered <- struct{}{}:
			default:
			}
			<-g.release
		})
		g.started <- struct{}{}
	default:
	}
	return p
}

// startGated starts a relay on a Badger store behind a gatedStore that
// can hold up to puts appends, and returns the gate, the real store and
// the relay's HTTP server. Both are closed when the test ends.
func startGated(t *testing.T, puts int) (*gatedStore, *server.BadgerStore, *server.Server, *httptest.Server) {
	t.Helper()
	st, err := server.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	gs := &gatedStore{Store: st, armed: make(chan struct{}), started: make(chan struct{}, puts), entered: make(chan struct{}, 1), release: make(chan struct{})}
	relay, err := server.New(server.Config{Store: gs})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(relay)
	t.Cleanup(hs.Close)
	return gs, st, relay, hs
}

// A graceful stop drains: a put the relay is storing when the stop begins
// is stored and acknowledged before the connection gets the shutting-down
// error and a going-away close; a subscriber gets the same goodbye.
func TestCloseDrainsInFlightPut(t *testing.T) {
	t.Parallel()
	gs, st, relay, hs := startGated(t, 1)
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + protocol.Path

	key := servertest.NewKey(t)
	w := servertest.Dial(t, url, key)
	sub := servertest.Dial(t, url, key)
	j := servertest.NewJournalID()
	servertest.MustOK(t, w.Create(j))
	servertest.MustOK(t, sub.Subscribe(j, 0))
	sub.NextCaughtUp()

	close(gs.armed)
	ch := servertest.Chain{Journal: j, Author: w.Device}
	blob := ch.Next("in flight at shutdown")
	putID := w.NextID()
	w.Send(&protocol.Put{Type: protocol.TypePut, ID: putID, Journal: j, Blob: blob})
	<-gs.entered // the relay has stored the blob

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		closed <- relay.Close(ctx)
	}()
	// The subscriber hears the relay is going away: the stop has begun.
	expectGoodbye(t, sub)
	close(gs.release)

	// The writer gets its acknowledgement first, then the goodbye.
	data, err := w.Read()
	if err != nil {
		t.Fatalf("the put in flight was not answered: %v", err)
	}
	var ok protocol.OK
	if protocol.DecodeAs(data, &ok) != nil || ok.Type != protocol.TypeOK || ok.ID != putID || ok.Seq != 1 {
		t.Fatalf("the put in flight got %s, want its ok", data)
	}
	expectGoodbye(t, w)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if last, err := st.LastSeq(context.Background(), j); err != nil || last != 1 {
		t.Fatalf("stored %d blobs (%v); the acknowledged one must be there", last, err)
	}
	// New connections are refused while stopped.
	resp, err := http.Get(hs.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("healthz after close: %v %v", resp, err)
	}
	resp.Body.Close()
}

// expectGoodbye reads the shutting-down error and then a going-away close.
func expectGoodbye(t *testing.T, c *servertest.Client) {
	t.Helper()
	data, err := c.Read()
	if err != nil {
		t.Fatalf("expected the shutting-down error, got %v", err)
	}
	var e protocol.Error
	if protocol.DecodeAs(data, &e) != nil || e.Code != protocol.CodeShuttingDown {
		t.Fatalf("expected the shutting-down error, got %s", data)
	}
	_, err = c.Read()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("expected a going-away close, got %v", err)
	}
}

// A graceful stop answers pipelined puts too: every put the relay has
// started when the stop begins, answered or still waiting for the disk,
// is stored and acknowledged, in order, before the shutting-down error.
func TestCloseDrainsPipelinedPuts(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, v int) {
		const puts = 3
		gs, st, relay, hs := startGated(t, puts)
		url := "ws" + strings.TrimPrefix(hs.URL, "http") + protocol.Path

		key := servertest.NewKey(t)
		w := servertest.DialVersion(t, url, key, v)
		sub := servertest.DialVersion(t, url, key, v)
		j := servertest.NewJournalID()
		servertest.MustOK(t, w.Create(j))
		servertest.MustOK(t, sub.Subscribe(j, 0))
		sub.NextCaughtUp()

		close(gs.armed)
		ch := servertest.Chain{Journal: j, Author: w.Device}
		var ids []uint64
		for i := range puts {
			id := w.NextID()
			ids = append(ids, id)
			w.Send(&protocol.Put{Type: protocol.TypePut, ID: id, Journal: j, Blob: ch.Next("pipelined at shutdown " + string(rune('a'+i)))})
		}
		for range puts {
			<-gs.started // the relay has started every put
		}
		<-gs.entered // and the first is durable, its answer held

		closed := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			closed <- relay.Close(ctx)
		}()
		expectGoodbye(t, sub)
		close(gs.release)

		for i, id := range ids {
			ok := w.Reply(id) // fails the test if the connection ends first
			if ok.OK == nil || ok.OK.Seq != uint64(i+1) {
				t.Fatalf("pipelined put %d got %+v, want its ok", i+1, ok)
			}
		}
		expectGoodbye(t, w)
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if last, err := st.LastSeq(context.Background(), j); err != nil || last != puts {
			t.Fatalf("stored %d blobs (%v); the %d acknowledged must be there", last, err, puts)
		}
	})
}
