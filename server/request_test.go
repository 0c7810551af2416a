package server

import (
	"crypto/sha256"
	"encoding/json"
	"testing"
	"time"
	"unicode"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

var (
	fuzzDevice  = [32]byte{1, 2, 3}
	fuzzJournal = protocol.JournalID{7, 7, 7}
	fuzzNow     = time.Unix(1_800_000_000, 0)
)

func fuzzChecker() *checker {
	return &checker{Device: fuzzDevice, MaxBlobSize: 4096, InviteMaxTTL: 7 * 24 * time.Hour, Now: fuzzNow}
}

func joinBlob(j protocol.JournalID, author [32]byte) []byte {
	h := protocol.Header{Kind: protocol.KindJoin, Journal: j, Author: author, Seq: 1}
	b := h.Marshal(nil)
	return append(b, make([]byte, 32+protocol.NonceSize+protocol.SecretboxOverhead)...)
}

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seedFrames are real frames of every request type, valid and not.
func seedFrames(t testing.TB) [][]byte {
	hash := sha256.Sum256([]byte("token"))
	return [][]byte{
		mustJSON(t, &protocol.Create{Type: protocol.TypeCreate, ID: 1, Journal: fuzzJournal}),
		mustJSON(t, &protocol.Invite{Type: protocol.TypeInvite, ID: 2, Journal: fuzzJournal, AuthHash: hash[:], Expires: fuzzNow.Add(time.Hour).Unix(), Packet: []byte("sealed")}),
		mustJSON(t, &protocol.Invite{Type: protocol.TypeInvite, ID: 3, Journal: fuzzJournal, AuthHash: hash[:5], Expires: fuzzNow.Unix()}),
		mustJSON(t, &protocol.Redeem{Type: protocol.TypeRedeem, ID: 4, Token: hash[:]}),
		mustJSON(t, &protocol.Put{Type: protocol.TypePut, ID: 5, Journal: fuzzJournal, Blob: joinBlob(fuzzJournal, fuzzDevice)}),
		mustJSON(t, &protocol.Put{Type: protocol.TypePut, ID: 6, Journal: fuzzJournal, Blob: joinBlob(protocol.JournalID{1}, fuzzDevice)}),
		mustJSON(t, &protocol.Put{Type: protocol.TypePut, ID: 7, Journal: fuzzJournal, Blob: joinBlob(fuzzJournal, [32]byte{9})}),
		mustJSON(t, &protocol.Put{Type: protocol.TypePut, ID: 8, Journal: fuzzJournal, Blob: []byte{1, 3, 0}}),
		mustJSON(t, &protocol.Subscribe{Type: protocol.TypeSubscribe, ID: 9, Journal: fuzzJournal, After: 12}),
		mustJSON(t, &protocol.Auth{Type: protocol.TypeAuth, Version: 1}),
		[]byte(`{"type":"subscribe","id":10,"journal":"00000000000000000000000000000000"}`),
		[]byte(`{"type":"put","id":11,"journal":"zz","blob":"AAAA"}`),
		[]byte(`{"type":"put","id":12,"journal":"07070700000000000000000000000000","blob":"!!"}`),
		[]byte(`{"type":"teleport","id":13}`),
		[]byte(`{"type":"create"}`),
		[]byte(`{"id":3}`),
		[]byte(`[1,2,3]`),
		[]byte(`{"type":`),
		[]byte(``),
		[]byte(`{"type":"invite","id":1e30}`),
	}
}

// TestParseRequest checks the verdict on each seed frame.
func TestParseRequest(t *testing.T) {
	t.Parallel()
	want := []struct {
		code protocol.Code // "" means accepted
		id   uint64
	}{
		{"", 1}, {"", 2}, {protocol.CodeInvalid, 3}, {"", 4}, {"", 5},
		{protocol.CodeInvalid, 6}, {protocol.CodeInvalid, 7}, {protocol.CodeInvalid, 8}, {"", 9},
		{protocol.CodeInvalid, 0}, {protocol.CodeInvalid, 10}, {protocol.CodeMalformed, 11},
		{protocol.CodeMalformed, 12}, {protocol.CodeMalformed, 13}, {protocol.CodeMalformed, 0},
		{protocol.CodeMalformed, 0}, {protocol.CodeMalformed, 0}, {protocol.CodeMalformed, 0},
		{protocol.CodeMalformed, 0}, {protocol.CodeMalformed, 0},
	}
	frames := seedFrames(t)
	if len(frames) != len(want) {
		t.Fatalf("%d frames, %d expectations", len(frames), len(want))
	}
	for i, f := range frames {
		r, e := fuzzChecker().parse(f)
		checkVerdict(t, f, r, e)
		switch {
		case want[i].code == "" && e != nil:
			t.Errorf("frame %s: refused %s %q", f, e.Code, e.Message)
		case want[i].code != "" && e == nil:
			t.Errorf("frame %s: accepted, want %s", f, want[i].code)
		case e != nil && (e.Code != want[i].code || e.ID != want[i].id):
			t.Errorf("frame %s: got %s id %d (%q), want %s id %d", f, e.Code, e.ID, e.Message, want[i].code, want[i].id)
		case r != nil && r.ID != want[i].id:
			t.Errorf("frame %s: id %d", f, r.ID)
		}
	}
}

// checkVerdict checks the invariants every parse result must hold.
func checkVerdict(t *testing.T, frame []byte, r *request, e *protocol.Error) {
	t.Helper()
	if (r == nil) == (e == nil) {
		t.Fatalf("frame %q: want exactly one of request and error, got %v and %v", frame, r, e)
	}
	if e != nil {
		if e.Type != protocol.TypeError || e.Code == "" || e.Message == "" {
			t.Fatalf("frame %q: incomplete error %+v", frame, e)
		}
		if first := []rune(e.Message)[0]; unicode.IsUpper(first) {
			t.Fatalf("frame %q: message %q is not lowercase", frame, e.Message)
		}
		if _, err := protocol.Marshal(e); err != nil {
			t.Fatalf("error does not marshal: %v", err)
		}
		return
	}
	if r.ID == 0 || r.Journal == (protocol.JournalID{}) && r.Type != protocol.TypeRedeem {
		t.Fatalf("frame %q: accepted request without id or journal: %+v", frame, r)
	}
	switch r.Type {
	case protocol.TypePut:
		h, err := protocol.ParseHeader(r.Blob)
		if err != nil || h != r.Header || h.Journal != r.Journal || h.Author != fuzzDevice || len(r.Blob) > 4096 {
			t.Fatalf("frame %q: accepted bad put (%v)", frame, err)
		}
	case protocol.TypeInvite:
		if !r.Expires.After(fuzzNow) || r.Expires.After(fuzzNow.Add(7*24*time.Hour)) || len(r.Packet) == 0 || len(r.Packet) > protocol.MaxInvitePacket {
			t.Fatalf("frame %q: accepted bad invite", frame)
		}
	case protocol.TypeRedeem:
		if r.AuthHash != sha256.Sum256(r.Token[:]) {
			t.Fatalf("frame %q: wrong auth hash", frame)
		}
	case protocol.TypeCreate, protocol.TypeSubscribe:
	default:
		t.Fatalf("frame %q: accepted type %q", frame, r.Type)
	}
}

// FuzzParseRequest feeds arbitrary frames to the relay's request decoding
// and validation (protocol.Decode, protocol.DecodeAs and the checks that
// need no store) and to protocol.Decode/DecodeAs of every request type.
func FuzzParseRequest(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		r, e := fuzzChecker().parse(frame)
		checkVerdict(t, frame, r, e)
		if _, err := protocol.Decode(frame); err != nil && e == nil {
			t.Fatalf("frame %q: accepted although Decode fails: %v", frame, err)
		}
		for _, v := range []any{&protocol.Auth{}, &protocol.Create{}, &protocol.Invite{}, &protocol.Redeem{}, &protocol.Put{}, &protocol.Subscribe{}} {
			_ = protocol.DecodeAs(frame, v)
		}
		var a protocol.Auth
		if protocol.DecodeAs(frame, &a) == nil {
			if pe := checkAuth(&a, protocol.Version, "relay", make([]byte, 32)); pe == nil {
				t.Fatalf("frame %q: auth verified against a random challenge", frame)
			}
		}
	})
}

