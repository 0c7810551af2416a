package client

// The checkpoint.
//
// The log is the journal's local truth and the only home of what the relay
// has not acknowledged; everything else in memory is derived from it and
// the keys. Deriving it costs a read of the whole log and a decryption of
// every entry, so a process saves what it derived in the checkpoint file
// (journals/ID/index), sealed with the storage key like the state: every
// blob's place in the log and its header, the cursor and acknowledgements,
// each opened entry's payload without its text and its content key, and
// which grants checked. The next process loads it and reads only the part
// of the log written after it. So a command costs what it shows and what
// is new, not the journal's whole life.
//
// A checkpoint names the log it describes (its inode, its length, and the
// offset and checksum of the last record it covers). One that does not
// match, does not open (another key, damage) or does not decode is moved
// aside, never deleted, and the index is rebuilt from the log; nothing is
// lost, since the checkpoint holds nothing the log and the keys cannot
// give again. Why not an embedded database: the index must be loaded
// whole anyway (status and the timeline read every entry's summary), and
// one sealed file keeps the promise that the disk holds ciphertext only
// without sealing each record, and without a second store to keep in step
// with the log.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

const (
	// checkpointMagic starts a checkpoint sealed with crypto.BulkKey;
	// "KSI1" started the earlier ones, sealed with crypto.Seal, which are
	// rebuilt without a word (errCheckpointFormat).
	checkpointMagic   = "KSI2"
	checkpointVersion = 8
	// saveAfter is how many records a process must index beyond the
	// checkpoint before Close saves a new one: below it, reading the tail
	// is cheaper than writing the whole index again.
	saveAfter = 256
	// gapsWorthSaving is how long a journal must be for a fresh answer
	// of gaps (status.go) alone to be worth a checkpoint: at 100k
	// records the walk costs tens of milliseconds in every command.
	gapsWorthSaving = 4096
)

func (j *Journal) checkpointPath() string { return filepath.Join(j.dir, "index") }

// errCheckpoint: the checkpoint does not describe this log.
var errCheckpoint = errors.New("the checkpoint does not match the log")

// logMark names the log a checkpoint describes.
type logMark struct {
	ino    uint64
	offset int64  // bytes covered
	lastAt int64  // where the last covered record starts (-1: none)
	crc    uint32 // its checksum
}

// mark returns the current log's mark up to offset. Call with the lock
// held.
func (l *logIndex) mark() (logMark, error) {
	m := logMark{offset: l.offset, lastAt: l.lastAt}
	fi, err := l.log.Stat()
	if err != nil {
		return m, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		m.ino = st.Ino
	}
	if m.lastAt >= 0 && m.offset >= 4 {
		var b [4]byte
		if _, err := l.log.ReadAt(b[:], m.offset-4); err != nil {
			return m, err
		}
		m.crc = binary.BigEndian.Uint32(b[:])
	}
	return m, nil
}

// loadCheckpoint restores the index from the checkpoint, if there is one
// that describes this log. Call with the lock held, before the first
// catchUp. A checkpoint that cannot be used is moved aside; the caller
// then indexes the whole log.
//
// A checkpoint that opens but whose log is gone, cut short or replaced
// means the log was damaged: the log is rebuilt (repair.go), and the
// checkpoint names what could not be recovered. A log that is empty in a
// journal that has synced before, with no checkpoint, was lost too, if
// the state or the unsent witness says it held something (a new journal
// synced while waiting for the partner has an empty log, and is fine).
func (j *Journal) loadCheckpoint() error {
	f, err := os.Open(j.checkpointPath())
	if errors.Is(err, fs.ErrNotExist) {
		if fi, err := j.log.Stat(); err == nil && fi.Size() == 0 && !j.st.LastSync.IsZero() && !j.st.Refetch && j.heldSomething() {
			return j.rebuildLog(nil, true)
		}
		return nil
	}
	if err == nil {
		// Unbuffered: the pieces are read whole, about 1 MiB at a time.
		err = j.decodeCheckpoint(f)
		f.Close()
	}
	switch {
	case errors.Is(err, errLogChanged):
		return j.rebuildLog(j.order, true)
	case errors.Is(err, errCheckpointFormat):
		j.resetIndex()
		os.Remove(j.checkpointPath())
	case err != nil:
		j.resetIndex()
		aside := asideName(j.checkpointPath(), "damaged")
		if os.Rename(j.checkpointPath(), aside) == nil {
			j.repairs = append(j.repairs, Repair{Kind: RepairIndex, SetAside: aside})
		}
	}
	return nil
}

