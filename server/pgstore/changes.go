package pgstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// The change feed ([server.ChangeFeed]): how a put on one relay reaches
// subscribers on the others.
//
// After each group commit, the store's notifier sends one NOTIFY on the
// channel kintsugi_changes naming the journals the group appended to and
// their new last sequence numbers; a device removal sends the removed
// devices. It is sent after the commit, from a goroutine of its own, and
// never inside the append transaction: NOTIFY takes a lock that every
// notifying commit in the database waits for (held by the appends, it
// halved ingest when this was planned; sent after the commit, its cost
// is lost in the noise of kintsugi-bench's ingest). Commits that end while a NOTIFY is on its way are
// named together in the next one, so a busy relay sends fewer NOTIFYs
// than it commits groups. The notifying transaction commits with
// synchronous_commit off: a lost notification is covered below, so it
// need not wait for the disk.
//
// Each store that a relay watches keeps one connection of its own,
// outside the pool, in LISTEN on that channel, and hands what it hears to
// the relay. A payload is one line of space-separated fields:
//
//	k1 ORIGIN a JOURNAL:SEQ JOURNAL:SEQ …    appended (journal in hex, seq in decimal)
//	k1 ORIGIN r DEVICE DEVICE …              devices removed (hex)
//
// ORIGIN is the notifying store's random id; a store skips its own (its
// relay has woken its subscribers itself). A payload it cannot read
// (from a newer relay, say) makes it wake every subscription.
//
// Notifications can be lost: a relay can crash between its commit and
// its NOTIFY, and the listening connection can drop (the database
// restarts, an operator ends it). So on every connect of the listener,
// the first one included, the relay wakes every subscription, which reads
// the store after its cursor, and, on a reconnect, cuts off the devices
// removed since shortly before the previous connect; and every Config.PollInterval (10 s) the
// store reads the heads of the journals the relay has subscriptions to
// and reports them (the relay wakes only those that moved). Extra
// wake-ups cost a read and send nothing twice.

// changeChannel is the NOTIFY channel.
const changeChannel = "kintsugi_changes"

// maxPayload bounds one notification's payload; PostgreSQL's limit is
// 8000 bytes.
const maxPayload = 7800

// Timings of the feed.
const (
	// listenRetryMin and listenRetryMax bound the wait before connecting
	// the listener again: a listener lost while the database answers is
	// back, and has woken every subscription, within about a second.
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = time.Second
	// notifyRetry is the wait before sending again a notification that
	// failed.
	notifyRetry = 500 * time.Millisecond
	// closeFlush bounds sending the last notification at Close.
	closeFlush = 2 * time.Second
)

// feed is a store's change feed: the notifier (always running while the
// store is open) and, once the store is watched, the listener and poller.
type feed struct {
	st     *Store
	origin string // this store's id in notifications; static
	log    *slog.Logger
	poll   time.Duration // how often the poller reads heads; static

	ctx  context.Context // the notifier's; canceled by close
	stop context.CancelFunc
	wg   sync.WaitGroup // the notifier

	// The listener's and poller's, canceled by stopWatching; they
	// never take the store's lock, which Close holds while it waits
	// for them.
	wctx  context.Context
	wstop context.CancelFunc
	wwg   sync.WaitGroup

	// Notifier. pending and removed are what the next NOTIFY names.
	mu      sync.Mutex
	pending map[protocol.JournalID]uint64 // guarded by mu
	removed [][32]byte                    // guarded by mu
	wake    chan struct{}                 // capacity 1: something is pending

	// Listener and poller, started by the first watch.
	startOnce sync.Once
	wmu       sync.Mutex
	watchers  map[*watch]struct{} // guarded by wmu
	pid       atomic.Uint32       // the listening session's process id, 0 while none
}

// watch is one relay watching the store.
type watch struct{ w server.ChangeWatcher }

func newFeed(st *Store, log *slog.Logger, poll time.Duration) *feed {
	f := &feed{
		st:       st,
		poll:     poll,
		origin:   hex.EncodeToString(randomBytes(8)),
		log:      log,
		pending:  make(map[protocol.JournalID]uint64),
		wake:     make(chan struct{}, 1),
		watchers: make(map[*watch]struct{}),
	}
	f.ctx, f.stop = context.WithCancel(context.Background())
	f.wctx, f.wstop = context.WithCancel(context.Background())
	f.wg.Go(f.notifyLoop)
	return f
}

