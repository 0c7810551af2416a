package server

import (
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// subscription is one Subscribe on a connection.
//
// A subscription has no goroutine of its own while it has nothing to send:
// an idle subscribed connection costs its reader goroutine only (its
// writer runs only while something is queued, see conn.writer). When the journal grows, the hub kicks the subscription, which
// starts a pump goroutine if none is running; the pump sends everything
// after the cursor and ends once it has caught up. Kicks that arrive while
// a pump runs make it look again before it ends, so no blob is missed; the
// cursor alone decides what is sent next, so none is sent twice.
type subscription struct {
	c       *conn
	journal protocol.JournalID
	after   uint64 // cursor the client asked for

	state   atomic.Int32              // pumpIdle, pumpRunning or pumpAgain
	fresh   atomic.Pointer[freshBlob] // the newest blob announced by the hub, if not yet sent
	stopped atomic.Bool               // set when the subscription must send nothing more (the device left)
	reread  atomic.Bool               // set with a kick when another relay appended: the pump reads the store

	// Owned by the running pump (pumps of one subscription never overlap).
	cursor   uint64 // last seq sent
	caughtUp bool   // CaughtUp has been sent
}

// Pump states.
const (
	pumpIdle    = iota // no pump; a kick starts one
	pumpRunning        // a pump is sending
	pumpAgain          // a pump is sending and was kicked meanwhile
)

// freshBlob is a blob just appended, with its Blob message encoded once
// for every subscriber that sends it (once per protocol version).
// Subscribers that have sent everything before it send it without reading
// the store, so a put reaches many subscribers at the cost of one
// encoding.
type freshBlob struct {
	journal protocol.JournalID
	seq     uint64
	blob    []byte

	once sync.Once
	msg  []byte // the JSON Blob message (version 1)
	err  error

	binOnce sync.Once
	bin     []byte // the blobs frame (version 2)
}

func (f *freshBlob) message() ([]byte, error) {
	f.once.Do(func() {
		f.msg, f.err = protocol.Marshal(&protocol.Blob{Type: protocol.TypeBlob, Journal: f.journal, Seq: f.seq, Blob: f.blob})
	})
	return f.msg, f.err
}

// frameFor returns f's message for connection c: a text frame on version
// 1, a binary blobs frame of one entry on version 2 (which the writer
// merges with the ones queued behind it).
func (f *freshBlob) frameFor(c *conn) (frame, error) {
	if c.version < protocol.Version {
		msg, err := f.message()
		return frame{data: msg}, err
	}
	f.binOnce.Do(func() {
		b := make([]byte, 0, protocol.BlobsFrameHeader+protocol.BlobEntrySize(len(f.blob)))
		b = protocol.AppendBlobsHeader(b, f.journal)
		f.bin = protocol.AppendBlobEntry(b, f.seq, false, f.blob)
	})
	return frame{data: f.bin, binary: true}, nil
}

// announce tells every subscription of j that blob was stored at seq.
// A subscription that is idle and has sent everything before it gets the
// blob's message written or queued right here (deliver), without waking
// a goroutine; any other is kicked. It never blocks. The writes are made
// under the hub's lock, on purpose: remove waits for the announcements in
// flight, so a device removed from the journal gets nothing once its
// removal is answered (stopSub).
//
// Only a hub whose store reads back exactly what was appended, at the
// sequence numbers the appends returned (BadgerStore), hands out the blob
// itself; for any other store (a test's wrapper that shows subscribers a
// different log, such as servertest.Liar) every subscription is kicked and
// reads the store.
func (h *hub) announce(j protocol.JournalID, seq uint64, blob []byte) {
	if !h.direct {
		h.notify(j)
		return
	}
	f := &freshBlob{journal: j, seq: seq, blob: blob}
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.subs[j]
	if len(subs) > 0 && seq > h.heads[j] {
		h.heads[j] = seq
	}
	for s := range subs {
		for {
			old := s.fresh.Load()
			if old != nil && old.seq >= seq {
				break
			}
			if s.fresh.CompareAndSwap(old, f) {
				break
			}
		}
		if !s.c.deliver(s, f) {
			s.c.kick(s)
		}
	}
}

// notify kicks every subscription of j. It never blocks.
func (h *hub) notify(j protocol.JournalID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[j] {
		s.c.kick(s)
	}
}

// deliver writes f's message for sub (pushDirect), or queues it, if no
// pump is running, sub has sent everything before f and the send queue
// has room. Otherwise a pump takes
// over. It reports false only if a pump was already running; the caller
// then kicks it.
func (c *conn) deliver(sub *subscription, f *freshBlob) bool {
	if !sub.state.CompareAndSwap(pumpIdle, pumpRunning) {
		return false
	}
	// The subscription is ours until we set it idle or hand it to a pump.
	sent := false
	if sub.caughtUp && sub.cursor+1 == f.seq && c.ctx.Err() == nil && !sub.stopped.Load() {
		if msg, err := f.frameFor(c); err == nil && (c.pushDirect(msg, len(f.blob)) || c.tryEnqueue(msg, len(f.blob))) {
			sub.cursor = f.seq
			sub.fresh.CompareAndSwap(f, nil)
			sent = true
		}
	}
	if sent && sub.state.CompareAndSwap(pumpRunning, pumpIdle) {
		return true
	}
	// Not sent, or kicked meanwhile: a pump goes on from here.
	sub.state.Store(pumpRunning)
	c.startPump(sub)
	return true
}

// kick makes sure a pump will look at sub's journal after this call. It
// never blocks.
func (c *conn) kick(sub *subscription) {
	for {
		switch sub.state.Load() {
		case pumpIdle:
			if sub.state.CompareAndSwap(pumpIdle, pumpRunning) {
				c.startPump(sub)
				return
			}
		case pumpRunning:
			if sub.state.CompareAndSwap(pumpRunning, pumpAgain) {
				return
			}
		default: // pumpAgain: the running pump will look again
			return
		}
	}
}

func (c *conn) startPump(sub *subscription) {
	c.pumpMu.Lock()
	defer c.pumpMu.Unlock()
	if c.pumpsStopped {
		return // the connection is ending; the state stays running
	}
	c.subWG.Add(1)
	go c.pump(sub)
}

// stopPumps stops new pumps from starting, waits for running ones and
// removes the connection's subscriptions from the hub. Only the reader
// goroutine calls it, once its loop has ended.
func (c *conn) stopPumps() {
	c.pumpMu.Lock()
	c.pumpsStopped = true
	c.pumpMu.Unlock()
	c.subWG.Wait()
	for j, sub := range c.subs {
		c.s.hub.remove(sub)
		c.s.metrics.subs.Dec()
		delete(c.subs, j)
	}
}

// stopSub ends sub at once (its device left the journal): it sends
// nothing more, stored history included, and leaves the hub and the
// connection's subscriptions. A pump sending it stops before its next
// message. Only the reader goroutine calls it.
func (c *conn) stopSub(sub *subscription) {
	sub.stopped.Store(true)
	c.s.hub.remove(sub) // no announcement reaches it after this
	sub.fresh.Store(nil)
	delete(c.subs, sub.journal)
	c.s.metrics.subs.Dec()
}

// pump sends what sub has to send, then ends, unless it was kicked
// meanwhile. It also ends, leaving the state running so nothing restarts
// it, when the connection fails.
func (c *conn) pump(sub *subscription) {
	defer c.subWG.Done()
	c.s.pumpsRunning.Add(1)
	defer c.s.pumpsRunning.Add(-1)
	for {
		if !c.pumpOnce(sub) {
			return
		}
		if sub.state.CompareAndSwap(pumpRunning, pumpIdle) {
			return
		}
		sub.state.Store(pumpRunning) // was kicked: look again
	}
}

// pumpOnce sends every blob after the cursor, then CaughtUp the first
// time. It returns false if the connection is ending or failed, or the
// subscription was stopped.
func (c *conn) pumpOnce(sub *subscription) bool {
	sentFresh := false
	for {
		if !c.pumpMaySend(sub) {
			return false
		}
		if f := sub.fresh.Load(); f != nil && sub.caughtUp && f.seq == sub.cursor+1 {
			msg, err := f.frameFor(c)
			if err != nil {
				c.log.Error("marshal blob", "err", err)
				c.abort(websocket.CloseInternalServerErr, "internal error")
				return false
			}
			if !c.waitRoom(len(msg.data)) || !c.pumpMaySend(sub) {
				return false
			}
			// Counted before queueing, so a client that has received a
			// blob also sees it counted.
			c.countBlobOut(len(f.blob))
			if !c.put(msg) {
				return false
			}
			sub.cursor = f.seq
			sub.fresh.CompareAndSwap(f, nil)
			sentFresh = true
			continue
		}
		if sentFresh && !sub.reread.Load() {
			// Every append on this relay announces itself once it is
			// readable, so after an announced blob nothing newer is
			// known: if one comes, its announcement kicks this pump
			// again. An append on another relay sets reread before its
			// kick (changes.go), and then the store is read.
			return true
		}
		// Cleared before the read: a kick with reread set after this
		// makes the pump look again.
		sub.reread.Store(false)
		blobs, err := c.s.cfg.Store.Read(c.ctx, sub.journal, sub.cursor, readBatch)
		if err != nil {
			if c.ctx.Err() == nil {
				c.log.Error("reading journal for subscriber", "journal", sub.journal.String(), "err", err)
				c.fail(reqError(0, protocol.CodeInternal, "the relay could not read the journal"), websocket.CloseInternalServerErr)
			}
			return false
		}
		if !c.sendHistory(sub, blobs) {
			return false
		}
		if len(blobs) > 0 {
			continue
		}
		if !sub.caughtUp {
			if !c.pumpMaySend(sub) || !c.reply(&protocol.CaughtUp{Type: protocol.TypeCaughtUp, Journal: sub.journal, Seq: sub.cursor}) {
				return false
			}
			sub.caughtUp = true
		}
		// Drop an announced blob already sent from the store, so an idle
		// subscription holds no blob.
		if f := sub.fresh.Load(); f != nil && f.seq <= sub.cursor {
			sub.fresh.CompareAndSwap(f, nil)
		}
		return true
	}
}

// sendHistory queues blobs, read from the store after sub's cursor, and
// moves the cursor past them. On version 1 each blob is a message; on
// version 2 blobs share frames of up to mergeLimit bytes. It returns false
// if the connection is ending or failed, or the subscription was stopped.
func (c *conn) sendHistory(sub *subscription, blobs []StoredBlob) bool {
	var batch []byte // version 2: the frame being filled
	var batchBlobs, batchBytes int
	var last uint64 // the seq of batch's last blob
	left := 0       // the bytes of the entries of the blobs not in a frame yet
	for _, b := range blobs {
		left += protocol.BlobEntrySize(len(b.Blob))
	}
	flush := func() bool {
		if batchBlobs == 0 {
			return true
		}
		// Flow control: a frame waits for room in the queue.
		if !c.waitRoom(len(batch)) || !c.pumpMaySend(sub) {
			return false
		}
		// Counted before queueing, so a client that has received a
		// blob also sees it counted.
		c.s.metrics.blobsOut.Add(float64(batchBlobs))
		c.s.metrics.bytesOut.Add(float64(batchBytes))
		if !c.put(frame{data: batch, binary: true}) {
			return false
		}
		sub.cursor = last
		batch, batchBlobs, batchBytes = nil, 0, 0
		return true
	}
	for _, b := range blobs {
		if !c.pumpMaySend(sub) {
			return false
		}
		if want := max(sub.cursor, last) + 1; b.Seq != want {
			c.log.Error("journal log has a gap", "journal", sub.journal.String(), "after", want-1, "next", b.Seq)
			c.fail(reqError(0, protocol.CodeInternal, "the relay's copy of the journal is damaged"), websocket.CloseInternalServerErr)
			return false
		}
		if b.Damaged {
			// Nothing is served at its place (the store named it); the
			// subscriber goes on past it, and its client names it as not
			// arrived once a later blob of its author comes.
			if !flush() {
				return false
			}
			c.s.metrics.damagedSkipped.Inc()
			sub.cursor = b.Seq
			continue
		}
		if c.version < protocol.Version {
			// Flow control: the next blob waits for room in the queue.
			if !c.waitRoom(len(b.Blob)*4/3) || !c.pumpMaySend(sub) {
				return false
			}
			c.countBlobOut(len(b.Blob))
			if !c.reply(&protocol.Blob{Type: protocol.TypeBlob, Journal: sub.journal, Seq: b.Seq, Blob: b.Blob, Purged: b.Purged}) {
				return false
			}
			sub.cursor = b.Seq
			continue
		}
		if batchBlobs > 0 && len(batch)+protocol.BlobEntrySize(len(b.Blob)) > mergeLimit && !flush() {
			return false
		}
		if batchBlobs == 0 {
			// Room for what is left of blobs, up to a full frame, and
			// at least for this blob.
			size := protocol.BlobsFrameHeader + max(min(left, mergeLimit-protocol.BlobsFrameHeader), protocol.BlobEntrySize(len(b.Blob)))
			batch = protocol.AppendBlobsHeader(make([]byte, 0, size), sub.journal)
		}
		left -= protocol.BlobEntrySize(len(b.Blob))
		batch = protocol.AppendBlobEntry(batch, b.Seq, b.Purged, b.Blob)
		batchBlobs++
		batchBytes += len(b.Blob)
		last = b.Seq
	}
	return flush()
}

// pumpMaySend reports whether a pump may queue sub's next message: not
// once sub was stopped, nor once the connection is ending (a graceful stop
// still writes what is queued, and that should be replies, not pushes).
func (c *conn) pumpMaySend(sub *subscription) bool {
	return !sub.stopped.Load() && c.ctx.Err() == nil
}

// countBlobOut counts a blob of n bytes pushed to a subscriber.
func (c *conn) countBlobOut(n int) {
	c.s.metrics.blobsOut.Inc()
	c.s.metrics.bytesOut.Add(float64(n))
}