// heldSomething reports whether, by the state and the unsent witness
// (which outlive the log), this device's log ever held a blob: one of its
// own sent, one received and shown, or one written and not yet sent.
func (j *Journal) heldSomething() bool {
	if j.st.SentSeq > 0 || j.st.ShownSeq > 0 {
		return true
	}
	// A damaged witness held something: it is written only while there
	// are entries to name.
	w, err := j.unsent.load()
	return err != nil || len(w.Notes) > 0 || w.Unnoted > 0
}

// errCheckpointFormat: the checkpoint was written by another version of
// kintsugi. It is not damage: it is rebuilt without a word.
var errCheckpointFormat = errors.New("the checkpoint has another format")

// errLogChanged: the checkpoint opened, but the log it describes is gone,
// shorter, or another file.
var errLogChanged = errors.New("the log the checkpoint describes is gone or was changed")

// The checkpoint file is "KSI1", then chunks, each a 4-byte big-endian
// length and a sealed piece (crypto.BulkKey: XChaCha20-Poly1305 under a
// key derived from the storage key) of at most
// about chunkSize bytes, so neither writing nor reading it holds the whole
// index twice. Each piece's plaintext starts with the checkpoint's random
// id, the piece's index and whether it is the last, so pieces of two
// checkpoints cannot be mixed, reordered or dropped. Together they hold:
// a header (format version, journal id, the log mark, counts, cursor,
// this device's chain head, the table of authors), one record per blob
// (flags, ids, relay seq, place in the log, header with the author as an
// index into the table, and an opened entry's key and payload without text
// or a grant's check), then the acknowledgements and purges.
const chunkSize = 1 << 20

// Flags of a blob record in the checkpoint.
const (
	cpLocal = 1 << iota
	cpPurged
	cpChainIsID   // the chain id is the blob id (not an entry)
	cpThisJournal // the header names this journal
	cpOpened      // an opened entry: its key and payload follow
	cpGrant       // a checked grant: the box key follows
	cpGrantValid  // ... and it was valid
	cpNotFirst    // an earlier blob has the same chain id (copies only)
)

