package servertest

import (
	"context"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// Liar is a [server.Store] that lies on purpose, for testing clients
// against a relay that misbehaves. It wraps the relay's real store: every
// write (create, invite, redeem, put, purge) goes through unchanged, so the
// relay stores and acknowledges honestly, but what it tells subscribers a
// journal holds is a [View] of the honest log chosen by the test. Views can
// be switched at any time and set per device, so the two partners can be
// shown two different histories.
//
// The relay code serving the lies is the real one ([server.Server]), so a
// lie is limited to what a relay can send through it: each subscription
// gets blobs at contiguous, increasing seqs. The Liar numbers whatever a
// view returns 1, 2, 3, … and reports the count as the journal's last seq.
// Lies outside that (a seq not above the cursor, a push for another
// journal) need a client-level test.
//
// Its methods are safe for concurrent use.
type Liar struct {
	t testing.TB

	mu    sync.Mutex
	store server.Store // the honest store; replaced when the relay restarts
	all   View         // for every device without its own view; nil: honest
	per   map[[32]byte]View
	// anyone: redeem without the two-person rule, as relays did before
	// it (AdmitAnyone).
	anyone bool
	// who maps a connection's context to the device it authenticated as,
	// learned from the store calls that name the device.
	who map[context.Context][32]byte
}

// NewLyingServer starts a real relay whose store is wrapped in a [Liar].
// Until a view is set the relay is honest. It is stopped when the test
// ends; [Server.Store] returns the honest store underneath.
func NewLyingServer(t testing.TB) (*Server, *Liar) {
	t.Helper()
	l := &Liar{t: t, per: make(map[[32]byte]View), who: make(map[context.Context][32]byte)}
	s := newServer(t, server.Config{}, func(st server.Store) server.Store {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.store = st
		return l
	})
	return s, l
}

// A View rewrites a journal's log as the relay shows it. It receives the
// whole honest log (seqs 1..n, purged records as stored; its slices may be
// changed) and returns the blobs to serve, in order. Their Seq fields are
// ignored: the Liar numbers them from 1.
//
// A client's cursor is a position in what it was served. Switching views
// keeps a client consistent only if what it already received keeps its
// place (for example when the new view adds at the end); otherwise the
// client skips or re-receives blobs, which may be the point of the test.
type View func(j protocol.JournalID, log []server.StoredBlob) []server.StoredBlob

// Serve makes the relay show every device without a view of its own the
// log through v. A nil v is the honest log.
func (l *Liar) Serve(v View) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = v
}

// ServeTo makes the relay show device the log through v, whatever Serve
// says. A nil v removes the device's own view.
func (l *Liar) ServeTo(device [32]byte, v View) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v == nil {
		delete(l.per, device)
		return
	}
	l.per[device] = v
}

// AdmitAnyone makes the relay admit every partner invite, as relays did
// before the two-person rule, or (false) keep the rule again.
func (l *Liar) AdmitAnyone(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.anyone = on
}

// Honest removes every view.
func (l *Liar) Honest() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = nil
	clear(l.per)
}

func (l *Liar) honest() server.Store {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.store
}

// learn remembers that the connection with ctx acts for device. The relay
// passes each connection's context to every store call and checks
// membership (or creates) before it reads.
func (l *Liar) learn(ctx context.Context, device [32]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.who[ctx]; ok {
		return
	}
	l.who[ctx] = device
	context.AfterFunc(ctx, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.who, ctx)
	})
}

func (l *Liar) viewFor(ctx context.Context) View {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, known := l.who[ctx]
	if v, ok := l.per[d]; known && ok {
		return v
	}
	if !known && len(l.per) > 0 {
		l.t.Errorf("servertest: the liar cannot tell which device is reading, so per-device views cannot apply")
	}
	return l.all
}

// served is the log as v shows it, numbered from 1.
func (l *Liar) served(ctx context.Context, j protocol.JournalID, v View) ([]server.StoredBlob, error) {
	var log []server.StoredBlob
	for {
		bs, err := l.honest().Read(ctx, j, uint64(len(log)), 1024)
		if err != nil {
			return nil, err
		}
		if len(bs) == 0 {
			break
		}
		log = append(log, bs...)
	}
	out := v(j, log)
	for i := range out {
		out[i].Seq = uint64(i + 1)
	}
	return out, nil
}

// Read serves the view of the reading device.
func (l *Liar) Read(ctx context.Context, j protocol.JournalID, after uint64, max int) ([]server.StoredBlob, error) {
	v := l.viewFor(ctx)
	if v == nil {
		return l.honest().Read(ctx, j, after, max)
	}
	out, err := l.served(ctx, j, v)
	if err != nil || after >= uint64(len(out)) {
		return nil, err
	}
	out = out[after:]
	return out[:min(len(out), max)], nil
}

