// Package pgstore is the relay's store in PostgreSQL: a [server.Store]
// that several relay processes can share, so a relay can run as more
// than one process behind a load balancer and outlive the loss of a
// machine. Badger ([server.BadgerStore]) stays the default, embedded
// store; this one is for relays that outgrow one process.
//
// It lives in a package of its own so that only kintsugi-relay links the
// PostgreSQL driver: the kintsugi client, which runs a relay for its demo,
// does not carry it. Being outside package server, it can use nothing of
// the relay but the Store contract and the helpers the contract names,
// which keeps that contract honest.
//
// # How it keeps the contract
//
// Every write is a transaction, and a transaction is durable when COMMIT
// returns (synchronous_commit on, PostgreSQL's default; the store turns it
// on for its sessions if the server has it off), so a blob is on disk,
// or on a synchronous standby as configured, before the relay
// acknowledges it.
//
//   - Sequence numbers: each journal has one row in logs holding its last
//     sequence number. An append locks the rows of the journals it writes
//     (SELECT … FOR UPDATE, in journal order so two relays never deadlock),
//     numbers its blobs from there, inserts them and moves the head, all
//     in one transaction. The next append to the journal, from any relay,
//     waits for the lock, so numbers are contiguous and commit in order: a
//     reader never sees seq 8 before seq 7. (One global sequence would let
//     a later number commit first.)
//   - Idempotent append: after taking the lock, the append looks up the
//     blob ids it is about to store; a blob already there, stored by any
//     relay, is a duplicate with its original number. UNIQUE (journal, id)
//     backs this up.
//   - Group commit: appends waiting at the same time share one
//     transaction and one commit ([server.Committer]), as with Badger.
//   - Members and invites: a change to a journal's members locks the
//     journal's row (FOR NO KEY UPDATE, which appends do not wait for) and
//     runs the relay's rule between reading the members and writing; a
//     redemption locks the invite's row first, so of two redemptions at
//     once the second finds it gone.
//   - Purge: locks the journal's head, reads the blob's header, lets
//     [server.PurgedRecord] decide and rewrites the row, keeping its
//     sequence number.
//   - Live push across relays ([server.ChangeFeed]): after each commit a
//     NOTIFY names the journals that grew; each relay LISTENs on a
//     session of its own and wakes its subscribers, and catches up after
//     a lost session or notification (changes.go).
//
// [Import] fills an empty database from another store's export
// (kintsugi-relay copy, from Badger).
//
// The schema is versioned and migrated by the relay itself (migrate.go).
package pgstore

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// Config configures [Open]. The zero value works.
type Config struct {
	// MaxConns is the most connections the store keeps open to the
	// database. A URL's pool_max_conns parameter is used when this is
	// 0. Default: DefaultMaxConns.
	MaxConns int32

	// StatementTimeout bounds each statement on the server
	// (statement_timeout), and, with a little more, each of the store's
	// operations on the client side, so a database that stops answering
	// fails requests instead of holding them. Negative: no bound.
	// Default: DefaultStatementTimeout.
	StatementTimeout time.Duration

	// Migrate applies the schema migrations this relay knows before the
	// store opens, instead of refusing a database whose schema is older.
	Migrate bool

	// PollInterval is how often the store reads the heads of the
	// journals its relay has subscribers to, in case a change
	// notification from another relay was lost (changes.go).
	// Default: DefaultPollInterval.
	PollInterval time.Duration

	// Logger receives the store's warnings. Default: discard.
	Logger *slog.Logger
}

// Defaults for [Config].
const (
	DefaultMaxConns         = 16
	DefaultStatementTimeout = 30 * time.Second
	DefaultPollInterval     = 10 * time.Second
)

// defaultConnectTimeout bounds connecting to the database, unless the URL
// sets connect_timeout.
const defaultConnectTimeout = 10 * time.Second

// Store is a [server.Store] in a PostgreSQL database. Create it with
// [Open].
type Store struct {
	pool      *pgxpool.Pool
	log       *slog.Logger
	opTimeout time.Duration // client-side bound on one operation; 0: none

	mu sync.RWMutex // read-held by every operation, write-held by Close
	cl bool         // closed; guarded by mu

	commits *server.Committer

	idm sync.Mutex // guards id
	id  string     // cached relay id; guarded by idm

	usage usageCache

	feed *feed // the change feed (changes.go); static
}

