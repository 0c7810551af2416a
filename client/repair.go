package client

// Healing damaged local files.
//
// A journal's local files are the log (the only home of what the relay has
// not acknowledged), the state (members, invites; sealed), the state's
// previous generation (state.prev) and the checkpoint (index, a cache).
// Damage to any of them is detected, the damaged file is moved aside
// (renamed with a .damaged-TIME suffix, never deleted), and the journal is
// rebuilt from what is intact, the relay and the keys:
//
//   - The checkpoint: rebuilt from the log. Nothing can be lost.
//   - The state: the previous generation is used (the last change to the
//     journal's settings may need doing again, such as confirming a safety
//     number). If both are unreadable, nothing is changed and the error
//     says so; a backup (`restore`) or a new invite brings the journal
//     back.
//   - The log: every whole record is kept; a record whose checksum fails
//     but whose blob still proves itself (this device's own entry whose own
//     slot opens, or a grant it sent) is kept too. Everything the relay
//     holds is fetched again on the next sync (Refetch), and if this
//     device's own blobs may be missing, the journal waits in repair mode
//     (state.Restored, as after a restore: adopt.go) until a sync has
//     collected them, so its history is not split. Items this device wrote
//     that the relay never acknowledged and that could not be read back
//     are named in the report, with what is known of them.
//
//   - The unsent witness (unsent, a list naming the entries written here
//     and not yet acknowledged): made again from the log, which holds those
//     entries (loadUnsent).
//
// What was done is reported by Journal.Repairs, in kinds and data; the CLI
// words it. A watcher (sync --watch) sends each repair as an Event as it
// happens and, if the relay holds what was set aside, subscribes again to
// fetch it (sync.go).

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// ErrDamagedRecord: the log no longer holds the bytes it indexed. Reads
// heal the log when they meet one (Journal.Verify heals every one).
var ErrDamagedRecord = errors.New("a record in this journal's local log is damaged")

// ErrDamagedState: neither the journal's state nor its previous generation
// can be read with this home's keys.
var ErrDamagedState = errors.New("this journal's settings on this device are damaged, and so is their earlier copy")

// Repair is something this process healed in the journal's local files.
type Repair struct {
	// Kind is what was repaired: RepairIndex, RepairState, RepairLog or
	// RepairUnsent.
	Kind string `json:"kind"`
	// SetAside is where the damaged file was moved ("" if nothing was).
	SetAside string `json:"set_aside,omitempty"`
	// SetAsideEnd is set when SetAside holds only the damaged end of the
	// file, cut off it, and the rest of the file stayed in place.
	SetAsideEnd bool `json:"set_aside_end,omitempty"`
	// Kept counts items read back from damaged records and kept.
	Kept int `json:"kept,omitempty"`
	// Lost lists items this device wrote, never acknowledged by the relay,
	// that could not be read back.
	Lost []LostItem `json:"lost,omitempty"`
	// Unknown is set when items written here may have been lost without
	// this device knowing which (the log was lost with no index to name
	// them).
	Unknown bool `json:"unknown,omitempty"`
	// Refetch is set when what the relay holds will be fetched again on
	// the next sync; Waits when writing waits for that sync.
	Refetch bool `json:"refetch,omitempty"`
	Waits   bool `json:"waits,omitempty"`
}

// Kinds of repair.
const (
	RepairIndex = "index" // the checkpoint did not open or match; rebuilt from the log
	RepairState = "state" // the state was damaged or missing; its earlier copy was used
	RepairLog   = "log"   // the log was damaged, cut short or missing
	// RepairUnsent: the list of entries not yet sent (the unsent
	// witness) did not open; it was made again from the log, and Kept
	// counts the entries it names now. Unknown is set if it could not be
	// set aside or written again.
	RepairUnsent = "unsent"
)

// LostItem is an unsent item that could not be read back.
type LostItem struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind,omitempty"` // "" if not known
	Created time.Time `json:"created,omitzero"`
	// Words are its first few words, when this device noted them.
	Words string `json:"words,omitempty"`
}

// Repairs returns what this process has repaired in the journal so far.
func (j *Journal) Repairs() []Repair {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Repair(nil), j.repairs...)
}

