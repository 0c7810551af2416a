package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// SyncResult says what one sync did.
type SyncResult struct {
	Pushed   int      // blobs the relay acknowledged
	Received int      // blobs new to this device
	Joined   []string // partners who joined, by name
	// Notices say what changed in the journal's roster: a device added or
	// removed (NoticeDeviceAdded, NoticeDeviceRemoved), the partner
	// leaving (NoticePartnerLeft), someone answering an invite after the
	// partner had joined (NoticeLateJoin, refused here; a relay with the
	// two-person rule refuses them before they get in).
	Notices []Notice
	// New are the newest entries from the partner that arrived in this
	// sync, at most NewShown, oldest first; NewCount is how many arrived.
	New      []Entry
	NewCount int
}

// NewShown is how many newly arrived entries a sync or watch event
// carries with their text: a first sync of years of writing shows the
// newest, and says how many more there are, instead of decrypting and
// printing every one.
const NewShown = 20

// Sync runs one exchange with the relay and disconnects. It is the step
// Watch runs too (see send and settle): send (push the outbox, then ask the
// relay to purge what this device retracted), pull everything after the
// cursor until the relay has caught up, then settle: apply what arrived (a
// partner joining, devices, keys re-boxed for this device), send again if
// that produced anything, and note what is new.
//
// A relay that answers that this device is not a member gives
// [ErrNotServed], remembered so writing is refused up front (Writable).
func (j *Journal) Sync(ctx context.Context) (*SyncResult, error) {
	res, err := (&exchange{j: j}).sync(ctx)
	return res, j.noteNotServed(err)
}

// exchange is the sync component: one connection's exchange with the
// relay (send, pull, settle), as Sync and Watch run it. It holds the
// connection and what the exchange found; it drives the journal's store
// and model only through the Journal, each step under the Journal's lock.
type exchange struct {
	j *Journal
	c *relayConn // nil until the exchange dials
	// before are the chain ids of the entries readable before the
	// exchange (or its last settle): what is new is shown.
	before map[protocol.BlobID]bool
	// again is set when the exchange asked the relay for positions it
	// had already sent (gapStart): what is held already is skipped, not
	// recorded again.
	again bool
	// top is the cursor when the exchange subscribed: a relay whose
	// history ends below it is behind this device.
	top uint64
	// served is set once the relay accepted this exchange's subscribe:
	// it is not behind this device (state.RelayBehind).
	served atomic.Bool
	// refetchFrom is the state's RefetchFrom when the exchange
	// subscribed: settle clears it once what follows it was fetched.
	refetchFrom uint64
	// refetched is set when the exchange asked the relay again for what
	// a repair of the log set aside (state.Refetch, state.RefetchFrom).
	refetched bool
	// repairsSaid counts the journal's repairs a watcher has reported
	// (Event.Repairs); Watch carries it from one connection to the next.
	repairsSaid int
}

// ErrNotServed: the relay no longer serves this device in this journal,
// because it was removed (by another of its person's devices) or its
// person left from another device. It wraps protocol.ErrNotMember; it
// carries no ids, which mean nothing to a person.
var ErrNotServed error = &notServedError{}

type notServedError struct{}

func (*notServedError) Error() string {
	return "the relay no longer accepts this device in this journal"
}
func (*notServedError) Unwrap() error { return protocol.ErrNotMember }

// noteNotServed records that the relay said this device is not a member,
// and words err as ErrNotServed; any other err is returned as it is.
func (j *Journal) noteNotServed(err error) error {
	if !errors.Is(err, protocol.ErrNotMember) {
		return err
	}
	if serr := j.withLock(func() error {
		now := time.Now().UTC()
		j.st.NotServed = &now
		return j.saveState()
	}); serr != nil {
		return errors.Join(ErrNotServed, serr)
	}
	return ErrNotServed
}

// sync dials, runs one exchange, and disconnects (see Sync).
func (x *exchange) sync(ctx context.Context) (*SyncResult, error) {
	j := x.j
	res := &SyncResult{}
	if err := j.checkNotLeft(); err != nil {
		return res, err
	}
	if err := x.readable(); err != nil {
		return nil, err
	}
	c, err := j.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	x.c = c
	send := func() error {
		n, err := x.send(ctx)
		res.Pushed += n
		return err
	}
	if err := send(); err != nil {
		return res, err
	}
	n, err := x.pull(ctx)
	res.Received += n
	if err != nil {
		return res, err
	}
	st, err := x.settle(send)
	res.Joined, res.Notices, res.New, res.NewCount = st.Joined, st.Notices, st.New, st.NewCount
	if err != nil {
		return res, err
	}
	return res, j.withLock(j.st.restoreErr) // a restore that could not finish is said plainly
}

// send pushes the outbox, then asks the relay to purge what this device
// retracted (which needs the retraction on the relay first). It returns
// how many blobs the relay acknowledged.
func (x *exchange) send(ctx context.Context) (int, error) {
	n, err := x.push(ctx)
	if err != nil {
		return n, err
	}
	return n, x.purgeRetracted(ctx)
}

// settled is what settle found.
type settled struct {
	Joined   []string
	Notices  []Notice
	New      []Entry
	NewCount int
}

// settle is the step Sync and Watch run once the relay has caught up:
// apply what arrived, have send push what that produced, note the
// partner's entries that are new since x.before (adding them to it), and
// record the exchange.
func (x *exchange) settle(send func() error) (settled, error) {
	j := x.j
	var st settled
	var pending int
	var err error
	// New keys answering an invite for the partner are said by the sync
	// that brings them, not only by status.
	waiting := func() (n *Notice) {
		_ = j.withLock(func() error { n = j.st.identityNotice(); return nil })
		return n
	}
	was := waiting()
	st.Joined, st.Notices, pending, err = j.apply()
	if err != nil {
		return st, err
	}
	if now := waiting(); now != nil && (was == nil || !was.Since.Equal(now.Since)) {
		st.Notices = append(st.Notices, *now)
	}
	if pending > 0 {
		if err := send(); err != nil {
			return st, err
		}
	}
	if st.New, st.NewCount, err = x.newSince(); err != nil {
		return st, err
	}
	return st, j.withLock(func() error {
		j.st.LastSync = time.Now().UTC()
		j.st.ShownSeq = max(j.st.ShownSeq, j.cursor)
		j.st.NotServed = nil // the relay served this exchange
		if seq, head := j.sentHead(); seq > 0 && j.st.Restored == nil {
			j.st.SentSeq, j.st.SentHead = seq, head.String()
		}
		if j.refetching {
			// This exchange fetched everything from the start (a
			// repair asked for it before it subscribed).
			j.st.Refetch, j.refetching = false, false
		}
		if x.refetchFrom != 0 && j.st.RefetchFrom == x.refetchFrom {
			// This exchange fetched again what a torn log tail had
			// held (tornTail).
			j.st.RefetchFrom, x.refetchFrom = 0, 0
		}
		return j.saveState()
	})
}