var (
	_ server.Store      = (*Store)(nil)
	_ server.ChangeFeed = (*Store)(nil)
)

// Open connects to the database at url (a postgres:// URL or a keyword/
// value connection string; TLS and the rest as libpq's parameters, such
// as sslmode=verify-full) and returns a store on it. The database's
// schema must be at SchemaVersion, or cfg.Migrate set: otherwise Open
// returns a *SchemaError.
func Open(ctx context.Context, url string, cfg Config) (*Store, error) {
	pcfg, err := poolConfig(url, cfg)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Store, error) {
		pool.Close()
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		return fail(fmt.Errorf("connect to the database: %w", err))
	}
	if cfg.Migrate {
		res, err := migrate(ctx, pool)
		if err != nil {
			return fail(err)
		}
		// An operator keeps a record of every change to the schema.
		if len(res.Applied) > 0 {
			logger.Info("migrated the database's schema", "from", res.From, "to", res.To, "applied", strings.Join(res.Applied, ", "))
		}
	}
	v, err := schemaVersion(ctx, pool)
	if err != nil {
		return fail(err)
	}
	if v != SchemaVersion {
		return fail(&SchemaError{Have: v, Want: SchemaVersion})
	}
	var fsync string
	if err := pool.QueryRow(ctx, "SELECT current_setting('fsync')").Scan(&fsync); err == nil && fsync != "on" {
		logger.Warn("the database runs with fsync off: a crash of its machine can lose writes the relay acknowledged")
	}
	s := &Store{pool: pool, log: logger}
	if st := statementTimeout(cfg); st > 0 {
		s.opTimeout = st + 5*time.Second
	}
	s.feed = newFeed(s, logger, cmp.Or(cfg.PollInterval, DefaultPollInterval))
	s.commits = server.StartCommitter(0, s.commitGroup)
	return s, nil
}

// statementTimeout returns cfg's statement timeout, defaults applied; 0
// for none.
func statementTimeout(cfg Config) time.Duration {
	switch {
	case cfg.StatementTimeout == 0:
		return DefaultStatementTimeout
	case cfg.StatementTimeout < 0:
		return 0
	}
	return cfg.StatementTimeout
}

// poolConfig parses url and applies cfg.
func poolConfig(url string, cfg Config) (*pgxpool.Config, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("the database URL: %w", err)
	}
	switch {
	case cfg.MaxConns > 0:
		pcfg.MaxConns = cfg.MaxConns
	case !strings.Contains(url, "pool_max_conns"):
		pcfg.MaxConns = DefaultMaxConns
	}
	if pcfg.ConnConfig.ConnectTimeout == 0 {
		// A database that does not answer at all (a network that drops
		// packets) fails a request in this long, not in the kernel's
		// minutes; connect_timeout in the URL wins.
		pcfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	params := pcfg.ConnConfig.RuntimeParams
	if _, ok := params["application_name"]; !ok {
		params["application_name"] = "kintsugi-relay"
	}
	if st := statementTimeout(cfg); st > 0 {
		params["statement_timeout"] = fmt.Sprint(st.Milliseconds())
	}
	// Acknowledged means durable: a server configured with
	// synchronous_commit off would lose the last moments of commits in a
	// crash. Any other setting (on, remote_apply, remote_write, local)
	// is the operator's and stays.
	pcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		var sc string
		if err := c.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&sc); err != nil {
			return err
		}
		if sc == "off" {
			_, err := c.Exec(ctx, "SET synchronous_commit = on")
			return err
		}
		return nil
	}
	return pcfg, nil
}

// Close waits for operations in flight, sends the last change
// notification, then closes the connections.
func (s *Store) Close() error {
	s.feed.stopWatching()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl {
		return nil
	}
	s.cl = true
	s.commits.Stop()
	s.feed.close()
	s.pool.Close()
	return nil
}

// begin guards an operation against Close and bounds it in time. Call
// the returned func when done.
func (s *Store) begin(ctx context.Context) (context.Context, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	s.mu.RLock()
	if s.cl {
		s.mu.RUnlock()
		return nil, nil, server.ErrStoreClosed
	}
	cancel := func() {}
	if s.opTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, s.opTimeout)
	}
	return ctx, func() { cancel(); s.mu.RUnlock() }, nil
}