// stopWatching stops the listener and the poller.
func (f *feed) stopWatching() {
	f.wstop()
	f.wwg.Wait()
}

// close stops the notifier, which first sends what is pending, within
// closeFlush. The pool must still be open, and no commit may come after.
func (f *feed) close() {
	f.stop()
	f.wg.Wait()
}

// appended records that a group commit moved heads, for the next NOTIFY.
// It never blocks.
func (f *feed) appended(heads map[protocol.JournalID]*head) {
	f.mu.Lock()
	n := 0
	for j, h := range heads {
		if h.moved && uint64(h.lastSeq) > f.pending[j] {
			f.pending[j] = uint64(h.lastSeq)
			n++
		}
	}
	f.mu.Unlock()
	if n > 0 {
		f.signal()
	}
}

// devicesRemoved records removed devices for the next NOTIFY.
func (f *feed) devicesRemoved(devices [][32]byte) {
	if len(devices) == 0 {
		return
	}
	f.mu.Lock()
	f.removed = append(f.removed, devices...)
	f.mu.Unlock()
	f.signal()
}

func (f *feed) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *feed) notifyLoop() {
	for {
		select {
		case <-f.wake:
		case <-f.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), closeFlush)
			defer cancel()
			if err := f.notify(ctx); err != nil {
				f.log.Debug("the last change notification was not sent", "err", err)
			}
			return
		}
		if err := f.notify(f.ctx); err != nil && f.ctx.Err() == nil {
			// Other relays learn of the changes at their next poll if
			// this keeps failing; the database is then most likely
			// down, which the readiness probe reports.
			f.log.Debug("sending a change notification failed; trying again", "err", err)
			select {
			case <-time.After(notifyRetry):
				f.signal()
			case <-f.ctx.Done():
			}
		}
	}
}

// notify sends what is pending, in one transaction. On failure what it
// took stays pending.
func (f *feed) notify(ctx context.Context) error {
	f.mu.Lock()
	pending, removed := f.pending, f.removed
	if len(pending) == 0 && len(removed) == 0 {
		f.mu.Unlock()
		return nil
	}
	f.pending, f.removed = make(map[protocol.JournalID]uint64, len(pending)), nil
	f.mu.Unlock()

	payloads := f.payloads(pending, removed)
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	for _, p := range payloads {
		b.Queue("SELECT pg_notify($1, $2)", changeChannel, p)
	}
	b.Queue("COMMIT")
	err := f.st.pool.SendBatch(ctx, b).Close()
	if err != nil {
		f.mu.Lock()
		for j, seq := range pending {
			if seq > f.pending[j] {
				f.pending[j] = seq
			}
		}
		f.removed = append(removed, f.removed...)
		f.mu.Unlock()
	}
	return err
}

// payloads words pending and removed as notification payloads (see the
// top of the file), each within maxPayload.
func (f *feed) payloads(pending map[protocol.JournalID]uint64, removed [][32]byte) []string {
	var out []string
	var sb strings.Builder
	start := func(kind string) {
		sb.Reset()
		sb.WriteString("k1 ")
		sb.WriteString(f.origin)
		sb.WriteString(" ")
		sb.WriteString(kind)
	}
	add := func(kind, item string) {
		if sb.Len() > 0 && sb.Len()+1+len(item) > maxPayload {
			out = append(out, sb.String())
			sb.Reset()
		}
		if sb.Len() == 0 {
			start(kind)
		}
		sb.WriteByte(' ')
		sb.WriteString(item)
	}
	for j, seq := range pending {
		add("a", hex.EncodeToString(j[:])+":"+strconv.FormatUint(seq, 10))
	}
	if sb.Len() > 0 {
		out = append(out, sb.String())
		sb.Reset()
	}
	for _, d := range removed {
		add("r", hex.EncodeToString(d[:]))
	}
	if sb.Len() > 0 {
		out = append(out, sb.String())
	}
	return out
}

