package server_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// TestPipelinedPuts sends many requests without waiting for answers, as
// a client pushing its outbox does: puts (some of them repeats, one of
// them invalid), then a subscribe, then more puts. Every request must be
// answered, in the order sent; the puts must be stored in the order sent,
// densely; a repeat must be answered as a duplicate of its first copy
// even when both wait for the same commit; and the subscribe must see
// every put sent before it.
func TestPipelinedPuts(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, v int) {
		_, c, ch := setupVersion(t, v)
		type sent struct {
			id   uint64
			blob []byte // nil for the invalid put and the subscribe
			want uint64 // expected seq of a put
			dup  bool
		}
		var reqs []sent
		seq := uint64(0)
		var blobs [][]byte
		put := func(b []byte, dupOf int) {
			id := c.NextID()
			c.Send(&protocol.Put{Type: protocol.TypePut, ID: id, Journal: ch.Journal, Blob: b})
			s := sent{id: id, blob: b}
			if dupOf >= 0 {
				s.want, s.dup = uint64(dupOf+1), true
			} else {
				seq++
				s.want = seq
				blobs = append(blobs, b)
			}
			reqs = append(reqs, s)
		}
		for i := range 40 {
			b := ch.Next(fmt.Sprint("first ", i))
			put(b, -1)
			if i%9 == 4 {
				put(b, i) // at once: the same commit, most likely
			}
		}
		// A put that fails validation, in the middle of the stream.
		badID := c.NextID()
		c.Send(&protocol.Put{Type: protocol.TypePut, ID: badID, Journal: ch.Journal, Blob: []byte{1, 2, 3}})
		reqs = append(reqs, sent{id: badID})
		subID := c.NextID()
		c.Send(&protocol.Subscribe{Type: protocol.TypeSubscribe, ID: subID, Journal: ch.Journal, After: 0})
		reqs = append(reqs, sent{id: subID})
		subscribedAt := seq
		for i := range 30 {
			put(ch.Next(fmt.Sprint("second ", i)), -1)
		}

		for _, r := range reqs {
			reply := c.Reply(r.id) // fails the test if another answer comes first
			switch {
			case r.id == badID:
				wantError(t, reply, protocol.CodeInvalid)
			case r.id == subID:
				servertest.MustOK(t, reply)
			default:
				ok := servertest.MustOK(t, reply)
				id := protocol.IDOf(r.blob)
				if ok.Seq != r.want || ok.Duplicate != r.dup || !bytes.Equal(ok.BlobID, id[:]) {
					t.Fatalf("put %d: seq %d duplicate %v, want seq %d duplicate %v", r.id, ok.Seq, ok.Duplicate, r.want, r.dup)
				}
			}
		}
		// The subscription sends the history it found (at least every put
		// before it), CaughtUp, then the rest live: the whole log in order.
		caughtUp := false
		for s := uint64(1); s <= seq; s++ {
			env, data := c.Push()
			if env.Type == protocol.TypeCaughtUp {
				var cu protocol.CaughtUp
				if err := protocol.DecodeAs(data, &cu); err != nil || cu.Seq != s-1 || cu.Seq < subscribedAt || caughtUp {
					t.Fatalf("caught up at %d (%v) before blob %d; %d puts came before the subscribe", cu.Seq, err, s, subscribedAt)
				}
				caughtUp = true
				s--
				continue
			}
			var b protocol.Blob
			if err := protocol.DecodeAs(data, &b); err != nil || b.Seq != s || !bytes.Equal(b.Blob, blobs[s-1]) {
				t.Fatalf("push %d: seq %d, %v", s, b.Seq, err)
			}
		}
		if !caughtUp {
			if cu := c.NextCaughtUp(); cu.Seq != seq {
				t.Fatalf("caught up at %d, want %d", cu.Seq, seq)
			}
		}
	})
}

// TestPipelinedAcksShareFrames: on version 2 the answers to a burst of
// pipelined puts come in a few acks frames, not one frame each (a
// client pushing its outbox sends 64 at a time), and in order. The
// store holds every commit back until the whole burst has reached it, so
// that all 64 wait for their answers together whatever the scheduling.
func TestPipelinedAcksShareFrames(t *testing.T) {
	t.Parallel()
	const n = 64
	srv := servertest.NewServerOn(t, server.Config{}, func() (server.Store, error) {
		b, err := server.OpenBadger(t.TempDir(), slog.New(slog.NewTextHandler(t.Output(), nil)))
		if err != nil {
			return nil, err
		}
		return newHeldStore(b, n), nil
	})
	c := servertest.DialVersion(t, srv.WebSocketURL(), servertest.NewKey(t), protocol.Version)
	ch := &servertest.Chain{Journal: servertest.NewJournalID(), Author: c.Device}
	servertest.MustOK(t, c.Create(ch.Journal))
	first := c.NextID()
	for i := range n {
		c.Send(&protocol.Put{Type: protocol.TypePut, ID: first + uint64(i), Journal: ch.Journal, Blob: ch.Next(fmt.Sprint("entry ", i))})
		if i < n-1 {
			c.NextID()
		}
	}
	var acks []protocol.Ack
	frames := 0
	for len(acks) < n {
		binary, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("after %d answers: %v", len(acks), err)
		}
		if !binary {
			t.Fatalf("after %d answers, a text frame: %s", len(acks), data)
		}
		if acks, err = protocol.DecodeAcks(data, acks); err != nil {
			t.Fatal(err)
		}
		frames++
	}
	for i, a := range acks {
		if a.ID != first+uint64(i) || a.Seq != uint64(i+1) || a.Duplicate {
			t.Fatalf("answer %d: %+v, want request %d stored at %d", i, a, first+uint64(i), i+1)
		}
	}
	// All 64 are answered within two commits, and the writer sends
	// answers queued together as one frame: a few frames. Written one by
	// one, as a put answered alone is, they are 64.
	if frames >= n/2 {
		t.Fatalf("%d answers came in %d frames", n, frames)
	}
}

// heldStore is a Badger store whose appends commit only once n of them
// have been started: a burst of puts is all pending before any is
// answered.
type heldStore struct {
	server.Store
	n, started int // started: the reader's goroutine only (one connection)
	open       chan struct{}
	commits    *server.Committer
}

func newHeldStore(b server.Store, n int) *heldStore {
	s := &heldStore{Store: b, n: n, open: make(chan struct{})}
	s.commits = server.StartCommitter(0, func(group []*server.AppendRequest) {
		<-s.open
		pending := make([]*server.PendingAppend, len(group))
		for i, r := range group {
			pending[i] = b.StartAppend(context.Background(), r.Journal, r.Blob)
		}
		for i, r := range group {
			r.Seq, _, r.Dup, r.Err = pending[i].Wait()
		}
	})
	return s
}

func (s *heldStore) StartAppend(ctx context.Context, j protocol.JournalID, blob []byte) *server.PendingAppend {
	if s.started++; s.started == s.n {
		close(s.open)
	}
	return s.commits.Start(j, blob, nil)
}

func (s *heldStore) Close() error {
	s.commits.Stop()
	return s.Store.Close()
}
