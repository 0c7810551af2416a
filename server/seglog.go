package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Segment log: where a BadgerStore keeps blob bytes.
//
// Blobs used to be values in Badger's LSM tree, so every byte went through
// its memtables (Go heap), its write-ahead log and table builders, and sat
// in memory-mapped tables: storing 1 GiB took 1.3 GiB of RSS whatever the
// memory budget (docs/performance.md). Now the bytes go to append-only
// segment files of our own, written with pwrite and read with pread (no
// memory map, so the kernel's page cache for them is not the relay's RSS),
// and Badger keeps only a small index record per blob.
//
// Layout, under the data directory:
//
//	blobs/000001.seg, blobs/000002.seg, …   segFileMagic, then framed records
//
// (a segment written before records were framed holds bare blobs back to
// back, and still reads), and in Badger (see the BadgerStore comment for
// the other tables):
//
//	l/<journal 16><seq 8> → segMarkFramed | segment (4) | offset (8) | length (4) | blob id (32) | CRC-32C (4)
//	                        (segMark and no CRC: a blob in a segment from before framing)
//	g/<segment 4>         → indexed end (8) | live blobs (8)
//	h/<segment 4><off 8>  → length (8): a purged blob's bytes still to be punched out
//
// A log value that is not a segment reference is a blob stored inline by an
// older relay (or purgedMark and a purged record); both still read.
//
// Durability, per group commit: the group's new blobs are written to the
// segment being filled, each framed with its journal, sequence number, id
// and checksums, with one pwrite, and made durable with one fdatasync.
// The appends are answered then. The group's Badger transaction (index
// records, the segment's new indexed end, last sequence numbers, usage)
// commits after, synced, on another goroutine (indexcommit.go). A crash
// before it leaves records past the segment's indexed end, which opening
// the store reads and indexes; a crash in the middle of a write leaves a
// torn record after them, which opening the store cuts off (it was never
// acknowledged). A new segment file's name and magic are synced before
// anything is written to it. Sequence numbers and duplicates are decided
// before the write, so only new blobs are written; a write that fails is
// cut back out of its segment before the next group reuses its sequence
// numbers.
//
// Purge: the purged record replaces the index record, and a hole record
// (h/) names the bytes to remove, in one synced transaction; then the
// bytes are punched out of the segment (fallocate PUNCH_HOLE, or
// overwritten with zeros where the filesystem cannot punch) and
// fdatasynced; then the hole record goes. The purge is acknowledged only
// after the punch's sync. The index changes first so that no index record
// ever points at a hole; a crash after the commit leaves the hole record,
// and opening the store punches again. A segment with no live blob left
// (and not the one being written) is deleted.
//
// Every read checks the bytes against the index record: the CRC-32C of a
// framed blob (the SHA-256 of each blob, 9 ms of a first sync of 10,000,
// is the client's to check: it is the blob's id), the blob id for a blob
// from before framing. Bytes that do not match, or an index record
// pointing past the end of its segment, are damage ([ErrDamaged]), named
// in the log, never served.

// segRollSize is the size past which the next group starts a new segment.
const segRollSize = 64 << 20

// segDirName is the directory of segment files inside the data directory.
const segDirName = "blobs"

// segMark starts a log value that refers to a blob in a segment written
// before records were framed (no header, checked by its SHA-256); no blob
// starts with it (blobs start with their format version), and it differs
// from purgedMark.
const segMark = 0xFE

// segMarkFramed starts a log value that refers to a blob in a framed
// segment: the reference also carries the CRC-32C of the blob's bytes.
const segMarkFramed = 0xFD

// segRefSize and segRefFramedSize are the lengths of the two references.
const (
	segRefSize       = 1 + 4 + 8 + 4 + 32
	segRefFramedSize = segRefSize + 4
)

// segFileMagic opens every segment written since records are framed;
// older segments hold bare blobs from their first byte (a blob's first
// byte is its format version, never 'K').
const segFileMagic = "KSEG\x00\x00\x00\x02"