// pull subscribes and records everything the relay holds after the
// cursor, until it says it has caught up, and returns how many blobs were
// new to this device. The subscription stays open; the caller closes the
// connection.
func (x *exchange) pull(ctx context.Context) (int, error) {
	j, c := x.j, x.c
	if err := x.subscribe(ctx); err != nil {
		return 0, err
	}
	// History is recorded in batches: one lock and one fsync per batch
	// rather than per blob. Each batch's entries are decrypted (preopen)
	// while the batch before is recorded, on the other core.
	var batch []*protocol.Blob
	batchBytes, received := 0, 0
	var boxes map[[32]byte][32]byte
	if err := j.withLock(func() error { boxes = j.trust().authorBoxes(); return nil }); err != nil {
		return 0, err
	}
	var inflight *preBatch
	finish := func() error {
		if inflight == nil {
			return nil
		}
		<-inflight.done
		n, next, err := x.receivePre(inflight.blobs, inflight.pre)
		inflight = nil
		received += n
		if next != nil {
			boxes = next
		}
		return err
	}
	flush := func() error {
		if len(batch) == 0 {
			return finish()
		}
		job := startPreopen(j.acct.keys, batch, boxes)
		batch, batchBytes = nil, 0
		err := finish()
		inflight = job
		if err != nil {
			<-job.done
			inflight = nil
		}
		return err
	}
	defer func() {
		if inflight != nil {
			<-inflight.done
		}
	}()
	idle := time.NewTimer(replyTimeout)
	defer idle.Stop()
	for {
		var m any
		var ok bool
		select {
		case m, ok = <-c.pushes:
			idle.Reset(replyTimeout)
		case <-ctx.Done():
			return received, ctx.Err()
		case <-idle.C:
			return received, fmt.Errorf("%w: the relay stopped sending history for %s", ErrUnreachable, replyTimeout)
		}
		if !ok {
			if err := flush(); err != nil {
				return received, err
			}
			if err := finish(); err != nil {
				return received, err
			}
			return received, c.readErr()
		}
		caughtUp := false
		switch m := m.(type) {
		case *protocol.Blob:
			batch = append(batch, m)
			batchBytes += len(m.Blob)
			if len(batch) < receiveBatch && batchBytes < receiveBatchBytes {
				continue
			}
		case *protocol.CaughtUp:
			caughtUp = true
		}
		if err := flush(); err != nil {
			return received, err
		}
		if caughtUp {
			if err := finish(); err != nil {
				return received, err
			}
			if x.again && !x.served.Load() {
				// Asked again from below the cursor (gapStart): the
				// relay must still reach it.
				if cu := m.(*protocol.CaughtUp); cu.Seq < x.top {
					return received, x.behind(x.top)
				}
				return received, x.notBehind()
			}
			return received, nil
		}
	}
}

func (c *relayConn) readErr() error {
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return fmt.Errorf("%w: connection closed", ErrUnreachable)
	}
	return c.err
}

// push sends every outbox blob (pipelined), waits for each
// acknowledgement and records it durably. It returns how many were
// acknowledged.
//
// Each window of puts is sent holding the journal's sending lock, from
// the moment its bytes are chosen until its acknowledgements are
// recorded, and its entries are named in the sending file before any put
// goes out: Retract tells from the file whether an entry may be on its
// way. What is chosen is planned again when this device wrote something
// since the push began (a retraction, perhaps: unsentRetracted).
func (x *exchange) push(ctx context.Context) (int, error) {
	j, c := x.j, x.c
	var out []*stored
	var kept map[*stored]bool
	var planned uint64 // this device's last seq when out was planned
	plan := func() {
		out, kept, planned = nil, nil, j.ownSeq
		// A relay that said it holds fewer items than this device was
		// sent (restored from an older backup) gets nothing until it
		// accepts a subscribe again: what it acknowledged could vanish
		// when it is put back, with this device believing it sent.
		if j.st.RelayBehind == 0 || x.served.Load() {
			out, kept = j.unsentRetracted(j.outbox())
		}
	}
	if err := j.withLock(func() error { plan(); return nil }); err != nil {
		return 0, err
	}
	if len(out) == 0 {
		return 0, nil
	}
	type pending struct {
		id    protocol.BlobID // what the relay acknowledges
		chain protocol.BlobID // what the person knows it by
		ch    <-chan reply
	}
	const window = 64
	n := 0
	// The witness of unsent entries is pruned once, when the push ends:
	// pruning it after every window walked the whole log each time. Until
	// then it names entries already sent, which only costs a note.
	defer func() {
		if n > 0 {
			_ = j.withLock(func() error { return j.pruneUnsent() })
		}
	}()
	for len(out) > 0 {
		hold, err := j.holdSending(ctx)
		if err != nil {
			return n, err
		}
		sent, err := func() (int, error) {
			defer hold.release()
			// A window's bytes are read back from the log at a time, so
			// a long outbox is never all in memory.
			var batch []*stored
			raws := make(map[*stored][]byte)
			err := j.withLock(func() error {
				if j.ownSeq != planned {
					plan()
				}
				take := out[:min(window, len(out))]
				out = out[len(take):]
				for _, s := range take {
					raw := j.raw(s)
					if raw == nil {
						continue
					}
					if kept[s] {
						// Retracted before it was sent: it goes out
						// kept to this device's own slot, so nobody
						// else can ever open it. Never the whole bytes.
						k, err := protocol.KeepSlots(raw, crypto.KeyID(j.ownBox))
						if err != nil {
							return fmt.Errorf("entry %s was retracted before it was sent and cannot be kept to this device: %w", s.Chain.String()[:ShortIDLen], err)
						}
						raw = k
					}
					batch, raws[s] = append(batch, s), raw
				}
				// Named durably before any put goes out: a push cut
				// off before their oks leaves them named (Retract).
				ids := make([]string, len(batch))
				for i, s := range batch {
					ids[i] = s.Chain.String()
				}
				return hold.handOver(j, ids)
			})
			if err != nil {
				return 0, err
			}
			var firstErr error
			var ps []pending
			for _, s := range batch {
				ch, err := c.start(func(id uint64) any {
					return &protocol.Put{Type: protocol.TypePut, ID: id, Journal: j.id, Blob: raws[s]}
				})
				if err != nil {
					firstErr = err
					break
				}
				ps = append(ps, pending{s.ID, s.Chain, ch})
			}
			var acks [][]byte
			for _, p := range ps {
				ok, err := c.wait(ctx, p.ch)
				if err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("send %s: %w", p.chain.String()[:ShortIDLen], err)
					}
					continue
				}
				acks = append(acks, record(recAcked, seqBytes(ok.Seq), p.id[:]))
			}
			err = j.withLock(func() error {
				if len(acks) == 0 {
					return nil
				}
				return j.appendRecords(acks...)
			})
			if err != nil {
				return len(acks), err
			}
			// What was handed over without its ok stays named in the
			// sending file: the relay may hold it (Retract).
			hold.heard(len(acks) == len(batch))
			return len(acks), firstErr
		}()
		n += sent
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// unsentRetracted returns the outbox out to send, and which of its
// entries go out kept to this device's own slot (protocol.KeepSlots): each
// entry this device wrote that a retraction this device wrote names (sent
// or not). Every such retraction is moved to just before the first entry
// it names in out, so that a reader never holds an entry written after
// the retracted one, which vouches for the retracted one's slot
// (to_since), without the retraction that explains why the slot is gone
// (see docs/protocol.md §15, "Purges after a retraction"). Call with the
// lock held.
func (j *Journal) unsentRetracted(out []*stored) ([]*stored, map[*stored]bool) {
	if len(out) == 0 {
		return out, nil
	}
	at := make(map[protocol.BlobID]int, len(out)) // chain id → index in out
	for i, s := range out {
		at[s.Chain] = i
	}
	opened, _ := j.decryptAll(j.trust())
	var kept map[*stored]bool
	moved := make(map[*stored]int) // retraction → index it goes before
	for _, o := range opened {
		if o.payload.Kind != KindRetraction || !o.s.Local || o.s.Header.Author != j.signKey {
			continue
		}
		first := -1
		for id := range noteWithdrawn(nil, o) {
			i, ok := at[id.chain]
			if !ok || out[i].Header.Kind != protocol.KindEntry || out[i] == o.s {
				continue
			}
			if kept == nil {
				kept = make(map[*stored]bool)
			}
			kept[out[i]] = true
			if first < 0 || i < first {
				first = i
			}
		}
		if r, ok := at[o.s.Chain]; ok && first >= 0 && first < r {
			moved[o.s] = first
		}
	}
	if len(moved) == 0 {
		return out, kept
	}
	before := make(map[int][]*stored, len(moved))
	for _, s := range out {
		if f, ok := moved[s]; ok {
			before[f] = append(before[f], s)
		}
	}
	re := make([]*stored, 0, len(out))
	for i, s := range out {
		re = append(re, before[i]...)
		if _, ok := moved[s]; !ok {
			re = append(re, s)
		}
	}
	return re, kept
}