// WatchChanges implements [server.ChangeFeed]. The first call starts the
// listener and the poller.
func (s *Store) WatchChanges(ctx context.Context, w server.ChangeWatcher) {
	f := s.feed
	wt := &watch{w}
	f.wmu.Lock()
	f.watchers[wt] = struct{}{}
	f.wmu.Unlock()
	context.AfterFunc(ctx, func() {
		f.wmu.Lock()
		delete(f.watchers, wt)
		f.wmu.Unlock()
	})
	f.startOnce.Do(func() {
		f.wwg.Go(f.listenLoop)
		f.wwg.Go(f.pollLoop)
	})
}

// each calls fn for every watcher.
func (f *feed) each(fn func(server.ChangeWatcher)) {
	f.wmu.Lock()
	ws := make([]server.ChangeWatcher, 0, len(f.watchers))
	for wt := range f.watchers {
		ws = append(ws, wt.w)
	}
	f.wmu.Unlock()
	for _, w := range ws {
		fn(w)
	}
}

// listenLoop keeps a listening connection open until the feed stops,
// connecting again whenever it is lost, and hands on what it hears.
func (f *feed) listenLoop() {
	wait := listenRetryMin
	down := false       // a loss has been logged and the listener is not back yet
	var since time.Time // the database's time at the last connect
	for f.wctx.Err() == nil {
		conn, at, err := f.listen()
		if err != nil {
			if f.wctx.Err() != nil {
				return
			}
			if !down {
				f.log.Warn("cannot listen for other relays' changes; trying again (subscribers here hear of puts made through other relays only once it works)", "err", err)
				down = true
			}
			select {
			case <-time.After(wait):
			case <-f.wctx.Done():
				return
			}
			wait = min(2*wait, listenRetryMax)
			continue
		}
		wait = listenRetryMin
		f.pid.Store(conn.PgConn().PID())
		if down {
			f.log.Info("listening for other relays' changes again; every subscription reads what it missed")
			down = false
		}
		// Whatever was sent while no one listened: every subscription
		// reads the store, and devices removed meanwhile are cut off.
		f.each(server.ChangeWatcher.ResyncAll)
		if !since.IsZero() {
			f.removedSince(conn, since)
		}
		since = at
		err = f.receive(conn)
		f.pid.Store(0)
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(closeCtx)
		cancel()
		if f.wctx.Err() != nil {
			return
		}
		f.log.Warn("lost the connection that hears other relays' changes; connecting again", "err", err)
		down = true
	}
}

// listen opens the listening connection and returns it with the
// database's time once it listens.
func (f *feed) listen() (*pgx.Conn, time.Time, error) {
	cfg := f.st.pool.Config().ConnConfig.Copy()
	// Named apart from the pool's sessions in pg_stat_activity.
	cfg.RuntimeParams["application_name"] += " (changes)"
	// The connection waits in silence for hours: TCP keepalives notice a
	// database that vanished (a machine lost, a network cut) within
	// about 20 s, instead of the system's default of minutes.
	d := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 5 * time.Second, Count: 3}}
	cfg.DialFunc = d.DialContext
	ctx, cancel := context.WithTimeout(f.wctx, cfg.ConnectTimeout+5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, time.Time{}, err
	}
	var at time.Time
	if _, err := conn.Exec(ctx, "LISTEN "+changeChannel); err != nil {
		conn.Close(ctx)
		return nil, at, err
	}
	if err := conn.QueryRow(ctx, "SELECT now()").Scan(&at); err != nil {
		conn.Close(ctx)
		return nil, at, err
	}
	return conn, at, nil
}

// removalSlack is how far before the listener's last connect
// removedSince looks: a removal is stamped when its transaction begins,
// and may commit (and go unheard) a while later.
const removalSlack = time.Minute

// removedSince reports the devices removed from journals since shortly
// before since, the previous connect of the listener: their
// notifications may have been sent while it was down. A device cut off
// twice is only cut off again.
func (f *feed) removedSince(conn *pgx.Conn, since time.Time) {
	ctx, cancel := context.WithTimeout(f.wctx, 10*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, "SELECT DISTINCT device FROM removed_devices WHERE removed > $1", since.Add(-removalSlack))
	if err != nil {
		f.log.Debug("reading recent device removals failed", "err", err)
		return
	}
	var devices [][32]byte
	for rows.Next() {
		var d []byte
		if rows.Scan(&d) == nil && len(d) == 32 {
			devices = append(devices, [32]byte(d))
		}
	}
	if err := rows.Err(); err != nil {
		f.log.Debug("reading recent device removals failed", "err", err)
	}
	if len(devices) > 0 {
		f.each(func(w server.ChangeWatcher) { w.DevicesRemoved(devices) })
	}
}