// A framed record: the header, then the blob.
//
//	0   hcrc    uint32  CRC-32C (Castagnoli) of header bytes 4..72
//	4   magic   "KR", version 1, 0
//	8   length  uint32  the blob's length
//	12  bcrc    uint32  CRC-32C of the blob
//	16  journal [16]
//	32  seq     uint64
//	40  id      [32]    SHA-256 of the blob
//	72  the blob
//
// Integers are big-endian. The header makes a segment self-describing:
// opening the store reads the records past what the index holds and
// indexes them again (see BadgerStore.recoverTail).
const recHdr = 72

var recMagic = [4]byte{'K', 'R', 1, 0}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Key prefixes of the segment index.
var (
	pfxSegment = []byte("g/")
	pfxHole    = []byte("h/")
)

// ErrDamaged marks a blob whose stored bytes are missing or are not the
// bytes that were stored: the relay never serves them.
var ErrDamaged = errors.New("stored blob is damaged")

// segRef locates a blob's bytes.
type segRef struct {
	seg    uint32
	off    int64 // of the blob's first byte (past its header, if framed)
	n      int64
	id     protocol.BlobID
	framed bool   // in a framed segment: crc checks it, a header precedes it
	crc    uint32 // CRC-32C of the blob, if framed
}

func (r segRef) encode() []byte {
	v := make([]byte, 0, segRefFramedSize)
	v = append(v, segMark)
	if r.framed {
		v[0] = segMarkFramed
	}
	v = binary.BigEndian.AppendUint32(v, r.seg)
	v = binary.BigEndian.AppendUint64(v, uint64(r.off))
	v = binary.BigEndian.AppendUint32(v, uint32(r.n))
	v = append(v, r.id[:]...)
	if r.framed {
		v = binary.BigEndian.AppendUint32(v, r.crc)
	}
	return v
}

// decodeSegRef reports whether v is a segment reference, and decodes it.
func decodeSegRef(v []byte) (segRef, bool) {
	switch {
	case len(v) == segRefSize && v[0] == segMark:
	case len(v) == segRefFramedSize && v[0] == segMarkFramed:
	default:
		return segRef{}, false
	}
	r := segRef{
		seg: binary.BigEndian.Uint32(v[1:]),
		off: int64(binary.BigEndian.Uint64(v[5:])),
		n:   int64(binary.BigEndian.Uint32(v[13:])),
		id:  protocol.BlobID(v[17:49]),
	}
	if v[0] == segMarkFramed {
		r.framed, r.crc = true, binary.BigEndian.Uint32(v[49:])
	}
	return r, true
}

// isSegRefSize reports whether a log value of n bytes may be a segment
// reference (a blob can be as short, so decodeSegRef decides).
func isSegRefSize(n int64) bool { return n == segRefSize || n == segRefFramedSize }

// segRecord is one blob to write to a segment, with what its header says.
type segRecord struct {
	j    protocol.JournalID
	seq  uint64
	id   protocol.BlobID
	blob []byte
}

// appendRecord appends rec, framed, to buf.
func appendRecord(buf []byte, rec segRecord) []byte {
	at := len(buf)
	buf = append(buf, make([]byte, recHdr)...)
	h := buf[at : at+recHdr]
	copy(h[4:8], recMagic[:])
	binary.BigEndian.PutUint32(h[8:], uint32(len(rec.blob)))
	binary.BigEndian.PutUint32(h[12:], crc32.Checksum(rec.blob, castagnoli))
	copy(h[16:32], rec.j[:])
	binary.BigEndian.PutUint64(h[32:], rec.seq)
	copy(h[40:72], rec.id[:])
	binary.BigEndian.PutUint32(h[0:], crc32.Checksum(h[4:], castagnoli))
	return append(buf, rec.blob...)
}

// segInfo is what the index records of one segment.
type segInfo struct {
	end  int64 // bytes committed: every blob of the segment lies before it
	live int64 // blobs in it not purged
}

func (i segInfo) encode() []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(i.end)), uint64(i.live))
}