// asideName is where a damaged file at path is kept: path.WHY-TIME
// ("damaged", or "torn" for the cut end of a log).
func asideName(path, why string) string {
	return fmt.Sprintf("%s.%s-%s", path, why, time.Now().UTC().Format("20060102T150405.000Z"))
}

// damage is one blob whose bytes could not be read back from the log.
type damage struct {
	id  protocol.BlobID
	err error
}

// noteDamage records that blob s could not be read back from the log; the
// lock holder heals the log before releasing the lock. Call with the lock
// held.
func (l *logIndex) noteDamage(s *stored, err error) {
	l.damage = append(l.damage, damage{id: s.ID, err: fmt.Errorf("read %s: %w", s.Chain.String()[:ShortIDLen], err)})
}

// healDamage rebuilds the log if a read found damage. Call with the lock
// held.
func (j *Journal) healDamage() error {
	if !j.takeDamage() {
		return nil
	}
	return j.rebuildLog(j.order, false)
}

// takeDamage reports whether reads met damage since the last call.
func (l *logIndex) takeDamage() bool {
	met := len(l.damage) > 0
	l.damage = nil
	return met
}

// Verify reads the whole log again, checks every record, and heals what is
// damaged; it then saves a fresh checkpoint. The journal does this by
// itself when it meets damage; Verify looks everywhere at once.
func (j *Journal) Verify() error {
	return j.withLock(func() error {
		known := j.order
		j.resetIndex()
		if err := j.catchUp(); err != nil {
			return err
		}
		if j.takeDamage() {
			if err := j.rebuildLog(known, false); err != nil {
				return err
			}
		}
		j.loadUnsent() // heals the list of unsent entries if it is damaged
		j.saveCheckpoint(true)
		return nil
	})
}

// salvaged is what a scan of a damaged log kept.
type salvaged struct {
	recs [][]byte // whole records, in order, checksums made good
	kept int      // records read back from damaged bytes
	bad  bool     // some bytes could not be used
	// own: what could not be used may have been this device's own (it
	// started as a written record, or as nothing recognisable).
	own bool
}

