package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/frames-v2.json")

// The vectors of version 2's binary frames (docs/protocol.md §19, §20):
// each frame's fields and its bytes in hex, and frames a decoder must
// refuse. The fields are written here; the bytes come from the encoders
// and are deliberately regenerated with `go test ./protocol -update`.

type frameVectors struct {
	Comment   string            `json:"comment"`
	Put       []putVector       `json:"put"`
	Blobs     []blobsVector     `json:"blobs"`
	Acks      []acksVector      `json:"acks"`
	Malformed []malformedVector `json:"malformed"`
}

type putVector struct {
	Name    string    `json:"name"`
	ID      uint64    `json:"id"`
	Journal JournalID `json:"journal"`
	Blob    hexBytes  `json:"blob"`
	Frame   hexBytes  `json:"frame"`
}

type blobsVector struct {
	Name    string       `json:"name"`
	Journal JournalID    `json:"journal"`
	Entries []blobVector `json:"entries"`
	Frame   hexBytes     `json:"frame"`
}

type blobVector struct {
	Seq    uint64   `json:"seq"`
	Purged bool     `json:"purged"`
	Blob   hexBytes `json:"blob"`
}

type acksVector struct {
	Name    string      `json:"name"`
	Entries []ackVector `json:"entries"`
	Frame   hexBytes    `json:"frame"`
}

type ackVector struct {
	ID        uint64   `json:"id"`
	Seq       uint64   `json:"seq"`
	BlobID    hexBytes `json:"blob_id"`
	Duplicate bool     `json:"duplicate"`
}

type malformedVector struct {
	Name  string   `json:"name"`
	Frame hexBytes `json:"frame"`
}

// hexBytes is bytes written in JSON as lowercase hex.
type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }
func (h *hexBytes) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	*h = d
	return err
}

var vectorJournal = JournalID{0x6b, 0x69, 0x6e, 0x74, 0x73, 0x75, 0x67, 0x69, 0x2d, 0x6a, 0x6f, 0x75, 0x72, 0x6e, 0x61, 0x6c}

// makeFrameVectors builds the vectors from their fields with the encoders.
func makeFrameVectors() frameVectors {
	blob1 := []byte("\x01\x01 stands in for a blob: the frames do not look inside")
	blob2 := bytes.Repeat([]byte{0xab}, 40)
	purged := append(bytes.Repeat([]byte{0x01}, 2), bytes.Repeat([]byte{0xcd}, PurgedRecordSize-2)...)
	id1, id2 := sha256.Sum256(blob1), sha256.Sum256(blob2)
	v := frameVectors{
		Comment: "Binary frames of protocol version 2 (docs/protocol.md §20). Every byte string is lowercase hex; " +
			"journal ids are the 16-byte id in hex. The blobs are stand-ins: frames carry any bytes. " +
			"A decoder must produce the fields from frame and refuse every frame under malformed.",
		Put: []putVector{
			{Name: "put", ID: 7, Journal: vectorJournal, Blob: blob1},
			{Name: "put of an empty blob (decodes; the relay answers invalid)", ID: 0x0102030405060708, Journal: vectorJournal, Blob: []byte{}},
		},
		Blobs: []blobsVector{
			{Name: "one blob", Journal: vectorJournal, Entries: []blobVector{{Seq: 12, Blob: blob1}}},
			{Name: "a blob, a purged record, a blob", Journal: vectorJournal, Entries: []blobVector{
				{Seq: 12, Blob: blob1}, {Seq: 13, Purged: true, Blob: purged}, {Seq: 14, Blob: blob2}}},
			{Name: "an empty blob (decodes; the client sets it aside)", Journal: vectorJournal, Entries: []blobVector{{Seq: 1, Blob: []byte{}}}},
		},
		Acks: []acksVector{
			{Name: "one ack", Entries: []ackVector{{ID: 7, Seq: 12, BlobID: id1[:]}}},
			{Name: "a burst: a new blob and a duplicate", Entries: []ackVector{
				{ID: 7, Seq: 12, BlobID: id1[:]}, {ID: 8, Seq: 3, BlobID: id2[:], Duplicate: true}}},
		},
	}
	for i, p := range v.Put {
		v.Put[i].Frame = AppendPut(nil, p.ID, p.Journal, p.Blob)
	}
	for i, b := range v.Blobs {
		f := AppendBlobsHeader(nil, b.Journal)
		for _, e := range b.Entries {
			f = AppendBlobEntry(f, e.Seq, e.Purged, e.Blob)
		}
		v.Blobs[i].Frame = f
	}
	for i, a := range v.Acks {
		var acks []Ack
		for _, e := range a.Entries {
			acks = append(acks, Ack{ID: e.ID, Seq: e.Seq, BlobID: BlobID(e.BlobID), Duplicate: e.Duplicate})
		}
		v.Acks[i].Frame = AppendAcks(nil, acks...)
	}
	put := v.Put[0].Frame
	one := v.Blobs[0].Frame
	ack := v.Acks[0].Frame
	// An entry whose length field says MaxBlobSize+1, with no bytes behind it.
	overLargest := AppendBlobsHeader(nil, vectorJournal)
	overLargest = append(overLargest, 0, 0, 0, 0, 0, 0, 0, 1, 0)
	overLargest = binary.BigEndian.AppendUint32(overLargest, MaxBlobSize+1)
	with := func(f []byte, at int, b byte) hexBytes {
		f = bytes.Clone(f)
		f[at] = b
		return f
	}
	v.Malformed = []malformedVector{
		{Name: "empty frame", Frame: hexBytes{}},
		{Name: "unknown frame type", Frame: with(put, 0, 0x04)},
		{Name: "put shorter than its header", Frame: put[:PutFrameHeader-1]},
		{Name: "put with request id 0", Frame: AppendPut(nil, 0, vectorJournal, blob1)},
		{Name: "blobs without entries", Frame: one[:BlobsFrameHeader]},
		{Name: "blobs entry header cut short", Frame: one[:BlobsFrameHeader+BlobEntryHeader-1]},
		{Name: "blobs entry runs past the frame", Frame: one[:len(one)-1]},
		{Name: "blobs entry with bytes after it", Frame: append(bytes.Clone(one), 0)},
		{Name: "blobs entry with an unknown flag", Frame: with(one, BlobsFrameHeader+8, 0x02)},
		{Name: "blobs entry longer than the largest blob", Frame: overLargest},
		{Name: "acks without entries", Frame: ack[:1]},
		{Name: "acks entry cut short", Frame: ack[:len(ack)-1]},
		{Name: "acks entry with an unknown flag", Frame: with(ack, AckEntrySize, 0x02)},
	}
	return v
}

