package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"google.golang.org/protobuf/proto"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// A backup file holds every blob inline, as older relays stored them, so
// its format (and every relay that can restore it) stays as it was: the
// backup stream passes through inlineWriter, which replaces each segment
// reference in a log record with the blob's bytes, read from its segment
// and checked, and leaves out the segment index (g/, h/), which describes
// this data directory's files only. A restore writes the blobs to segments
// again (outline, below); a relay older than segments restores the file
// as it always did, with the blobs inline.
//
// Badger's stream writes chunks as [uint64 little-endian n][n bytes of a
// KVList]; inlineWriter parses them, and writes chunks of the same form,
// split so that one holds at most about inlineChunk bytes of blobs.
const inlineChunk = 4 << 20

type inlineWriter struct {
	s   *BadgerStore
	w   io.Writer
	buf []byte // bytes of an incomplete chunk
	err error  // the first failure (Badger's stream reports its own cancellation instead)
}

func (iw *inlineWriter) Write(p []byte) (int, error) {
	if iw.err != nil {
		return 0, iw.err
	}
	iw.buf = append(iw.buf, p...)
	for len(iw.buf) >= 8 {
		n := binary.LittleEndian.Uint64(iw.buf)
		if uint64(len(iw.buf)-8) < n {
			break
		}
		if err := iw.chunk(iw.buf[8 : 8+n]); err != nil {
			iw.err = err
			return 0, err
		}
		iw.buf = append(iw.buf[:0], iw.buf[8+n:]...)
	}
	return len(p), nil
}

// close fails if the stream ended inside a chunk.
func (iw *inlineWriter) close() error {
	if len(iw.buf) > 0 {
		return fmt.Errorf("the store's stream ended inside a chunk")
	}
	return nil
}

func (iw *inlineWriter) chunk(b []byte) error {
	var in pb.KVList
	if err := proto.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("read the store's stream: %w", err)
	}
	out := &pb.KVList{}
	size := 0
	for _, kv := range in.Kv {
		if bytes.HasPrefix(kv.Key, pfxSegment) || bytes.HasPrefix(kv.Key, pfxHole) {
			continue
		}
		if bytes.HasPrefix(kv.Key, pfxLog) && isSegRefSize(int64(len(kv.Value))) {
			v, err := iw.s.loadValue(kv.Value, iw.s.currentLog(kv.Key))
			if err != nil {
				if k := kv.Key[len(pfxLog):]; len(k) == protocol.JournalIDSize+8 {
					j := protocol.JournalID(k)
					seq := binary.BigEndian.Uint64(k[protocol.JournalIDSize:])
					iw.s.damaged(j, seq, err)
					return fmt.Errorf("journal %s, entry %d: %w", j, seq, err)
				}
				return fmt.Errorf("log record %x: %w", kv.Key[len(pfxLog):], err)
			}
			kv.Value = v
		}
		out.Kv = append(out.Kv, kv)
		size += len(kv.Key) + len(kv.Value)
		if size >= inlineChunk {
			if err := iw.emit(out); err != nil {
				return err
			}
			out, size = &pb.KVList{}, 0
		}
	}
	if len(out.Kv) == 0 {
		return nil
	}
	return iw.emit(out)
}

func (iw *inlineWriter) emit(list *pb.KVList) error {
	b, err := proto.Marshal(list)
	if err != nil {
		return err
	}
	if _, err := iw.w.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(b)))); err != nil {
		return err
	}
	_, err = iw.w.Write(b)
	return err
}

// A restore does the opposite of inlineWriter: outline reads the backup's
// stream and writes each blob it holds inline to segment files of the new
// data directory, handing Badger's Load the same stream with segment
// references in their place, so a restored relay keeps its blobs out of
// Badger as the relay that took the backup did (and a backup taken by an
// older relay is converted on the way in).
func outline(r io.Reader, w io.Writer, l *segLog) error {
	iw := &inlineWriter{w: w}
	var n [8]byte
	for {
		if _, err := io.ReadFull(r, n[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		size := binary.LittleEndian.Uint64(n[:])
		b := make([]byte, size) // the backup was verified: size is within the file
		if _, err := io.ReadFull(r, b); err != nil {
			return err
		}
		var list pb.KVList
		if err := proto.Unmarshal(b, &list); err != nil {
			return fmt.Errorf("read the backup's data: %w", err)
		}
		for _, kv := range list.Kv {
			deleted := len(kv.Meta) > 0 && kv.Meta[0]&badgerBitDelete != 0
			if !bytes.HasPrefix(kv.Key, pfxLog) || deleted || len(kv.Value) == 0 || kv.Value[0] == purgedMark {
				continue
			}
			if _, ok := decodeSegRef(kv.Value); ok {
				return fmt.Errorf("the backup holds a segment reference, not a blob (log record %x)", kv.Key[len(pfxLog):])
			}
			k := kv.Key[len(pfxLog):]
			if len(k) != protocol.JournalIDSize+8 {
				return fmt.Errorf("the backup holds a log record with a %d-byte key", len(kv.Key))
			}
			ref, err := l.restoreAppend(protocol.JournalID(k), binary.BigEndian.Uint64(k[protocol.JournalIDSize:]), kv.Value)
			if err != nil {
				return err
			}
			kv.Value = ref.encode()
		}
		if err := iw.emit(&list); err != nil {
			return err
		}
	}
}

// badgerBitDelete is Badger's meta bit of a deletion marker (bitDelete in
// badger's structs.go), as its backup stream carries it.
const badgerBitDelete = 1 << 0

// restoreAppend appends blob, the log record seq of journal j, framed, to
// the segment being filled by a restore, starting a new one past
// segRollSize. Nothing is synced until restoreFinish, which a restore runs
// before it calls the directory done.
func (l *segLog) restoreAppend(j protocol.JournalID, seq uint64, blob []byte) (segRef, error) {
	size := int64(recHdr + len(blob))
	if l.w == nil || (l.wend > int64(len(segFileMagic)) && l.wend+size > l.rollSize) {
		if err := l.restoreSync(); err != nil {
			return segRef{}, err
		}
		if err := l.startGroup(int(size)); err != nil {
			return segRef{}, err
		}
	}
	id := protocol.IDOf(blob)
	l.buf = appendRecord(l.buf[:0], segRecord{j: j, seq: seq, id: id, blob: blob})
	ref := segRef{seg: l.wseg, off: l.wend + recHdr, n: int64(len(blob)), id: id, framed: true, crc: binary.BigEndian.Uint32(l.buf[12:])}
	if err := writeFull(l.w, l.buf, l.wend); err != nil {
		return segRef{}, err
	}
	l.wend += size
	info := l.segs[l.wseg]
	info.end = l.wend
	info.live++
	l.segs[l.wseg] = info
	return ref, nil
}

// restoreSync syncs and closes the segment a restore is filling.
func (l *segLog) restoreSync() error {
	if l.w == nil {
		return nil
	}
	err := l.w.Sync()
	if cerr := l.w.Close(); err == nil {
		err = cerr
	}
	l.w = nil
	return err
}

// restoreFinish makes a restore's segments durable and records them in
// the index.
func (l *segLog) restoreFinish(db *badger.DB) error {
	if err := l.restoreSync(); err != nil {
		return err
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	return db.Update(func(txn *badger.Txn) error {
		for seg, info := range l.segs {
			if err := txn.Set(segKey(seg), info.encode()); err != nil {
				return err
			}
		}
		return nil
	})
}
