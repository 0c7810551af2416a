package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
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
//	blobs/000001.seg, blobs/000002.seg, …   blob bytes, back to back, no framing
//
// and in Badger (see the BadgerStore comment for the other tables):
//
//	l/<journal 16><seq 8> → segMark | segment (4) | offset (8) | length (4) | blob id (32)
//	g/<segment 4>         → committed end (8) | live blobs (8)
//	h/<segment 4><off 8>  → length (8): a purged blob's bytes still to be punched out
//
// A log value that is not a segment reference is a blob stored inline by an
// older relay (or purgedMark and a purged record); both still read.
//
// Durability, per group commit: the group's blobs are written to the
// segment being filled with one pwrite and made durable with one
// fdatasync; only then is the group's Badger transaction (index records,
// the segment's new committed end, last sequence numbers, usage)
// committed, synced. A put is acknowledged after both. A crash between
// the two leaves bytes past the segment's committed end: a torn tail of a
// group nobody was told about, which opening the store cuts off. A new
// segment file's directory entry is synced before anything is written to
// it. The committer is pipelined (groupcommit.go): group N+1's blobs are
// written and synced while group N's index commits, so the blobs are
// written before the store knows which of them it already holds; the
// bytes of a blob that turns out to be stored already (or whose journal
// does not exist), and of a group whose commit failed, are punched out
// like a purge's before anything later is acknowledged.
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
// Every read checks the bytes against the blob id in the index record:
// bytes that do not hash to it, or an index record pointing past the end
// of its segment, are damage ([ErrDamaged]), named in the log, never
// served.

// segRollSize is the size past which the next group starts a new segment.
const segRollSize = 64 << 20

// segDirName is the directory of segment files inside the data directory.
const segDirName = "blobs"

// segMark starts a log value that refers to a blob in a segment; no blob
// starts with it (blobs start with their format version), and it differs
// from purgedMark.
const segMark = 0xFE

// segRefSize is the length of a segment reference.
const segRefSize = 1 + 4 + 8 + 4 + 32

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
	seg uint32
	off int64
	n   int64
	id  protocol.BlobID
}

func (r segRef) encode() []byte {
	v := make([]byte, 0, segRefSize)
	v = append(v, segMark)
	v = binary.BigEndian.AppendUint32(v, r.seg)
	v = binary.BigEndian.AppendUint64(v, uint64(r.off))
	v = binary.BigEndian.AppendUint32(v, uint32(r.n))
	return append(v, r.id[:]...)
}