func segKey(seg uint32) []byte { return key(pfxSegment, binary.BigEndian.AppendUint32(nil, seg)) }

func holeKey(seg uint32, off int64) []byte {
	return key(pfxHole, binary.BigEndian.AppendUint32(nil, seg), u64(uint64(off)))
}

func segName(seg uint32) string { return fmt.Sprintf("%06d.seg", seg) }

// segLog is a store's segment files. The writer's fields are the
// committer's alone; the index's view is shared by index commits and
// purges, which take turns (BadgerStore.usageMu).
type segLog struct {
	dir string
	log *slog.Logger

	rollSize int64 // static: a segment past it takes no new group

	// The index's view, changed by the commits of groups and by purges,
	// which take turns (BadgerStore.usageMu).
	segs map[uint32]segInfo // every segment the index records, as committed

	// The writer's view, used by the committer goroutine alone, which
	// writes each group's bytes before the group's index commits (on the
	// index goroutine, indexcommit.go).
	w    *os.File // the segment being written; nil: start a new one
	wseg uint32   // its number
	wend int64    // where the next group goes in it
	next uint32   // number of the next new segment
	buf  []byte   // a group's bytes, reused

	// testWriteErr, if set (by tests), fails group writes with its
	// error, as a failing disk would.
	testWriteErr func() error

	rmu  sync.Mutex          // guards rf and gone
	rf   map[uint32]*os.File // segments open for reading
	gone map[uint32]bool     // segments deleted: not to be opened again
}

// testHookSegSynced, if set (by tests), runs after a group's bytes are
// durable in their segment and before the group is answered.
var testHookSegSynced func()

// errTailNotIndexed is openSegLog's answer, read-only, for a store whose
// newest segment holds records its index does not: only opening it for
// writing indexes them.
var errTailNotIndexed = errors.New("the newest segment holds blobs its index does not yet record")