// inTx runs fn in a transaction: committed if fn returns nil, rolled
// back otherwise.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// Check implements [server.Store]: a round trip to the database.
func (s *Store) Check(ctx context.Context) error {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	return s.pool.Ping(ctx)
}

// RelayID implements [server.Store]. Every store on one database has the
// same id: the first to ask creates it.
func (s *Store) RelayID(ctx context.Context) (string, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return "", err
	}
	defer done()
	s.idm.Lock()
	defer s.idm.Unlock()
	if s.id != "" {
		return s.id, nil
	}
	var id string
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO relay (key, value) VALUES ('id', $1) ON CONFLICT (key) DO NOTHING",
			hex.EncodeToString(randomBytes(16))); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT value FROM relay WHERE key = 'id'").Scan(&id)
	})
	if err != nil {
		return "", fmt.Errorf("relay id: %w", err)
	}
	s.id = id
	return id, nil
}

// CreateJournal implements [server.Store].
func (s *Store) CreateJournal(ctx context.Context, j protocol.JournalID, device [32]byte) error {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "INSERT INTO journals (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", j[:])
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return protocol.ErrExists
		}
		if _, err := tx.Exec(ctx, "INSERT INTO logs (journal) VALUES ($1)", j[:]); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "INSERT INTO members (journal, device, person) VALUES ($1, $2, $2)", j[:], device[:])
		return err
	})
}

// IsMember implements [server.Store].
func (s *Store) IsMember(ctx context.Context, j protocol.JournalID, device [32]byte) (bool, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	var ok bool
	err = s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM members WHERE journal = $1 AND device = $2)", j[:], device[:]).Scan(&ok)
	return ok, err
}

// Append implements [server.Store]. The append joins the next group
// commit.
func (s *Store) Append(ctx context.Context, j protocol.JournalID, blob []byte) (uint64, protocol.BlobID, bool, error) {
	return s.StartAppend(ctx, j, blob).Wait()
}

// StartAppend implements [server.Store].
func (s *Store) StartAppend(ctx context.Context, j protocol.JournalID, blob []byte) *server.PendingAppend {
	if err := ctx.Err(); err != nil {
		return server.FailedAppend(blob, err)
	}
	s.mu.RLock()
	if s.cl {
		s.mu.RUnlock()
		return server.FailedAppend(blob, server.ErrStoreClosed)
	}
	return s.commits.Start(j, blob, s.mu.RUnlock)
}

// readBatchBytes caps the bytes one Read returns (beyond the first blob),
// as BadgerStore does.
const readBatchBytes = 4 << 20

// Read implements [server.Store]. It stops after the blob that takes the
// batch to readBatchBytes, counting in the database, so a batch of large
// blobs is never fetched only to be dropped.
func (s *Store) Read(ctx context.Context, j protocol.JournalID, after uint64, max int) ([]server.StoredBlob, error) {
	if max <= 0 || after >= math.MaxInt64 {
		return nil, nil
	}
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	rows, err := s.pool.Query(ctx, `SELECT seq, purged, data FROM (
			SELECT seq, purged, data, sum(octet_length(data)) OVER (ORDER BY seq) - octet_length(data) AS before
			FROM blobs WHERE journal = $1 AND seq > $2 ORDER BY seq LIMIT $3
		) AS batch WHERE before < $4 ORDER BY seq`,
		j[:], int64(after), max, readBatchBytes)
	if err != nil {
		return nil, err
	}
	var out []server.StoredBlob
	for rows.Next() {
		var b server.StoredBlob
		var seq int64
		if err := rows.Scan(&seq, &b.Purged, &b.Blob); err != nil {
			rows.Close()
			return nil, err
		}
		b.Seq = uint64(seq)
		out = append(out, b)
	}
	return out, rows.Err()
}

// HasBlob implements [server.Store].
func (s *Store) HasBlob(ctx context.Context, j protocol.JournalID, id protocol.BlobID) (bool, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	var ok bool
	err = s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM blobs WHERE journal = $1 AND id = $2)", j[:], id[:]).Scan(&ok)
	return ok, err
}

