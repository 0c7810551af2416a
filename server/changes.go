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

func (w watcher) JournalGrew(j protocol.JournalID, seq uint64) { w.s.grew(j, seq) }
func (w watcher) ResyncAll()                                   { w.s.hub.resyncAll() }
func (w watcher) Watched() []protocol.JournalID                { return w.s.hub.watched() }

func (w watcher) DevicesRemoved(devices [][32]byte) {
	for _, d := range devices {
		if n := w.s.devices.cut(d, nil); n > 0 {
			w.s.log.Info("device removed through another relay", "removed", shortID(d[:]), "connections_closed", n)
		}
	}
}

// grew hands j's new blobs, up to seq, to j's subscriptions, unless the
// hub has already been told of a blob at seq or later since they
// subscribed: whoever told it woke them after that blob was readable.
//
// As with a put on this relay, the new blobs are read once, by a fetcher
// goroutine per journal, and announced to every subscription, so that a
// journal with many subscribers costs one read per change, not one per
// subscriber. If that fails (or the store shows each device its own log,
// with ReadNewBlobsFromStore), every subscription reads the store itself.
func (s *Server) grew(j protocol.JournalID, seq uint64) {
	h := &s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs[j]) == 0 || seq <= h.heads[j] {
		return
	}
	from := h.heads[j]
	h.heads[j] = seq
	if !h.direct {
		h.rereadLocked(j)
		return
	}
	if _, running := h.fetching[j]; running {
		h.fetching[j] = seq // the running fetcher goes on to seq
		return
	}
	if h.fetching == nil {
		h.fetching = make(map[protocol.JournalID]uint64)
	}
	h.fetching[j] = seq
	go s.fetchGrown(j, from)
}

// fetchGrown reads j's blobs after from, up to the hub's fetching target,
// and announces each as a put on this relay would, until it reaches the
// target.
func (s *Server) fetchGrown(j protocol.JournalID, from uint64) {
	h := &s.hub
	for {
		h.mu.Lock()
		to := h.fetching[j]
		if from >= to {
			delete(h.fetching, j)
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		blobs, err := s.cfg.Store.Read(s.ctx, j, from, readBatch)
		ok := err == nil && len(blobs) > 0
		for _, b := range blobs {
			if !ok || b.Seq > to {
				break
			}
			if b.Seq != from+1 || b.Purged || b.Damaged {
				// A gap is for the pumps to report; a purged blob goes
				// out with its mark, which only they send.
				ok = false
				break
			}
			h.announce(j, b.Seq, b.Blob)
			from = b.Seq
		}
		if !ok {
			if err != nil && s.ctx.Err() == nil {
				s.log.Warn("reading a journal another relay appended to", "journal", j.String(), "err", err)
			}
			h.mu.Lock()
			delete(h.fetching, j)
			h.rereadLocked(j)
			h.mu.Unlock()
			return
		}
	}
}

// rereadLocked wakes j's subscriptions to read the store. h.mu is held.
func (h *hub) rereadLocked(j protocol.JournalID) {
	for s := range h.subs[j] {
		s.reread.Store(true)
		s.c.kick(s)
	}
}

// resyncAll wakes every subscription to read the store.
func (h *hub) resyncAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for j := range h.subs {
		h.rereadLocked(j)
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
