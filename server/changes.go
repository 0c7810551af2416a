package server

import (
	"context"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Changes made by other relays.
//
// A relay wakes its subscriptions when it appends a blob itself
// ([hub.announce]). When several relays share one database, a blob put
// on relay A must also wake the subscriptions on relay B: B learns of it
// from its store's change feed, if the store has one ([ChangeFeed]).
// A feed may lose a report (a relay crashes between its commit and its
// notification, a connection drops); it then says so and the relay wakes
// every subscription, and it polls now and then as a safety net. Extra
// wake-ups cost a read each and send nothing twice: a subscription's
// cursor alone decides what it sends.

// ChangeFeed is implemented by a store that other relays write to at the
// same time (a database several relay processes share), so that what
// one relay stores reaches subscribers and connections on the others. A
// [Server] whose store implements it calls WatchChanges once, in [New].
// A store used by one relay alone, such as [BadgerStore], needs none.
type ChangeFeed interface {
	// WatchChanges reports changes made through other stores on the same
	// database to w until ctx is done, and returns at once. Every blob
	// another store appends must, after it is readable, be covered by a
	// JournalGrew with its sequence number or a later one, or by a
	// ResyncAll; the same goes for a device another store removed and
	// DevicesRemoved. A report may come late (a feed that polls bounds
	// how late), more than once, or for a change this relay made itself.
	WatchChanges(ctx context.Context, w ChangeWatcher)
}

// ChangeWatcher is what a relay hands its store's [ChangeFeed]. Its
// methods never block and are safe for concurrent use.
type ChangeWatcher interface {
	// JournalGrew says that j's log holds blobs up to seq: its
	// subscriptions on this relay that have not seen seq read the store.
	JournalGrew(j protocol.JournalID, seq uint64)

	// DevicesRemoved says that the devices were removed from a journal:
	// their connections to this relay are closed, as when they are
	// removed through this relay.
	DevicesRemoved(devices [][32]byte)

	// ResyncAll says that reports may have been lost: every subscription
	// on this relay reads the store.
	ResyncAll()

	// Watched returns the journals this relay has subscriptions to, for
	// a feed that polls their heads.
	Watched() []protocol.JournalID
}

// watcher is the Server's ChangeWatcher.
type watcher struct{ s *Server }

func (w watcher) JournalGrew(j protocol.JournalID, seq uint64) { w.s.hub.grew(j, seq) }
func (w watcher) ResyncAll()                                   { w.s.hub.resyncAll() }
func (w watcher) Watched() []protocol.JournalID                { return w.s.hub.watched() }

func (w watcher) DevicesRemoved(devices [][32]byte) {
	for _, d := range devices {
		if n := w.s.devices.cut(d, nil); n > 0 {
			w.s.log.Info("device removed through another relay", "removed", shortID(d[:]), "connections_closed", n)
		}
	}
}

// grew wakes j's subscriptions, unless the hub has already been told of
// a blob at seq or later since they subscribed: whoever told it woke
// them after that blob was readable.
func (h *hub) grew(j protocol.JournalID, seq uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.subs[j]
	if len(subs) == 0 || seq <= h.heads[j] {
		return
	}
	h.heads[j] = seq
	for s := range subs {
		s.reread.Store(true)
		s.c.kick(s)
	}
}

// resyncAll wakes every subscription to read the store.
func (h *hub) resyncAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.subs {
		for s := range subs {
			s.reread.Store(true)
			s.c.kick(s)
		}
	}
}

// watched returns the journals that have subscriptions.
func (h *hub) watched() []protocol.JournalID {
	h.mu.Lock()
	defer h.mu.Unlock()
	js := make([]protocol.JournalID, 0, len(h.subs))
	for j := range h.subs {
		js = append(js, j)
	}
	return js
}
