package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// BadgerStore is a [Store] kept in a Badger database in one directory.
//
// Key layout (every key starts with a one-byte table name and a slash;
// integers are big-endian so keys sort numerically):
//
//	r                     → relay id (ASCII hex)
//	j/<journal 16>        → journal meta: format (1 byte, 1) | created, unix seconds (8)
//	m/<journal 16><dev 32> → member since, unix seconds (8) | person (32); see devices.go
//	x/<journal 16><dev 32> → removed at, unix seconds (8): a device removed for good
//	s/<journal 16>        → last sequence number (8); absent when the log is empty
//	l/<journal 16><seq 8> → where the blob is in a segment file (seglog.go), or, for a
//	                        blob stored by an older relay, its bytes (the log; a
//	                        prefix scan reads it in order); purgedMark | record once purged
//	b/<journal 16><id 32> → sequence number (8) of the blob with that id (dedup index)
//	i/<auth hash 32>      → journal (16) | expires, unix seconds (8) | packet
//	a/<auth hash 32>      → the same, for a partner invite made again (not held to the two-person rule)
//	k/<auth hash 32>      → the same, for a device link (redeeming adds no member)
//	u, u/<journal 16>     → blob bytes per journal (see usage.go)
//	g/<segment 4>, h/<segment 4><offset 8> → segment files and bytes still to punch (seglog.go)
//
// Writes go through Update transactions opened with SyncWrites, so a commit
// has been fsynced when it returns. Appends are written by one committer
// goroutine that groups the appends waiting at the time, so many writers
// share one sync (group commit; see groupcommit.go). The committer alone
// assigns sequence numbers. Blob bytes live in segment files beside
// Badger, which a group writes and syncs before it is answered, and from
// which a purge punches them out before it returns (seglog.go); their
// index records commit just after, and are recovered from the segments if
// the relay stops first (indexcommit.go). Purges and index commits take
// turns (usageMu), as both change usage counts. A purge of a blob an older relay
// stored inline overwrites its log value with a version that discards
// earlier ones; [BadgerStore.StartGC] later compacts the store so those
// bytes leave its files (gc.go).
// Invite records carry a Badger TTL a day past their expiry (by wall clock)
// so expired invites are eventually dropped; redemption checks expiry
// against the caller's clock independently.
type BadgerStore struct {
	db  *badger.DB       // set by OpenBadger; closed by Close
	now func() time.Time // clock for membership timestamps; set by OpenBadger

	mu sync.RWMutex // read-held by every operation, write-held by Close
	cl bool         // closed; guarded by mu

	commits *Committer // group commit of appends; see groupcommit.go

	// segs holds blob bytes (seglog.go); nil for a store in memory,
	// which keeps them inline.
	segs *segLog

	// testPurgeCommitted, if set (by tests), runs after a purge of a blob
	// in a segment has committed and before its bytes are punched out;
	// an error stops the purge there, as a crash would.
	testPurgeCommitted func() error
	// testIndexCommit, if set (by tests), runs inside each index
	// transaction; an error fails it, as a failing disk would.
	testIndexCommit func() error

	// last caches, for journals the committer has appended to, the last
	// sequence number it stored. Owned by commitGroup, which runs one
	// group at a time, in order.
	last map[protocol.JournalID]uint64

	// pend holds the blobs acknowledged whose index records have not
	// committed yet; indexLoop commits them (indexcommit.go).
	pend      *pendingIndex
	indexDone chan struct{} // closed when indexLoop has returned

	// usageMu is held by the committer while it commits a group and by
	// Purge while it commits: both change a journal's usage count, and
	// would otherwise conflict on it (and fail after retrying) under load.
	usageMu sync.Mutex
	usage   usageCache // committed usage counts; see usage.go

	// joinMu is held by RedeemInvite and UpdateMembers while they
	// commit, so that changes to members happen one at a time. A rule
	// such as the two-person rule reads a journal's members and then adds
	// one, and Badger does not see that as conflicting with another
	// transaction adding a different member (it tracks keys read, not
	// keys absent from a scan): two newcomers redeeming at once could
	// both join. One process holds the store, so a mutex is enough.
	joinMu sync.Mutex

	idm sync.Mutex // guards id
	id  string     // cached relay id; guarded by idm

	maint maintenance // backups and GC; see maintenance.go
}

