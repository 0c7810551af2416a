package client

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// The record log is append-only. Each record is
//
//	type (1) | length (4, big-endian) | body (length) | CRC-32C of type, length and body (4)
//
// A record whose length runs past the end of the file or whose checksum
// fails can only be the tail a crashed writer left (writers hold the lock
// and fsync before they report success), so it is cut off by the next
// writer. The CRC guards against torn writes, not attackers: blob bodies are
// authenticated cryptographically when they are opened.
const (
	recWritten = 'W' // body: blob. Written here; in the outbox until acknowledged.
	recPulled  = 'P' // body: relay seq (8) | blob. Received from the relay.
	recSeen    = 'S' // body: relay seq (8) | blob id (32). Received; we already had it.
	recAcked   = 'A' // body: relay seq (8) | blob id (32). The relay acknowledged our put.
	recPurged  = 'U' // body: relay seq (8) | purged record (header | chain id). Received in place of a purged blob.
	recPurge   = 'Z' // body: blob id (32). The relay acknowledged purging our blob.
	recAdopted = 'O' // body: blob id (32). A pulled blob this device wrote before a restore (see adopt.go).

	maxRecord = protocol.MaxBlobSize + 64
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// stored is one blob known to the journal. Its bytes stay in the log: Raw
// holds them only while this process still needs them (just written or
// received, not yet opened); read them with logIndex.raw.
type stored struct {
	ID       protocol.BlobID // blob id: SHA-256 of the blob's bytes
	Chain    protocol.BlobID // chain id (protocol.ChainID): how clients name it
	Header   protocol.Header
	Order    int    // position of first appearance in the log
	RelaySeq uint64 // 0 until the relay has it
	Local    bool   // written on this device
	// Purged: only the purged record was received (no bytes are held); the
	// author retracted the blob and the relay dropped its bytes.
	Purged bool
	// changed: decryptAll found a slot for this device in this entry
	// that does not open to its key (open), or no slot where a later
	// entry of its author says there was one (noSlot, claimed): it was
	// changed on the way. Set again by every process, since each retries
	// what did not open.
	changed bool
	// noSlot: open found no slot for this device in this entry.
	noSlot bool
	// At is where the blob's record starts in the log.
	At int64
	// opened is, on the first blob seen with this chain id (j.chain), the
	// entry decryptAll opened for the chain, if any (see openedOf).
	opened *openedEntry
	// held is the blob's bytes while this process holds them (see
	// logIndex.raw), from indexing until openNew has seen it.
	held *heldBlob
}

// heldBlob is a blob's bytes, and for an entry the bytes parsed.
type heldBlob struct {
	raw   []byte
	entry *protocol.Entry
}

// Member is one person in a journal and the devices the client accepts
// for them. Devices are certificates signed by Identity.
type Member struct {
	Name     string    `json:"name"`
	Identity []byte    `json:"identity"`
	Devices  [][]byte  `json:"devices"`
	Self     bool      `json:"self,omitempty"`
	Verified bool      `json:"verified,omitempty"`
	Joined   time.Time `json:"joined"`
	// JoinBlob is the chain id (hex) of the join blob that was accepted
	// for this member, the only join of theirs that is authentic.
	JoinBlob string `json:"join_blob,omitempty"`
	// Removed lists devices this person removed (see KindDeviceRemoved).
	Removed []RemovedDevice `json:"removed,omitempty"`
	// Left is when this person left the journal (see KindLeave).
	Left *time.Time `json:"left,omitempty"`
	// Previous are identity keys this person had before (see
	// PendingIdentity); devices certified by them stay readable but are
	// removed.
	Previous [][]byte `json:"previous_identities,omitempty"`
	// Pending is a new identity that answered an invite made with
	// InviteAgain, waiting for the user to compare the new safety number.
	// Nothing is sealed to its devices and nothing from them is shown
	// until then.
	Pending *PendingIdentity `json:"pending,omitempty"`
}

// PendingIdentity is a partner's new identity key, not yet confirmed.
type PendingIdentity struct {
	Name     string    `json:"name"`
	Identity []byte    `json:"identity"`
	Devices  [][]byte  `json:"devices"`
	JoinBlob string    `json:"join_blob"`
	Since    time.Time `json:"since"`
}

// certifies reports whether id is m's identity key, now or before.
func (m *Member) certifies(id [32]byte) bool {
	if crypto.Equal(id[:], m.Identity) {
		return true
	}
	for _, p := range m.Previous {
		if crypto.Equal(id[:], p) {
			return true
		}
	}
	return false
}

// RemovedDevice is a device its person removed from the journal.
type RemovedDevice struct {
	Sign []byte    `json:"sign"` // the device's signing key
	Last uint64    `json:"last"` // its last blob that stays readable
	At   time.Time `json:"at"`
}

// removed returns the record of device sign's removal, or nil.
func (m *Member) removed(sign [32]byte) *RemovedDevice {
	for i := range m.Removed {
		if crypto.Equal(m.Removed[i].Sign, sign[:]) {
			return &m.Removed[i]
		}
	}
	return nil
}

// pendingInvite is an invite this device made that has not been answered.
type pendingInvite struct {
	Secret  []byte    `json:"secret"`
	Expires time.Time `json:"expires"`
	// Again marks an invite for a partner who is already in the journal
	// and set kintsugi up again with a new identity (InviteAgain).
	Again bool `json:"again,omitempty"`
}

// state is the journal's small mutable state, sealed at rest with the
// storage key. Everything about blobs is derived from the log instead.
type state struct {
	Version int                `json:"version"`
	ID      protocol.JournalID `json:"id"`
	Relay   string             `json:"relay"`
	// RelayID is the id the relay presented when the journal was created
	// or joined; a different id at the same address is refused.
	RelayID string          `json:"relay_id,omitempty"`
	Title   string          `json:"title,omitempty"`
	Created time.Time       `json:"created"`
	Members []Member        `json:"members"`
	Invites []pendingInvite `json:"invites,omitempty"`
	// LastSync is the time of the last successful exchange with the relay.
	LastSync time.Time `json:"last_sync,omitzero"`
	// ShownSeq is the relay position up to which exchanges have recorded
	// (and shown as new) what the relay holds. It outlives a damaged log:
	// what a repair fetches again at or below it is not new to the person.
	ShownSeq uint64 `json:"shown_seq,omitempty"`
	// Notices are problems the client noticed, kept until marked read
	// (notice.go).
	Notices []Notice `json:"notices,omitempty"`
	// Warnings are sentences earlier versions stored; read only to be
	// migrated to Notices (state.migrateWarnings).
	Warnings []string `json:"warnings,omitempty"`
	// JoinSecret is the invite secret this device joined with, kept until
	// its join blob is safely in the log, so a join interrupted by a crash
	// is finished by the next command instead of being lost.
	JoinSecret []byte `json:"join_secret,omitempty"`
	// LeftRelay is set once the relay has been told this person left
	// (Journal.Leave), so an interrupted leave is finished on a retry.
	LeftRelay bool `json:"left_relay,omitempty"`
	// Restored is set while this journal, restored from a backup or with
	// its log repaired, has not yet recovered this device's own history
	// from the relay (adopt.go, repair.go).
	Restored *restoreMark `json:"restored,omitempty"`
	// Refetch asks the next sync to fetch everything the relay holds
	// again, after a repair of the log lost some of it (repair.go).
	Refetch bool `json:"refetch,omitempty"`
	// RefetchFrom, if not 0, asks the next sync to fetch again what the
	// relay holds after this position: the cut-off end of the log held
	// items from the relay (a torn tail, tornTail). Unlike Refetch it
	// does not fetch the whole history again.
	RefetchFrom uint64 `json:"refetch_from,omitempty"`
	// SentSeq and SentHead name the newest blob of this device's own
	// chain the relay had acknowledged at the last sync (head as hex
	// chain id): where a repair that lost the log resumes this device's
	// history from (repair.go, adopt.go).
	SentSeq  uint64 `json:"sent_seq,omitempty"`
	SentHead string `json:"sent_head,omitempty"`
	// RelayBehind, if not 0, is the cursor this device had when the relay
	// said it holds fewer items than that (restored from an older
	// backup, or lying). Nothing is sent to it until a subscribe is
	// accepted again (sync.go push).
	RelayBehind uint64 `json:"relay_behind,omitempty"`
	// NotServed is when the relay last answered that this device is not
	// a member of the journal (it was removed, or its person left from
	// another device); writing is refused up front while it is set. A
	// later exchange the relay serves clears it.
	NotServed *time.Time `json:"not_served,omitempty"`
	// ClaimsFrom is this device's first seq written after its last
	// restore or repair ended: its entries' to_since claims continue
	// only from entries at or after it (tosince.go).
	ClaimsFrom uint64 `json:"claims_from,omitempty"`
	// Account is set on the account journal, the person's own channel
	// between their devices (accountjournal.go).
	Account bool `json:"account,omitempty"`
}

// Journal is one journal's local store, opened by one process. Methods that
// read or change it take the cross-process lock; a Journal is not safe for
// concurrent use by several goroutines (the sync engine serialises).
type Journal struct {
	acct *Account // static
	dir  string   // static

	// id and relay are static once the journal is open.
	id    protocol.JournalID
	relay string

	mu       sync.Mutex // serialises goroutines; flock serialises processes
	lockFile *os.File   // open for the Journal's life; flock'ed while locked
	st       state      // the sealed state, read again under each lock

	// The components (doc.go), used only with the lock held.
	logIndex             // store: the log and what is indexed from it (store.go, checkpoint.go)
	trusts    trustCache // trust: who may author what (trust.go); see Journal.trust
	openIndex            // model: what is opened from the log, and what waits (model.go)

	unsent        unsentFile // the unsent witness (repair.go); static
	repairs       []Repair   // what this process healed (repair.go)
	stateFellBack bool       // the state's earlier copy was just used (loadState)
	refetching    bool       // this process subscribed from the start for a Refetch (sync.go)
}

// logIndex is the journal's log and the index derived from it: every
// blob, found by id and by chain id, the relay's acknowledgements and
// purges, and this device's own chain head. It knows nothing of keys,
// trust or what an entry says.
type logIndex struct {
	signKey [32]byte // this device's signing key: whose blobs are its own
	path    string   // the log file's path
	log     *os.File // append handle
	offset  int64    // bytes of the log already indexed
	lastAt  int64    // where the last indexed record starts (-1: none)
	// records counts the records indexed; saved is how many the
	// checkpoint on disk covers (see checkpoint.go).
	records, saved int
	started        bool // the checkpoint was looked at

	blobs     blobIndex // by blob id, or empty until needed: see blob
	chain     blobIndex // by chain id; the first blob seen wins
	order     []*stored
	cursor    uint64 // highest relay seq pulled
	acked     map[protocol.BlobID]uint64
	purgeDone map[protocol.BlobID]bool // own blobs the relay has purged
	// ownLast is this device's last blob, for the next header.
	ownSeq  uint64
	ownLast protocol.BlobID
	// adoptions counts the adopt records indexed since the index was
	// reset or loaded: each makes a pulled blob this device's own (see
	// openIndex.grantsDone).
	adoptions int

	damage   []damage                  // blobs that could not be read back (repair.go)
	rawReads int                       // blobs read back from the log, for tests
	knownIDs map[*byte]protocol.BlobID // see appendRecordsIDs
}

// openIndex is what decryptAll opened from the log (model.go): each chain's
// opened entry is on its first blob (stored.opened); unopened is what it
// could not open yet. Payloads are kept without their text; the
// checkpoint keeps them, sealed, across processes. It also keeps the
// answers derived from them that are costly to find again.
type openIndex struct {
	store  *logIndex       // what it opens from (the Journal's); static
	keys   *crypto.Keyring // this device's keys; static
	ownBox [32]byte        // this device's box key: its own slot; static

	unopened []*stored // entries not opened yet
	scanned  int       // store.order[:scanned] has been through decryptAll
	// grantChecks caches the check of each grant (see grantCheck), and
	// grantItems the items of the valid ones, by entry chain id, while
	// this process holds them (grantItemsAll: for every valid grant).
	grantChecks     map[protocol.BlobID]grantCheck
	grantItems      map[protocol.BlobID][]grantRef
	grantItemsAll   bool
	uncheckedGrants []*stored // grants whose author is not accepted (yet)
	tried           bool      // unopened entries were tried, with the members triedKey names
	triedKey        [32]byte

	opens      int                            // entries this process opened (decrypted)
	tries      int                            // and tried to open
	pre        map[protocol.BlobID]*preopened // entries of the batch being recorded, decrypted ahead (preopen)
	preUsed    int                            // entries opened from what preopen found, for tests
	decrypted  decryptedCache                 // see decryptAll
	gapsCache  *gapsCache                     // see gaps; kept in the checkpoint
	grantsDone grantsKey                      // see ensureGrants; kept in the checkpoint
	loading    *checkpointLoad                // while a checkpoint decodes

	// claims are, per author device, the seqs its opened entries say
	// carried this device's slot (tosince.go); kept in the checkpoint.
	claims map[[32]byte][]claimSpan
	ownKid string // this device's key id in hex, once needed
}

// OpenJournal opens the local store of journal id.
func (a *Account) OpenJournal(id protocol.JournalID) (*Journal, error) {
	dir := a.Home.journalDir(id.String())
	if !hasState(dir) {
		return nil, fmt.Errorf("%w with id %s in this home", ErrNoJournal, id)
	}
	j, err := a.openJournalDir(dir)
	if err != nil {
		return nil, err
	}
	if err := j.finishJoin(); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

// hasState reports whether dir holds a journal: its state, or the state's
// previous generation when the state itself was lost (repair.go).
func hasState(dir string) bool {
	for _, name := range []string{"state", "state.prev"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

func (a *Account) openJournalDir(dir string) (*Journal, error) {
	if _, err := os.Stat(dir); err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		// Make the new directories themselves durable.
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return nil, err
		}
		if err := syncDir(filepath.Dir(filepath.Dir(dir))); err != nil {
			return nil, err
		}
	}
	lf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	lg, err := os.OpenFile(filepath.Join(dir, "log"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		lf.Close()
		return nil, err
	}
	j := &Journal{
		acct: a, dir: dir, lockFile: lf,
		unsent: unsentFile{path: filepath.Join(dir, "unsent"), key: &a.storageKey},
		logIndex: logIndex{
			signKey: a.Device.SignKey(),
			path:    filepath.Join(dir, "log"),
			log:     lg, lastAt: -1,
			blobs:     newBlobIndex(false, 0),
			chain:     newBlobIndex(true, 0),
			acked:     make(map[protocol.BlobID]uint64),
			purgeDone: make(map[protocol.BlobID]bool),
		},
		openIndex: openIndex{
			grantChecks: make(map[protocol.BlobID]grantCheck),
			grantItems:  make(map[protocol.BlobID][]grantRef),
		},
	}
	j.openIndex.store, j.openIndex.keys, j.openIndex.ownBox = &j.logIndex, a.keys, a.Device.BoxPublic
	if err := j.withLock(func() error { return nil }); err != nil {
		j.Close()
		return nil, err
	}
	j.id, j.relay = j.st.ID, j.st.Relay
	return j, nil
}

// Close saves the checkpoint if this process indexed enough that the next
// one would rather not read it again, and releases the journal's files.
func (j *Journal) Close() error {
	j.mu.Lock()
	worth := j.worthSaving()
	j.mu.Unlock()
	if worth {
		_ = j.withLock(func() error { j.saveCheckpoint(false); return nil })
	}
	return j.closeFiles()
}

// closeFiles releases the journal's files.
func (j *Journal) closeFiles() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	err1 := j.log.Close()
	err2 := j.lockFile.Close()
	return errors.Join(err1, err2)
}

// ID returns the journal id.
func (j *Journal) ID() protocol.JournalID { return j.id }

// Relay returns the relay URL.
func (j *Journal) Relay() string { return j.relay }

// Title returns the journal's title.
func (j *Journal) Title() string {
	var t string
	_ = j.withLock(func() error { t = j.st.Title; return nil })
	return t
}

// withLock takes the journal's exclusive lock, catches up on what other
// processes wrote (state and log), runs fn, and releases the lock.
func (j *Journal) withLock(fn func() error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := unix.Flock(int(j.lockFile.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock journal: %w", err)
	}
	defer unix.Flock(int(j.lockFile.Fd()), unix.LOCK_UN)
	if err := j.loadState(); err != nil {
		return err
	}
	if replaced, err := j.follow(); err != nil {
		return err
	} else if replaced {
		j.openIndex.reset() // what was opened is opened again from the new log
	}
	if !j.started {
		j.started = true
		if err := j.loadCheckpoint(); err != nil {
			return err
		}
	}
	if err := j.catchUp(); err != nil {
		return err
	}
	if j.stateFellBack {
		// The state's earlier copy may lack a roster change (a device
		// removed) that the log holds: apply the log's roster records
		// before anything is sealed with it.
		j.stateFellBack = false
		if _, err := j.applyRoster(); err != nil {
			return err
		}
		if err := j.saveStateTwice(); err != nil {
			return err
		}
	}
	err := fn()
	// A read that met damage heals the log before the lock is released.
	return errors.Join(err, j.healDamage())
}

// follow makes sure the open log is the file at the log's path and has
// not been cut short: another process may have repaired it (repair.go),
// which replaces the file. If it has, the new file is opened and the
// index forgotten, to be read again from the new log (through its
// checkpoint, if any); follow reports that it was. Call with the lock
// held.
func (l *logIndex) follow() (replaced bool, err error) {
	open, err := l.log.Stat()
	if err != nil {
		return false, err
	}
	now, err := os.Stat(l.path)
	if err == nil && os.SameFile(open, now) && open.Size() >= l.offset {
		return false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	lg, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return false, err
	}
	l.log.Close()
	l.log = lg
	l.reset()
	l.started = false
	return true, nil
}

func (j *Journal) statePath() string { return filepath.Join(j.dir, "state") }

// prevStatePath is the state's previous generation, kept so one damaged
// state file does not lock a person out (repair.go).
func (j *Journal) prevStatePath() string { return filepath.Join(j.dir, "state.prev") }

// loadState reads the state, or its previous generation if the state is
// damaged or missing; the damaged file is set aside. Call with the lock
// held.
func (j *Journal) loadState() error {
	b, err := os.ReadFile(j.statePath())
	var st *state
	if err == nil {
		st, err = j.openState(b)
	}
	if errors.Is(err, fs.ErrNotExist) {
		if _, perr := os.Stat(j.prevStatePath()); perr != nil {
			return nil // a journal being created
		}
	}
	if err != nil {
		prev, perr := os.ReadFile(j.prevStatePath())
		if perr == nil {
			st, perr = j.openState(prev)
		}
		if perr != nil {
			return fmt.Errorf("%w (%v)", ErrDamagedState, err)
		}
		rep := Repair{Kind: RepairState}
		if _, serr := os.Stat(j.statePath()); serr == nil {
			rep.SetAside = asideName(j.statePath(), "damaged")
			if err := os.Rename(j.statePath(), rep.SetAside); err != nil {
				return fmt.Errorf("set the damaged journal state aside: %w", err)
			}
		}
		j.st = *st
		if err := j.saveStateTwice(); err != nil {
			return err
		}
		j.stateFellBack = true
		j.repairs = append(j.repairs, rep)
		return nil
	}
	j.st = *st
	return nil
}

// openState opens and decodes sealed state bytes.
func (j *Journal) openState(b []byte) (*state, error) {
	plain, err := crypto.Open(&j.acct.storageKey, b)
	if err != nil {
		return nil, fmt.Errorf("journal state: %w", err)
	}
	defer clear(plain)
	var st state
	if err := json.Unmarshal(plain, &st); err != nil {
		return nil, fmt.Errorf("journal state: %w", err)
	}
	if st.ID.String() != filepath.Base(j.dir) {
		return nil, fmt.Errorf("journal state: %w: it belongs to journal %s", crypto.ErrCorrupt, st.ID)
	}
	st.migrateWarnings()
	return &st, nil
}

// sealState is the state file's bytes: st's JSON sealed under the
// storage key with a nonce from random (crypto/rand.Reader; fixed bytes
// only in the test vectors).
func sealState(random io.Reader, key *[32]byte, st *state) ([]byte, error) {
	plain, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	return crypto.Seal(random, key, plain)
}

// saveStateTwice saves the state so that its previous generation is the
// same: for a change that must survive the state being damaged next
// (repair.go).
func (j *Journal) saveStateTwice() error {
	if err := j.saveState(); err != nil {
		return err
	}
	return j.saveState()
}

// saveState writes the state atomically, keeping the one it replaces as
// the previous generation. Call with the lock held.
func (j *Journal) saveState() error {
	sealed, err := sealState(rand.Reader, &j.acct.storageKey, &j.st)
	if err != nil {
		return err
	}
	// state.prev is the state being replaced (or this one, the first
	// time), as a hard link, so it is never missing or half written.
	tmp := j.prevStatePath() + ".tmp"
	os.Remove(tmp)
	kept := os.Link(j.statePath(), tmp) == nil && os.Rename(tmp, j.prevStatePath()) == nil
	if err := writeFileAtomic(j.statePath(), sealed, false); err != nil {
		return err
	}
	if !kept {
		return writeFileAtomic(j.prevStatePath(), sealed, false)
	}
	return nil
}

// catchUp indexes the records appended since the last call and opens
// what they bring. Call with the lock held.
func (j *Journal) catchUp() error {
	err := j.logIndex.catchUp(func() { j.openNew(j.trust()) })
	if errors.Is(err, errTornTail) {
		return j.tornTail()
	}
	return err
}

// errTornTail: the log's bytes from the store's offset on do not start
// with a whole, checksummed record (see Journal.tornTail).
var errTornTail = errors.New("the journal log ends in a torn record")

// catchUp indexes records appended since the last call, streaming them
// from the log. It calls batch after every openEvery records and once at
// the end, when any were indexed, so the caller can consume what they
// hold. It returns errTornTail, with offset at the torn record, if the
// log does not end in whole records. Call with the lock held.
func (l *logIndex) catchUp(batch func()) error {
	fi, err := l.log.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < l.offset {
		return fmt.Errorf("journal log shrank from %d to %d bytes: was it replaced?", l.offset, fi.Size())
	}
	if fi.Size() == l.offset {
		return nil
	}
	r := bufio.NewReaderSize(io.NewSectionReader(l.log, l.offset, fi.Size()-l.offset), 1<<20)
	var hdr [5]byte
	for l.offset < fi.Size() {
		rest := fi.Size() - l.offset
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return errTornTail
		}
		size := int64(binary.BigEndian.Uint32(hdr[1:]))
		if size > maxRecord || rest < 5+size+4 {
			return errTornTail
		}
		rec := make([]byte, 5+size+4)
		copy(rec, hdr[:])
		if _, err := io.ReadFull(r, rec[5:]); err != nil {
			return err
		}
		n, typ, body, ok := nextRecord(rec)
		if !ok {
			return errTornTail
		}

		if err := l.index(typ, body, l.offset); err != nil {
			return err
		}
		l.lastAt = l.offset
		l.offset += int64(n)
		l.records++
		if l.records%openEvery == 0 {
			batch() // keep only a batch of blob bodies in memory
		}
	}
	batch()
	return nil
}

// openEvery is how many records catchUp indexes between two openNew calls:
// it bounds the blob bodies held in memory while a long log is read.
const openEvery = 1024

// tornTail handles a log whose bytes from the store's offset on do not
// start with a whole, checksummed record. Call with the lock held.
func (j *Journal) tornTail() error {
	p, err := j.readFrom(j.offset)
	if err != nil {
		return err
	}
	// If a whole record follows, this is damage, not a torn tail.
	if validRecordAfter(p[1:]) {
		return j.rebuildLog(j.order, false)
	}
	// A torn tail: a writer stopped part way (nothing was reported saved
	// from it), or the end of the file was damaged. A record of this
	// device's whose blob is whole and proves itself is kept; whatever
	// else is there is set aside, never deleted, and cut off so appends
	// stay aligned.
	t := j.trust()
	rec, _ := readBack(p, func(blob []byte) bool { return j.proves(blob, t) })
	aside := asideName(j.logIndex.path, "torn")
	if err := writeFileAtomic(aside, p, true); err != nil {
		return fmt.Errorf("set the end of the journal log aside: %w", err)
	}
	if err := j.cut(); err != nil {
		return fmt.Errorf("repair journal log: %w", err)
	}
	// A pulled record cut off comes back from the relay: the cursor is
	// where the log now ends.
	rep := Repair{Kind: RepairLog, SetAside: aside, SetAsideEnd: true, Refetch: len(p) > 0 && p[0] == recPulled}
	if rec != nil {
		if err := j.appendRecords(rec); err != nil {
			return err
		}
		rep.Kept = 1
	}
	if rep.Refetch {
		// The state remembers it, so the sync that fetches it again
		// asks from here even if newer items arrive first (a watcher
		// stays subscribed past this point), and status can say the
		// items are missing because of damage here.
		if j.cursor == 0 {
			j.st.Refetch = true
		} else if j.st.RefetchFrom == 0 || j.cursor < j.st.RefetchFrom {
			j.st.RefetchFrom = j.cursor
		}
		if err := j.saveStateTwice(); err != nil {
			return err
		}
	}
	// An entry the witness noted as saved that is not here now was in the
	// part cut off. (One that was being written when a writer stopped was
	// never noted: nobody was told it was saved.)
	notes, unnamed := j.loadUnsent()
	if unnamed {
		// The list was damaged and made again from the log as it is
		// now: what the cut-off end held can no longer be named, and
		// may have been this device's unsent writing.
		rep.Unknown = true
	}
	named := make(map[string]bool)
	if rep.Lost = j.lostFromWitness(notes, named); len(rep.Lost) > 0 {
		if err := j.unsent.pruneLost(notes, named); err != nil {
			return err
		}
		j.st.noteLost(rep.Lost)
		if err := j.saveStateTwice(); err != nil {
			return err
		}
	}
	j.repairs = append(j.repairs, rep)
	return nil
}

// readFrom returns the log's bytes from at on. Call with the lock held.
func (l *logIndex) readFrom(at int64) ([]byte, error) {
	fi, err := l.log.Stat()
	if err != nil {
		return nil, err
	}
	p := make([]byte, fi.Size()-at)
	if _, err := l.log.ReadAt(p, at); err != nil && err != io.EOF {
		return nil, err
	}
	return p, nil
}

// replace makes recs the whole log, atomically, and opens the new file.
// Call with the lock held; the index still describes the old file.
func (l *logIndex) replace(recs [][]byte) error {
	var buf []byte
	for _, r := range recs {
		buf = append(buf, r...)
	}
	if err := writeFileAtomic(l.path, buf, false); err != nil {
		return fmt.Errorf("write the repaired log: %w", err)
	}
	lg, err := os.OpenFile(l.path, os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	l.log.Close()
	l.log = lg
	return nil
}

// cut cuts the log off at offset, so appends stay aligned after a torn
// tail. Call with the lock held.
func (l *logIndex) cut() error { return l.log.Truncate(l.offset) }

// validRecordAfter reports whether a whole, checksummed record starts
// anywhere in p. It runs only when the log needs repair.
func validRecordAfter(p []byte) bool {
	for i := range p {
		switch p[i] {
		case recWritten, recPulled, recSeen, recAcked, recPurged, recPurge, recAdopted:
			if _, _, _, ok := nextRecord(p[i:]); ok {
				return true
			}
		}
	}
	return false
}

func nextRecord(p []byte) (n int, typ byte, body []byte, ok bool) {
	if len(p) < 9 {
		return 0, 0, nil, false
	}
	l := int(binary.BigEndian.Uint32(p[1:5]))
	if l > maxRecord || len(p) < 5+l+4 {
		return 0, 0, nil, false
	}
	if crc32.Checksum(p[:5+l], crcTable) != binary.BigEndian.Uint32(p[5+l:]) {
		return 0, 0, nil, false
	}
	return 5 + l + 4, p[0], p[5 : 5+l], true
}

// index adds one record, which starts at byte at of the log, to the
// in-memory index. It keeps blob bodies (in Raw) without copying them.
func (l *logIndex) index(typ byte, body []byte, at int64) error {
	switch typ {
	case recWritten:
		l.addBlob(body, 0, true, at)
	case recPulled:
		if len(body) < 8 {
			return errors.New("journal log: short record")
		}
		seq := binary.BigEndian.Uint64(body)
		l.addBlob(body[8:], seq, false, at)
		l.cursor = max(l.cursor, seq)
	case recSeen, recAcked:
		if len(body) != 40 {
			return errors.New("journal log: bad record")
		}
		seq := binary.BigEndian.Uint64(body)
		id := protocol.BlobID(body[8:])
		if s := l.blob(id); s != nil {
			s.RelaySeq = seq
		}
		l.acked[id] = seq
		if typ == recSeen {
			l.cursor = max(l.cursor, seq)
		}
	case recPurged:
		if len(body) != 8+protocol.PurgedRecordSize {
			return errors.New("journal log: bad purged record")
		}
		seq := binary.BigEndian.Uint64(body)
		l.cursor = max(l.cursor, seq)
		h, chain, err := protocol.ParsePurged(body[8:])
		if err != nil {
			return nil // the relay's nonsense was recorded; ignore it
		}
		id := protocol.IDOf(body[8:]) // a stand-in id: the real bytes are gone
		if l.blob(id) != nil {
			return nil
		}
		s := &stored{ID: id, Chain: chain, Header: h, Order: len(l.order), RelaySeq: seq, Purged: true, At: at}
		l.add(s)
	case recPurge:
		if len(body) != 32 {
			return errors.New("journal log: bad purge record")
		}
		l.purgeDone[protocol.BlobID(body)] = true
	case recAdopted:
		if len(body) != 32 {
			return errors.New("journal log: bad adopt record")
		}
		l.adopt(protocol.BlobID(body))
	default:
		return fmt.Errorf("journal log: unknown record type %q", typ)
	}
	return nil
}

// blob returns the blob with id, or nil. The index by id is built on
// first use: a command that only reads never needs it.
func (l *logIndex) blob(id protocol.BlobID) *stored {
	if l.blobs.first == nil {
		l.blobs = newBlobIndex(false, len(l.order))
		for _, s := range l.order {
			l.blobs.add(l.order, s)
		}
	}
	return l.blobs.get(l.order, id)
}

// add appends s, whose Order is len(order), to the index.
func (l *logIndex) add(s *stored) {
	l.order = append(l.order, s)
	if l.blobs.first != nil {
		l.blobs.add(l.order, s)
	}
	if l.chain.first != nil {
		l.chain.add(l.order, s)
	}
}

// chainOf returns the first blob seen with chain id c, or nil.
func (l *logIndex) chainOf(c protocol.BlobID) *stored {
	if l.chain.first == nil {
		l.chain = newBlobIndex(true, len(l.order))
		for _, s := range l.order {
			l.chain.add(l.order, s)
		}
	}
	return l.chain.get(l.order, c)
}

func (l *logIndex) addBlob(raw []byte, seq uint64, local bool, at int64) {
	id := l.idOf(raw)
	if s := l.blob(id); s != nil {
		if seq != 0 {
			s.RelaySeq = seq
		}
		return
	}
	h, err := protocol.ParseHeader(raw)
	if err != nil {
		return // the relay refuses these; a stored one is ignored, not fatal
	}
	s := &stored{ID: id, held: &heldBlob{raw: raw}, Header: h, Order: len(l.order), RelaySeq: seq, Local: local, At: at}
	if h.Kind == protocol.KindEntry {
		// Parsed once: its content hash (the chain id) is computed once
		// and used again when it is opened (openNew drops it).
		e, err := protocol.ParseEntry(raw)
		if err != nil {
			return
		}
		s.held.entry, s.Chain = e, e.ContentHash()
	} else {
		s.Chain = protocol.ChainID(raw)
	}
	if seq == 0 {
		s.RelaySeq = l.acked[id]
	}
	l.add(s)
	// Only blobs written here advance this device's own chain: a blob from
	// the relay that claims to be ours is not trusted to.
	if local && h.Author == l.signKey && h.Seq > l.ownSeq {
		l.ownSeq, l.ownLast = h.Seq, s.Chain
	}
}

// idOf returns the id of blob raw: the one the caller already computed
// (see appendRecordsIDs), or its hash.
func (l *logIndex) idOf(raw []byte) protocol.BlobID {
	if len(l.knownIDs) > 0 && len(raw) > 0 {
		if id, ok := l.knownIDs[&raw[0]]; ok {
			return id
		}
	}
	return protocol.IDOf(raw)
}

// appendRecordsIDs is appendRecords for blob records whose ids the caller
// has already computed (ids[&body[0]]), so each blob is hashed once.
func (j *Journal) appendRecordsIDs(ids map[*byte]protocol.BlobID, recs ...[]byte) error {
	if err := j.logIndex.append(ids, recs...); err != nil {
		return err
	}
	j.openNew(j.trust())
	return nil
}

// appendRecords appends records, fsyncs, and opens what they bring. Call
// with the lock held.
func (j *Journal) appendRecords(recs ...[]byte) error { return j.appendRecordsIDs(nil, recs...) }

// append appends records and fsyncs, and indexes them; ids are the blob
// ids the caller already computed, if any (see appendRecordsIDs). Call
// with the lock held.
func (l *logIndex) append(ids map[*byte]protocol.BlobID, recs ...[]byte) error {
	l.knownIDs = ids
	defer func() { l.knownIDs = nil }()
	n := 0
	for _, r := range recs {
		n += len(r)
	}
	buf := make([]byte, 0, n)
	for _, r := range recs {
		buf = append(buf, r...)
	}
	if _, err := l.log.WriteAt(buf, l.offset); err != nil {
		return err
	}
	if err := l.log.Sync(); err != nil {
		return err
	}
	// Index what was written from memory: the lock is held, so nobody
	// appended since catchUp, and there is nothing to read back.
	for _, r := range recs {
		if err := l.index(r[0], r[5:len(r)-4], l.offset); err != nil {
			return err
		}
		l.lastAt = l.offset
		l.offset += int64(len(r))
		l.records++
	}
	return nil
}

// raw returns blob s's bytes: Raw while this process holds them, else
// read back from the log and checked against the blob id. It returns nil
// for a purged blob, and nil with the damage recorded (see repair.go) when
// the log no longer holds the bytes it indexed.
func (l *logIndex) raw(s *stored) []byte { return l.rawInto(s, nil) }

// rawInto is raw reading into buf when it is long enough, for a caller
// that is done with the bytes before it uses buf again.
func (l *logIndex) rawInto(s *stored, buf []byte) []byte {
	if s.Purged {
		return nil
	}
	if s.held != nil {
		return s.held.raw
	}
	l.rawReads++
	// One read is enough for most records (an entry of a page of text);
	// a longer one takes a second for the rest.
	rec := buf
	if cap(rec) < rawGuess {
		rec = make([]byte, rawGuess)
	}
	rec = rec[:cap(rec)]
	n, err := l.log.ReadAt(rec, s.At)
	if n < 5 {
		if err == nil || err == io.EOF {
			err = ErrDamagedRecord
		}
		l.noteDamage(s, err)
		return nil
	}
	size := int(binary.BigEndian.Uint32(rec[1:5]))
	if size > maxRecord {
		l.noteDamage(s, ErrDamagedRecord)
		return nil
	}
	if want := 5 + size + 4; want <= n {
		rec = rec[:want]
	} else {
		rec = append(rec[:n], make([]byte, want-n)...)
		if _, err := l.log.ReadAt(rec[n:], s.At+int64(n)); err != nil {
			l.noteDamage(s, err)
			return nil
		}
	}
	_, typ, body, ok := nextRecord(rec)
	if ok && typ == recPulled && len(body) >= 8 {
		body = body[8:]
	}
	if !ok || (typ != recWritten && typ != recPulled) || protocol.IDOf(body) != s.ID {
		l.noteDamage(s, ErrDamagedRecord)
		return nil
	}
	return body
}

// rawGuess is how much raw reads at first: an entry of about 1,200
// characters and its record fit.
const rawGuess = 2048

func record(typ byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, 9+n)
	b = append(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for _, p := range parts {
		b = append(b, p...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func seqBytes(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// outbox returns own blobs the relay has not acknowledged, oldest first.
func (l *logIndex) outbox() []*stored {
	var out []*stored
	for _, s := range l.order {
		if s.Local && s.RelaySeq == 0 {
			out = append(out, s)
		}
	}
	return out
}

// nextHeader returns the header for this device's next blob in journal.
func (l *logIndex) nextHeader(journal protocol.JournalID, kind protocol.Kind) protocol.Header {
	return protocol.Header{
		Kind:    kind,
		Journal: journal,
		Author:  l.signKey,
		Seq:     l.ownSeq + 1,
		Prev:    l.ownLast,
	}
}

// writeBlob appends a blob made by this device. When it returns nil the
// blob is durable on disk and in the outbox. Call with the lock held.
func (j *Journal) writeBlob(blob []byte) error {
	if _, err := protocol.ParseHeader(blob); err != nil {
		return fmt.Errorf("refusing to save a blob that would not be accepted: %w", err)
	}
	if err := j.st.pausedErr(); err != nil {
		return err
	}
	return j.appendRecords(record(recWritten, blob))
}

// members returns the members sorted with self first.
func (st *state) members() []Member {
	ms := append([]Member(nil), st.Members...)
	sort.SliceStable(ms, func(a, b int) bool { return ms[a].Self && !ms[b].Self })
	return ms
}
