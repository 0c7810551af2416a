package protocol_test

// An independent reader of testdata/frames-v2.json: the standard library
// only and the layouts of docs/protocol.md §20. It encodes every frame
// again from its fields, decodes it back, and refuses every malformed one.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

type fiHex []byte

func (h *fiHex) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	*h = d
	return err
}

type fiBlob struct {
	Seq    uint64 `json:"seq"`
	Purged bool   `json:"purged"`
	Blob   fiHex  `json:"blob"`
}

type fiAck struct {
	ID        uint64 `json:"id"`
	Seq       uint64 `json:"seq"`
	BlobID    fiHex  `json:"blob_id"`
	Duplicate bool   `json:"duplicate"`
}

const fiMaxBlob = 1048576

func fiFlag(b bool) byte {
	if b {
		return 1
	}
	return 0
}

var errFrame = errors.New("malformed frame")

// fiDecode decodes a put, blobs or acks frame, or refuses it.
func fiDecode(f []byte) (kind byte, put [3][]byte, blobs []fiBlob, acks []fiAck, err error) {
	if len(f) == 0 {
		return 0, put, nil, nil, errFrame
	}
	switch f[0] {
	case 1: // put: type, id (8, not 0), journal (16), blob
		if len(f) < 25 || binary.BigEndian.Uint64(f[1:9]) == 0 {
			return 0, put, nil, nil, errFrame
		}
		return 1, [3][]byte{f[1:9], f[9:25], f[25:]}, nil, nil, nil
	case 2: // blobs: type, journal (16), entries of seq (8), flags (1), n (4), bytes
		if len(f) < 1+16+13 {
			return 0, put, nil, nil, errFrame
		}
		for p := f[17:]; len(p) > 0; {
			if len(p) < 13 || p[8]&^1 != 0 {
				return 0, put, nil, nil, errFrame
			}
			n := binary.BigEndian.Uint32(p[9:13])
			if n > fiMaxBlob || uint64(len(p)-13) < uint64(n) {
				return 0, put, nil, nil, errFrame
			}
			blobs = append(blobs, fiBlob{Seq: binary.BigEndian.Uint64(p), Purged: p[8] == 1, Blob: p[13 : 13+n]})
			p = p[13+n:]
		}
		return 2, put, blobs, nil, nil
	case 3: // acks: type, then entries of id (8), seq (8), blob id (32), flags (1)
		if len(f) < 1+49 || (len(f)-1)%49 != 0 {
			return 0, put, nil, nil, errFrame
		}
		for p := f[1:]; len(p) > 0; p = p[49:] {
			if p[48]&^1 != 0 {
				return 0, put, nil, nil, errFrame
			}
			acks = append(acks, fiAck{ID: binary.BigEndian.Uint64(p), Seq: binary.BigEndian.Uint64(p[8:]), BlobID: p[16:48], Duplicate: p[48] == 1})
		}
		return 3, put, nil, acks, nil
	}
	return 0, put, nil, nil, errFrame
}

func TestFrameVectorsIndependent(t *testing.T) {
	b, err := os.ReadFile("testdata/frames-v2.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Put []struct {
			Name    string `json:"name"`
			ID      uint64 `json:"id"`
			Journal fiHex  `json:"journal"`
			Blob    fiHex  `json:"blob"`
			Frame   fiHex  `json:"frame"`
		} `json:"put"`
		Blobs []struct {
			Name    string   `json:"name"`
			Journal fiHex    `json:"journal"`
			Entries []fiBlob `json:"entries"`
			Frame   fiHex    `json:"frame"`
		} `json:"blobs"`
		Acks []struct {
			Name    string  `json:"name"`
			Entries []fiAck `json:"entries"`
			Frame   fiHex   `json:"frame"`
		} `json:"acks"`
		Malformed []struct {
			Name  string `json:"name"`
			Frame fiHex  `json:"frame"`
		} `json:"malformed"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Put) == 0 || len(v.Blobs) == 0 || len(v.Acks) == 0 || len(v.Malformed) == 0 {
		t.Fatal("frames-v2.json is missing cases")
	}
	for _, p := range v.Put {
		f := binary.BigEndian.AppendUint64([]byte{1}, p.ID)
		f = append(append(f, p.Journal...), p.Blob...)
		kind, got, _, _, err := fiDecode(p.Frame)
		if !bytes.Equal(f, p.Frame) || err != nil || kind != 1 || binary.BigEndian.Uint64(got[0]) != p.ID || !bytes.Equal(got[1], p.Journal) || !bytes.Equal(got[2], p.Blob) {
			t.Errorf("put %q: frame and fields disagree (%v)", p.Name, err)
		}
	}
	for _, bv := range v.Blobs {
		f := append([]byte{2}, bv.Journal...)
		for _, e := range bv.Entries {
			f = binary.BigEndian.AppendUint64(f, e.Seq)
			f = append(f, fiFlag(e.Purged))
			f = binary.BigEndian.AppendUint32(f, uint32(len(e.Blob)))
			f = append(f, e.Blob...)
		}
		kind, _, got, _, err := fiDecode(bv.Frame)
		same := err == nil && kind == 2 && len(got) == len(bv.Entries) && bytes.Equal(bv.Frame[1:17], bv.Journal)
		for i := 0; same && i < len(got); i++ {
			same = got[i].Seq == bv.Entries[i].Seq && got[i].Purged == bv.Entries[i].Purged && bytes.Equal(got[i].Blob, bv.Entries[i].Blob)
		}
		if !bytes.Equal(f, bv.Frame) || !same {
			t.Errorf("blobs %q: frame and fields disagree (%v)", bv.Name, err)
		}
	}
	for _, a := range v.Acks {
		f := []byte{3}
		for _, e := range a.Entries {
			f = binary.BigEndian.AppendUint64(f, e.ID)
			f = binary.BigEndian.AppendUint64(f, e.Seq)
			f = append(append(f, e.BlobID...), fiFlag(e.Duplicate))
		}
		kind, _, _, got, err := fiDecode(a.Frame)
		same := err == nil && kind == 3 && len(got) == len(a.Entries)
		for i := 0; same && i < len(got); i++ {
			same = got[i].ID == a.Entries[i].ID && got[i].Seq == a.Entries[i].Seq && bytes.Equal(got[i].BlobID, a.Entries[i].BlobID) && got[i].Duplicate == a.Entries[i].Duplicate
		}
		if !bytes.Equal(f, a.Frame) || !same {
			t.Errorf("acks %q: frame and fields disagree (%v)", a.Name, err)
		}
	}
	for _, m := range v.Malformed {
		if _, _, _, _, err := fiDecode(m.Frame); err == nil {
			t.Errorf("malformed %q: decoded", m.Name)
		}
	}
}