// LastSeq is the length of the reading device's view.
func (l *Liar) LastSeq(ctx context.Context, j protocol.JournalID) (uint64, error) {
	v := l.viewFor(ctx)
	if v == nil {
		return l.honest().LastSeq(ctx, j)
	}
	out, err := l.served(ctx, j, v)
	return uint64(len(out)), err
}

// The rest is honest.

func (l *Liar) RelayID(ctx context.Context) (string, error) { return l.honest().RelayID(ctx) }

func (l *Liar) CreateJournal(ctx context.Context, j protocol.JournalID, device [32]byte) error {
	l.learn(ctx, device)
	return l.honest().CreateJournal(ctx, j, device)
}

func (l *Liar) IsMember(ctx context.Context, j protocol.JournalID, device [32]byte) (bool, error) {
	l.learn(ctx, device)
	return l.honest().IsMember(ctx, j, device)
}

func (l *Liar) PutInvite(ctx context.Context, inv server.Invite) error {
	return l.honest().PutInvite(ctx, inv)
}

// UpdateMembers passes through: the relay's own rules apply.
func (l *Liar) UpdateMembers(ctx context.Context, j protocol.JournalID, fn func(*server.Members) error) error {
	return l.honest().UpdateMembers(ctx, j, fn)
}

// RedeemInvite passes through, without the two-person rule while
// AdmitAnyone is set: the rule sees every partner invite as one made
// again, which the rule lets through.
func (l *Liar) RedeemInvite(ctx context.Context, authHash [32]byte, now time.Time, fn func(server.Invite, *server.Members) error) (server.Invite, error) {
	l.mu.Lock()
	anyone := l.anyone
	l.mu.Unlock()
	return l.honest().RedeemInvite(ctx, authHash, now, func(inv server.Invite, m *server.Members) error {
		if anyone && inv.Kind == server.InvitePartner {
			inv.Kind = server.InviteAgain
		}
		return fn(inv, m)
	})
}

func (l *Liar) Append(ctx context.Context, j protocol.JournalID, blob []byte) (uint64, protocol.BlobID, bool, error) {
	return l.honest().Append(ctx, j, blob)
}

// StartAppend passes through to the honest store, so the relay pipelines
// puts to a Liar as it does to its real store. Like Append, it is no lie:
// views apply to what subscribers read, not to what is stored.
func (l *Liar) StartAppend(ctx context.Context, j protocol.JournalID, blob []byte) *server.PendingAppend {
	return l.honest().StartAppend(ctx, j, blob)
}

func (l *Liar) HasBlob(ctx context.Context, j protocol.JournalID, id protocol.BlobID) (bool, error) {
	return l.honest().HasBlob(ctx, j, id)
}

// JournalUsage passes through to the honest store: quotas are not a lie.
func (l *Liar) JournalUsage(ctx context.Context, j protocol.JournalID) (int64, error) {
	return l.honest().JournalUsage(ctx, j)
}

func (l *Liar) Check(ctx context.Context) error { return l.honest().Check(ctx) }

func (l *Liar) Purge(ctx context.Context, j protocol.JournalID, id protocol.BlobID, device [32]byte, chain protocol.BlobID) (uint64, error) {
	return l.honest().Purge(ctx, j, id, device, chain)
}

// Close does nothing: the test's Server owns and closes the honest store.
func (l *Liar) Close() error { return nil }

// Match picks blobs out of a log.
type Match func(b server.StoredBlob) bool

// ChainIs matches the blob, or purged record, whose chain id is id: 64 hex
// digits, as clients print entry ids.
func ChainIs(id string) Match {
	want, err := hex.DecodeString(id)
	return func(b server.StoredBlob) bool {
		if err != nil || len(want) != len(protocol.BlobID{}) {
			return false
		}
		if b.Purged {
			_, c, err := protocol.ParsePurged(b.Blob)
			return err == nil && c == protocol.BlobID(want)
		}
		return protocol.ChainID(b.Blob) == protocol.BlobID(want)
	}
}

// ChainPrefix matches the blob, or purged record, whose chain id starts
// with prefix (hex, as clients print entry ids).
func ChainPrefix(prefix string) Match {
	return func(b server.StoredBlob) bool {
		if b.Purged {
			_, c, err := protocol.ParsePurged(b.Blob)
			return err == nil && strings.HasPrefix(c.String(), prefix)
		}
		return strings.HasPrefix(protocol.ChainID(b.Blob).String(), prefix)
	}
}

