package protocol

import (
	"encoding/binary"
	"fmt"
)

// Binary frames of protocol version 2 (docs/protocol.md §20).
//
// Version 2 carries the three messages that hold nearly all the bytes a
// relay and its clients exchange as WebSocket binary frames with fixed
// layouts, so blob bytes are never base64-encoded and several blobs (or
// acknowledgements) share a frame. Every binary frame starts with a
// one-byte frame type:
//
//	put   0x01  client → relay  type | id (8) | journal (16) | blob (rest)
//	blobs 0x02  relay → client  type | journal (16) | entries: seq (8) | flags (1) | length (4) | bytes
//	acks  0x03  relay → client  type | entries: id (8) | seq (8) | blob id (32) | flags (1)
//
// The decoders check structure only and never copy: the blobs they return
// are slices of the frame. What a blob holds, and whether seqs follow one
// another, is for the caller to judge, as for the JSON messages.

// Frame types: the first byte of every binary frame.
const (
	FramePut   byte = 0x01 // a Put, client to relay
	FrameBlobs byte = 0x02 // one or more Blob pushes of one journal, relay to client
	FrameAcks  byte = 0x03 // the OKs of one or more binary puts, relay to client
)

// Sizes of the fixed parts of binary frames.
const (
	// PutFrameHeader is the size of a put frame before its blob: type,
	// request id, journal id.
	PutFrameHeader = 1 + 8 + JournalIDSize
	// BlobsFrameHeader is the size of a blobs frame before its entries:
	// type, journal id.
	BlobsFrameHeader = 1 + JournalIDSize
	// BlobEntryHeader is the size of a blobs entry before its bytes: seq,
	// flags, length.
	BlobEntryHeader = 8 + 1 + 4
	// AckEntrySize is the size of one acks entry: request id, seq, blob
	// id, flags.
	AckEntrySize = 8 + 8 + 32 + 1
)

// Flag bits of a blobs entry and of an acks entry.
const (
	flagPurged    = 0x01 // blobs: the bytes are a purged record
	flagDuplicate = 0x01 // acks: the journal held the blob already
)

// FrameType returns the type of a binary frame, or 0 for an empty one.
func FrameType(frame []byte) byte {
	if len(frame) == 0 {
		return 0
	}
	return frame[0]
}

// AppendPut appends the put frame for request id, putting blob in journal
// j, to dst.
func AppendPut(dst []byte, id uint64, j JournalID, blob []byte) []byte {
	dst = append(dst, FramePut)
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = append(dst, j[:]...)
	return append(dst, blob...)
}

// DecodePut decodes a put frame. The blob it returns is a slice of frame.
// It fails, wrapping [ErrMalformed], for a frame of another type, one too
// short for its header, or one with request id 0; whether the blob is
// acceptable is the relay's to check, as for a JSON put.
func DecodePut(frame []byte) (Put, error) {
	if FrameType(frame) != FramePut {
		return Put{}, fmt.Errorf("%w: not a put frame", ErrMalformed)
	}
	if len(frame) < PutFrameHeader {
		return Put{}, fmt.Errorf("%w: the put frame is %d bytes, shorter than its %d-byte header", ErrMalformed, len(frame), PutFrameHeader)
	}
	m := Put{Type: TypePut, ID: binary.BigEndian.Uint64(frame[1:9]), Blob: frame[PutFrameHeader:]}
	copy(m.Journal[:], frame[9:PutFrameHeader])
	if m.ID == 0 {
		return Put{}, fmt.Errorf("%w: the put frame has request id 0", ErrMalformed)
	}
	return m, nil
}

// AppendBlobsHeader appends the header of a blobs frame for journal j to
// dst. Entries follow, appended with [AppendBlobEntry]; a frame needs at
// least one.
func AppendBlobsHeader(dst []byte, j JournalID) []byte {
	dst = append(dst, FrameBlobs)
	return append(dst, j[:]...)
}

// AppendBlobEntry appends one entry of a blobs frame to dst: the blob
// stored at seq, or, with purged set, its purged record.
func AppendBlobEntry(dst []byte, seq uint64, purged bool, blob []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, seq)
	var flags byte
	if purged {
		flags = flagPurged
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(blob)))
	return append(dst, blob...)
}

// BlobEntrySize is the size of the blobs entry for a blob of n bytes.
func BlobEntrySize(n int) int { return BlobEntryHeader + n }