var _ Store = (*BadgerStore)(nil)

// readBatchBytes caps the bytes one Read returns (beyond the first blob).
const readBatchBytes = 4 << 20

// inviteGrace is how long after expiry an invite record is kept.
const inviteGrace = 24 * time.Hour

// Key prefixes; see the BadgerStore comment.
var (
	keyRelayID  = []byte("r")
	pfxJournal  = []byte("j/")
	pfxMember   = []byte("m/")
	pfxLastSeq  = []byte("s/")
	pfxLog      = []byte("l/")
	pfxBlobByID = []byte("b/")
	pfxInvite   = []byte("i/")
	pfxLink     = []byte("k/")
	pfxAgain    = []byte("a/")
)

// invitePrefixes are the tables holding invites, which share one
// namespace of auth hashes, in the order RedeemInvite looks.
var invitePrefixes = [][]byte{pfxInvite, pfxAgain, pfxLink}

// OpenBadger opens (creating if needed) the Badger store in dir, sized for
// [DefaultMemoryBudget]. Badger's own warnings and errors are logged to
// logger (nil means discard). Only one process can hold a directory at a
// time; a second open fails with an error that [IsLocked] recognizes.
func OpenBadger(dir string, logger *slog.Logger) (*BadgerStore, error) {
	return OpenBadgerWith(dir, BadgerConfig{Logger: logger})
}

// BadgerConfig configures [OpenBadgerWith]. The zero value works.
type BadgerConfig struct {
	// Logger receives Badger's own warnings and errors. Default: discard.
	Logger *slog.Logger
	// MemoryBudget is the memory the whole relay process should stay
	// within, in bytes; the store sizes Badger's memtables (and its caches, none today)
	// from it (see [PlanMemory]). Default: DefaultMemoryBudget.
	MemoryBudget int64
}

// OpenBadgerWith is [OpenBadger] with a configuration.
func OpenBadgerWith(dir string, cfg BadgerConfig) (*BadgerStore, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	plan, err := PlanMemory(cfg.MemoryBudget)
	if err != nil {
		return nil, err
	}
	if err := checkRestoreMarker(dir); err != nil {
		return nil, err
	}
	opts := plan.apply(badger.DefaultOptions(dir)).
		WithSyncWrites(true).
		// Blobs are ciphertext, which does not compress: compressing
		// table blocks only spent CPU on every memtable flush and
		// compaction. (Tables record their compression, so stores
		// written with it still read.)
		WithCompression(options.None).
		WithLogger(badgerLogger{logger.With("component", "badger")})
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open relay store in %s: %w", dir, err)
	}
	if err := ensureUsage(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open relay store in %s: %w", dir, err)
	}
	segs, tail, err := openSegLog(db, dir, false, logger)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open relay store in %s: blob segments: %w", dir, err)
	}
	s := newBadgerStore(db, segs)
	// Blobs acknowledged whose index records had not committed.
	if err := s.recoverTail(tail); err != nil {
		s.Close()
		return nil, fmt.Errorf("open relay store in %s: %w", dir, err)
	}
	if err := segs.resumeWriter(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open relay store in %s: blob segments: %w", dir, err)
	}
	// Purges that committed but may not have punched their blob's bytes.
	if err := s.punchHoles(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open relay store in %s: %w", dir, err)
	}
	return s, nil
}

// newBadgerStore returns a store over db and segs (nil: blobs inline),
// with its committer running.
func newBadgerStore(db *badger.DB, segs *segLog) *BadgerStore {
	s := &BadgerStore{db: db, now: time.Now, segs: segs, pend: newPendingIndex(), indexDone: make(chan struct{})}
	if segs == nil {
		close(s.indexDone)
		s.commits = StartCommitter(int(min(maxGroupBytes, db.MaxBatchSize()*3/4)), s.commitGroup)
		return s
	}
	// With segments a group's blobs go to a segment, and its index
	// records, small, are committed by indexLoop (indexcommit.go).
	go s.indexLoop()
	s.commits = StartCommitter(maxGroupBytes, s.commitGroup)
	return s
}