// scanLog keeps every whole record of log bytes p, skipping damage: after a
// bad spot it goes on from the next whole record. A record whose checksum
// fails is kept if its blob still proves itself (see readBack).
func (l *logIndex) scanLog(p []byte, proves func(blob []byte) bool) salvaged {
	var sv salvaged
	for len(p) > 0 {
		if n, _, _, ok := nextRecord(p); ok {
			sv.recs = append(sv.recs, p[:n])
			p = p[n:]
			continue
		}
		sv.bad = true
		if rec, n := readBack(p, proves); rec != nil {
			sv.recs, sv.kept = append(sv.recs, rec), sv.kept+1
			p = p[n:]
			continue
		}
		if l.maybeOwn(p) {
			sv.own = true
		}
		// Go on from the next whole record, if any.
		next := -1
		for i := 1; i < len(p); i++ {
			if _, _, _, ok := nextRecord(p[i:]); ok && isRecordType(p[i]) {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		p = p[next:]
	}
	return sv
}

func isRecordType(b byte) bool {
	switch b {
	case recWritten, recPulled, recSeen, recAcked, recPurged, recPurge, recAdopted:
		return true
	}
	return false
}

// readBack tries to keep a record whose checksum fails or whose checksum
// was cut off: a blob this device wrote whose body is whole and proves
// itself (proves says which do). It returns the record with a good
// checksum and how many bytes of p it used.
func readBack(p []byte, proves func(blob []byte) bool) ([]byte, int) {
	if len(p) < 5 || p[0] != recWritten {
		return nil, 0
	}
	l := int(binary.BigEndian.Uint32(p[1:5]))
	if l > maxRecord || len(p) < 5+l {
		return nil, 0
	}
	blob := p[5 : 5+l]
	// Only a record whose checksum was cut off (the end of the file lost)
	// is read back: a whole checksum that disagrees means the body
	// changed, and the slots of the other recipients, which this device
	// cannot check, may be what changed.
	sum := binary.BigEndian.AppendUint32(nil, crc32.Checksum(p[:5+l], crcTable))
	if tail := p[5+l:]; len(tail) >= 4 || string(tail) != string(sum[:len(tail)]) {
		return nil, 0
	}
	if !proves(blob) {
		return nil, 0
	}
	return record(recWritten, blob), len(p)
}

// proves reports whether blob is this device's own and authentic: an
// entry whose own slot opens, or a grant this device sent to a member's
// device. Call with the lock held.
func (m *openIndex) proves(blob []byte, t *trust) bool {
	h, err := protocol.ParseHeader(blob)
	if err != nil || h.Author != m.store.signKey {
		return false
	}
	switch h.Kind {
	case protocol.KindEntry:
		e, err := protocol.ParseEntry(blob)
		if err != nil {
			return false
		}
		_, err = m.keys.EntryKey(e, m.ownBox)
		return err == nil
	case protocol.KindGrant:
		g, err := protocol.ParseGrant(blob)
		if err != nil {
			return false
		}
		for _, box := range t.recipients {
			if m.keys.CheckSentGrant(g, box) == nil {
				return true
			}
		}
	}
	return false
}

// rebuildLog heals the log: it keeps what scanLog keeps, moves the damaged
// file aside, writes the kept records to a new log and indexes it. known
// is the index from before the damage (nil if none), used to name what
// could not be read back; lost says the log itself was lost or cut short.
// Call with the lock held.
func (j *Journal) rebuildLog(known []*stored, lost bool) error {
	p, err := j.readFrom(0)
	if err != nil {
		return err
	}
	t := j.trust()
	sv := j.scanLog(p, func(blob []byte) bool { return j.proves(blob, t) })
	rep := Repair{Kind: RepairLog, Kept: sv.kept, Refetch: sv.bad || lost}
	ownGone := sv.own
	if sv.bad || lost {
		if len(p) > 0 {
			path := j.logIndex.path
			aside := asideName(path, "damaged")
			if err := os.Link(path, aside); err != nil {
				return fmt.Errorf("set the damaged log aside: %w", err)
			}
			rep.SetAside = aside
		}
		if err := j.replace(sv.recs); err != nil {
			return err
		}
		// The checkpoint describes the old log; it would be set aside as
		// not matching. It holds nothing the new log cannot give.
		os.Remove(j.checkpointPath())
	}
	j.resetIndex()
	if err := j.catchUp(); err != nil {
		return err
	}
	// What is no longer here: entries the witness noted as unsent, and
	// anything the index from before knew.
	me := j.signKey
	notes, unnamed := j.loadUnsent()
	named := make(map[string]bool)
	rep.Lost = j.lostFromWitness(notes, named)
	if len(rep.Lost) > 0 {
		ownGone = true
	}
	if (notes.Unnoted > 0 || unnamed) && (lost || sv.bad && sv.own) {
		// Older unsent entries than the witness notes may have been in
		// what was lost: they cannot be named.
		rep.Unknown = true
	}
	for _, s := range known {
		if j.blob(s.ID) != nil || s.Purged {
			continue
		}
		rep.Refetch = true
		if s.Header.Author != me || !s.Local {
			continue
		}
		ownGone = true
		if s.RelaySeq == 0 && !named[s.Chain.String()] && s.Header.Kind == protocol.KindEntry {
			item := LostItem{ID: s.Chain.String()}
			if o := s.opened; o != nil {
				item.Kind, item.Created = o.payload.Kind, o.payload.Created
			}
			rep.Lost = append(rep.Lost, item)
		}
	}
	if lost && len(known) == 0 {
		// No index named what was here: fetch everything, and treat this
		// device's own history as unknown (unsent entries the witness
		// noted are named above).
		rep.Refetch, rep.Unknown, ownGone = true, rep.Unknown || len(notes.Notes) == 0, true
	}
	if len(rep.Lost) > 0 {
		// Named now; a later repair need not name them again.
		if err := j.unsent.pruneLost(notes, named); err != nil {
			return err
		}
	}
	if rep.Refetch {
		j.st.Refetch = true
	}
	if ownGone && j.st.Restored == nil {
		// Shown as NoticeRepairPending while it holds (notice.go). The
		// journal resumes this device's history from the newest of its
		// blobs the relay is known to hold (the index from before, else
		// what the last sync recorded), so adopting walks back from there
		// by chain ids, which are hashes, and forward only from blobs that
		// prove themselves (adopt.go).
		r := &restoreMark{Since: time.Now().UTC(), Reason: reasonRepair}
		r.Seq, r.Head = j.st.SentSeq, j.st.SentHead
		if seq, head := sentHeadOf(known, j.signKey); seq > r.Seq {
			r.Seq, r.Head = seq, head.String()
		}
		j.st.Restored = r
		rep.Waits = true
	}
	j.st.noteLost(rep.Lost)
	// Both generations of the state carry the repair mode and the
	// refetch, so a damaged state cannot undo them.
	if err := j.saveStateTwice(); err != nil {
		return err
	}
	// A read that met no damage (a stale index after this process's own
	// rebuild) is not worth a word.
	if sv.bad || lost || len(rep.Lost) > 0 || rep.Refetch || rep.Waits {
		j.repairs = append(j.repairs, rep)
	}
	return nil
}

// noteLost keeps a notice of unsent entries a repair could not read back,
// so status says so until the person marks it read. Call with the lock
// held; the caller saves the state.
func (st *state) noteLost(lost []LostItem) {
	if len(lost) > 0 {
		now := time.Now().UTC()
		// Each repair is a new occurrence, also the second in the same
		// second: its position is after the last one's.
		at := uint64(now.Unix())
		for _, n := range st.Notices {
			if n.Kind == NoticeLostUnsent && n.Position >= at {
				at = n.Position + 1
			}
		}
		st.raise(Notice{Kind: NoticeLostUnsent, Count: len(lost), Date: now, Lost: lost[max(0, len(lost)-maxLostNamed):]}, at)
	}
}

// Writable returns why nothing can be written here now, or nil: this
// person left the journal, or it waits for a sync to collect this
// device's own history (after a restore or a repair). A command checks
// it before asking for any words, so nobody writes only to be told it
// cannot be saved.
func (j *Journal) Writable() error {
	return j.withLock(func() error { return j.st.writable(j.signKey) })
}

// writable is Writable for the device with signing key device.
func (st *state) writable(device [32]byte) error {
	if t := st.left(); t != nil {
		return fmt.Errorf("%w; what is here stays readable, and nothing new can be written", leftError(*t))
	}
	// This device was removed: the roster says so, or the relay did on
	// the last exchange. What would be written could never be sent.
	if self := st.self(); st.NotServed != nil || self != nil && self.removed(device) != nil {
		return fmt.Errorf("%w, so nothing written here could be sent", ErrNotServed)
	}
	return st.pausedErr()
}

// pausedErr returns why this device's chain cannot grow yet, or nil: its
// next seq is not known until a sync has collected its own history (after
// a restore or a repair), and writing now would fork the chain.
func (st *state) pausedErr() error {
	switch r := st.Restored; {
	case r == nil:
		return nil
	case r.Reason == reasonRepair:
		return ErrRepairing
	}
	return ErrRestoring
}

// Refetching reports whether the next sync fetches everything the relay
// holds again, after a repair lost some of it here.
func (j *Journal) Refetching() bool {
	var r bool
	_ = j.withLock(func() error { r = j.st.Refetch; return nil })
	return r
}

// sentHead returns the newest blob of this device's own chain that the
// relay has acknowledged. Call with the lock held.
func (l *logIndex) sentHead() (uint64, protocol.BlobID) {
	return sentHeadOf(l.order, l.signKey)
}

// sentHeadOf returns the newest blob in order written by device me (held
// as this device's own) that the relay has acknowledged, with every blob
// of that chain below it held here acknowledged too. A push sends a
// retraction ahead of the unsent entries it names (unsentRetracted), so
// one cut off between them leaves the retraction acknowledged above
// entries the relay does not hold yet: that is not yet a head the relay
// holds the whole chain to.
func sentHeadOf(order []*stored, me [32]byte) (uint64, protocol.BlobID) {
	gap := uint64(math.MaxUint64) // the lowest seq held here and not acknowledged
	for _, s := range order {
		if s.Local && s.Header.Author == me && s.RelaySeq == 0 {
			gap = min(gap, s.Header.Seq)
		}
	}
	var seq uint64
	var head protocol.BlobID
	for _, s := range order {
		if s.Local && s.Header.Author == me && s.RelaySeq != 0 && !s.Purged && s.Header.Seq > seq && s.Header.Seq < gap {
			seq, head = s.Header.Seq, s.Chain
		}
	}
	return seq, head
}

// maybeOwn reports whether damaged log bytes p, starting where a record
// should, may have held this device's own blob: a written record, an
// adopted one, a pulled one whose author field names this device, or
// something unrecognisable.
func (l *logIndex) maybeOwn(p []byte) bool {
	switch p[0] {
	case recWritten, recAdopted:
		return true
	case recPulled:
		a, ok := protocol.HeaderAuthor(p[min(len(p), 5+8):])
		return !ok || a == l.signKey
	case recSeen, recAcked, recPurged, recPurge:
		return false
	}
	return true
}

// reasonRepair marks a restoreMark made by a repair of the log rather
// than by a restore from a backup.
const reasonRepair = "repair"

// The unsent witness.
//
// The log is the only home of what the relay has not acknowledged. So
// that a log lost or damaged before a sync does not take those words away
// without a word, each entry written here is also noted in a small file
// (journals/ID/unsent, sealed with the storage key like the state) until
// the relay acknowledges it: its id, kind, time and first few words. A
// repair names each noted entry it could not read back. The note is
// written after the entry is durable in the log, so a crash between the
// two loses no entry, only the note.

// unsentNote is one entry in the witness.
type unsentNote struct {
	ID      string    `json:"id"` // chain id, hex
	Kind    string    `json:"kind"`
	Created time.Time `json:"created"`
	Words   string    `json:"words,omitempty"`
}

// unsentFile is a journal's witness file (journals/ID/unsent).
type unsentFile struct {
	path string
	key  *[32]byte // the storage key, which seals it
}

// unsentWitness is the witness file: notes of the most recent entries not
// yet acknowledged (at most maxNotes, so writing stays cheap however long
// the outbox), and how many more there are.
type unsentWitness struct {
	Notes   []unsentNote `json:"notes"`
	Unnoted int          `json:"unnoted,omitempty"`
}

// maxNotes bounds the witness: a damaged log loses its end, and the most
// recent entries are the ones it names.
const maxNotes = 256

// errWitnessDamaged: the unsent witness is there and does not open with
// the storage key, or does not decode.
var errWitnessDamaged = errors.New("the list of entries not yet sent is damaged")

// load reads the witness; a missing one is empty. A damaged one returns
// errWitnessDamaged and is left where it is (Journal.loadUnsent heals it).
func (f unsentFile) load() (unsentWitness, error) {
	var w unsentWitness
	b, err := os.ReadFile(f.path)
	if err != nil {
		return w, nil
	}
	plain, err := crypto.Open(f.key, b)
	if err == nil {
		err = json.Unmarshal(plain, &w)
		clear(plain)
	}
	if err != nil {
		return unsentWitness{}, errWitnessDamaged
	}
	return w, nil
}

// loadUnsent reads the witness. A damaged one is set aside, never deleted,
// and made again from the log, which holds every entry written here that
// the relay has not acknowledged (the witness only names them); the repair
// is reported (RepairUnsent). damaged says the witness was damaged: what
// it named that the log no longer holds cannot be known. Call with the
// lock held and the log indexed.
func (j *Journal) loadUnsent() (w unsentWitness, damaged bool) {
	w, err := j.unsent.load()
	if err == nil {
		return w, false
	}
	aside := asideName(j.unsent.path, "damaged")
	if err := os.Rename(j.unsent.path, aside); err != nil {
		// Left in place, so nothing replaces it; said again next time.
		j.repairs = append(j.repairs, Repair{Kind: RepairUnsent, Unknown: true})
		return unsentWitness{}, true
	}
	w = j.witnessFromLog()
	rep := Repair{Kind: RepairUnsent, SetAside: aside, Kept: len(w.Notes) + w.Unnoted}
	if err := j.unsent.save(w); err != nil {
		rep.Unknown = true // only the naming is lost, and only if the log is lost too
	}
	j.repairs = append(j.repairs, rep)
	return w, true
}

// witnessFromLog makes the witness again from the log: the entries this
// device wrote that the relay has not acknowledged. Call with the lock
// held and the log indexed.
func (j *Journal) witnessFromLog() unsentWitness {
	j.decryptAll(j.trust())
	var w unsentWitness
	for _, s := range j.outbox() {
		if s.Header.Kind != protocol.KindEntry || s.Header.Author != j.signKey {
			continue
		}
		n := unsentNote{ID: s.Chain.String()}
		if o := s.opened; o != nil {
			if rosterKinds[o.payload.Kind] {
				continue // never noted (writeLocked)
			}
			n.Kind, n.Created = o.payload.Kind, o.payload.Created
			if text, err := j.text(o); err == nil {
				n.Words = firstWords(text)
			}
		}
		w.Notes = append(w.Notes, n)
	}
	if over := len(w.Notes) - maxNotes; over > 0 {
		w.Notes, w.Unnoted = slices.Clone(w.Notes[over:]), over
	}
	return w
}

// save writes the witness; an empty one is removed.
func (f unsentFile) save(w unsentWitness) error {
	if len(w.Notes) == 0 && w.Unnoted == 0 {
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	plain, err := json.Marshal(w)
	if err != nil {
		return err
	}
	sealed, err := crypto.Seal(rand.Reader, f.key, plain)
	clear(plain)
	if err != nil {
		return err
	}
	return writeFileAtomic(f.path, sealed, false)
}

// noteUnsent notes entries just written. Call with the lock held.
func (j *Journal) noteUnsent(es ...Entry) error {
	w, damaged := j.loadUnsent()
	if damaged {
		return nil // made again from the log, which holds es already, and saved
	}
	for _, e := range es {
		w.Notes = append(w.Notes, unsentNote{ID: e.ID, Kind: e.Kind, Created: e.Created, Words: firstWords(e.Text)})
	}
	if over := len(w.Notes) - maxNotes; over > 0 {
		w.Notes, w.Unnoted = slices.Clone(w.Notes[over:]), w.Unnoted+over
	}
	return j.unsent.save(w)
}

// pruneUnsent forgets the entries the relay has acknowledged, as the log
// records them. Call with the lock held.
func (j *Journal) pruneUnsent() error {
	f, l := j.unsent, &j.logIndex
	w, _ := j.loadUnsent()
	if len(w.Notes) == 0 && w.Unnoted == 0 {
		return nil
	}
	keep := w.Notes[:0]
	for _, n := range w.Notes {
		if s := l.chainOfHex(n.ID); s == nil || s.RelaySeq == 0 {
			keep = append(keep, n)
		}
	}
	unnoted := 0
	if w.Unnoted > 0 {
		unsent := 0
		for _, s := range l.outbox() {
			if s.Header.Kind == protocol.KindEntry {
				unsent++
			}
		}
		unnoted = max(0, unsent-len(keep))
	}
	if len(keep) == len(w.Notes) && unnoted == w.Unnoted {
		return nil
	}
	return f.save(unsentWitness{Notes: keep, Unnoted: unnoted})
}

// chainOfHex returns the blob with chain id id (hex), or nil.
func (l *logIndex) chainOfHex(id string) *stored {
	c, ok := parseChainID(id)
	if !ok {
		return nil
	}
	return l.chainOf(c)
}

// firstWords returns the first few words of text, to name an entry.
func firstWords(text string) string {
	words := strings.Fields(text)
	if len(words) > 8 {
		words = append(words[:8], "…")
	}
	s := strings.Join(words, " ")
	if r := []rune(s); len(r) > 60 {
		s = string(r[:60]) + "…"
	}
	return s
}

// lostFromWitness returns the witness's entries that are no longer in the
// index, and adds their ids to named. Call with the lock held, with the
// log indexed.
func (l *logIndex) lostFromWitness(w unsentWitness, named map[string]bool) []LostItem {
	var lost []LostItem
	for _, n := range w.Notes {
		if l.chainOfHex(n.ID) == nil && !named[n.ID] {
			lost = append(lost, LostItem(n))
			named[n.ID] = true
		}
	}
	return lost
}

// pruneLost drops from the witness the notes of entries named as lost.
func (f unsentFile) pruneLost(w unsentWitness, lost map[string]bool) error {
	keep := w.Notes[:0]
	for _, n := range w.Notes {
		if !lost[n.ID] {
			keep = append(keep, n)
		}
	}
	w.Notes = keep
	return f.save(w)
}