func TestFrameVectors(t *testing.T) {
	const path = "testdata/frames-v2.json"
	fresh := makeFrameVectors()
	if *update {
		b, err := json.MarshalIndent(fresh, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v frameVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, fresh) {
		t.Fatalf("%s does not match the frames the code makes: run go test ./protocol -update after a deliberate format change", path)
	}
	// Decoding each frame gives its fields back.
	for _, p := range v.Put {
		t.Run("put/"+p.Name, func(t *testing.T) {
			m, err := DecodePut(p.Frame)
			if err != nil || m.ID != p.ID || m.Journal != p.Journal || !bytes.Equal(m.Blob, p.Blob) || m.Type != TypePut {
				t.Fatalf("DecodePut = %+v, %v", m, err)
			}
		})
	}
	for _, bv := range v.Blobs {
		t.Run("blobs/"+bv.Name, func(t *testing.T) {
			got, err := DecodeBlobs(bv.Frame, nil)
			if err != nil || len(got) != len(bv.Entries) {
				t.Fatalf("DecodeBlobs = %d blobs, %v; want %d", len(got), err, len(bv.Entries))
			}
			for i, e := range bv.Entries {
				g := got[i]
				if g.Type != TypeBlob || g.Journal != bv.Journal || g.Seq != e.Seq || g.Purged != e.Purged || !bytes.Equal(g.Blob, e.Blob) {
					t.Errorf("entry %d = %+v, want %+v", i, g, e)
				}
			}
		})
	}
	for _, av := range v.Acks {
		t.Run("acks/"+av.Name, func(t *testing.T) {
			got, err := DecodeAcks(av.Frame, nil)
			if err != nil || len(got) != len(av.Entries) {
				t.Fatalf("DecodeAcks = %d acks, %v; want %d", len(got), err, len(av.Entries))
			}
			for i, e := range av.Entries {
				g := got[i]
				if g.ID != e.ID || g.Seq != e.Seq || g.Duplicate != e.Duplicate || !bytes.Equal(g.BlobID[:], e.BlobID) {
					t.Errorf("entry %d = %+v, want %+v", i, g, e)
				}
			}
		})
	}
	for _, m := range v.Malformed {
		t.Run("malformed/"+m.Name, func(t *testing.T) {
			if err := decodeAny(m.Frame); !errors.Is(err, ErrMalformed) {
				t.Fatalf("decoding %x: %v, want ErrMalformed", []byte(m.Frame), err)
			}
		})
	}
}

// decodeAny decodes frame by its type, as a peer would.
func decodeAny(frame []byte) error {
	var err error
	switch FrameType(frame) {
	case FramePut:
		_, err = DecodePut(frame)
	case FrameBlobs:
		_, err = DecodeBlobs(frame, nil)
	case FrameAcks:
		_, err = DecodeAcks(frame, nil)
	default:
		err = ErrMalformed
	}
	return err
}

// TestDecodeBlobsAliasesFrame: blobs are slices of the frame, not copies,
// and appending to one cannot overwrite the next.
func TestDecodeBlobsAliasesFrame(t *testing.T) {
	f := AppendBlobsHeader(nil, vectorJournal)
	f = AppendBlobEntry(f, 1, false, []byte("first"))
	f = AppendBlobEntry(f, 2, false, []byte("second"))
	got, err := DecodeBlobs(f, make([]Blob, 0, 2))
	if err != nil || len(got) != 2 {
		t.Fatal(got, err)
	}
	if &got[0].Blob[0] != &f[BlobsFrameHeader+BlobEntryHeader] {
		t.Error("the first blob is a copy, not a slice of the frame")
	}
	_ = append(got[0].Blob, 'X')
	if string(got[1].Blob) != "second" || f[BlobsFrameHeader+BlobEntryHeader+5] != 0 {
		t.Errorf("appending to a decoded blob changed the frame: %q", got[1].Blob)
	}
}

// TestDecodeFailureAppendsNothing: a frame refused halfway leaves dst as
// it was.
func TestDecodeFailureAppendsNothing(t *testing.T) {
	f := AppendBlobsHeader(nil, vectorJournal)
	f = AppendBlobEntry(f, 1, false, []byte("good"))
	f = append(f, 1, 2, 3)
	dst := []Blob{{Seq: 99}}
	got, err := DecodeBlobs(f, dst)
	if err == nil || len(got) != 1 || got[0].Seq != 99 {
		t.Fatalf("DecodeBlobs = %+v, %v", got, err)
	}
	a := AppendAcks(nil, Ack{ID: 1}, Ack{ID: 2})
	a[len(a)-1] = 0x80
	acks, err := DecodeAcks(a, []Ack{{ID: 99}})
	if err == nil || len(acks) != 1 || acks[0].ID != 99 {
		t.Fatalf("DecodeAcks = %+v, %v", acks, err)
	}
}

func TestVersionOf(t *testing.T) {
	for sub, want := range map[string]int{Subprotocol: Version, SubprotocolV1: Version1, "": Version1, "kintsugi.v3": 0, "chat": 0} {
		if got := VersionOf(sub); got != want {
			t.Errorf("VersionOf(%q) = %d, want %d", sub, got, want)
		}
		if want != 0 && SubprotocolOf(want) != sub && sub != "" {
			t.Errorf("SubprotocolOf(%d) = %q, want %q", want, SubprotocolOf(want), sub)
		}
	}
	if SubprotocolOf(3) != "" {
		t.Error("SubprotocolOf(3) names a subprotocol")
	}
}

// The fuzz targets check that whatever a decoder accepts, the encoder
// writes back byte for byte: the layouts have one encoding per value, so
// a frame that decodes means exactly what its fields say.

func FuzzDecodePut(f *testing.F) {
	for _, p := range makeFrameVectors().Put {
		f.Add([]byte(p.Frame))
	}
	for _, m := range makeFrameVectors().Malformed {
		f.Add([]byte(m.Frame))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := DecodePut(frame)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if m.ID == 0 {
			t.Fatal("accepted request id 0")
		}
		if again := AppendPut(nil, m.ID, m.Journal, m.Blob); !bytes.Equal(again, frame) {
			t.Fatalf("DecodePut(%x) = %+v, which encodes as %x", frame, m, again)
		}
	})
}