// IsLocked reports whether err came from opening a store directory that
// another process (or another store in this process) is using.
func IsLocked(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Another process is using this Badger database")
}

// Close closes the database after operations in flight have finished.
func (s *BadgerStore) Close() error {
	s.maint.shutdown() // backups and GC take s.mu themselves: stop them first
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl {
		return nil
	}
	s.cl = true
	s.commits.Stop()
	s.pend.stop() // indexLoop commits what is pending, then returns
	<-s.indexDone
	err := s.db.Close()
	if s.segs != nil {
		if serr := s.segs.close(); err == nil {
			err = serr
		}
	}
	return err
}

// begin guards an operation against Close. Call the returned func when done.
func (s *BadgerStore) begin(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.cl {
		s.mu.RUnlock()
		return nil, ErrStoreClosed
	}
	return s.mu.RUnlock, nil
}

// update runs fn in a read-write transaction, retrying on conflicts.
func (s *BadgerStore) update(fn func(txn *badger.Txn) error) error {
	for attempt := 0; ; attempt++ {
		err := s.db.Update(fn)
		if errors.Is(err, badger.ErrConflict) && attempt < 16 {
			continue
		}
		if errors.Is(err, badger.ErrTxnTooBig) {
			return fmt.Errorf("store transaction too large: %w", err)
		}
		return err
	}
}