// FuzzParsePutFrame feeds arbitrary binary frames to the relay's decoding
// of a version 2 put: whatever it accepts is a put the JSON path would
// accept too, and it keeps no byte of the frame, whose buffer is reused.
func FuzzParsePutFrame(f *testing.F) {
	for _, blob := range [][]byte{joinBlob(fuzzJournal, fuzzDevice), joinBlob(protocol.JournalID{1}, fuzzDevice), {1, 3, 0}, nil, make([]byte, 5000)} {
		f.Add(protocol.AppendPut(nil, 5, fuzzJournal, blob))
	}
	f.Add(protocol.AppendPut(nil, 0, fuzzJournal, joinBlob(fuzzJournal, fuzzDevice)))
	f.Add([]byte{protocol.FramePut, 1, 2})
	f.Fuzz(func(t *testing.T, frame []byte) {
		if protocol.FrameType(frame) != protocol.FramePut {
			return // the reader refuses other types before parsing (readLoop)
		}
		r, e := fuzzChecker().parsePutFrame(frame)
		checkVerdict(t, frame, r, e)
		if e != nil {
			return
		}
		if r.Type != protocol.TypePut || !r.Binary {
			t.Fatalf("frame %x: accepted as %+v", frame, r)
		}
		for i := range frame {
			frame[i] ^= 0xff
		}
		if r.Header != mustHeader(t, r.Blob) {
			t.Fatalf("frame %x: the accepted blob changed with the frame's buffer", frame)
		}
		json := mustJSON(t, &protocol.Put{Type: protocol.TypePut, ID: r.ID, Journal: r.Journal, Blob: r.Blob})
		if jr, je := fuzzChecker().parse(json); je != nil || jr.ID != r.ID || jr.Journal != r.Journal || string(jr.Blob) != string(r.Blob) {
			t.Fatalf("frame %x: accepted, but as JSON: %+v, %+v", frame, jr, je)
		}
	})
}

func mustHeader(t *testing.T, blob []byte) protocol.Header {
	t.Helper()
	h, err := protocol.ParseHeader(blob)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
