package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// seedBackup is a real backup file of a small store.
func seedBackup(f *testing.F) []byte {
	f.Helper()
	s, err := OpenBadger(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	j, dev := protocol.JournalID{1}, [32]byte{1}
	if err := s.CreateJournal(ctx, j, dev); err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		if _, _, _, err := s.Append(ctx, j, append(joinBlob(j, dev), byte(i))); err != nil {
			f.Fatal(err)
		}
	}
	if _, err := s.RelayID(ctx); err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.Backup(ctx, &buf); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzVerifyBackup feeds arbitrary files to the backup checker: it never
// panics, and a file it accepts has a section inside the file whose
// chunks tile it exactly.
func FuzzVerifyBackup(f *testing.F) {
	good := seedBackup(f)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:len(backupMagic)+4])
	f.Add([]byte(backupMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		info, sec, err := verifyBackup(bytes.NewReader(data), int64(len(data)), nil)
		if err != nil {
			if !errors.Is(err, ErrBadBackup) {
				t.Fatalf("error %v does not wrap ErrBadBackup", err)
			}
			return
		}
		checkSection(t, data, info, sec)
	})
}

// FuzzBackupContents fuzzes what the checksum protects: the header and the
// section, sealed with a correct trailer, so the checks behind the
// checksum are reached.
func FuzzBackupContents(f *testing.F) {
	good := seedBackup(f)
	_, sec, err := verifyBackup(bytes.NewReader(good), int64(len(good)), nil)
	if err != nil {
		f.Fatal(err)
	}
	hoff := int64(len(backupMagic) + 4)
	f.Add(good[hoff:sec.off], good[sec.off:sec.off+sec.n])
	f.Add([]byte(`{"format":1}`), []byte{})
	f.Add([]byte(`{"format":2,"relay_id":"x"}`), []byte{1, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte(`{}`), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, header, section []byte) {
		file := []byte(backupMagic)
		file = binary.BigEndian.AppendUint32(file, uint32(len(header)))
		file = append(file, header...)
		file = append(file, section...)
		trailer := append([]byte(backupTrailerMagic), binary.BigEndian.AppendUint64(nil, uint64(len(section)))...)
		sum := sha256.Sum256(file)
		file = append(append(file, trailer...), sum[:]...)
		info, sec, err := verifyBackup(bytes.NewReader(file), int64(len(file)), nil)
		if err != nil {
			if !errors.Is(err, ErrBadBackup) {
				t.Fatalf("error %v does not wrap ErrBadBackup", err)
			}
			return
		}
		if info.Format != backupFormat || len(header) < 2 || len(header) > backupMaxHeader {
			t.Fatalf("accepted header %q", header)
		}
		checkSection(t, file, info, sec)
	})
}

func checkSection(t *testing.T, data []byte, info BackupInfo, sec backupSection) {
	t.Helper()
	if info.Bytes != int64(len(data)) || sec.off < 0 || sec.n < 0 || sec.off+sec.n+int64(backupTrailerSize) != int64(len(data)) {
		t.Fatalf("accepted a file whose section %+v does not fit its %d bytes", sec, len(data))
	}
	for off := sec.off; off < sec.off+sec.n; {
		l := int64(binary.LittleEndian.Uint64(data[off:]))
		off += 8 + l
		if off > sec.off+sec.n {
			t.Fatal("accepted a chunk running past the section")
		}
	}
}

// FuzzAdminRequest: the relay's admin request decoder accepts exactly the
// requests it knows and explains every refusal in lowercase.
func FuzzAdminRequest(f *testing.F) {
	for _, s := range []string{`{"op":"backup"}`, `{"op":"backup","extra":1}`, `{"op":""}`, `{}`, `{"op":"drop"}`, `[]`, `{"op":7}`, ``, strings.Repeat(" ", 5000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := parseAdminRequest(line)
		if err != nil {
			if msg := err.Error(); msg == "" || strings.ToLower(msg[:1]) != msg[:1] {
				t.Fatalf("message %q", msg)
			}
			return
		}
		if r.Op != adminOpBackup || len(line) > adminMaxRequest {
			t.Fatalf("accepted %q as %+v", line, r)
		}
	})
}

