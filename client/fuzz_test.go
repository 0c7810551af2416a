package client

import (
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/crypto"
)

// FuzzParseRecord feeds a partner's member record (which arrives sealed
// under the invite key, so only someone holding the code can send one)
// through the checks that decide whether they join.
func FuzzParseRecord(f *testing.F) {
	id, err := crypto.NewIdentity(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	dev, err := crypto.NewDevice(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	cert, _ := crypto.NewDeviceCert(id, dev, "phone", time.Unix(1, 0))
	good, _ := json.Marshal(memberRecord{V: 1, Name: "Sam", Identity: id.Public, Devices: [][]byte{cert}})
	f.Add(good)
	f.Add([]byte(`{"v":1,"name":"\u001b[31mred","identity":"","devices":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err != nil {
			return
		}
		if r.Name == "" || len(r.Identity) != 32 || len(r.Devices) == 0 {
			t.Fatalf("accepted an incomplete record: %+v", r)
		}
		for _, c := range r.Name {
			if c < 0x20 {
				t.Fatalf("name keeps a control character: %q", r.Name)
			}
		}
	})
}

// FuzzLogRecords checks the local log reader never panics and never
// accepts a record whose checksum fails.
func FuzzLogRecords(f *testing.F) {
	f.Add(record(recWritten, []byte("blob")))
	f.Add(append(record(recAcked, make([]byte, 40)), record(recSeen, make([]byte, 40))...))
	f.Add([]byte{recPulled, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, typ, body, ok := nextRecord(b)
		if !ok {
			return
		}
		if n > len(b) || n != 9+len(body) {
			t.Fatalf("record length %d of %d bytes", n, len(b))
		}
		if got := record(typ, body); string(got) != string(b[:n]) {
			t.Fatal("accepted record does not re-encode to its bytes")
		}
		validRecordAfter(b)
	})
}