// decodeCheckpoint restores the index from the checkpoint file's bytes,
// reading and opening them a piece at a time: the store's part and the
// model's (see checkpointPart).
func (j *Journal) decodeCheckpoint(r io.Reader) error {
	magic := make([]byte, len(checkpointMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != checkpointMagic {
		if string(magic) == "KSI1" {
			return errCheckpointFormat
		}
		return fmt.Errorf("%w: it is not a checkpoint", errCheckpoint)
	}
	key, err := j.acct.checkpointKey()
	if err != nil {
		return err
	}
	cr := newAheadReader(&chunkReader{r: r, key: key})
	defer cr.close()
	return j.logIndex.decode(cr, j.st.ID, filepath.Base(j.dir), &j.openIndex)
}

// checkpointPart is what another component keeps in the checkpoint
// beside the store's index: the model (openIndex) keeps what it opened.
// Its part of each blob's record is flagged in the record's flags and
// follows the store's part; its tail follows the store's.
type checkpointPart interface {
	// blobFlags returns the flags that say what the part holds for s;
	// encodeBlob writes it.
	blobFlags(s *stored) uint64
	encodeBlob(e *encoder, s *stored, flags uint64)
	encodeTail(e *encoder, records, blobs int)
	// startDecode begins reading a checkpoint of n blobs; decodeBlob
	// reads the part of s, the i-th.
	startDecode(n int)
	decodeBlob(d *decoder, s *stored, flags uint64, i int)
	decodeTail(d *decoder, records, blobs int)
	// decoded is called once the checkpoint decoded whole and the log
	// still holds what it covers.
	decoded()
}

// decode restores the index from the checkpoint's pieces (cr), and
// part's from what follows the store's in them. journal is the journal's
// id; dirID the name of its directory, which must be the same.
func (l *logIndex) decode(cr *aheadReader, journal protocol.JournalID, dirID string, part checkpointPart) error {
	var err error
	d := &decoder{}
	if d.b, err = cr.next(); err != nil {
		return err
	}
	if d.uvarint() != checkpointVersion {
		return errCheckpointFormat
	}
	var want logMark
	var id protocol.JournalID
	copy(id[:], d.fixed(len(id)))
	want.ino, want.offset, want.lastAt, want.crc = d.u64(), int64(d.u64()), int64(d.u64())-1, d.u32()
	if d.err != nil {
		return d.err
	}
	if id.String() != dirID {
		return fmt.Errorf("%w: it belongs to journal %s", errCheckpoint, id)
	}
	l.offset, l.lastAt = want.offset, want.lastAt
	l.records = int(d.uvarint())
	l.cursor = d.u64()
	l.ownSeq = d.u64()
	copy(l.ownLast[:], d.fixed(32))
	l.adoptions = 0
	n := int(d.uvarint())
	authors := make([][32]byte, d.uvarint())
	for i := range authors {
		copy(authors[i][:], d.fixed(32))
	}
	if d.err != nil || n > 1<<32 {
		return fmt.Errorf("%w: bad blob count", errCheckpoint)
	}
	part.startDecode(n)
	l.order = make([]*stored, 0, n)
	l.blobs = blobIndex{} // built when first needed
	// The index by chain id is built when first needed (see chainOf),
	// unless a chain has copies: every blob is its chain's first, and
	// holds the entry opened for it, unless cpNotFirst says otherwise.
	l.chain = blobIndex{chain: true}
	// One allocation for every blob.
	slab := make([]stored, n)
	if n > 0 {
		prefault(unsafe.Pointer(&slab[0]), uintptr(n)*unsafe.Sizeof(slab[0]))
	}
	for i := 0; i < n && d.err == nil; i++ {
		if len(d.b) == 0 {
			if d.b, err = cr.next(); err != nil {
				return err
			}
		}
		s := &slab[i]
		s.Order = i
		flags := d.uvarint()
		copy(s.ID[:], d.fixed(32))
		s.Chain = s.ID
		if flags&cpChainIsID == 0 {
			copy(s.Chain[:], d.fixed(32))
		}
		s.Local, s.Purged = flags&cpLocal != 0, flags&cpPurged != 0
		s.RelaySeq, s.At = d.uvarint(), int64(d.uvarint())
		s.Header.Kind = protocol.Kind(d.byte())
		s.Header.Journal = journal
		if flags&cpThisJournal == 0 {
			copy(s.Header.Journal[:], d.fixed(16))
		}
		if a := d.uvarint(); a < uint64(len(authors)) {
			s.Header.Author = authors[a]
		} else {
			d.fail()
		}
		s.Header.Seq = d.uvarint()
		if s.Header.Seq > 1 {
			copy(s.Header.Prev[:], d.fixed(32))
		}
		l.order = append(l.order, s)
		part.decodeBlob(d, s, flags, i)
	}
	if d.err == nil && len(d.b) == 0 {
		d.b, err = cr.next()
		if err != nil {
			return err
		}
	}
	for m := d.uvarint(); m > 0 && d.err == nil; m-- {
		var id protocol.BlobID
		copy(id[:], d.fixed(32))
		l.acked[id] = d.uvarint()
	}
	for m := d.uvarint(); m > 0 && d.err == nil; m-- {
		var id protocol.BlobID
		copy(id[:], d.fixed(32))
		l.purgeDone[id] = true
	}
	part.decodeTail(d, l.records, len(l.order))
	if d.err != nil || len(d.b) != 0 || !cr.last || !cr.end {
		return fmt.Errorf("%w: it does not decode", errCheckpoint)
	}
	// Does the log still hold what the checkpoint covers? If not, the
	// index just decoded names what was there.
	fi, err := l.log.Stat()
	if err != nil {
		return err
	}
	// The inode is not compared: a copy of the home (a new disk, a file
	// restore) is the same log.
	if got, err := l.mark(); fi.Size() < want.offset || err != nil || got.offset != want.offset || got.lastAt != want.lastAt || got.crc != want.crc {
		return errLogChanged
	}
	part.decoded()
	l.saved = l.records
	return nil
}

// chunkReader opens a checkpoint's pieces one at a time, into one buffer.
type chunkReader struct {
	r             io.Reader // the rest of the file
	key           *crypto.BulkKey
	id            [16]byte
	index         uint64
	last          bool
	sealed, plain []byte
}

// maxChunk bounds a piece read from the file (they are written at about
// chunkSize; one blob record more can take them past it).
const maxChunk = 4*chunkSize + 2*maxRecord

// next returns the next piece's payload.
func (c *chunkReader) next() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); c.last || err != nil {
		return nil, fmt.Errorf("%w: it is cut short", errCheckpoint)
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n > maxChunk {
		return nil, fmt.Errorf("%w: a piece is too long", errCheckpoint)
	}
	if cap(c.sealed) < n {
		c.sealed = make([]byte, n)
	}
	c.sealed = c.sealed[:n]
	if _, err := io.ReadFull(c.r, c.sealed); err != nil {
		return nil, fmt.Errorf("%w: it is cut short", errCheckpoint)
	}
	plain, err := c.key.AppendOpen(c.plain[:0], c.sealed)
	if err != nil {
		return nil, err
	}
	c.plain = plain
	d := &decoder{b: plain}
	var id [16]byte
	copy(id[:], d.fixed(16))
	index, last := d.uvarint(), d.byte()
	switch {
	case d.err != nil:
		return nil, d.err
	case c.index == 0:
		c.id = id
	case id != c.id:
		return nil, fmt.Errorf("%w: its pieces do not belong together", errCheckpoint)
	}
	if index != c.index {
		return nil, fmt.Errorf("%w: its pieces are out of order", errCheckpoint)
	}
	c.index++
	c.last = last == 1
	return d.b, nil
}

// atEnd reports whether the file has nothing after the last piece.
func (c *chunkReader) atEnd() bool {
	var b [1]byte
	n, _ := c.r.Read(b[:])
	return n == 0
}

// aheadReader reads and opens a checkpoint's pieces in a goroutine, a
// piece or two ahead of the decoder, so that reading the file and
// decrypting overlap with decoding on a second core. Every plaintext
// buffer it makes (three of about 1 MiB, and one more for each longer
// piece) is in bufs, and cleared when it is closed.
type aheadReader struct {
	cr     *chunkReader // used by the goroutine only
	pieces chan piece
	free   chan []byte
	stop   chan struct{}
	done   chan struct{}
	bufs   [][]byte // every plaintext buffer made, cleared by close
	held   []byte   // the buffer of the piece being decoded
	last   bool     // the last piece was returned
	end    bool     // ... and the file has nothing after it
	failed bool
}

type piece struct {
	b, buf []byte
	last   bool
	atEnd  bool
	err    error
}

func newAheadReader(cr *chunkReader) *aheadReader {
	a := &aheadReader{
		cr:     cr,
		pieces: make(chan piece, 1),
		free:   make(chan []byte, 3),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	for range 3 {
		b := make([]byte, 0, chunkSize+chunkSize/8)
		a.bufs = append(a.bufs, b)
		a.free <- b
	}
	go a.run()
	return a
}

func (a *aheadReader) run() {
	defer close(a.done)
	for {
		var buf []byte
		select {
		case buf = <-a.free:
		case <-a.stop:
			return
		}
		a.cr.plain = buf
		b, err := a.cr.next()
		if cap(a.cr.plain) > cap(buf) { // a long piece: a new buffer
			a.bufs = append(a.bufs, a.cr.plain)
		}
		p := piece{b: b, buf: a.cr.plain, last: a.cr.last, err: err}
		if err == nil && p.last {
			p.atEnd = a.cr.atEnd()
		}
		select {
		case a.pieces <- p:
		case <-a.stop:
			return
		}
		if err != nil || p.last {
			return
		}
	}
}

// next returns the next piece's payload, valid until the next call.
func (a *aheadReader) next() ([]byte, error) {
	if a.held != nil {
		a.free <- a.held
		a.held = nil
	}
	if a.last || a.failed {
		return nil, fmt.Errorf("%w: it is cut short", errCheckpoint)
	}
	p := <-a.pieces
	a.held, a.last, a.end = p.buf, p.last, p.atEnd
	if p.err != nil {
		a.failed = true
	}
	return p.b, p.err
}

// close stops the goroutine and clears every plaintext buffer: the one
// held, one waiting in pieces and the free ones are all in bufs.
func (a *aheadReader) close() {
	close(a.stop)
	<-a.done
	for _, b := range a.bufs {
		clear(b[:cap(b)])
	}
}

// chunkWriter seals a checkpoint piece by piece, straight to its file.
type chunkWriter struct {
	out   *bufio.Writer
	key   *crypto.BulkKey
	id    [16]byte
	index uint64
	e     encoder // the current piece's payload
}

// flush seals the current piece.
func (c *chunkWriter) flush(last bool) error {
	hdr := append(c.id[:], binary.AppendUvarint(nil, c.index)...)
	hdr = append(hdr, map[bool]byte{false: 0, true: 1}[last])
	plain := append(hdr, c.e.b...)
	sealed, err := c.key.Seal(rand.Reader, nil, plain)
	clear(plain)
	clear(c.e.b)
	if err != nil {
		return err
	}
	c.out.Write(binary.BigEndian.AppendUint32(nil, uint32(len(sealed))))
	if _, err := c.out.Write(sealed); err != nil {
		return err
	}
	c.index++
	c.e.b = c.e.b[:0]
	return nil
}

// resetIndex forgets everything indexed and opened, so the log is read
// again from its start. Call with the lock held.
func (j *Journal) resetIndex() {
	j.logIndex.reset()
	j.openIndex.reset()
}

// reset forgets everything indexed. Call with the lock held.
func (l *logIndex) reset() {
	l.offset, l.lastAt, l.records, l.saved = 0, -1, 0, 0
	l.order = nil
	l.cursor, l.ownSeq, l.ownLast = 0, 0, protocol.BlobID{}
	l.adoptions = 0
	l.blobs = newBlobIndex(false, 0)
	l.chain = newBlobIndex(true, 0)
	l.acked = make(map[protocol.BlobID]uint64)
	l.purgeDone = make(map[protocol.BlobID]bool)
}

// saveCheckpoint writes the index if it covers at least saveAfter records
// more than the checkpoint on disk (or any, with force). Call with the
// lock held. A checkpoint that cannot be written is not an error: the
// next process reads more of the log.
func (j *Journal) saveCheckpoint(force bool) {
	if !j.worthSaving() && !(force && j.records > j.saved) {
		return
	}
	j.openNew(j.trust()) // what the checkpoint covers is opened
	m, err := j.mark()
	if err != nil {
		return
	}
	f, err := os.CreateTemp(j.dir, ".tmp-index-*")
	if err != nil {
		return
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	defer f.Close()
	key, err := j.acct.checkpointKey()
	if err != nil {
		return
	}
	w := &chunkWriter{out: bufio.NewWriterSize(f, 256<<10), key: key}
	w.out.WriteString(checkpointMagic)
	if _, err := rand.Read(w.id[:]); err != nil {
		return
	}
	if j.logIndex.encode(w, m, j.st.ID, &j.openIndex) != nil {
		return
	}
	if w.out.Flush() != nil || f.Sync() != nil || os.Rename(f.Name(), j.checkpointPath()) != nil {
		return
	}
	j.saved = j.records
	j.openIndex.checkpointSaved(j.records)
}

// encode writes the index as it stands at mark m to w, with part's
// beside it, and seals the last piece. journal is the journal's id.
func (l *logIndex) encode(w *chunkWriter, m logMark, journal protocol.JournalID, part checkpointPart) error {
	e := &w.e
	e.uvarint(checkpointVersion)
	e.b = append(e.b, journal[:]...)
	e.u64(m.ino)
	e.u64(uint64(m.offset))
	e.u64(uint64(m.lastAt + 1))
	e.b = binary.BigEndian.AppendUint32(e.b, m.crc)
	e.uvarint(uint64(l.records))
	e.u64(l.cursor)
	e.u64(l.ownSeq)
	e.b = append(e.b, l.ownLast[:]...)
	e.uvarint(uint64(len(l.order)))
	authors := make(map[[32]byte]uint64)
	var table [][32]byte
	for _, s := range l.order {
		if _, ok := authors[s.Header.Author]; !ok {
			authors[s.Header.Author] = uint64(len(table))
			table = append(table, s.Header.Author)
		}
	}
	e.uvarint(uint64(len(table)))
	for _, a := range table {
		e.b = append(e.b, a[:]...)
	}
	if err := w.flush(false); err != nil {
		return err
	}
	for _, s := range l.order {
		var flags uint64
		if s.Local {
			flags |= cpLocal
		}
		if s.Purged {
			flags |= cpPurged
		}
		if s.Chain == s.ID {
			flags |= cpChainIsID
		}
		if s.Header.Journal == journal {
			flags |= cpThisJournal
		}
		if l.chainOf(s.Chain) != s {
			flags |= cpNotFirst
		}
		flags |= part.blobFlags(s)
		e.uvarint(flags)
		e.b = append(e.b, s.ID[:]...)
		if flags&cpChainIsID == 0 {
			e.b = append(e.b, s.Chain[:]...)
		}
		e.uvarint(s.RelaySeq)
		e.uvarint(uint64(s.At))
		e.b = append(e.b, byte(s.Header.Kind))
		if flags&cpThisJournal == 0 {
			e.b = append(e.b, s.Header.Journal[:]...)
		}
		e.uvarint(authors[s.Header.Author])
		e.uvarint(s.Header.Seq)
		if s.Header.Seq > 1 {
			e.b = append(e.b, s.Header.Prev[:]...)
		}
		part.encodeBlob(e, s, flags)
		if len(e.b) >= chunkSize {
			if err := w.flush(false); err != nil {
				return err
			}
		}
	}
	if len(e.b) > 0 {
		if err := w.flush(false); err != nil {
			return err
		}
	}
	e.uvarint(uint64(len(l.acked)))
	for id, seq := range l.acked {
		e.b = append(e.b, id[:]...)
		e.uvarint(seq)
	}
	e.uvarint(uint64(len(l.purgeDone)))
	for id := range l.purgeDone {
		e.b = append(e.b, id[:]...)
	}
	part.encodeTail(e, l.records, len(l.order))
	return w.flush(true)
}

// The model's part of the checkpoint (checkpointPart): each opened
// entry's content key and payload without its text, each checked grant's
// box key, then the gaps and how far ensureGrants checked.

func (m *openIndex) blobFlags(s *stored) uint64 {
	o := m.openedOf(s.Chain)
	c, checked := m.grantChecks[s.ID]
	switch {
	case o != nil && o.s == s:
		return cpOpened
	case checked && c.ok:
		return cpGrant | cpGrantValid
	case checked:
		return cpGrant
	}
	return 0
}

func (m *openIndex) encodeBlob(e *encoder, s *stored, flags uint64) {
	switch {
	case flags&cpOpened != 0:
		o := m.openedOf(s.Chain)
		e.b = append(e.b, o.key[:]...)
		p := o.payload.full()
		e.payload(&p)
	case flags&cpGrant != 0:
		c := m.grantChecks[s.ID]
		e.b = append(e.b, c.box[:]...)
	}
}

func (m *openIndex) encodeTail(e *encoder, records, blobs int) {
	// The gaps, if they were found for what this checkpoint covers.
	if g := m.gapsCache; g != nil && g.key.records == records {
		b, _ := json.Marshal(g.gaps)
		e.b = append(e.b, 1)
		e.b = append(e.b, g.key.trust[:]...)
		e.bytes(b)
	} else {
		e.b = append(e.b, 0)
	}
	// How far ensureGrants checked, if it covers no more than this.
	if g := m.grantsDone; g.valid && g.upTo <= blobs && g.adoptions == m.store.adoptions {
		e.b = append(e.b, 1)
		e.b = append(e.b, g.trust[:]...)
		e.b = append(e.b, g.held[:]...)
		e.uvarint(uint64(g.upTo))
	} else {
		e.b = append(e.b, 0)
	}
	m.encodeClaims(e)
}

// checkpointLoad is what the model keeps while a checkpoint decodes.
type checkpointLoad struct {
	n       int
	opened  []openedEntry  // one allocation for every opened entry
	copies  []*openedEntry // opened on a blob that is not its chain's first
	anyCopy bool           // a chain has copies
}

func (m *openIndex) startDecode(n int) {
	m.decrypted = decryptedCache{}
	m.loading = &checkpointLoad{n: n}
}

func (m *openIndex) decodeBlob(d *decoder, s *stored, flags uint64, i int) {
	ld := m.loading
	ld.anyCopy = ld.anyCopy || flags&cpNotFirst != 0
	switch {
	case flags&cpOpened != 0:
		if len(ld.opened) == cap(ld.opened) {
			ld.opened = make([]openedEntry, 0, ld.n-i)
			prefault(unsafe.Pointer(unsafe.SliceData(ld.opened)), uintptr(ld.n-i)*unsafe.Sizeof(openedEntry{}))
		}
		// Written in place: the slot is zero (fresh from make).
		ld.opened = ld.opened[:len(ld.opened)+1]
		o := &ld.opened[len(ld.opened)-1]
		o.s = s
		copy(o.key[:], d.fixed(32))
		var p Payload
		d.payload(&p)
		o.setPayload(&p)
		if flags&cpNotFirst == 0 {
			s.opened = o
		} else {
			ld.copies = append(ld.copies, o)
		}
	case flags&cpGrant != 0:
		c := grantCheck{ok: flags&cpGrantValid != 0}
		copy(c.box[:], d.fixed(32))
		m.grantChecks[s.ID] = c
	}
}

func (m *openIndex) decodeTail(d *decoder, records, blobs int) {
	if d.byte() == 1 {
		g := &gapsCache{key: gapsKey{records: records}, saved: true}
		copy(g.key.trust[:], d.fixed(32))
		if json.Unmarshal(d.bytes(), &g.gaps) == nil {
			m.gapsCache = g
		}
	}
	m.grantsDone = grantsKey{}
	if d.byte() == 1 {
		g := grantsKey{valid: true}
		copy(g.trust[:], d.fixed(32))
		copy(g.held[:], d.fixed(32))
		if g.upTo = int(d.uvarint()); g.upTo <= blobs {
			m.grantsDone = g
		}
	}
	m.decodeClaims(d)
}

func (m *openIndex) decoded() {
	ld := m.loading
	m.loading = nil
	for _, o := range ld.copies {
		if first := m.store.chainOf(o.s.Chain); first != nil && first.opened == nil {
			first.opened = o
		}
	}
	// What did not open, and grants not checked, are tried again on the
	// first decryptAll (tried is false).
	for _, s := range m.store.order {
		switch {
		case s.Header.Kind == protocol.KindEntry && !s.Purged && s.opened == nil && (!ld.anyCopy || m.openedOf(s.Chain) == nil):
			m.unopened = append(m.unopened, s)
		case s.Header.Kind == protocol.KindGrant:
			if _, ok := m.grantChecks[s.ID]; !ok {
				m.uncheckedGrants = append(m.uncheckedGrants, s)
			}
		}
	}
	m.scanned = len(m.store.order)
}

// checkpointSaved notes that the checkpoint on disk now covers records.
func (m *openIndex) checkpointSaved(records int) {
	if g := m.gapsCache; g != nil {
		g.saved = g.key.records == records
	}
}

// gapsUnsaved reports whether the gaps were found for what the index
// covers (records) and the checkpoint on disk lacks them, in a journal
// long enough (blobs) for that to be worth a checkpoint.
func (m *openIndex) gapsUnsaved(records, blobs int) bool {
	g := m.gapsCache
	return g != nil && !g.saved && g.key.records == records && blobs >= gapsWorthSaving
}

// reset forgets everything opened. Call with the lock held.
func (m *openIndex) reset() {
	m.scanned, m.unopened, m.uncheckedGrants = 0, nil, nil
	m.grantChecks = make(map[protocol.BlobID]grantCheck)
	m.grantItems, m.grantItemsAll = make(map[protocol.BlobID][]grantRef), false
	m.tried = false
	m.gapsCache = nil
	m.grantsDone = grantsKey{}
	m.decrypted = decryptedCache{}
	m.loading = nil
	m.claims = nil
}

// worthSaving reports whether Close should write the checkpoint: enough
// new records to index, or a walk of a long journal's chains (gaps) that
// the next command would otherwise repeat. Call with j.mu held.
func (j *Journal) worthSaving() bool {
	return j.records-j.saved >= saveAfter || j.openIndex.gapsUnsaved(j.records, len(j.order))
}

// encoder and decoder are the checkpoint's byte helpers.
type encoder struct{ b []byte }

func (e *encoder) u64(v uint64)     { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) bytes(b []byte)   { e.uvarint(uint64(len(b))); e.b = append(e.b, b...) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) strs(ss []string) {
	e.uvarint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

func (e *encoder) time(t time.Time) {
	b, _ := t.MarshalBinary()
	e.bytes(b)
}

// payload writes p without its text.
func (e *encoder) payload(p *Payload) {
	var flags uint64
	for i, f := range []bool{p.ListenOnly, p.NeedTime, p.Again, p.Intensity != nil, p.Kept != nil, p.Kept != nil && *p.Kept, p.Expires != nil} {
		if f {
			flags |= 1 << i
		}
	}
	e.uvarint(flags)
	e.str(p.Kind)
	e.time(p.Created)
	if p.Intensity != nil {
		e.uvarint(uint64(int64(*p.Intensity)))
	}
	if p.Expires != nil {
		e.time(*p.Expires)
	}
	e.strs(p.Feelings)
	e.strs(p.Tags)
	e.strs(p.Purges)
	for _, s := range []string{p.Ref, p.Every, p.Category, p.Decision, p.Held, p.Prompt} {
		e.str(s)
	}
	e.bytes(p.Device)
	e.bytes(p.Secret)
	e.uvarint(p.Seq)
}

type decoder struct {
	b   []byte
	err error
	// words interns the short strings that repeat (kinds, feelings);
	// lists the lists of them (an entry's feelings, its tags); ints the
	// intensities. A summary is never written through (see summary), so
	// entries share them; Reader.build hands out copies.
	words map[string]string
	lists map[string][]string
	ints  map[int64]*int
}

func (d *decoder) fixed(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.fail()
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: it is cut short", errCheckpoint)
	}
}

func (d *decoder) byte() byte  { return d.fixed(1)[0] }
func (d *decoder) u32() uint32 { return binary.BigEndian.Uint32(d.fixed(4)) }
func (d *decoder) u64() uint64 { return binary.BigEndian.Uint64(d.fixed(8)) }
func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// counted returns the next length-prefixed bytes, not copied: they are
// the piece's plaintext.
func (d *decoder) counted() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	return d.fixed(int(n))
}

func (d *decoder) bytes() []byte {
	if b := d.counted(); len(b) > 0 {
		return bytes.Clone(b)
	}
	return nil
}

func (d *decoder) str() string {
	b := d.counted()
	if len(b) == 0 {
		return ""
	}
	if len(b) <= 24 {
		if s, ok := d.words[string(b)]; ok {
			return s
		}
		if d.words == nil {
			d.words = make(map[string]string)
		}
		s := string(b)
		d.words[s] = s
		return s
	}
	return string(b)
}

func (d *decoder) strs() []string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}

func (d *decoder) time() time.Time {
	var t time.Time
	if err := t.UnmarshalBinary(d.counted()); err != nil {
		d.fail()
	}
	return t
}

// sharedStrs is strs for lists that repeat: the same bytes decode to the
// same slice (full, so an append copies).
func (d *decoder) sharedStrs() []string {
	start := d.b
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		if m := d.uvarint(); m <= uint64(len(d.b)) {
			d.b = d.b[m:]
		} else {
			d.fail()
		}
	}
	if d.err != nil || n == 0 {
		return nil
	}
	raw := start[:len(start)-len(d.b)]
	if l, ok := d.lists[string(raw)]; ok {
		return l
	}
	rest := d.b
	d.b = start
	l := d.strs()
	d.b = rest
	l = l[:len(l):len(l)]
	if d.lists == nil {
		d.lists = make(map[string][]string)
	}
	d.lists[string(raw)] = l
	return l
}