// openSegLog opens the segment log of the store in dataDir, repairing
// what a crash left (unless readOnly): it cuts torn tails, removes
// segments that hold no record and deletes segments with no live blob
// (holes a purge left to punch are punched by BadgerStore.punchHoles). It
// returns the records of framed segments past what the index holds, in
// the order they were written: blobs that were acknowledged but whose
// index records had not committed, for the caller to index
// (BadgerStore.recoverTail). Damage it finds is logged, not repaired.
func openSegLog(db *badger.DB, dataDir string, readOnly bool, logger *slog.Logger) (*segLog, []idxEntry, error) {
	l := &segLog{
		dir:      filepath.Join(dataDir, segDirName),
		log:      logger.With("component", "segments"),
		rollSize: segRollSize,
		segs:     make(map[uint32]segInfo),
		rf:       make(map[uint32]*os.File),
		gone:     make(map[uint32]bool),
	}
	if !readOnly {
		if err := os.Mkdir(l.dir, 0o700); err == nil {
			if err := syncDir(dataDir); err != nil {
				return nil, nil, err
			}
		} else if !errors.Is(err, os.ErrExist) {
			return nil, nil, err
		}
	}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfxSegment})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(k) != len(pfxSegment)+4 || len(v) != 16 {
				return fmt.Errorf("segment record %x is damaged", k)
			}
			seg := binary.BigEndian.Uint32(k[len(pfxSegment):])
			l.segs[seg] = segInfo{end: int64(binary.BigEndian.Uint64(v)), live: int64(binary.BigEndian.Uint64(v[8:]))}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read the segment index: %w", err)
	}
	var newest uint32
	for seg := range l.segs {
		newest = max(newest, seg)
	}
	l.next = newest + 1
	ents, err := os.ReadDir(l.dir)
	if readOnly && errors.Is(err, os.ErrNotExist) {
		return l, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	onDisk := map[uint32]bool{}
	var tail []idxEntry
	for _, e := range ents {
		num, ok := strings.CutSuffix(e.Name(), ".seg")
		n, err := strconv.ParseUint(num, 10, 32)
		if !ok || err != nil || n == 0 {
			continue
		}
		seg := uint32(n)
		onDisk[seg] = true
		l.next = max(l.next, seg+1)
		info, recorded := l.segs[seg]
		path := filepath.Join(l.dir, e.Name())
		fi, err := e.Info()
		if err != nil {
			return nil, nil, err
		}
		if !recorded && seg < newest {
			l.log.Warn("a segment file the index does not know; left alone", "segment", e.Name())
			continue
		}
		if fi.Size() < info.end {
			l.log.Error("a segment is shorter than its index says: blobs past its end are damaged and will not be served",
				"segment", e.Name(), "bytes", fi.Size(), "indexed", info.end)
			continue
		}
		if fi.Size() == info.end && recorded {
			continue
		}
		// Bytes past what the index holds: in a framed segment at the
		// end of the log, records written and synced before the relay
		// stopped, whose index records had not committed yet (and then a
		// torn record the relay was writing); in a segment from before
		// framing, only a group that was never acknowledged.
		framed, err := isFramed(path)
		if err != nil {
			return nil, nil, err
		}
		if readOnly {
			if framed {
				return nil, nil, errTailNotIndexed
			}
			continue
		}
		keep := info.end
		// (Below the newest segment a framed one has bytes past its
		// indexed end only where an earlier start left damage in place:
		// scanning names it again rather than cutting it.)
		if framed {
			from := max(info.end, int64(len(segFileMagic)))
			recs, end, err := l.scan(seg, path, from)
			if err != nil {
				return nil, nil, err
			}
			tail, keep = append(tail, recs...), end
			if len(recs) > 0 {
				l.log.Warn("found blobs in a segment that the index did not yet record (the relay stopped before recording them); indexing them again",
					"segment", e.Name(), "blobs", len(recs))
			}
		}
		switch {
		case !recorded && keep <= int64(len(segFileMagic)):
			l.log.Warn("removed a segment that holds no acknowledged blob (the relay stopped while writing it)", "segment", e.Name())
			if err := os.Remove(path); err != nil {
				return nil, nil, err
			}
			delete(onDisk, seg)
		case fi.Size() > keep:
			l.log.Warn("cut the torn tail of a segment: bytes of a group that was never acknowledged (the relay stopped while writing it)",
				"segment", e.Name(), "bytes", fi.Size()-keep, "kept", keep)
			if err := truncateSync(path, keep); err != nil {
				return nil, nil, err
			}
		}
	}
	if readOnly {
		return l, nil, nil
	}
	for seg, info := range l.segs {
		if !onDisk[seg] && info.live > 0 {
			l.log.Error("a segment file is missing: its blobs are damaged and will not be served", "segment", segName(seg), "blobs", info.live)
		}
		if info.live == 0 && seg < newest {
			if err := l.remove(db, seg); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := syncDir(l.dir); err != nil {
		return nil, nil, err
	}
	return l, tail, nil
}

// isFramed reports whether the segment at path starts with segFileMagic.
func isFramed(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var b [len(segFileMagic)]byte
	n, err := io.ReadFull(f, b[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, err
	}
	return n == len(b) && string(b[:]) == segFileMagic, nil
}

// scan reads the framed records of segment seg from offset from and
// returns them with the offset just past the last whole one. What is not
// a whole record at the end is a torn write, left for the caller to cut.
// Bytes that are not a whole record but are followed by one are not a
// torn write (a group is written only after the one before it is
// synced): the disk damaged them, or the machine lost power while the
// relay wrote its last group and the kernel had written that group's
// pages out of order. They are named in the log and left in place, and
// scanning goes on after them. A record whose header is whole but whose
// blob is not is returned all the same: its number is known, so reads
// name it as damaged and serve what comes after it.
func (l *segLog) scan(seg uint32, path string, from int64) ([]idxEntry, int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	var out []idxEntry
	off, end := from, from
	for off+recHdr <= int64(len(data)) {
		h, n, ok := headerAt(data, off)
		if !ok {
			next := nextRecord(data, off+1)
			if next < 0 {
				break // a torn write
			}
			l.log.Error("bytes in a segment are not a whole record, yet whole records follow them: the disk damaged them, or the machine lost power while the relay wrote them; left in place, and the blobs in them are not served",
				"segment", segName(seg), "offset", off, "bytes", next-off)
			off = next
			continue
		}
		blob := data[off+recHdr : off+recHdr+n]
		crc := binary.BigEndian.Uint32(h[12:])
		id := protocol.BlobID(h[40:72])
		if crc32.Checksum(blob, castagnoli) != crc || sha256.Sum256(blob) != id {
			if nextRecord(data, off+recHdr+n) < 0 {
				break // a torn write
			}
			l.log.Error("a blob in a segment is damaged, yet whole records follow it: it is indexed, and named as damaged whenever it is read",
				"segment", segName(seg), "offset", off, "journal", protocol.JournalID(h[16:32]).String(), "seq", binary.BigEndian.Uint64(h[32:]))
		}
		out = append(out, idxEntry{
			j:    protocol.JournalID(h[16:32]),
			seq:  binary.BigEndian.Uint64(h[32:]),
			size: n,
			ref:  segRef{seg: seg, off: off + recHdr, n: n, id: id, framed: true, crc: crc},
		})
		off += recHdr + n
		end = off
	}
	return out, end, nil
}

// headerAt returns the record header at off in data and its blob's
// length, if the header is whole (its magic and CRC) and its blob lies
// within data.
func headerAt(data []byte, off int64) ([]byte, int64, bool) {
	if off+recHdr > int64(len(data)) {
		return nil, 0, false
	}
	h := data[off : off+recHdr]
	if [4]byte(h[4:8]) != recMagic || binary.BigEndian.Uint32(h) != crc32.Checksum(h[4:], castagnoli) {
		return nil, 0, false
	}
	n := int64(binary.BigEndian.Uint32(h[8:]))
	if off+recHdr+n > int64(len(data)) {
		return nil, 0, false
	}
	return h, n, true
}

// nextRecord returns the offset of the first whole record header at or
// after from (its blob checked or not), or -1.
func nextRecord(data []byte, from int64) int64 {
	for off := from; off+recHdr <= int64(len(data)); off++ {
		i := bytes.Index(data[off+4:], recMagic[:])
		if i < 0 {
			return -1
		}
		off += int64(i)
		if _, _, ok := headerAt(data, off); ok {
			return off
		}
	}
	return -1
}

// resumeWriter goes on writing the newest segment if it is framed, whole
// and has room; otherwise the next group starts a new one.
func (l *segLog) resumeWriter() error {
	newest := l.newest()
	info, ok := l.segs[newest]
	if !ok || newest == 0 || info.end >= l.rollSize {
		return nil
	}
	path := filepath.Join(l.dir, segName(newest))
	if framed, err := isFramed(path); err != nil || !framed {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != info.end {
		return nil
	}
	if l.w, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
		return err
	}
	l.wseg, l.wend = newest, info.end
	return nil
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// close closes the segment files.
func (l *segLog) close() error {
	var err error
	if l.w != nil {
		err = l.w.Close()
		l.w = nil
	}
	l.rmu.Lock()
	defer l.rmu.Unlock()
	for seg, f := range l.rf {
		f.Close()
		delete(l.rf, seg)
	}
	return err
}

// startGroup makes sure a segment can take size more bytes, starting a new
// one if the one being written is full (or none is open).
func (l *segLog) startGroup(size int) error {
	if l.w != nil && l.wend > int64(len(segFileMagic)) && l.wend+int64(size) > l.rollSize {
		l.w.Close()
		l.w = nil
	}
	if l.w != nil {
		return nil
	}
	seg := l.next
	path := filepath.Join(l.dir, segName(seg))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	// The file's name and its first bytes must be durable before anything
	// acknowledged is in it.
	err = writeFull(f, []byte(segFileMagic), 0)
	if err == nil {
		err = unix.Fdatasync(int(f.Fd()))
	}
	if err == nil {
		err = syncDir(l.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("create segment: %w", err)
	}
	l.next++
	// A segment left behind whose blobs were all purged meanwhile is
	// deleted by the next purge in it, or at the next open.
	l.w, l.wseg, l.wend = f, seg, int64(len(segFileMagic))
	return nil
}

// write appends recs to the segment being written, framed, durably (one
// pwrite, one fdatasync), and returns the references to their blobs.
// Until the index records them, opening the store finds them by their
// headers (openSegLog).
//
// If the write or the sync fails, the segment is cut back to where the
// group began and synced, so that none of the group's records (whose
// sequence numbers the next group will use) can come back at the next
// open. If even that fails, write returns errSegmentUnusable wrapped: the
// store must take no more appends (BadgerStore.commitGroup), as a
// database does after a failed fsync, because the kernel may have dropped
// the pages it could not write.
func (l *segLog) write(recs []segRecord) ([]segRef, error) {
	size := 0
	for _, r := range recs {
		size += recHdr + len(r.blob)
	}
	if err := l.startGroup(size); err != nil {
		return nil, err
	}
	l.buf = l.buf[:0]
	refs := make([]segRef, len(recs))
	for i, r := range recs {
		at := len(l.buf)
		l.buf = appendRecord(l.buf, r)
		refs[i] = segRef{seg: l.wseg, off: l.wend + int64(at+recHdr), n: int64(len(r.blob)), id: r.id,
			framed: true, crc: binary.BigEndian.Uint32(l.buf[at+12:])}
	}
	var err error
	if l.testWriteErr != nil {
		err = l.testWriteErr()
	}
	if err == nil {
		err = writeFull(l.w, l.buf, l.wend)
	}
	if err == nil {
		err = unix.Fdatasync(int(l.w.Fd()))
	}
	n := int64(len(l.buf))
	if cap(l.buf) > 2*maxGroupBytes {
		l.buf = nil // one very large group should not pin its buffer
	}
	if err != nil {
		werr := fmt.Errorf("write blobs to segment %s: %w", segName(l.wseg), err)
		cerr := l.w.Truncate(l.wend)
		if cerr == nil {
			cerr = unix.Fdatasync(int(l.w.Fd()))
		}
		if cerr != nil {
			// Nothing more is written (the store stops taking appends);
			// the next start scans what is there.
			l.w.Close()
			l.w = nil
			return nil, fmt.Errorf("%w: %w (and cutting the group back failed: %v)", errSegmentUnusable, werr, cerr)
		}
		return nil, werr
	}
	if testHookSegSynced != nil {
		testHookSegSynced()
	}
	l.wend += n
	return refs, nil
}

// errSegmentUnusable wraps a write failure the segment could not be
// repaired from.
var errSegmentUnusable = errors.New("the relay could not write to its disk and takes no more blobs until it is restarted")

func writeFull(f *os.File, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := f.WriteAt(b, off)
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// file returns seg open for reading.
func (l *segLog) file(seg uint32) (*os.File, error) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if f, ok := l.rf[seg]; ok {
		return f, nil
	}
	if l.gone[seg] {
		return nil, os.ErrNotExist
	}
	f, err := os.Open(filepath.Join(l.dir, segName(seg)))
	if err != nil {
		return nil, err
	}
	l.rf[seg] = f
	return f, nil
}

// forget closes seg's read handle (it is being deleted).
func (l *segLog) forget(seg uint32) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	l.gone[seg] = true
	if f, ok := l.rf[seg]; ok {
		f.Close()
		delete(l.rf, seg)
	}
}

// read returns the blob r refers to, checked against its id. Every
// failure wraps ErrDamaged.
func (l *segLog) read(r segRef) ([]byte, error) {
	f, err := l.file(r.seg)
	if err != nil {
		return nil, fmt.Errorf("%w: segment %s: %v", ErrDamaged, segName(r.seg), err)
	}
	b := make([]byte, r.n)
	n, err := f.ReadAt(b, r.off)
	if n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: segment %s ends before the blob at offset %d (%d bytes)", ErrDamaged, segName(r.seg), r.off, r.n)
		}
		return nil, fmt.Errorf("%w: segment %s: %v", ErrDamaged, segName(r.seg), err)
	}
	if !r.check(b) {
		return nil, fmt.Errorf("%w: the bytes at offset %d of segment %s are not the blob stored there", ErrDamaged, r.off, segName(r.seg))
	}
	return b, nil
}

// check reports whether b are the bytes r refers to: by their CRC-32C in
// a framed segment (the relay's own record of them; clients check each
// blob's id themselves), else by their SHA-256, the blob id.
func (r segRef) check(b []byte) bool {
	if r.framed {
		return crc32.Checksum(b, castagnoli) == r.crc
	}
	return sha256.Sum256(b) == r.id
}

// readRuns reads the blobs refs locate (those with ok set), checked
// against their ids, and returns them by index; nil where a blob was not
// read (ok unset, or its run could not be read or its bytes are not its
// blob: the caller reads it on its own, which names the damage or finds
// a purge). Blobs stored one after another in a segment are read with
// one pread of up to runBytes: a first sync of 10,000 blobs made 10,000
// system calls. The blobs of a run share one buffer, each capped at its
// own end.
func (l *segLog) readRuns(refs []segRef, ok []bool) [][]byte {
	out := make([][]byte, len(refs))
	for i := 0; i < len(refs); {
		if !ok[i] {
			i++
			continue
		}
		first, end := refs[i], refs[i].off+refs[i].n
		k := i + 1
		for k < len(refs) && ok[k] && refs[k].seg == first.seg && refs[k].off == end+refs[k].gap() && refs[k].off+refs[k].n-first.off <= runBytes {
			end = refs[k].off + refs[k].n
			k++
		}
		if k == i+1 {
			i = k // a lone blob: read on its own
			continue
		}
		f, err := l.file(first.seg)
		if err != nil {
			i = k
			continue
		}
		buf := make([]byte, end-first.off)
		if n, _ := f.ReadAt(buf, first.off); n == len(buf) {
			for x := i; x < k; x++ {
				at := refs[x].off - first.off
				b := buf[at : at+refs[x].n : at+refs[x].n]
				if refs[x].check(b) {
					out[x] = b
				}
			}
		}
		i = k
	}
	return out
}

// gap is how many bytes precede r's blob after the blob before it: its
// header, in a framed segment.
func (r segRef) gap() int64 {
	if r.framed {
		return recHdr
	}
	return 0
}

// runBytes is the most one pread of readRuns reads.
const runBytes = 1 << 20

// punch removes n bytes at off from seg durably: a hole where the
// filesystem can punch one, zeros where it cannot.
func (l *segLog) punch(seg uint32, off, n int64) error {
	f, err := os.OpenFile(filepath.Join(l.dir, segName(seg)), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err != nil {
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
			return err
		}
		if err := writeFull(f, make([]byte, n), off); err != nil {
			return err
		}
	}
	return unix.Fdatasync(int(f.Fd()))
}

// remove deletes segment seg, which holds no live blob, and its record.
func (l *segLog) remove(db *badger.DB, seg uint32) error {
	l.forget(seg)
	if err := os.Remove(filepath.Join(l.dir, segName(seg))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(segKey(seg)) }); err != nil {
		return err
	}
	delete(l.segs, seg)
	l.log.Info("deleted a segment whose blobs were all purged", "segment", segName(seg))
	return nil
}

// loadValue turns a log value as the index holds it into the value as
// older relays stored it inline: a blob, or purgedMark and a purged
// record. A segment reference is read from its segment and checked.
// current, if not nil, re-reads the log record in a new transaction: a
// reader whose snapshot predates a purge may find the bytes already
// punched out, and then gets the purged record instead.
func (s *BadgerStore) loadValue(v []byte, current func() ([]byte, error)) ([]byte, error) {
	r, ok := decodeSegRef(v)
	if !ok {
		return v, nil
	}
	if s.segs == nil {
		return nil, fmt.Errorf("%w: a segment reference in a store without segments", ErrDamaged)
	}
	b, err := s.segs.read(r)
	if err == nil || current == nil {
		return b, err
	}
	now, cerr := current()
	if cerr == nil && !bytes.Equal(now, v) {
		return s.loadValue(now, nil)
	}
	return nil, err
}

// currentLog returns a function that reads log record k in a new
// transaction, for loadValue.
func (s *BadgerStore) currentLog(k []byte) func() ([]byte, error) {
	return func() ([]byte, error) {
		var v []byte
		err := s.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(k)
			if err != nil {
				return err
			}
			v, err = item.ValueCopy(nil)
			return err
		})
		return v, err
	}
}

