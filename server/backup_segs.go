package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/dgraph-io/badger/v4/pb"
	"google.golang.org/protobuf/proto"
)

// A backup file holds every blob inline, as older relays stored them, so
// its format (and every relay that can restore it) stays as it was: the
// backup stream passes through inlineWriter, which replaces each segment
// reference in a log record with the blob's bytes, read from its segment
// and checked, and leaves out the segment index (g/, h/), which describes
// this data directory's files only. A restored store serves the inline
// blobs and writes new ones to segments.
//
// Badger's stream writes chunks as [uint64 little-endian n][n bytes of a
// KVList]; inlineWriter parses them, and writes chunks of the same form,
// split so that one holds at most about inlineChunk bytes of blobs.
const inlineChunk = 4 << 20

type inlineWriter struct {
	s   *BadgerStore
	w   io.Writer
	buf []byte // bytes of an incomplete chunk
}

func (iw *inlineWriter) Write(p []byte) (int, error) {
	iw.buf = append(iw.buf, p...)
	for len(iw.buf) >= 8 {
		n := binary.LittleEndian.Uint64(iw.buf)
		if uint64(len(iw.buf)-8) < n {
			break
		}
		if err := iw.chunk(iw.buf[8 : 8+n]); err != nil {
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
		if bytes.HasPrefix(kv.Key, pfxLog) && len(kv.Value) == segRefSize {
			v, err := iw.s.loadValue(kv.Value, iw.s.currentLog(kv.Key))
			if err != nil {
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