// receive hands on notifications until the connection fails or the feed
// stops.
func (f *feed) receive(conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(f.wctx)
		if err != nil {
			return err
		}
		f.dispatch(n.Payload)
	}
}

// dispatch hands one payload to the watchers.
func (f *feed) dispatch(payload string) {
	fields := strings.Fields(payload)
	if len(fields) < 3 || fields[0] != "k1" {
		f.log.Debug("a change notification this relay cannot read: every subscription reads the store", "bytes", len(payload))
		f.each(server.ChangeWatcher.ResyncAll)
		return
	}
	if fields[1] == f.origin {
		return // this store's own: its relay has woken its subscribers
	}
	switch fields[2] {
	case "a":
		for _, item := range fields[3:] {
			j, seq, err := parseAppended(item)
			if err != nil {
				f.log.Debug("a change notification this relay cannot read: every subscription reads the store", "err", err)
				f.each(server.ChangeWatcher.ResyncAll)
				return
			}
			f.each(func(w server.ChangeWatcher) { w.JournalGrew(j, seq) })
		}
	case "r":
		var devices [][32]byte
		for _, item := range fields[3:] {
			b, err := hex.DecodeString(item)
			if err != nil || len(b) != 32 {
				continue
			}
			devices = append(devices, [32]byte(b))
		}
		f.each(func(w server.ChangeWatcher) { w.DevicesRemoved(devices) })
	default:
		f.each(server.ChangeWatcher.ResyncAll)
	}
}

func parseAppended(item string) (protocol.JournalID, uint64, error) {
	var j protocol.JournalID
	jh, sq, ok := strings.Cut(item, ":")
	if !ok {
		return j, 0, errors.New("no sequence number")
	}
	b, err := hex.DecodeString(jh)
	if err != nil || len(b) != len(j) {
		return j, 0, fmt.Errorf("journal %q", jh)
	}
	seq, err := strconv.ParseUint(sq, 10, 64)
	if err != nil {
		return j, 0, err
	}
	copy(j[:], b)
	return j, seq, nil
}

// pollLoop reads the heads of the watched journals every f.poll and
// reports them, for notifications that were lost.
func (f *feed) pollLoop() {
	t := time.NewTicker(f.poll)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-f.wctx.Done():
			return
		}
		if err := f.pollHeads(); err != nil && f.wctx.Err() == nil {
			f.log.Debug("reading the heads of watched journals failed", "err", err)
		}
	}
}

// pollChunk bounds the journals one poll query asks for.
const pollChunk = 10000

func (f *feed) pollHeads() error {
	seen := make(map[protocol.JournalID]bool)
	var journals [][]byte
	f.each(func(w server.ChangeWatcher) {
		for _, j := range w.Watched() {
			if !seen[j] {
				seen[j] = true
				journals = append(journals, j[:])
			}
		}
	})
	for len(journals) > 0 {
		chunk := journals[:min(len(journals), pollChunk)]
		journals = journals[len(chunk):]
		heads, err := f.st.heads(f.wctx, chunk)
		if err != nil {
			return err
		}
		f.each(func(w server.ChangeWatcher) {
			for j, seq := range heads {
				w.JournalGrew(j, seq)
			}
		})
	}
	return nil
}

// heads returns the last sequence numbers of journals. Only the poller
// calls it, and not through begin (see feed.wctx).
func (s *Store) heads(ctx context.Context, journals [][]byte) (map[protocol.JournalID]uint64, error) {
	if s.opTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opTimeout)
		defer cancel()
	}
	rows, err := s.pool.Query(ctx, "SELECT journal, last_seq FROM logs WHERE journal = ANY($1)", journals)
	if err != nil {
		return nil, err
	}
	out := make(map[protocol.JournalID]uint64, len(journals))
	for rows.Next() {
		var jb []byte
		var seq int64
		if err := rows.Scan(&jb, &seq); err != nil {
			rows.Close()
			return nil, err
		}
		out[journalID(jb)] = uint64(seq)
	}
	return out, rows.Err()
}