// subscribe asks the relay for everything after the cursor (or, when a
// repair asked for it, everything).
func (x *exchange) subscribe(ctx context.Context) error {
	j, c := x.j, x.c
	var after uint64
	err := j.withLock(func() error {
		after, x.top = j.cursor, j.cursor
		x.refetched = j.st.Refetch || j.st.RefetchFrom != 0
		if j.st.Refetch {
			after = 0 // a repair lost some of what the relay holds (repair.go)
			j.refetching = true
			return nil
		}
		if from, ok := j.gapStart(); ok {
			after, x.again = from, true
		}
		if x.refetchFrom = j.st.RefetchFrom; x.refetchFrom != 0 && x.refetchFrom < after {
			// The cut-off end of the log held items from here on
			// (tornTail): they are asked for again.
			after, x.again = x.refetchFrom, true
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = c.request(ctx, func(n uint64) any {
		return &protocol.Subscribe{Type: protocol.TypeSubscribe, ID: n, Journal: j.id, After: after}
	})
	if errors.Is(err, protocol.ErrInvalid) && after > 0 {
		return x.behind(x.top)
	}
	if err != nil || x.again {
		// Asked from below the cursor, the relay's acceptance says
		// nothing about its end: its caught_up does (pull).
		return err
	}
	return x.notBehind()
}

// behind records that the relay holds fewer items than this device was
// sent (top, its cursor): nothing more is sent to it until it accepts a
// subscribe again (state.RelayBehind, push), and says so.
func (x *exchange) behind(top uint64) error {
	j := x.j
	if err := j.withLock(func() error {
		j.st.RelayBehind = top
		return j.saveState()
	}); err != nil {
		return err
	}
	return fmt.Errorf("%w: it has fewer items than this device already received (%d); it may have been restored from an older backup, or it is not telling the truth. Nothing more is sent to it until it has them again", ErrRelayMisbehaved, top)
}

// notBehind records that the relay holds at least what this device was
// sent: pushes may go.
func (x *exchange) notBehind() error {
	x.served.Store(true)
	j := x.j
	return j.withLock(func() error {
		if j.st.RelayBehind == 0 {
			return nil
		}
		j.st.RelayBehind = 0
		return j.saveState()
	})
}

// History is recorded in batches of at most receiveBatch blobs or
// receiveBatchBytes bytes, whichever comes first, with one fsync each.
const (
	receiveBatch      = 1024
	receiveBatchBytes = 16 << 20
)

// receive records blobs from the relay, in order, with one fsync, and
// returns how many were new to this device. Blobs for another journal, or
// malformed, are set aside with a warning and recorded nowhere.
func (x *exchange) receive(blobs ...*protocol.Blob) (int, error) {
	n, _, err := x.receivePre(blobs, nil)
	return n, err
}

// receivePre is receive with what preopen found for each blob (pre is
// nil, or as long as blobs). It also returns the authors' box keys as
// they stand after the batch, for preopening the next one.
func (x *exchange) receivePre(blobs []*protocol.Blob, pre []*preopened) (int, map[[32]byte][32]byte, error) {
	j := x.j
	if len(blobs) == 0 {
		return 0, nil, nil
	}
	fresh := 0
	var warnings []Notice
	var boxes map[[32]byte][32]byte
	err := j.withLock(func() error {
		defer func() { boxes = j.trust().authorBoxes() }()
		// What was offered and not opened is opened as before; nothing
		// decrypted stays behind, not even when recording fails.
		defer j.forgetPreopened()
		var recs [][]byte
		ids := make(map[*byte]protocol.BlobID, len(blobs))
		seen := make(map[protocol.BlobID]uint64) // blob id → the position it came at
		cursor := j.cursor
		// Positions already sent come again after a repair (Refetch) or
		// when this exchange asked again for missing items (gapStart).
		again := j.st.Refetch || x.again
		for i, m := range blobs {
			if m.Journal != j.id {
				return fmt.Errorf("%w: the relay sent a blob for another journal", ErrRelayMisbehaved)
			}
			// A replay of something already recorded is skipped, unless a
			// repair asked for everything again (Refetch): then only what
			// is already held is.
			if m.Seq <= cursor && !again {
				continue
			}
			cursor = max(cursor, m.Seq)
			if m.Purged {
				if j.blob(protocol.IDOf(m.Blob)) != nil && again {
					continue
				}
				if h, _, err := protocol.ParsePurged(m.Blob); err != nil || h.Journal != j.id || h.Kind != protocol.KindEntry {
					warnings = append(warnings, Notice{Kind: NoticeRelayBadPurge, Position: m.Seq})
					continue
				}
				recs = append(recs, record(recPurged, seqBytes(m.Seq), m.Blob))
				continue
			}
			h, err := protocol.ParseHeader(m.Blob)
			if err != nil || h.Journal != j.id {
				warnings = append(warnings, Notice{Kind: NoticeRelayBadItem, Position: m.Seq})
				continue
			}
			id := protocol.IDOf(m.Blob)
			if h.Author == j.signKey && j.blob(id) == nil {
				if s := j.keptOwn(m.Blob); s != nil {
					// This device's own entry, kept to its own slot
					// (an entry retracted before it was sent goes
					// out so): held already, as the bytes written.
					id = s.ID
				}
			}
			if s := j.blob(id); s != nil && s.RelaySeq != 0 && again {
				continue
			}
			if j.blob(id) == nil && h.Author == j.signKey && j.st.Restored == nil {
				// Only this device writes as this device, and it keeps
				// everything it writes: this is not ours. (After a restore
				// it is recorded, and adopted only if it proves to be
				// this device's history: adopt.go.)
				warnings = append(warnings, Notice{Kind: NoticeRelayForgedOwn, Position: m.Seq})
				continue
			}
			if s, at := j.blob(id), seen[id]; s != nil || at != 0 {
				// Held already. At another position than before, the
				// relay's history contradicts itself: it stores each
				// item once. Nothing is shown twice; the person is told.
				if at == 0 && s.RelaySeq != 0 && !again {
					at = s.RelaySeq
				}
				if at != 0 && at != m.Seq && s != nil && j.bothCopies(s, m.Blob) {
					// This device's own entry, retracted by it, may
					// stand at two positions: whole (a put whose ok
					// was lost) and kept to this device's slot (sent
					// after the retraction). Only those two exact
					// byte strings: anything else is compared.
					at = 0
				}
				if at != 0 && at != m.Seq {
					warnings = append(warnings, Notice{Kind: NoticeRelayReplayed, Position: m.Seq})
				}
				recs = append(recs, record(recSeen, seqBytes(m.Seq), id[:]))
				continue
			}
			seen[id] = m.Seq
			fresh++
			if pre != nil && pre[i] != nil {
				j.offerPreopened(id, pre[i])
			}
			rec := record(recPulled, seqBytes(m.Seq), m.Blob)
			ids[&rec[5+8]] = id // hashed once: the index takes it from here
			recs = append(recs, rec)
		}
		if len(warnings) > 0 {
			for _, w := range warnings {
				j.st.raise(w, w.Position)
			}
			if err := j.saveState(); err != nil {
				return err
			}
		}
		if len(recs) == 0 {
			return nil
		}
		return j.appendRecordsIDs(ids, recs...)
	})
	if err != nil {
		return 0, nil, err
	}
	return fresh, boxes, nil
}

// keptOwn returns the entry this device wrote of which blob, from the
// relay, is a copy kept to this device's own slot alone
// (protocol.KeepSlots), or nil: the same entry, which this device holds
// whole. Call with the lock held.
func (j *Journal) keptOwn(blob []byte) *stored {
	if len(blob) <= protocol.HeaderSize || protocol.Kind(blob[1]) != protocol.KindEntry {
		return nil
	}
	s := j.chainOf(protocol.ChainID(blob))
	if s == nil || !s.Local || s.Header.Author != j.signKey || s.Header.Kind != protocol.KindEntry {
		return nil
	}
	raw := j.raw(s)
	if raw == nil {
		return nil
	}
	kept, err := protocol.KeepSlots(raw, crypto.KeyID(j.ownBox))
	if err != nil || !bytes.Equal(kept, blob) {
		return nil
	}
	return s
}

// bothCopies reports whether blob, from the relay, is exactly one of the
// two copies of s the relay may legitimately hold at two positions: s is
// an entry this device wrote and then retracted, and blob is its bytes as
// written or those kept to this device's own slot (protocol.KeepSlots).
// Call with the lock held.
func (j *Journal) bothCopies(s *stored, blob []byte) bool {
	if !s.Local || s.Header.Author != j.signKey || s.Header.Kind != protocol.KindEntry || protocol.ChainID(blob) != s.Chain {
		return false
	}
	raw := j.raw(s)
	if raw == nil {
		return false
	}
	if !bytes.Equal(blob, raw) {
		k, err := protocol.KeepSlots(raw, crypto.KeyID(j.ownBox))
		if err != nil || !bytes.Equal(blob, k) {
			return false
		}
	}
	return j.withdrawn(j.trust())[withdrawal{j.signKey, s.Chain}]
}

// preopened is an entry decrypted ahead of being recorded (preopen).
type preopened struct {
	box     [32]byte // the author's box key it was opened with
	key     crypto.ContentKey
	payload Payload
}

// preBatch is a batch of history being preopened in a goroutine.
type preBatch struct {
	blobs []*protocol.Blob
	pre   []*preopened
	done  chan struct{}
}

// startPreopen preopens blobs with keys in a goroutine.
func startPreopen(keys *crypto.Keyring, blobs []*protocol.Blob, boxes map[[32]byte][32]byte) *preBatch {
	b := &preBatch{blobs: blobs, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.pre = preopen(keys, blobs, boxes)
	}()
	return b
}

// preopen decrypts, as open would with this device's own slot, the
// entries in blobs whose authors' box keys boxes holds, with this
// device's keys. It needs no lock: it reads only the blobs, the keys and
// boxes. What it finds counts only if open, under the lock, finds the
// same author key trusted for the entry; anything else (an author not
// known yet, an entry not sealed to this device) is opened there as
// before.
func preopen(keys *crypto.Keyring, blobs []*protocol.Blob, boxes map[[32]byte][32]byte) []*preopened {
	out := make([]*preopened, len(blobs))
	for i, m := range blobs {
		if m.Purged || len(boxes) == 0 {
			continue
		}
		if h, err := protocol.ParseHeader(m.Blob); err != nil || h.Kind != protocol.KindEntry {
			continue
		}
		e, err := protocol.ParseEntry(m.Blob)
		if err != nil {
			continue
		}
		box, ok := boxes[e.Header.Author]
		if !ok {
			continue
		}
		ck, err := keys.EntryKey(e, box)
		if err != nil {
			continue
		}
		p, err := openPayload(e, ck)
		if err != nil {
			continue
		}
		out[i] = &preopened{box: box, key: ck, payload: p}
	}
	return out
}

// ErrRelayMisbehaved wraps problems that only a faulty or hostile relay
// causes.
var ErrRelayMisbehaved = errors.New("the relay sent something it should not have")

// readable notes, in x.before, the chain ids of the entries this device
// can read.
func (x *exchange) readable() error {
	r, err := x.j.Reader()
	if err != nil {
		return err
	}
	x.before = make(map[protocol.BlobID]bool, len(r.tl.sorted))
	for _, o := range r.tl.sorted {
		x.before[o.s.Chain] = true
	}
	return nil
}

// newSince returns the newest NewShown of the partner's entries readable
// now that were not in x.before, and how many there are; it adds them to
// x.before.
func (x *exchange) newSince() ([]Entry, int, error) {
	before := x.before
	r, err := x.j.Reader()
	if err != nil {
		return nil, 0, err
	}
	r.j.mu.Lock()
	defer r.j.mu.Unlock()
	// Count what is new; build only the newest NewShown. What an
	// exchange fetched again after a repair is new to the log, not to the
	// person, up to where earlier exchanges had got (ShownSeq).
	shown := uint64(0)
	if r.j.refetching {
		shown = r.j.st.ShownSeq
	}
	var fresh []*openedEntry
	for _, o := range r.tl.sorted {
		if before[o.s.Chain] {
			continue
		}
		before[o.s.Chain] = true
		if o.s.RelaySeq != 0 && o.s.RelaySeq <= shown {
			continue
		}
		if !o.author.member.Self && !r.hidden(o) {
			fresh = append(fresh, o)
		}
	}
	n := len(fresh)
	fresh = fresh[max(0, n-NewShown):]
	out := make([]Entry, 0, len(fresh))
	for _, o := range fresh {
		e, plan := r.build(o)
		if err := r.fill(&e, plan); err != nil {
			return nil, 0, err
		}
		out = append(out, e)
	}
	return out, n, nil
}

// apply processes what arrived: joins answering this device's invites add
// the partner, and every entry this device wrote is re-boxed for devices
// that cannot read it yet. It returns who joined and how many blobs wait
// in the outbox.
func (j *Journal) apply() (joined []string, notices []Notice, pending int, err error) {
	err = j.withLock(func() error {
		var late []Notice
		joined, late, err = j.applyJoins()
		if err != nil {
			return err
		}
		// A restored journal recovers this device's own chain (once the
		// members are known), so its grants count and new blobs
		// continue it (adopt.go).
		if err := j.adoptOwnChain(); err != nil {
			return err
		}
		if notices, err = j.applyRoster(); err != nil {
			return err
		}
		if _, unreadable := j.decryptAll(j.trust()); j.st.noteChanged(unreadable) {
			if err := j.saveState(); err != nil {
				return err
			}
		}
		// An invite the roster brought from another of this person's
		// devices may open a join already here.
		more, late2, err := j.applyJoins()
		if err != nil {
			return err
		}
		joined = append(joined, more...)
		notices = append(append(notices, late...), late2...)
		if j.st.Restored != nil {
			pending = len(j.outbox())
			return nil // nothing new may be written until then
		}
		if j.st.left() != nil {
			return nil // nothing more goes out from here
		}
		if err := j.ensureGrants(); err != nil {
			return err
		}
		pending = len(j.outbox())
		return nil
	})
	return joined, notices, pending, err
}

// noteChanged raises NoticeRelayChanged for each entry among unreadable
// (as decryptAll returns them) from the relay that was changed on the way
// (see stored.changed), once per relay position, and reports whether that
// changed the state.
func (st *state) noteChanged(unreadable []*stored) bool {
	var changed []*stored
	for _, s := range unreadable {
		if s.changed && s.RelaySeq != 0 {
			changed = append(changed, s)
		}
	}
	// raise counts a position at or below the latest one recorded as
	// counted already: go up.
	sort.Slice(changed, func(a, b int) bool { return changed[a].RelaySeq < changed[b].RelaySeq })
	raised := false
	for _, s := range changed {
		raised = st.raise(Notice{Kind: NoticeRelayChanged}, s.RelaySeq) || raised
	}
	return raised
}

// leftError is ErrLeft with the day this person left.
func leftError(t time.Time) error {
	return fmt.Errorf("%w on %s", ErrLeft, t.Local().Format("2 January 2006"))
}

// checkNotLeft returns ErrLeft if this person has left the journal.
func (j *Journal) checkNotLeft() error {
	return j.withLock(func() error {
		if t := j.st.left(); t != nil {
			return leftError(*t)
		}
		return nil
	})
}

func (j *Journal) applyJoins() ([]string, []Notice, error) {
	var joined []string
	var notices []Notice
	roster := j.trust().roster
	changed := false
	warn := func(kind NoticeKind, s *stored) {
		if j.st.raise(Notice{Kind: kind}, s.RelaySeq) {
			changed = true
			if kind == NoticeLateJoin {
				// Someone the journal does not take got in on the relay:
				// said when it arrives, not only in status.
				notices = append(notices, rosterNotice(Notice{Kind: kind, Position: s.RelaySeq}))
			}
		}
	}
	known := make(map[string]bool)
	for _, m := range j.st.Members {
		known[m.JoinBlob] = true
		if m.Pending != nil {
			known[m.Pending.JoinBlob] = true
		}
	}
	for _, s := range j.order {
		if s.Header.Kind != protocol.KindJoin || known[s.Chain.String()] {
			continue
		}
		if _, ok := roster[s.Header.Author]; ok {
			continue
		}
		jb, err := protocol.ParseJoin(j.raw(s))
		if err != nil {
			continue
		}
		var inv *pendingInvite
		var keys *crypto.InviteKeys
		for i := range j.st.Invites {
			k, err := crypto.DeriveInvite([32]byte(j.st.Invites[i].Secret))
			if err == nil && k.AuthHash == jb.InviteHash {
				inv, keys = &j.st.Invites[i], k
				break
			}
		}
		if inv == nil || j.st.hasPartner() && !inv.Again {
			if j.st.hasPartner() && s.RelaySeq > j.st.pairedAt(&j.logIndex) {
				// A journal is for two; invites stop working once a
				// partner has joined.
				warn(NoticeLateJoin, s)
			}
			continue
		}
		rb, err := crypto.OpenJoin(keys, j.raw(s))
		if err != nil {
			warn(NoticeJoinUnopened, s)
			continue
		}
		rec, err := parseRecord(rb)
		if err != nil || !hasDevice(rec.Devices, s.Header.Author) || crypto.Equal(rec.Identity, j.acct.Identity.Public) || collides(rec, roster) {
			warn(NoticeJoinInvalid, s)
			continue
		}
		again := inv.Again
		// An invite works once; once a partner has joined, every other
		// invite stops working here too.
		j.st.Invites = nil
		changed = true
		known[s.Chain.String()] = true
		if !again {
			j.st.Members = append(j.st.Members, Member{Name: rec.Name, Identity: rec.Identity, Devices: rec.Devices, Joined: time.Now().UTC(), JoinBlob: s.Chain.String()})
			joined = append(joined, rec.Name)
			roster = j.trust().roster
			continue
		}
		p := j.st.partner()
		if crypto.Equal(rec.Identity, p.Identity) {
			// The same identity key: new devices of the same person, as
			// their certificates prove.
			p.Devices = append(p.Devices, rec.Devices...)
			p.Left = nil
			roster = j.trust().roster
			continue
		}
		p.Pending = &PendingIdentity{Name: rec.Name, Identity: rec.Identity, Devices: rec.Devices, JoinBlob: s.Chain.String(), Since: time.Now().UTC()}
		p.Verified = false // shown as NoticeIdentityChanged while pending
	}
	if changed {
		return joined, notices, j.saveState()
	}
	return joined, notices, nil
}

// pairedAt returns the relay position from which a journal has had both
// partners: that of the latest accepted join (the partner's, or this
// device's own when it joined). A join before it is history, such as the
// join of a partner's earlier identity, not a late answer to an invite.
// Call with the lock held.
func (st *state) pairedAt(l *logIndex) uint64 {
	var at uint64
	for _, s := range st.acceptedJoins(l) {
		at = max(at, s.RelaySeq)
	}
	me := l.signKey
	for _, s := range l.order {
		if s.Header.Kind == protocol.KindJoin && s.Header.Author == me {
			at = max(at, s.RelaySeq)
		}
	}
	return at
}

// acceptedJoins returns the join blobs held here that were accepted for
// a member or a member's pending new identity. Call with the lock held.
func (st *state) acceptedJoins(l *logIndex) []*stored {
	var out []*stored
	for _, m := range st.Members {
		ids := []string{m.JoinBlob}
		if m.Pending != nil {
			ids = append(ids, m.Pending.JoinBlob)
		}
		for _, id := range ids {
			if s := l.chainOfHex(id); s != nil { // none for "": nobody accepted yet
				out = append(out, s)
			}
		}
	}
	return out
}

// partner returns the other member, or nil. Call with the lock held.
func (st *state) partner() *Member {
	for i := range st.Members {
		if !st.Members[i].Self {
			return &st.Members[i]
		}
	}
	return nil
}

func (st *state) hasPartner() bool { return st.partner() != nil }

// collides reports whether any of r's devices reuses a signing or box key
// already in the roster.
func collides(r *memberRecord, roster map[[32]byte]*rosterDevice) bool {
	boxes := make(map[[32]byte]bool)
	for _, d := range roster {
		boxes[d.cert.Box] = true
	}
	for _, raw := range r.Devices {
		c, err := crypto.ParseDeviceCert(raw)
		if err != nil {
			return true
		}
		if _, ok := roster[c.Sign]; ok || boxes[c.Box] {
			return true
		}
	}
	return false
}

// ensureGrants re-boxes the content key of every entry this device wrote
// for every current device that is neither a recipient nor granted yet, so
// a partner who joins later reads everything written before. For the other
// current devices of this person it also hands over every entry it reads
// that others wrote (the partner's, and this person's other devices'), so
// a device linked later reads the whole history without waiting for
// anyone else to sync (§13 of docs/protocol.md).
//
// An entry is sealed to every current device when it is written, so only
// a change of members or of the answers held back (reveal-together) can
// leave one short, or an entry indexed earlier that opened only later:
// while none of that happened, only the entries indexed since the last
// check are looked at (grantsDone, kept in the checkpoint). Adopting this
// device's own entries after a restore voids the check.
func (j *Journal) ensureGrants() error {
	todo, key := j.owedGrants(j.trust())
	targets := make([][32]byte, 0, len(todo))
	for to := range todo {
		targets = append(targets, to)
	}
	sort.Slice(targets, func(a, b int) bool { return string(targets[a][:]) < string(targets[b][:]) })
	for _, to := range targets {
		items := todo[to]
		for len(items) > 0 {
			n := min(len(items), protocol.MaxGrantItems)
			blob, err := j.acct.keys.SealGrant(rand.Reader, j.nextHeader(j.id, protocol.KindGrant), to, items[:n])
			if err != nil {
				return err
			}
			if err := j.writeBlob(blob); err != nil {
				return err
			}
			items = items[n:]
		}
	}
	j.grantsChecked(key)
	return nil
}

// owedGrants returns, for each current device's box key, the content keys
// it is owed by this device (see ensureGrants), and the key to note the
// check under once they are granted (grantsChecked).
func (m *openIndex) owedGrants(t *trust) (map[[32]byte][]crypto.GrantInput, grantsKey) {
	me := m.store.signKey
	held := m.heldAnswers(t) // opens what is new, too
	key := grantsKey{trust: t.key.digest, held: heldDigest(held)}
	start := 0
	if d := m.grantsDone; d.valid && d.trust == key.trust && d.held == key.held && d.adoptions == m.store.adoptions {
		start = min(d.upTo, len(m.store.order))
	}
	handTo := m.handoverTargets(t)
	// The entries already granted, by key id of the device they were
	// granted to: ours, by grants written here, and handed over, by a
	// grant from any current device of this person.
	var ours, handed map[[protocol.KeyIDSize]byte]map[protocol.BlobID]bool
	index := func() {
		if ours != nil {
			return
		}
		ours = make(map[[protocol.KeyIDSize]byte]map[protocol.BlobID]bool)
		handed = make(map[[protocol.KeyIDSize]byte]map[protocol.BlobID]bool)
		for _, s := range m.store.order {
			if s.Header.Kind != protocol.KindGrant {
				continue
			}
			var into map[[protocol.KeyIDSize]byte]map[protocol.BlobID]bool
			switch rd, ok := t.accepts(s); {
			case s.Header.Author == me && s.Local:
				into = ours
			case s.Header.Author == me:
				// A grant from the relay that claims to be ours must not
				// stop us re-boxing for real.
				continue
			case ok && rd.current() && t.handsOver(s.Header.Author):
				into = handed
			default:
				continue
			}
			g, err := protocol.ParseGrant(m.store.raw(s))
			if err != nil {
				continue
			}
			if into[g.KeyID] == nil {
				into[g.KeyID] = make(map[protocol.BlobID]bool)
			}
			for _, it := range g.Items {
				into[g.KeyID][it.Entry] = true
			}
		}
	}
	grantedTo := func(kid [protocol.KeyIDSize]byte, c protocol.BlobID) bool {
		index()
		return ours[kid][c]
	}
	handedTo := func(kid [protocol.KeyIDSize]byte, c protocol.BlobID) bool {
		index()
		return ours[kid][c] || handed[kid][c]
	}
	// An entry its author device retracted is re-boxed for no one: its
	// words were withdrawn (and one retracted before it was sent was kept
	// to its author's device alone).
	withdrawn := m.withdrawn(t)
	todo := make(map[[32]byte][]crypto.GrantInput)
	rcpts := t.recipients
	for _, s := range m.store.order[start:] {
		if s.Header.Kind != protocol.KindEntry || s.Purged || held[s.Chain] || withdrawn[withdrawal{s.Header.Author, s.Chain}] {
			continue
		}
		mine := s.Header.Author == me && s.Local
		var o *openedEntry
		if !mine {
			// Someone else's: handed over to this person's other
			// devices, if this device reads it.
			if len(handTo) == 0 {
				continue
			}
			if o = m.openedOf(s.Chain); o == nil || o.s != s {
				continue
			}
			if _, ok := t.accepts(s); !ok {
				continue
			}
		}
		e, err := protocol.ParseEntry(m.store.raw(s))
		if err != nil {
			continue
		}
		has := make(map[[protocol.KeyIDSize]byte]bool, len(e.Recipients))
		for _, r := range e.Recipients {
			has[r.KeyID] = true
		}
		if !mine {
			for _, to := range handTo {
				kid := crypto.KeyID(to)
				if has[kid] || handedTo(kid, s.Chain) {
					continue
				}
				todo[to] = append(todo[to], crypto.GrantInput{Entry: s.Chain, Key: crypto.ContentKey{Key: o.key, Hash: e.ContentHash()}})
			}
			continue
		}
		// A record sealed to the person's own devices only stays theirs:
		// it is re-boxed for a new device of theirs, never for the
		// partner's.
		// One whose kind is not known here (it did not open) is kept to
		// the person's devices too: fail closed.
		targets := rcpts
		if o := m.openedOf(s.Chain); o == nil || ownOnly[o.payload.Kind] {
			targets = t.own
		}
		var ck *crypto.ContentKey
		for _, to := range targets {
			kid := crypto.KeyID(to)
			if has[kid] || grantedTo(kid, s.Chain) {
				continue
			}
			if ck == nil {
				k, err := m.keys.EntryKey(e, m.ownBox)
				if err != nil {
					break // not openable by its own author: nothing to re-box
				}
				ck = &k
			}
			todo[to] = append(todo[to], crypto.GrantInput{Entry: s.Chain, Key: *ck})
		}
	}
	return todo, key
}

// handoverTargets returns the box keys of this person's other current
// devices, certified by this person's identity key, that this device hands
// history over to: none unless this device is itself such a device.
func (m *openIndex) handoverTargets(t *trust) [][32]byte {
	me := m.store.signKey
	if rd, ok := t.roster[me]; !ok || !rd.current() || !t.handsOver(me) {
		return nil
	}
	var to [][32]byte
	for sign, rd := range t.roster {
		if sign != me && rd.cert.Box != m.ownBox && rd.current() && t.handsOver(sign) {
			to = append(to, rd.cert.Box)
		}
	}
	slices.SortFunc(to, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return to
}

// grantsChecked notes that every own entry in the store was checked under
// key, and what it owed is granted.
func (m *openIndex) grantsChecked(key grantsKey) {
	key.valid, key.upTo, key.adoptions = true, len(m.store.order), m.store.adoptions
	m.grantsDone = key
}

// grantsKey is what ensureGrants last checked every own entry for: the
// members (trust digest), the answers held back, and the log order up to
// upTo, with the store's adoptions as they were then (an adoption makes
// an earlier blob this device's own).
type grantsKey struct {
	valid       bool
	trust, held [32]byte
	upTo        int
	adoptions   int
}

// heldDigest names a set of held answers.
func heldDigest(held map[protocol.BlobID]bool) [32]byte {
	ids := make([]protocol.BlobID, 0, len(held))
	for id := range held {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b protocol.BlobID) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	for _, id := range ids {
		h.Write(id[:])
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// purgeRetracted asks the relay to drop the bytes of every entry this
// device wrote and then retracted, once both are on the relay. A relay that
// does not know purge (an older one) is left alone: the retraction still
// hides the words in every client.
func (x *exchange) purgeRetracted(ctx context.Context) error {
	j, c := x.j, x.c
	type target struct {
		id, chain protocol.BlobID
		ids       []protocol.BlobID // what the relay may hold it as
	}
	var todo []target
	err := j.withLock(func() error {
		// Every chain id the sent retractions name, then one walk of
		// the log for the blobs to purge.
		opened, _ := j.decryptAll(j.trust())
		named := make(map[protocol.BlobID]bool)
		for _, o := range opened {
			if o.payload.Kind != KindRetraction || !o.s.Local || o.s.RelaySeq == 0 {
				continue
			}
			for w := range noteWithdrawn(nil, o) {
				named[w.chain] = true
			}
		}
		if len(named) == 0 {
			return nil
		}
		for _, t := range j.order {
			if !named[t.Chain] || !t.Local || t.Purged || t.RelaySeq == 0 || j.purgeDone[t.ID] {
				continue
			}
			// An entry retracted before it was sent went out kept to
			// this device's slot (push): the relay holds it under that
			// copy's id. The bytes as written may be there too (a put
			// whose ok was lost); either may be missing.
			ids := []protocol.BlobID{t.ID}
			if raw := j.raw(t); raw != nil && t.Header.Kind == protocol.KindEntry {
				if k, err := protocol.KeepSlots(raw, crypto.KeyID(j.ownBox)); err == nil {
					ids = append([]protocol.BlobID{protocol.IDOf(k)}, ids...)
				}
			}
			todo = append(todo, target{t.ID, t.Chain, ids})
		}
		return nil
	})
	if err != nil || len(todo) == 0 {
		return err
	}
	var recs [][]byte
next:
	for _, t := range todo {
		for _, id := range t.ids {
			_, err := c.request(ctx, func(n uint64) any {
				return &protocol.Purge{Type: protocol.TypePurge, ID: n, Journal: j.id, BlobID: id[:], ChainID: t.chain[:]}
			})
			switch {
			case errors.Is(err, protocol.ErrMalformed):
				continue next // an older relay without purge: try again on a later sync
			case errors.Is(err, protocol.ErrNotFound):
				// The relay never had it as this: nothing to purge.
			case err != nil:
				return err
			}
		}
		recs = append(recs, record(recPurge, t.id[:]))
	}
	if len(recs) == 0 {
		return nil
	}
	return j.withLock(func() error { return j.appendRecords(recs...) })
}

// heldAnswers returns this device's reveal-together answers whose prompt
// the partner has not answered yet: their keys must not be re-boxed for
// anyone else. Call with the lock held.
func (m *openIndex) heldAnswers(t *trust) map[protocol.BlobID]bool {
	opened, _ := m.decryptAll(t)
	partnerAnswered := make(map[string]bool)
	for _, o := range opened {
		if o.payload.Kind != KindTogetherMark || o.author.member.Self {
			continue
		}
		// The mark must name a sealed answer the partner's device really
		// wrote (which this device holds but cannot open yet).
		var held protocol.BlobID
		if _, err := hex.Decode(held[:], []byte(o.payload.Held)); err != nil {
			continue
		}
		if a := m.store.chainOf(held); a != nil && !a.Purged && a.Header.Author == o.s.Header.Author && a.Header.Kind == protocol.KindEntry {
			partnerAnswered[o.payload.Ref] = true
		}
	}
	held := make(map[protocol.BlobID]bool)
	for _, o := range opened {
		if o.payload.Kind == KindTogetherAnswer && o.author.member.Self && !partnerAnswered[o.payload.Ref] {
			held[o.s.Chain] = true
		}
	}
	return held
}

// Event is something `sync --watch` reports.
type Event struct {
	Connected    bool          // the connection is up and caught up
	Disconnected error         // the connection failed; RetryIn says when we try again
	RetryIn      time.Duration //
	Pushed       int           // entries from this device the relay acknowledged
	New          []Entry       // entries from the partner that arrived (the newest NewShown)
	NewCount     int           // how many arrived
	Joined       []string      // partners who joined
	Notices      []Notice      // roster changes (see SyncResult.Notices)
	// Repairs is what the watcher healed in the journal's local files
	// while it ran (see Journal.Repairs), said as it happens. If the
	// repair set aside what the relay holds, the watcher connects again
	// at once to fetch it; the Connected event after that has Refetched.
	Repairs []Repair
	// Refetched, on a Connected event, says that what damage here had
	// set aside was fetched again from the relay.
	Refetched bool
}

// Watch stays connected to the relay until ctx is done: it pushes whatever
// any process on this home writes, shows what arrives as it arrives, and
// reconnects with jittered exponential backoff (at most maxReconnectWait)
// when the relay goes away. Every failed attempt is an event with
// Disconnected set; the caller decides how much of that to say.
func (j *Journal) Watch(ctx context.Context, onEvent func(Event)) error {
	backoff := time.Second
	said := 0           // repairs sent as events (those before the watch too)
	refetching := false // connecting again at once to fetch what damage here set aside
	for {
		caughtUp := false // set by watch's own goroutine, which sends Connected
		x := &exchange{j: j, repairsSaid: said}
		err := j.noteNotServed(x.watch(ctx, func(ev Event) {
			if ev.Connected {
				caughtUp = true
				refetching = false
			}
			onEvent(ev)
		}))
		said = x.repairsSaid
		if ctx.Err() != nil {
			return nil
		}
		again := false // a refetch right after a refetch: damage keeps coming
		if errors.Is(err, errRefetch) {
			// Not a failure: connect again at once, to ask the relay
			// for what was set aside (subscribe).
			again, refetching = refetching && !caughtUp, true
			if !again {
				continue
			}
		}
		if permanent(err) {
			return err // retrying cannot help; the caller says why
		}
		if caughtUp {
			backoff = time.Second // it was a good connection: start over
		}
		wait := backoff/2 + mrand.N(backoff/2+1)
		if !again {
			onEvent(Event{Disconnected: err, RetryIn: wait})
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, maxReconnectWait)
	}
}

// maxReconnectWait caps the watcher's backoff, so it notices a relay that
// comes back within a few seconds. A journal has two people and a few
// devices, so a relay that restarts meets a handful of watchers retrying
// every two to four seconds (with jitter), which costs it nothing.
const maxReconnectWait = 4 * time.Second

// permanent reports whether a watch failure will not go away by retrying:
// this device is no longer a member, the person left, or the relay at the
// address is not the journal's relay.
func permanent(err error) bool {
	return errors.Is(err, protocol.ErrNotMember) || errors.Is(err, ErrLeft) || errors.Is(err, ErrRelayChanged)
}

// outboxPoll is how often the watcher looks for entries other processes
// wrote on this home, and for damage to the journal's local files.
const outboxPoll = 500 * time.Millisecond

// errRefetch ends a watcher's connection so that it subscribes again: a
// repair of the log set aside items the relay holds (state.Refetch,
// state.RefetchFrom), and a live subscription would never send them
// again. A one-shot sync fetches them the same way (subscribe).
var errRefetch = errors.New("the journal's log was repaired: fetching again what it lost")

// damaged reports, for a watcher, what the journal repaired since it last
// asked, to be sent as an Event, and whether a repair set aside items the
// relay holds, so the connection must subscribe again. Call with the lock
// held.
func (x *exchange) damaged() (reps []Repair, refetch bool) {
	j := x.j
	if len(j.repairs) > x.repairsSaid {
		reps = append(reps, j.repairs[x.repairsSaid:]...)
		x.repairsSaid = len(j.repairs)
	}
	// settle clears what this connection's subscribe asked for; what is
	// left was set aside since (by this process or another on the home).
	refetch = j.st.Refetch && !j.refetching || j.st.RefetchFrom != 0 && j.st.RefetchFrom != x.refetchFrom
	return reps, refetch
}

// checkDamage sends what the journal repaired since the watcher last
// asked, and returns errRefetch if the connection must subscribe again.
func (x *exchange) checkDamage(onEvent func(Event)) error {
	var reps []Repair
	var refetch bool
	if err := x.j.withLock(func() error { reps, refetch = x.damaged(); return nil }); err != nil {
		return err
	}
	return x.sayDamage(onEvent, reps, refetch)
}

// sayDamage sends reps, what damaged returned, and returns errRefetch if
// refetch says the connection must subscribe again.
func (x *exchange) sayDamage(onEvent func(Event), reps []Repair, refetch bool) error {
	if len(reps) > 0 {
		onEvent(Event{Repairs: reps})
	}
	if refetch {
		return errRefetch
	}
	return nil
}

// watch dials and stays connected until ctx is done or the connection
// fails (see Watch).
func (x *exchange) watch(ctx context.Context, onEvent func(Event)) error {
	j := x.j
	if err := j.checkNotLeft(); err != nil {
		return err
	}
	c, err := j.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	x.c = c
	// Sends run in their own goroutine so the read loop is always
	// drained; kick asks for one.
	sendReq := make(chan struct{}, 1)
	sendErr := make(chan error, 1)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			select {
			case <-sctx.Done():
				return
			case <-sendReq:
			}
			n, err := x.send(sctx)
			if n > 0 {
				onEvent(Event{Pushed: n})
			}
			if err != nil {
				select {
				case sendErr <- err:
				default:
				}
				return
			}
		}
	}()
	kick := func() error {
		select {
		case sendReq <- struct{}{}:
		default:
		}
		return nil
	}
	kick()
	if err := x.readable(); err != nil {
		return err
	}
	// The same exchange as Sync: history in batches until the relay has
	// caught up, then settle; then each live blob as it comes.
	report := func() error {
		st, err := x.settle(kick)
		if len(st.New) > 0 || len(st.Joined) > 0 || len(st.Notices) > 0 {
			onEvent(Event{New: st.New, NewCount: st.NewCount, Joined: st.Joined, Notices: st.Notices})
		}
		return err
	}
	if _, err := x.pull(ctx); err != nil {
		return err
	}
	if err := report(); err != nil {
		return err
	}
	if err := x.checkDamage(onEvent); err != nil {
		return err
	}
	// From here on, whatever is written on this home is sent within a
	// moment; a write says so (Watched).
	release, err := j.holdWatching()
	if err != nil {
		return err
	}
	defer release()
	onEvent(Event{Connected: true, Refetched: x.refetched})
	tick := time.NewTicker(outboxPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-sendErr:
			return err
		case <-tick.C:
			// One look under the lock: entries other processes wrote,
			// and damage found and mended since the last look.
			var pending int
			var reps []Repair
			var refetch bool
			if err := j.withLock(func() error {
				pending = len(j.outbox())
				reps, refetch = x.damaged()
				return nil
			}); err != nil {
				return err
			}
			if err := x.sayDamage(onEvent, reps, refetch); err != nil {
				return err
			}
			if pending > 0 {
				kick()
			}
		case m, ok := <-c.pushes:
			if !ok {
				return c.readErr()
			}
			if b, ok := m.(*protocol.Blob); ok {
				if _, err := x.receive(b); err != nil {
					return err
				}
				if err := report(); err != nil {
					return err
				}
			}
		}
	}
}
