package server_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// sharedStore is a second relay's view of another relay's store, with a
// change feed the test drives by hand: two relays on one database, with
// the database's notifications in the test's hands.
type sharedStore struct {
	server.Store
	mu sync.Mutex
	w  server.ChangeWatcher
}

func (s *sharedStore) WatchChanges(_ context.Context, w server.ChangeWatcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w = w
}

func (s *sharedStore) watcher() server.ChangeWatcher {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w
}

func (s *sharedStore) Close() error { return nil } // relay A closes the store

// twoRelays starts relay A on a Badger store and relay B on the same
// store, with a change feed the test drives.
func twoRelays(t *testing.T) (a, b *servertest.Server, feed *sharedStore) {
	a = servertest.NewServer(t)
	feed = &sharedStore{Store: a.Backend()}
	b = servertest.NewServerOn(t, server.Config{}, func() (server.Store, error) { return feed, nil })
	if feed.watcher() == nil {
		t.Fatal("the relay did not watch its store's change feed")
	}
	return a, b, feed
}

// A put on relay A reaches a subscriber on relay B when B's store
// reports it, however it reports it: the journal's new head, or "read
// everything again" after a lost connection. A report of what the
// subscriber has already seen sends nothing twice.
func TestChangesFromAnotherRelay(t *testing.T) {
	t.Parallel()
	a, b, feed := twoRelays(t)
	key := servertest.NewKey(t)
	alex := servertest.Dial(t, a.WebSocketURL(), key)
	phone := servertest.Dial(t, b.WebSocketURL(), key)
	j := servertest.NewJournalID()
	servertest.MustOK(t, alex.Create(j))
	servertest.MustOK(t, phone.Subscribe(j, 0))
	phone.NextCaughtUp()
	if w := feed.watcher().Watched(); !slices.Equal(w, []protocol.JournalID{j}) {
		t.Fatalf("relay B watches %v, want the journal its subscriber follows", w)
	}

	ch := servertest.Chain{Journal: j, Author: alex.Device}
	want := func(seq uint64, blob []byte) {
		t.Helper()
		got := phone.NextBlob()
		if got.Seq != seq || !bytes.Equal(got.Blob, blob) {
			t.Fatalf("subscriber on relay B got seq %d, want %d with the blob put on relay A", got.Seq, seq)
		}
	}

	first := ch.Next("put on relay A")
	servertest.MustOK(t, alex.Put(j, first))
	feed.watcher().JournalGrew(j, 1)
	want(1, first)

	// Reported again (a poll, or a late notification): nothing is sent
	// twice; the next blob comes next.
	feed.watcher().JournalGrew(j, 1)
	feed.watcher().ResyncAll()
	second, third := ch.Next("second"), ch.Next("third")
	servertest.MustOK(t, alex.Put(j, second))
	servertest.MustOK(t, alex.Put(j, third))
	feed.watcher().ResyncAll()
	want(2, second)
	want(3, third)

	// A put on relay B itself goes on reaching it directly, after what
	// came from A.
	fourth := ch.Next("put on relay B")
	servertest.MustOK(t, phone.Put(j, fourth))
	want(4, fourth)
}

// A device removed through relay A has its connections to relay B closed
// when B's store reports it, as B closes them for a removal made on B.
func TestDeviceRemovedOnAnotherRelay(t *testing.T) {
	t.Parallel()
	a, b, feed := twoRelays(t)
	owner := servertest.Dial(t, a.WebSocketURL(), servertest.NewKey(t))
	j := servertest.NewJournalID()
	servertest.MustOK(t, owner.Create(j))
	phone := servertest.Dial(t, b.WebSocketURL(), servertest.NewKey(t))
	servertest.MustOK(t, addDevice(owner, j, phone.Device))
	servertest.MustOK(t, phone.Subscribe(j, 0))
	phone.NextCaughtUp()

	servertest.MustOK(t, removeDevice(owner, j, phone.Device))
	feed.watcher().DevicesRemoved([][32]byte{phone.Device})
	for {
		if _, err := phone.Read(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("relay B kept the connection of a device removed through relay A")
			}
			if code := closeCode(err); code != -1 && code != 1008 {
				t.Fatalf("removed device's connection to relay B closed with %v, want policy violation", err)
			}
			break
		}
	}
	again := servertest.Dial(t, b.WebSocketURL(), phone.Key)
	wantError(t, again.Subscribe(j, 0), protocol.CodeNotMember)
}