// DecodeBlobs decodes a blobs frame and appends its entries to dst as
// Blob messages, in frame order. Their Blob fields are slices of frame.
// It fails, wrapping [ErrMalformed] and appending nothing, for a frame of
// another type, without entries, with an entry running past the end, a
// length over [MaxBlobSize], or flag bits it does not know.
func DecodeBlobs(frame []byte, dst []Blob) ([]Blob, error) {
	if FrameType(frame) != FrameBlobs {
		return dst, fmt.Errorf("%w: not a blobs frame", ErrMalformed)
	}
	if len(frame) < BlobsFrameHeader+BlobEntryHeader {
		return dst, fmt.Errorf("%w: the blobs frame is %d bytes, too short for one entry", ErrMalformed, len(frame))
	}
	var j JournalID
	copy(j[:], frame[1:BlobsFrameHeader])
	n := len(dst)
	for rest := frame[BlobsFrameHeader:]; len(rest) > 0; {
		if len(rest) < BlobEntryHeader {
			return dst[:n], fmt.Errorf("%w: a blobs entry is cut short", ErrMalformed)
		}
		seq := binary.BigEndian.Uint64(rest)
		flags := rest[8]
		size := binary.BigEndian.Uint32(rest[9:BlobEntryHeader])
		if flags&^flagPurged != 0 {
			return dst[:n], fmt.Errorf("%w: a blobs entry has unknown flags %#02x", ErrMalformed, flags)
		}
		if size > MaxBlobSize {
			return dst[:n], fmt.Errorf("%w: a blobs entry of %d bytes is over the largest blob", ErrMalformed, size)
		}
		rest = rest[BlobEntryHeader:]
		if uint64(size) > uint64(len(rest)) {
			return dst[:n], fmt.Errorf("%w: a blobs entry runs past the end of its frame", ErrMalformed)
		}
		dst = append(dst, Blob{Type: TypeBlob, Journal: j, Seq: seq, Blob: rest[:size:size], Purged: flags&flagPurged != 0})
		rest = rest[size:]
	}
	return dst, nil
}

// Ack is one entry of an acks frame: the OK of the binary put with
// request id ID.
type Ack struct {
	ID        uint64
	Seq       uint64
	BlobID    BlobID
	Duplicate bool
}

// OK returns the OK message the entry stands for.
func (a Ack) OK() *OK {
	return &OK{Type: TypeOK, ID: a.ID, Seq: a.Seq, BlobID: a.BlobID[:], Duplicate: a.Duplicate}
}

// AppendAcks appends an acks frame holding acks, in order, to dst. To add
// entries to a frame, append AppendAcks(nil, more...)[1:].
func AppendAcks(dst []byte, acks ...Ack) []byte {
	dst = append(dst, FrameAcks)
	for _, a := range acks {
		dst = binary.BigEndian.AppendUint64(dst, a.ID)
		dst = binary.BigEndian.AppendUint64(dst, a.Seq)
		dst = append(dst, a.BlobID[:]...)
		var flags byte
		if a.Duplicate {
			flags = flagDuplicate
		}
		dst = append(dst, flags)
	}
	return dst
}

// DecodeAcks decodes an acks frame and appends its entries to dst, in
// frame order. It fails, wrapping [ErrMalformed] and appending nothing,
// for a frame of another type, one whose entries do not fill it exactly,
// one without entries, or an entry with flag bits it does not know.
func DecodeAcks(frame []byte, dst []Ack) ([]Ack, error) {
	if FrameType(frame) != FrameAcks {
		return dst, fmt.Errorf("%w: not an acks frame", ErrMalformed)
	}
	body := frame[1:]
	if len(body) == 0 || len(body)%AckEntrySize != 0 {
		return dst, fmt.Errorf("%w: the acks frame is %d bytes, not 1 + %d×n", ErrMalformed, len(frame), AckEntrySize)
	}
	n := len(dst)
	for ; len(body) > 0; body = body[AckEntrySize:] {
		a := Ack{ID: binary.BigEndian.Uint64(body), Seq: binary.BigEndian.Uint64(body[8:])}
		copy(a.BlobID[:], body[16:48])
		flags := body[48]
		if flags&^flagDuplicate != 0 {
			return dst[:n], fmt.Errorf("%w: an acks entry has unknown flags %#02x", ErrMalformed, flags)
		}
		a.Duplicate = flags&flagDuplicate != 0
		dst = append(dst, a)
	}
	return dst, nil
}