// decodeSegRef reports whether v is a segment reference, and decodes it.
func decodeSegRef(v []byte) (segRef, bool) {
	if len(v) != segRefSize || v[0] != segMark {
		return segRef{}, false
	}
	return segRef{
		seg: binary.BigEndian.Uint32(v[1:]),
		off: int64(binary.BigEndian.Uint64(v[5:])),
		n:   int64(binary.BigEndian.Uint32(v[13:])),
		id:  protocol.BlobID(v[17:]),
	}, true
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

// segLog is a store's segment files. The fields under "writer" are used
// by the committer and by Purge, which take turns (BadgerStore.usageMu).
type segLog struct {
	dir string
	log *slog.Logger

	rollSize int64 // static: a segment past it takes no new group

	// The index's view, changed by the commits of groups and by purges,
	// which take turns (BadgerStore.usageMu).
	segs map[uint32]segInfo // every segment the index records, as committed

	// The writer's view, used by the committer goroutine alone, which
	// writes each group's bytes before the group's index commits (and,
	// pipelined, while the group before it commits; see groupcommit.go).
	w    *os.File // the segment being written; nil: start a new one
	wseg uint32   // its number
	wend int64    // where the next group goes in it
	next uint32   // number of the next new segment
	buf  []byte   // a group's bytes, reused

	rmu  sync.Mutex          // guards rf and gone
	rf   map[uint32]*os.File // segments open for reading
	gone map[uint32]bool     // segments deleted: not to be opened again
}

// testHookSegSynced, if set (by tests), runs after a group's bytes are
// durable in their segment and before its index commits.
var testHookSegSynced func()

// openSegLog opens the segment log of the store in dataDir, repairing
// what a crash left (unless readOnly): it cuts torn tails, removes
// segments nothing acknowledged and deletes segments with no live blob
// (holes a purge left to punch are punched by BadgerStore.punchHoles).
// Damage it finds is logged, not repaired.
func openSegLog(db *badger.DB, dataDir string, readOnly bool, logger *slog.Logger) (*segLog, error) {
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
				return nil, err
			}
		} else if !errors.Is(err, os.ErrExist) {
			return nil, err
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
		return nil, fmt.Errorf("read the segment index: %w", err)
	}
	var newest uint32
	for seg := range l.segs {
		newest = max(newest, seg)
	}
	l.next = newest + 1
	if readOnly {
		return l, nil
	}
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, err
	}
	onDisk := map[uint32]bool{}
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
		if !recorded {
			if seg > newest {
				// Created for a group whose index never committed.
				l.log.Warn("removed a segment that holds no acknowledged blob (the relay stopped while writing it)", "segment", e.Name())
				if err := os.Remove(path); err != nil {
					return nil, err
				}
				continue
			}
			l.log.Warn("a segment file the index does not know; left alone", "segment", e.Name())
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		switch {
		case fi.Size() > info.end:
			l.log.Warn("cut the torn tail of a segment: bytes of a group that was never acknowledged (the relay stopped while writing it)",
				"segment", e.Name(), "bytes", fi.Size()-info.end, "kept", info.end)
			if err := truncateSync(path, info.end); err != nil {
				return nil, err
			}
		case fi.Size() < info.end:
			l.log.Error("a segment is shorter than its index says: blobs past its end are damaged and will not be served",
				"segment", e.Name(), "bytes", fi.Size(), "indexed", info.end)
		}
	}
	for seg, info := range l.segs {
		if !onDisk[seg] && info.live > 0 {
			l.log.Error("a segment file is missing: its blobs are damaged and will not be served", "segment", segName(seg), "blobs", info.live)
		}
		if info.live == 0 && seg < newest {
			if err := l.remove(db, seg); err != nil {
				return nil, err
			}
		}
	}
	if err := syncDir(l.dir); err != nil {
		return nil, err
	}
	// Go on writing the newest segment if it is whole and has room.
	if info, ok := l.segs[newest]; ok && newest > 0 && info.end < l.rollSize {
		path := filepath.Join(l.dir, segName(newest))
		if fi, err := os.Stat(path); err == nil && fi.Size() == info.end {
			if l.w, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
				return nil, err
			}
			l.wseg, l.wend = newest, info.end
		}
	}
	return l, nil
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
// one if the one being written is full (or was left unusable by a failed
// write).
func (l *segLog) startGroup(size int) error {
	if l.w != nil && l.wend > 0 && l.wend+int64(size) > l.rollSize {
		l.w.Close()
		l.w = nil
	}
	if l.w != nil {
		return nil
	}
	seg := l.next
	f, err := os.OpenFile(filepath.Join(l.dir, segName(seg)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	// The file's name must be durable before anything acknowledged is in it.
	if err := syncDir(l.dir); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("create segment: %w", err)
	}
	l.next++
	// A segment left behind whose blobs were all purged meanwhile is
	// deleted by the next purge in it, or at the next open.
	l.w, l.wseg, l.wend = f, seg, 0
	return nil
}

// write appends blobs to the segment being written, durably (one pwrite,
// one fdatasync), and returns the references to them. Until an index
// commit records them, the bytes are a tail that opening the store would
// cut.
func (l *segLog) write(blobs [][]byte, ids []protocol.BlobID) ([]segRef, error) {
	size := 0
	for _, b := range blobs {
		size += len(b)
	}
	if err := l.startGroup(size); err != nil {
		return nil, err
	}
	l.buf = l.buf[:0]
	refs := make([]segRef, len(blobs))
	for i, b := range blobs {
		refs[i] = segRef{seg: l.wseg, off: l.wend + int64(len(l.buf)), n: int64(len(b)), id: ids[i]}
		l.buf = append(l.buf, b...)
	}
	err := writeFull(l.w, l.buf, l.wend)
	if err == nil {
		err = unix.Fdatasync(int(l.w.Fd()))
	}
	n := int64(len(l.buf))
	if cap(l.buf) > 2*maxGroupBytes {
		l.buf = nil // one very large group should not pin its buffer
	}
	if err != nil {
		// After a failed write or sync the file's cached state is not to
		// be trusted: the next group starts a new segment, and these
		// bytes, past every committed end of this one, are cut at the
		// next open.
		l.w.Close()
		l.w = nil
		return nil, fmt.Errorf("write blobs to segment %s: %w", segName(l.wseg), err)
	}
	if testHookSegSynced != nil {
		testHookSegSynced()
	}
	l.wend += n
	return refs, nil
}

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
	if sha256.Sum256(b) != r.id {
		return nil, fmt.Errorf("%w: the bytes at offset %d of segment %s are not the blob stored there", ErrDamaged, r.off, segName(r.seg))
	}
	return b, nil
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
		for k < len(refs) && ok[k] && refs[k].seg == first.seg && refs[k].off == end && end+refs[k].n-first.off <= runBytes {
			end += refs[k].n
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
				if sha256.Sum256(b) == refs[x].id {
					out[x] = b
				}
			}
		}
		i = k
	}
	return out
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

// newest returns the newest segment the index records (0: none). Only it
// can still receive groups whose index has not committed: the writer
// fills segments in order, and index commits follow in the same order.
// Called with BadgerStore.usageMu held.
func (l *segLog) newest() uint32 {
	var n uint32
	for seg := range l.segs {
		n = max(n, seg)
	}
	return n
}
