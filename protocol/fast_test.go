package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func fastTestPut() *Put {
	blob := bytes.Repeat([]byte{0xfb, 0x01, 0x7f}, 400)
	return &Put{Type: TypePut, ID: 42, Journal: JournalID{0xAB, 1, 2}, Blob: blob}
}

func fastTestBlob(purged bool) *Blob {
	return &Blob{Type: TypeBlob, Journal: JournalID{9, 8, 7}, Seq: 123456789, Blob: []byte("\x00\xffsome bytes"), Purged: purged}
}

func TestFastDecodersAcceptMarshalOutput(t *testing.T) {
	put := fastTestPut()
	frame, err := Marshal(put)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := FastPut(frame)
	if !ok || !reflect.DeepEqual(&got, put) {
		t.Fatalf("FastPut(%s) = %+v, %v", frame, got, ok)
	}
	for _, purged := range []bool{false, true} {
		b := fastTestBlob(purged)
		frame, err := Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := FastBlob(frame)
		if !ok || !reflect.DeepEqual(&got, b) {
			t.Fatalf("FastBlob(%s) = %+v, %v", frame, got, ok)
		}
	}
	// Whitespace and field order do not matter.
	spaced := []byte(" {\n\"blob\" : \"AQI=\" ,\t\"journal\":\"0a000000000000000000000000000000\", \"id\":7,\"type\":\"put\"}\r\n")
	if got, ok := FastPut(spaced); !ok || got.ID != 7 || !bytes.Equal(got.Blob, []byte{1, 2}) || got.Journal != (JournalID{10}) {
		t.Fatalf("FastPut(%s) = %+v, %v", spaced, got, ok)
	}
}

// TestFastDecodersDeferToJSON lists frames the fast paths must leave to
// encoding/json: escapes, unusual spellings, duplicates, nulls, missing
// fields, zero ids, trailing bytes and broken values.
func TestFastDecodersDeferToJSON(t *testing.T) {
	const j = `"journal":"0a000000000000000000000000000000"`
	for _, frame := range []string{
		`{"type":"put","id":1,` + j + `,"blob":"AQ\u003d"}`,
		`{"type":"put","ID":1,` + j + `,"blob":"AQI="}`,
		`{"type":"put","id":1,"id":2,` + j + `,"blob":"AQI="}`,
		`{"type":"put","id":1,` + j + `,"blob":null}`,
		`{"type":"put","id":1,` + j + `}`,
		`{"type":"put","id":0,` + j + `,"blob":"AQI="}`,
		`{"type":"put","id":01,` + j + `,"blob":"AQI="}`,
		`{"type":"put","id":1e2,` + j + `,"blob":"AQI="}`,
		`{"type":"put","id":-1,` + j + `,"blob":"AQI="}`,
		`{"type":"put","id":1,` + j + `,"blob":"AQI="} x`,
		`{"type":"put","id":1,` + j + `,"blob":"AQI="},`,
		`{"type":"put","id":1,` + j + `,"blob":"AQI"}`,
		"{\"type\":\"put\",\"id\":1," + j + ",\"blob\":\"AQ\nI=\"}",
		`{"type":"put","id":1,"journal":"0a","blob":"AQI="}`,
		`{"type":"put","id":1,` + j + `,"blob":"AQI=","extra":1}`,
		`{"type":"blob","id":1,` + j + `,"blob":"AQI="}`,
		`{"type":"put","id":1,` + j + `,"blob":"AQI=",}`,
		`["put"]`,
		``,
	} {
		if m, ok := FastPut([]byte(frame)); ok {
			t.Errorf("FastPut accepted %s as %+v", frame, m)
		}
	}
	for _, frame := range []string{
		`{"type":"blob",` + j + `,"blob":"AQI="}`,
		`{"type":"blob",` + j + `,"seq":1,"blob":"AQI=","purged":null}`,
		`{"type":"blob",` + j + `,"seq":1,"blob":"AQI=","purged":1}`,
		`{"type":"blob",` + j + `,"seq":1,"blob":"AQI=","Purged":true}`,
		`{"type":"caught_up",` + j + `,"seq":1}`,
	} {
		if m, ok := FastBlob([]byte(frame)); ok {
			t.Errorf("FastBlob accepted %s as %+v", frame, m)
		}
	}
}

func FuzzFastPut(f *testing.F) {
	frame, _ := Marshal(fastTestPut())
	f.Add(frame)
	f.Add([]byte(`{"type":"put","id":1,"journal":"0a000000000000000000000000000000","blob":""}`))
	f.Add([]byte(`{"id":9,"blob":"AAAA","type":"put","journal":"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ok := FastPut(data)
		if !ok {
			return
		}
		env, err := Decode(data)
		if err != nil || env.Type != TypePut || env.ID != m.ID {
			t.Fatalf("FastPut accepted %q, Decode gives %+v, %v", data, env, err)
		}
		var want Put
		if err := json.Unmarshal(data, &want); err != nil || !reflect.DeepEqual(want, m) {
			t.Fatalf("FastPut(%q) = %+v; encoding/json: %+v, %v", data, m, want, err)
		}
	})
}

func FuzzFastBlob(f *testing.F) {
	for _, purged := range []bool{false, true} {
		frame, _ := Marshal(fastTestBlob(purged))
		f.Add(frame)
	}
	f.Add([]byte(`{"type":"blob","journal":"0a000000000000000000000000000000","seq":0,"blob":"","purged":false}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ok := FastBlob(data)
		if !ok {
			return
		}
		env, err := Decode(data)
		if err != nil || env.Type != TypeBlob {
			t.Fatalf("FastBlob accepted %q, Decode gives %+v, %v", data, env, err)
		}
		var want Blob
		if err := json.Unmarshal(data, &want); err != nil || !reflect.DeepEqual(want, m) {
			t.Fatalf("FastBlob(%q) = %+v; encoding/json: %+v, %v", data, m, want, err)
		}
	})
}

func BenchmarkDecodePut(b *testing.B) {
	frame, _ := Marshal(fastTestPut())
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var p Put
			if _, err := Decode(frame); err != nil {
				b.Fatal(err)
			}
			if err := DecodeAs(frame, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, ok := FastPut(frame); !ok {
				b.Fatal("not fast")
			}
		}
	})
}

func BenchmarkDecodeBlob(b *testing.B) {
	frame, _ := Marshal(&Blob{Type: TypeBlob, Journal: JournalID{9, 8, 7}, Seq: 123456789, Blob: bytes.Repeat([]byte{0xfb, 0x01, 0x7f}, 400)})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var m Blob
			if _, err := Decode(frame); err != nil {
				b.Fatal(err)
			}
			if err := DecodeAs(frame, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, ok := FastBlob(frame); !ok {
				b.Fatal("not fast")
			}
		}
	})
}