// RelayID implements [Store].
func (s *BadgerStore) RelayID(ctx context.Context) (string, error) {
	done, err := s.begin(ctx)
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
	err = s.update(func(txn *badger.Txn) error {
		item, err := txn.Get(keyRelayID)
		if err == nil {
			v, err := item.ValueCopy(nil)
			id = string(v)
			return err
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		id = hex.EncodeToString(randomBytes(16))
		return txn.Set(keyRelayID, []byte(id))
	})
	if err != nil {
		return "", fmt.Errorf("relay id: %w", err)
	}
	s.id = id
	return id, nil
}

// CreateJournal implements [Store].
func (s *BadgerStore) CreateJournal(ctx context.Context, j protocol.JournalID, device [32]byte) error {
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	now := s.now().Unix()
	return s.update(func(txn *badger.Txn) error {
		if ok, err := exists(txn, key(pfxJournal, j[:])); err != nil || ok {
			if ok {
				return protocol.ErrExists
			}
			return err
		}
		meta := binary.BigEndian.AppendUint64([]byte{1}, uint64(now))
		if err := txn.Set(key(pfxJournal, j[:]), meta); err != nil {
			return err
		}
		return txn.Set(key(pfxMember, j[:], device[:]), memberValue(now, device))
	})
}

// IsMember implements [Store].
func (s *BadgerStore) IsMember(ctx context.Context, j protocol.JournalID, device [32]byte) (bool, error) {
	done, err := s.begin(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	var ok bool
	err = s.db.View(func(txn *badger.Txn) error {
		ok, err = exists(txn, key(pfxMember, j[:], device[:]))
		return err
	})
	return ok, err
}

// PutInvite implements [Store].
func (s *BadgerStore) PutInvite(ctx context.Context, inv Invite) error {
	pfx, err := invitePrefix(inv.Kind)
	if err != nil {
		return err
	}
	return s.putInvite(ctx, pfx, inv.Journal, inv.AuthHash, inv.Expires, inv.Packet)
}

// invitePrefix returns the table of invites of kind k.
func invitePrefix(k InviteKind) ([]byte, error) {
	switch k {
	case InvitePartner:
		return pfxInvite, nil
	case InviteAgain:
		return pfxAgain, nil
	case InviteLink:
		return pfxLink, nil
	}
	return nil, fmt.Errorf("unknown invite kind %d", k)
}

func (s *BadgerStore) putInvite(ctx context.Context, pfx []byte, j protocol.JournalID, authHash [32]byte, expires time.Time, packet []byte) error {
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	return s.update(func(txn *badger.Txn) error {
		ok, err := exists(txn, key(pfxJournal, j[:]))
		if err != nil {
			return err
		}
		if !ok {
			return protocol.ErrNotFound
		}
		ik := key(pfx, authHash[:])
		for _, other := range invitePrefixes {
			if ok, err := exists(txn, key(other, authHash[:])); err != nil || ok {
				if ok {
					return ErrInviteExists
				}
				return err
			}
		}
		v := make([]byte, 0, protocol.JournalIDSize+8+len(packet))
		v = append(v, j[:]...)
		v = binary.BigEndian.AppendUint64(v, uint64(expires.Unix()))
		v = append(v, packet...)
		e := badger.NewEntry(ik, v)
		if gc := expires.Add(inviteGrace).Unix(); gc > 0 {
			e.ExpiresAt = uint64(gc)
		}
		return txn.SetEntry(e)
	})
}

// RedeemInvite implements [Store].
func (s *BadgerStore) RedeemInvite(ctx context.Context, authHash [32]byte, now time.Time, fn func(Invite, *Members) error) (Invite, error) {
	done, err := s.begin(ctx)
	if err != nil {
		return Invite{}, err
	}
	defer done()
	var inv Invite
	s.joinMu.Lock()
	defer s.joinMu.Unlock()
	err = s.update(func(txn *badger.Txn) error {
		var ik []byte
		var item *badger.Item
		err := badger.ErrKeyNotFound
		for _, pfx := range invitePrefixes {
			ik = key(pfx, authHash[:])
			if item, err = txn.Get(ik); !errors.Is(err, badger.ErrKeyNotFound) {
				break
			}
		}
		if errors.Is(err, badger.ErrKeyNotFound) {
			return protocol.ErrInviteUnknown
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if len(v) < protocol.JournalIDSize+8 {
			return fmt.Errorf("invite record is %d bytes", len(v))
		}
		inv = Invite{AuthHash: authHash, Kind: InvitePartner}
		switch {
		case bytes.HasPrefix(ik, pfxLink):
			inv.Kind = InviteLink
		case bytes.HasPrefix(ik, pfxAgain):
			inv.Kind = InviteAgain
		}
		copy(inv.Journal[:], v)
		inv.Expires = time.Unix(int64(binary.BigEndian.Uint64(v[protocol.JournalIDSize:])), 0)
		inv.Packet = v[protocol.JournalIDSize+8:]
		if !now.Before(inv.Expires) {
			return protocol.ErrInviteUnknown
		}
		m, ok, err := loadMembers(txn, inv.Journal)
		if err != nil {
			return err
		}
		if !ok {
			return protocol.ErrInviteUnknown // its journal is gone
		}
		if err := fn(inv, m); err != nil {
			return err
		}
		if err := txn.Delete(ik); err != nil {
			return err
		}
		return applyMembers(txn, m, now.Unix())
	})
	if err != nil {
		return Invite{}, err
	}
	return inv, nil
}

// Append implements [Store]. The append joins the next group commit.
func (s *BadgerStore) Append(ctx context.Context, j protocol.JournalID, blob []byte) (uint64, protocol.BlobID, bool, error) {
	return s.StartAppend(ctx, j, blob).Wait()
}

// purgedMark starts a log value that holds a purged record instead of a
// blob; no blob starts with it (blobs start with their format version).
const purgedMark = 0xFF

// Purge implements [Store]. For a blob in a segment, the purged record
// replaces its index record and a hole record names its bytes, in one
// synced transaction; then the bytes are punched out of the segment and
// synced, and only then does Purge return (seglog.go). A blob stored
// inline by an older relay is overwritten in Badger, whose files the GC
// then compacts (gc.go).
func (s *BadgerStore) Purge(ctx context.Context, j protocol.JournalID, id protocol.BlobID, device [32]byte, chain protocol.BlobID) (uint64, error) {
	done, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	// The blob must be in Badger: a purge changes its log record. (A
	// blob acknowledged after this point is not the one being purged,
	// which the caller saw stored.)
	if err := s.pend.drain(); err != nil {
		return 0, err
	}
	s.usageMu.Lock()
	defer s.usageMu.Unlock()
	var seq uint64
	var counts map[protocol.JournalID]int64 // the count Purge committed
	var hole segRef                         // the bytes to punch out; n 0 for an inline blob
	var info segInfo                        // hole's segment, as committed
	already := false
	err = s.update(func(txn *badger.Txn) error {
		counts, hole, already = nil, segRef{}, false
		item, err := txn.Get(key(pfxBlobByID, j[:], id[:]))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return protocol.ErrNotFound
		}
		if err != nil {
			return err
		}
		if seq, err = u64Value(item, "dedup"); err != nil {
			return err
		}
		lk := key(pfxLog, j[:], u64(seq))
		item, err = txn.Get(lk)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		ref, inSeg := decodeSegRef(v)
		blob, err := s.loadValue(v, nil) // Purge alone changes log records: no newer one to look for
		if err != nil {
			s.damaged(j, seq, err)
			return err
		}
		if len(blob) > 0 && blob[0] == purgedMark {
			already = true
			return nil
		}
		rec, err := PurgedRecord(blob, device, chain)
		if err != nil {
			return err
		}
		rec = append([]byte{purgedMark}, rec...)
		used, err := addUsage(txn, j, int64(len(rec))-int64(len(blob)))
		if err != nil {
			return err
		}
		counts = map[protocol.JournalID]int64{j: used}
		if inSeg {
			info = s.segs.segs[ref.seg]
			info.live--
			if err := txn.Set(segKey(ref.seg), info.encode()); err != nil {
				return err
			}
			if err := txn.Set(holeKey(ref.seg, ref.off), u64(uint64(ref.n))); err != nil {
				return err
			}
			hole = ref
			return txn.Set(lk, rec)
		}
		// WithDiscard makes the blob's earlier version garbage at once, so
		// backups skip it and compaction drops it (see compactPurged).
		return txn.SetEntry(badger.NewEntry(lk, rec).WithDiscard())
	})
	if err != nil {
		return seq, err
	}
	if already {
		// A purge whose punch failed left its hole record: try again.
		return seq, s.punchHoles()
	}
	s.usage.set(counts) // still under usageMu
	if hole.seg == 0 {  // an inline blob (segments are numbered from 1)
		s.maint.purges.Add(1)
		return seq, nil
	}
	s.segs.segs[hole.seg] = info
	if s.testPurgeCommitted != nil {
		if err := s.testPurgeCommitted(); err != nil {
			return seq, err
		}
	}
	if err := s.punchHoles(); err != nil {
		return seq, err
	}
	if info.live == 0 && hole.seg < s.segs.newest() {
		if err := s.segs.remove(s.db, hole.seg); err != nil {
			s.segs.log.Warn("could not delete a segment whose blobs were all purged; will try at the next start", "segment", segName(hole.seg), "err", err)
		}
	}
	return seq, nil
}

// punchHoles punches out the bytes every hole record names and drops the
// records. Purge and commitGroup call it with usageMu held.
func (s *BadgerStore) punchHoles() error {
	if s.segs == nil {
		return nil
	}
	var holes []segRef
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfxHole})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			n, err := u64Value(it.Item(), "hole")
			if err != nil {
				return err
			}
			if len(k) != len(pfxHole)+12 {
				return fmt.Errorf("hole record %x is damaged", k)
			}
			holes = append(holes, segRef{seg: binary.BigEndian.Uint32(k[len(pfxHole):]), off: int64(binary.BigEndian.Uint64(k[len(pfxHole)+4:])), n: int64(n)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(holes) == 0 {
		return nil
	}
	for _, h := range holes {
		if err := s.segs.punch(h.seg, h.off, h.n); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove a purged blob's bytes from segment %s: %w", segName(h.seg), err)
		}
	}
	// Every hole is punched and synced: the records can go, together.
	return s.update(func(txn *badger.Txn) error {
		for _, h := range holes {
			if err := txn.Delete(holeKey(h.seg, h.off)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Read implements [Store].
func (s *BadgerStore) Read(ctx context.Context, j protocol.JournalID, after uint64, max int) ([]StoredBlob, error) {
	if max <= 0 || after == math.MaxUint64 {
		return nil, nil
	}
	done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	// The index first, then the bytes: blobs stored one after another
	// in a segment (a journal's history mostly is) are read with one
	// pread per run instead of one each (segLog.readRuns).
	type item struct {
		seq    uint64
		v, key []byte
	}
	var items []item
	var refs []segRef
	var isRef []bool
	// Badger's index, then what is acknowledged but not yet in it (the
	// pending index, indexcommit.go): its blobs are the journal's newest.
	txn, pending := s.readTxn(j)
	defer txn.Discard()
	err = func() error {
		prefix := key(pfxLog, j[:])
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		size := 0
		full := func() bool { return len(items) >= max || (len(items) > 0 && size >= readBatchBytes) }
		next := after + 1
		for it.Seek(key(prefix, u64(next))); it.Valid(); it.Next() {
			if full() {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			k := it.Item().Key()
			if len(k) != len(prefix)+8 {
				return fmt.Errorf("log key is %d bytes", len(k))
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			r, ok := decodeSegRef(v)
			size += len(v)
			if ok {
				size += int(r.n) - len(v)
			}
			seq := binary.BigEndian.Uint64(k[len(prefix):])
			items = append(items, item{seq: seq, v: v, key: it.Item().KeyCopy(nil)})
			refs, isRef = append(refs, r), append(isRef, ok)
			next = seq + 1
		}
		for _, e := range pending {
			if e.seq < next {
				continue // committed since: Badger's view has it
			}
			if full() {
				return nil
			}
			v := e.ref.encode()
			items = append(items, item{seq: e.seq, v: v, key: key(prefix, u64(e.seq))})
			refs, isRef = append(refs, e.ref), append(isRef, true)
			size += int(e.ref.n)
		}
		return nil
	}()
	if err != nil {
		return nil, err
	}
	blobs := make([][]byte, len(items))
	if s.segs != nil {
		blobs = s.segs.readRuns(refs, isRef)
	}
	out := make([]StoredBlob, 0, len(items))
	for i, it := range items {
		v := blobs[i]
		if v == nil {
			// Inline (older relays), or not read in a run: read on its
			// own, which names damage or finds a purge since the index
			// was read.
			if v, err = s.loadValue(it.v, s.currentLog(it.key)); err != nil {
				s.damaged(j, it.seq, err)
				if errors.Is(err, ErrDamaged) {
					// Named, and left out: what comes after it is
					// still served (one damaged blob must not shut a
					// journal's people out of the rest).
					out = append(out, StoredBlob{Seq: it.seq, Damaged: true})
					continue
				}
				return nil, fmt.Errorf("journal %s, blob %d: %w", j, it.seq, err)
			}
		}
		sb := StoredBlob{Seq: it.seq, Blob: v}
		if len(v) > 0 && v[0] == purgedMark {
			sb.Blob, sb.Purged = v[1:], true
		}
		out = append(out, sb)
	}
	return out, nil
}

// LastSeq implements [Store].
func (s *BadgerStore) LastSeq(ctx context.Context, j protocol.JournalID) (uint64, error) {
	done, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	txn, pending := s.readTxn(j)
	defer txn.Discard()
	seq, err := lastSeq(txn, j)
	if len(pending) > 0 {
		seq = max(seq, pending[len(pending)-1].seq)
	}
	return seq, err
}

func lastSeq(txn *badger.Txn, j protocol.JournalID) (uint64, error) {
	return getU64(txn, key(pfxLastSeq, j[:]), "last-sequence")
}

// getU64 reads the 8-byte number stored at k, or 0 if k is absent; what
// names the record in an error.
func getU64(txn *badger.Txn, k []byte, what string) (uint64, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return u64Value(item, what)
}

// u64Value decodes item's value, an 8-byte big-endian number; what names
// the record in the error for any other length.
func u64Value(item *badger.Item, what string) (uint64, error) {
	var n uint64
	err := item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%s record is %d bytes", what, len(v))
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	})
	return n, err
}

func exists(txn *badger.Txn, k []byte) (bool, error) {
	_, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

func key(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics on failure since Go 1.24)
	return b
}

// badgerLogger routes Badger's warnings and errors to slog and drops the
// rest.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