// FuzzAdminResponse: the backup command's reader of the relay's frames
// never panics, never writes more than it was sent, and succeeds only
// when the end frame's byte count matches the data written.
func FuzzAdminResponse(f *testing.F) {
	frame := func(typ byte, p []byte) []byte {
		var b bytes.Buffer
		writeFrame(&b, typ, p)
		return b.Bytes()
	}
	sum, _ := json.Marshal(BackupInfo{Format: 1, RelayID: "r", Bytes: 5})
	f.Add(append(frame(frameData, []byte("hello")), frame(frameEnd, sum)...))
	f.Add(frame(frameError, []byte("the relay is shutting down")))
	f.Add(frame(frameData, []byte("partial")))
	f.Add([]byte{frameData, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{'Q', 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		info, err := readBackupResponse(bytes.NewReader(data), &out, nil)
		if out.Len() > len(data) {
			t.Fatalf("wrote %d bytes from %d", out.Len(), len(data))
		}
		if err == nil && info.Bytes != int64(out.Len()) {
			t.Fatalf("accepted %d bytes as a backup of %d", out.Len(), info.Bytes)
		}
	})
}

// FuzzAuthMessage: the first message of a connection, decoded and checked
// as the relay does, never panics, and is accepted only with a valid
// signature over this relay's id and challenge.
func FuzzAuthMessage(f *testing.F) {
	const relayID = "relay-under-fuzz"
	challenge := bytes.Repeat([]byte{7}, protocol.ChallengeSize)
	pub, priv, _ := ed25519.GenerateKey(nil)
	good, _ := protocol.Marshal(&protocol.Auth{Type: protocol.TypeAuth, Version: protocol.Version, Device: pub, Signature: ed25519.Sign(priv, protocol.AuthMessage(relayID, challenge))})
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(`"version":1`), []byte(`"version":2`), 1))
	f.Add([]byte(`{"type":"auth","version":1,"device":"AAAA","signature":"AAAA"}`))
	f.Add([]byte(`{"type":"put","id":1}`))
	f.Add([]byte(`{"type":"auth"`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		env, err := protocol.Decode(frame)
		if err != nil || env.Type != protocol.TypeAuth {
			return
		}
		var a protocol.Auth
		if protocol.DecodeAs(frame, &a) != nil {
			return
		}
		if perr := checkAuth(&a, protocol.Version, relayID, challenge); perr == nil {
			if !ed25519.Verify(a.Device, protocol.AuthMessage(relayID, challenge), a.Signature) {
				t.Fatal("accepted an auth whose signature does not verify")
			}
		} else if perr.Code == "" || perr.Message == "" {
			t.Fatalf("incomplete refusal %+v", perr)
		}
	})
}

// FuzzStoredRecords writes arbitrary bytes where the store keeps each kind
// of record it decodes (journal meta, membership, last sequence number,
// log entries, the dedup index, invites) and runs every store operation
// that reads them: a damaged record must give an error, never a panic or
// a wrong answer dressed as a right one.
func FuzzStoredRecords(f *testing.F) {
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		f.Fatal(err)
	}
	s := newBadgerStore(db, nil)
	f.Cleanup(func() { s.Close() })
	var n atomic.Uint64
	dev := [32]byte{3}
	blob := joinBlob(protocol.JournalID{}, dev) // journal filled in below
	seq8 := binary.BigEndian.AppendUint64(nil, 1)
	for kind := range byte(6) {
		f.Add(kind, seq8)
		f.Add(kind, []byte{})
		f.Add(kind, append([]byte{purgedMark}, bytes.Repeat([]byte{1}, protocol.PurgedRecordSize)...))
	}
	f.Add(byte(5), append(make([]byte, protocol.JournalIDSize), binary.BigEndian.AppendUint64(nil, uint64(time.Now().Add(time.Hour).Unix()))...))
	f.Fuzz(func(t *testing.T, kind byte, value []byte) {
		ctx := context.Background()
		var j protocol.JournalID
		binary.BigEndian.PutUint64(j[:], n.Add(1))
		j[15] = 1
		if err := s.CreateJournal(ctx, j, dev); err != nil {
			t.Fatal(err)
		}
		b := bytes.Clone(blob)
		copy(b[2:18], j[:])
		seq, id, _, err := s.Append(ctx, j, b)
		if err != nil || seq != 1 {
			t.Fatalf("append: %d %v", seq, err)
		}
		auth := sha256.Sum256(j[:])
		var k []byte
		switch kind % 6 {
		case 0:
			k = key(pfxJournal, j[:])
		case 1:
			k = key(pfxMember, j[:], dev[:])
		case 2:
			k = key(pfxLastSeq, j[:])
		case 3:
			k = key(pfxLog, j[:], u64(1))
		case 4:
			k = key(pfxBlobByID, j[:], id[:])
		case 5:
			k = key(pfxInvite, auth[:])
		}
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(k, value) }); err != nil {
			t.Fatal(err)
		}
		if last, err := s.LastSeq(ctx, j); err == nil && kind%6 == 2 && (len(value) != 8 || last != binary.BigEndian.Uint64(value)) {
			t.Fatalf("last seq %d from a %d-byte record", last, len(value))
		}
		if got, err := s.Read(ctx, j, 0, 10); err == nil && kind%6 == 3 {
			// A log value is a blob, or purgedMark and a purged record.
			want := StoredBlob{Seq: 1, Blob: value}
			if len(value) > 0 && value[0] == purgedMark {
				want = StoredBlob{Seq: 1, Blob: value[1:], Purged: true}
			}
			if len(got) != 1 || got[0].Seq != 1 || got[0].Purged != want.Purged || !bytes.Equal(got[0].Blob, want.Blob) {
				t.Fatalf("read %+v from log value %x", got, value)
			}
		}
		_, _, _, _ = s.Append(ctx, j, b)
		_, _ = s.Purge(ctx, j, id, dev, protocol.BlobID{1})
		_, _ = s.IsMember(ctx, j, dev)
		if jj, packet, err := Redeem(ctx, s, auth, [32]byte{4}, time.Now(), JournalPersons); err == nil {
			if kind%6 != 5 || len(value) < protocol.JournalIDSize+8 || !bytes.Equal(packet, value[protocol.JournalIDSize+8:]) || !bytes.Equal(jj[:], value[:protocol.JournalIDSize]) {
				t.Fatalf("redeemed a damaged invite record: %x", value)
			}
		}
		_, _ = s.Read(ctx, j, 0, 10)
	})
}