// AnyOf matches a blob any of ms matches.
func AnyOf(ms ...Match) Match {
	return func(b server.StoredBlob) bool {
		return slices.ContainsFunc(ms, func(m Match) bool { return m(b) })
	}
}

// Drop leaves out every blob m matches: they never arrive.
func Drop(m Match) View {
	return func(_ protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		return slices.DeleteFunc(log, m)
	}
}

// Later holds back every blob m matches and serves them after the rest,
// in their order: a drop made good late, or a reordering across syncs.
// They stay last as the log grows, so blobs stored later are served
// before them, at seqs a client that already received the late ones has
// passed.
func Later(m Match) View {
	return func(_ protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		var late []server.StoredBlob
		for _, b := range log {
			if m(b) {
				late = append(late, b)
			}
		}
		return append(slices.DeleteFunc(log, m), late...)
	}
}

// Strip removes the recipient slots with key id kid (protocol.md §10)
// from every entry m matches, and lowers the recipient count to match:
// the entry then looks like one its author never sealed to that device.
// Its chain id does not change (it leaves out the table); its blob id
// does. An entry whose only slots are kid's is left as it is, since a
// count of zero does not parse.
func Strip(kid [protocol.KeyIDSize]byte, m Match) View {
	return func(_ protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		for i, b := range log {
			if b.Purged || !m(b) {
				continue
			}
			if out := stripSlot(b.Blob, kid); out != nil {
				log[i] = server.StoredBlob{Blob: out}
			}
		}
		return log
	}
}

// stripSlot returns entry blob without kid's slots, or nil if it is not
// an entry, has none, or has nothing else.
func stripSlot(blob []byte, kid [protocol.KeyIDSize]byte) []byte {
	e, err := protocol.ParseEntry(blob)
	if err != nil {
		return nil
	}
	slots := blob[protocol.HeaderSize+protocol.NonceSize+1:]
	var keep [][]byte
	for i, r := range e.Recipients {
		if r.KeyID != kid {
			keep = append(keep, slots[i*protocol.RecipientSize:(i+1)*protocol.RecipientSize])
		}
	}
	if len(keep) == len(e.Recipients) || len(keep) == 0 {
		return nil
	}
	out := slices.Clone(blob[:protocol.HeaderSize+protocol.NonceSize])
	out = append(out, byte(len(keep)))
	for _, k := range keep {
		out = append(out, k...)
	}
	return append(out, e.Ciphertext...)
}

// Swap exchanges the positions of the first blob a matches and the first
// blob b matches.
func Swap(a, b Match) View {
	return func(_ protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		i, k := slices.IndexFunc(log, a), slices.IndexFunc(log, b)
		if i >= 0 && k >= 0 {
			log[i], log[k] = log[k], log[i]
		}
		return log
	}
}

// Twice serves every blob m matches a second time, right after itself: a
// replay at a new seq.
func Twice(m Match) View {
	return func(_ protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		var out []server.StoredBlob
		for _, b := range log {
			out = append(out, b)
			if m(b) {
				out = append(out, b)
			}
		}
		return out
	}
}

// Rewind serves the whole log and then, again, everything after its first
// from blobs: history from an earlier point, replayed at new seqs.
func Rewind(from int) View {
	return func(_ protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		return append(log, log[min(from, len(log)):]...)
	}
}

// RollBack serves only the first keep blobs: the journal as it was at an
// older point, as a relay restored from a backup would.
func RollBack(keep int) View {
	return func(_ protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		return log[:min(keep, len(log))]
	}
}

// Inject serves blobs the relay never stored, right after the first at
// blobs of the log (after all of them, while it holds fewer). A fixed at
// keeps them in place as the log grows.
func Inject(at int, blobs ...[]byte) View {
	return func(_ protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		var in []server.StoredBlob
		for _, b := range blobs {
			in = append(in, server.StoredBlob{Blob: slices.Clone(b)})
		}
		return slices.Insert(log, min(at, len(log)), in...)
	}
}

// Replace serves f(blob) in place of every blob m matches (f gets a copy).
func Replace(m Match, f func(blob []byte) []byte) View {
	return func(_ protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		for i, b := range log {
			if m(b) {
				log[i] = server.StoredBlob{Blob: f(slices.Clone(b.Blob))}
			}
		}
		return log
	}
}

// Then applies views in order, each to what the one before served.
func Then(vs ...View) View {
	return func(j protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		for _, v := range vs {
			log = v(j, log)
		}
		return log
	}
}

// In applies v to journal j only; other journals are served honestly.
func In(j protocol.JournalID, v View) View {
	return func(jj protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		if jj != j {
			return log
		}
		return v(jj, log)
	}
}