// damaged logs a damaged blob, naming where it is (never its bytes).
func (s *BadgerStore) damaged(j protocol.JournalID, seq uint64, err error) {
	if s.segs != nil && errors.Is(err, ErrDamaged) {
		s.segs.log.Error("a stored blob is damaged and is not served", "journal", j.String(), "seq", seq, "err", err)
	}
}

// BlobDamage names a damaged blob: where it is and what is wrong, never
// its bytes.
type BlobDamage struct {
	Journal protocol.JournalID `json:"journal"`
	Seq     uint64             `json:"seq"`
	Problem string             `json:"problem"`
}

// VerifyResult is what [BadgerStore.VerifyBlobs] found.
type VerifyResult struct {
	Blobs   int `json:"blobs"`   // log entries looked at, purged ones included
	Checked int `json:"checked"` // blobs read from their segment and found whole
	Inline  int `json:"inline"`  // blobs stored inline by an older relay (Badger checksums those)
	// Damaged lists damaged blobs, at most maxDamageListed of them;
	// DamagedCount counts them all.
	Damaged      []BlobDamage `json:"damaged"`
	DamagedCount int          `json:"damaged_count"`
}

const maxDamageListed = 1000

// VerifyBlobs reads every blob kept in a segment and checks it against its
// id: it finds what a read would refuse, without waiting for someone to
// read it. Damaged blobs are listed (and logged), not repaired.
func (s *BadgerStore) VerifyBlobs(ctx context.Context) (VerifyResult, error) {
	var res VerifyResult
	done, err := s.begin(ctx)
	if err != nil {
		return res, err
	}
	defer done()
	if err := s.pend.drain(); err != nil {
		return res, err
	}
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfxLog})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := it.Item().Key()
			if len(k) != len(pfxLog)+protocol.JournalIDSize+8 {
				return fmt.Errorf("log key is %d bytes", len(k))
			}
			j := protocol.JournalID(k[len(pfxLog):])
			seq := binary.BigEndian.Uint64(k[len(pfxLog)+protocol.JournalIDSize:])
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			res.Blobs++
			if _, ok := decodeSegRef(v); !ok {
				if len(v) == 0 || v[0] != purgedMark {
					res.Inline++
				}
				continue
			}
			if _, err := s.loadValue(v, s.currentLog(it.Item().KeyCopy(nil))); err != nil {
				if !errors.Is(err, ErrDamaged) {
					return err
				}
				s.damaged(j, seq, err)
				res.DamagedCount++
				if len(res.Damaged) < maxDamageListed {
					res.Damaged = append(res.Damaged, BlobDamage{Journal: j, Seq: seq, Problem: strings.TrimPrefix(err.Error(), ErrDamaged.Error()+": ")})
				}
				continue
			}
			res.Checked++
		}
		return nil
	})
	return res, err
}

// newest returns the newest segment the index records (0: none). No
// segment before it holds a blob whose index has not committed: the
// writer fills segments in order, and index commits follow in the same
// order (it and the segments after it may). Called with
// BadgerStore.usageMu held.
func (l *segLog) newest() uint32 {
	var n uint32
	for seg := range l.segs {
		n = max(n, seg)
	}
	return n
}