// LastSeq implements [server.Store].
func (s *Store) LastSeq(ctx context.Context, j protocol.JournalID) (uint64, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	var seq int64
	err = s.pool.QueryRow(ctx, "SELECT last_seq FROM logs WHERE journal = $1", j[:]).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint64(seq), err
}

// usageTTL is how long JournalUsage answers from what this store last
// knew of a journal's bytes: other relays sharing the database may have
// stored more meanwhile, by at most what they took in that long.
const usageTTL = time.Second

// JournalUsage implements [server.Store]. The relay asks it on every put,
// so it answers from memory what this store committed or read in the
// last usageTTL, and asks the database otherwise.
func (s *Store) JournalUsage(ctx context.Context, j protocol.JournalID) (int64, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	now := time.Now()
	if n, ok := s.usage.get(j, now); ok {
		return n, nil
	}
	var n int64
	err = s.pool.QueryRow(ctx, "SELECT bytes FROM logs WHERE journal = $1", j[:]).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	s.usage.set(map[protocol.JournalID]int64{j: n}, now)
	return n, nil
}

// Purge implements [server.Store].
func (s *Store) Purge(ctx context.Context, j protocol.JournalID, id protocol.BlobID, device [32]byte, chain protocol.BlobID) (uint64, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	var seq, used int64
	changed := false
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		changed = false
		// The head first, as appends lock it: the byte count changes.
		var x int
		err := tx.QueryRow(ctx, "SELECT 1 FROM logs WHERE journal = $1 FOR UPDATE", j[:]).Scan(&x)
		if errors.Is(err, pgx.ErrNoRows) {
			return protocol.ErrNotFound
		}
		if err != nil {
			return err
		}
		var purged bool
		var header []byte
		var size int64
		err = tx.QueryRow(ctx, "SELECT seq, purged, substring(data FROM 1 FOR $3), octet_length(data) FROM blobs WHERE journal = $1 AND id = $2",
			j[:], id[:], protocol.HeaderSize).Scan(&seq, &purged, &header, &size)
		if errors.Is(err, pgx.ErrNoRows) {
			return protocol.ErrNotFound
		}
		if err != nil {
			return err
		}
		if purged {
			return nil // purging a purged blob changes nothing
		}
		rec, err := server.PurgedRecord(header, device, chain)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE blobs SET data = $3, purged = true WHERE journal = $1 AND seq = $2", j[:], seq, rec); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "UPDATE logs SET bytes = bytes + $2 WHERE journal = $1 RETURNING bytes",
			j[:], int64(len(rec))-size).Scan(&used); err != nil {
			return err
		}
		changed = true
		return nil
	})
	if err != nil {
		return 0, err
	}
	if changed {
		s.usage.set(map[protocol.JournalID]int64{j: used}, time.Now())
	}
	return uint64(seq), nil
}

// usageCache holds journals' byte counts as this store last committed or
// read them, with when. Group commits and purges set it after their
// commits without taking turns, so for a moment it may hold the older of
// two counts; like the writes of other relays, that lasts at most
// usageTTL, and the journal quota is a bound to within a few blobs, not
// to the byte.
type usageCache struct {
	mu sync.Mutex
	m  map[protocol.JournalID]usageEntry // guarded by mu
}

type usageEntry struct {
	bytes int64
	at    time.Time
}

// maxCachedUsage bounds the cache; past it, it starts again empty.
const maxCachedUsage = 1 << 16

func (u *usageCache) get(j protocol.JournalID, now time.Time) (int64, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	e, ok := u.m[j]
	if !ok || now.Sub(e.at) >= usageTTL {
		return 0, false
	}
	return e.bytes, true
}

func (u *usageCache) set(counts map[protocol.JournalID]int64, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil || len(u.m)+len(counts) > maxCachedUsage {
		u.m = make(map[protocol.JournalID]usageEntry, len(counts))
	}
	for j, n := range counts {
		u.m[j] = usageEntry{n, now}
	}
}

// Where describes the database at url for logs and messages, as
// host:port/database (the user's password never appears). It reads the
// PG* environment variables as Open would.
func Where(url string) string {
	c, err := pgconn.ParseConfig(url)
	if err != nil {
		return "an unreadable database URL"
	}
	return fmt.Sprintf("%s/%s", net.JoinHostPort(c.Host, fmt.Sprint(c.Port)), c.Database)
}