func FuzzDecodeBlobs(f *testing.F) {
	for _, b := range makeFrameVectors().Blobs {
		f.Add([]byte(b.Frame))
	}
	for _, m := range makeFrameVectors().Malformed {
		f.Add([]byte(m.Frame))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		blobs, err := DecodeBlobs(frame, nil)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || len(blobs) != 0 {
				t.Fatalf("error %v (does not wrap ErrMalformed, or %d blobs kept)", err, len(blobs))
			}
			return
		}
		if len(blobs) == 0 {
			t.Fatal("accepted a frame without entries")
		}
		again := AppendBlobsHeader(nil, blobs[0].Journal)
		for _, b := range blobs {
			if b.Journal != blobs[0].Journal || len(b.Blob) > MaxBlobSize {
				t.Fatalf("entry %+v", b)
			}
			again = AppendBlobEntry(again, b.Seq, b.Purged, b.Blob)
		}
		if !bytes.Equal(again, frame) {
			t.Fatalf("DecodeBlobs(%x) encodes back as %x", frame, again)
		}
	})
}

func FuzzDecodeAcks(f *testing.F) {
	for _, a := range makeFrameVectors().Acks {
		f.Add([]byte(a.Frame))
	}
	for _, m := range makeFrameVectors().Malformed {
		f.Add([]byte(m.Frame))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		acks, err := DecodeAcks(frame, nil)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || len(acks) != 0 {
				t.Fatalf("error %v (does not wrap ErrMalformed, or %d acks kept)", err, len(acks))
			}
			return
		}
		if len(acks) == 0 {
			t.Fatal("accepted a frame without entries")
		}
		if again := AppendAcks(nil, acks...); !bytes.Equal(again, frame) {
			t.Fatalf("DecodeAcks(%x) encodes back as %x", frame, again)
		}
	})
}

func BenchmarkDecodeBlobsFrame(b *testing.B) {
	blob := bytes.Repeat([]byte{0xfb, 0x01, 0x7f}, 460)
	f := AppendBlobsHeader(nil, vectorJournal)
	n := 0
	for len(f)+BlobEntrySize(len(blob)) <= 256<<10 {
		n++
		f = AppendBlobEntry(f, uint64(n), false, blob)
	}
	dst := make([]Blob, 0, n)
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		var err error
		if dst, err = DecodeBlobs(f, dst[:0]); err != nil || len(dst) != n {
			b.Fatal(err)
		}
	}
}