// intensity returns a shared pointer to v.
func (d *decoder) intensity(v int64) *int {
	if p, ok := d.ints[v]; ok {
		return p
	}
	if d.ints == nil {
		d.ints = make(map[int64]*int)
	}
	p := new(int)
	*p = int(v)
	d.ints[v] = p
	return p
}

// payload reads what encoder.payload wrote into p.
func (d *decoder) payload(p *Payload) {
	*p = Payload{V: 1}
	flags := d.uvarint()
	p.ListenOnly, p.NeedTime, p.Again = flags&1 != 0, flags&2 != 0, flags&4 != 0
	p.Kind = d.str()
	p.Created = d.time()
	if flags&8 != 0 {
		p.Intensity = d.intensity(int64(d.uvarint()))
	}
	if flags&16 != 0 {
		v := flags&32 != 0
		p.Kept = &v
	}
	if flags&64 != 0 {
		t := d.time()
		p.Expires = &t
	}
	p.Feelings, p.Tags, p.Purges = d.sharedStrs(), d.sharedStrs(), d.strs()
	p.Ref, p.Every, p.Category, p.Decision, p.Held, p.Prompt = d.str(), d.str(), d.str(), d.str(), d.str(), d.str()
	p.Device, p.Secret = d.bytes(), d.bytes()
	p.Seq = d.uvarint()
}
