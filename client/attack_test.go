package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// These tests play a relay (or a partner) that lies, and check the client
// neither believes it nor loses anything.

func forgedJoin(j protocol.JournalID, author [32]byte, seq uint64, prev protocol.BlobID) []byte {
	h := protocol.Header{Kind: protocol.KindJoin, Journal: j, Author: author, Seq: seq, Prev: prev}
	b := h.Marshal(nil)
	return append(b, make([]byte, 32+24+16)...)
}

func testAccount(t *testing.T, name string) *Account {
	t.Helper()
	a, err := Init(Home{Dir: filepath.Join(t.TempDir(), name)}, name, "", []byte("pw"), crypto.TestingKDF)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// testJournal creates a journal on relay for a fresh account.
func testJournal(t *testing.T, relay *servertest.Server, name string) *Journal {
	t.Helper()
	j, err := testAccount(t, name).CreateJournal(testCtx(t), relay.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// A blob "from this device" that this device never wrote cannot move its
// sequence numbers, and cannot make a saved write vanish.
func TestRelayCannotHijackOwnSequence(t *testing.T) {
	t.Parallel()
	aj, _ := pairedJournals(t)
	n, err := aj.receive(&protocol.Blob{Journal: aj.id, Seq: 1000, Blob: forgedJoin(aj.id, aj.acct.Device.SignKey(), math.MaxUint64, protocol.BlobID{1})})
	if err != nil || n != 0 {
		t.Fatalf("forged own blob: recorded %d, %v", n, err)
	}
	e, err := aj.Write(Payload{Kind: KindEntry, Text: "this must not be lost"})
	if err != nil {
		t.Fatal(err)
	}
	got := entryTexts(t, aj)
	if len(got) == 0 || got[len(got)-1] != "this must not be lost" {
		t.Fatalf("saved entry %s is not readable: %q", e.Short, got)
	}
	st, _ := aj.Status()
	if st.Outbox != 1 || !unreadKind(st, NoticeRelayForgedOwn) {
		t.Fatalf("status after the forgery: %+v", st)
	}
}

// A dropped entry cannot be hidden by a forged join in the partner's name.
func TestRelayCannotHideADroppedEntry(t *testing.T) {
	t.Parallel()
	aj, sj := pairedJournals(t)
	for _, s := range []string{"one", "two", "three"} {
		if _, err := sj.Write(Payload{Kind: KindEntry, Text: s}); err != nil {
			t.Fatal(err)
		}
	}
	var blobs []*stored
	var raws [][]byte
	sj.withLock(func() error {
		for _, s := range sj.order {
			if s.Header.Kind == protocol.KindEntry && s.Local {
				blobs, raws = append(blobs, s), append(raws, sj.raw(s))
			}
		}
		return nil
	})
	var cur uint64
	aj.withLock(func() error { cur = aj.cursor; return nil })
	aj.receive(&protocol.Blob{Journal: aj.id, Seq: cur + 1, Blob: raws[0]},
		&protocol.Blob{Journal: aj.id, Seq: cur + 2, Blob: raws[2]})
	st, _ := aj.Status()
	if len(st.Missing) != 1 {
		t.Fatalf("a dropped entry was not noticed: %+v", st.Missing)
	}
	h := blobs[1].Header
	aj.receive(&protocol.Blob{Journal: aj.id, Seq: cur + 3, Blob: forgedJoin(aj.id, h.Author, h.Seq, h.Prev)})
	st, _ = aj.Status()
	if len(st.Missing) == 0 {
		t.Fatal("a forged join hid the dropped entry")
	}
}

// A journal is for two: an older invite used after the partner joined
// adds nobody and reveals nothing. The relay refuses it (the two-person
// rule); a relay from before the rule admits the third device, and the
// inviter's client refuses it and says so on the sync that sees it.
func TestNoThirdMember(t *testing.T) {
	t.Parallel()
	for _, old := range []bool{false, true} {
		t.Run(map[bool]string{false: "relay refuses", true: "older relay"}[old], func(t *testing.T) {
			relay, liar := servertest.NewLyingServer(t)
			liar.AdmitAnyone(old)
			ctx := testCtx(t)
			aj := testJournal(t, relay, "alex")
			code1, _, _ := aj.Invite(ctx, 0)
			code2, _, err := aj.Invite(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := aj.Write(Payload{Kind: KindEntry, Text: "private history"}); err != nil {
				t.Fatal(err)
			}
			sj, err := testAccount(t, "sam").Join(ctx, code1)
			if err != nil {
				t.Fatal(err)
			}
			defer sj.Close()
			if _, err := aj.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			mallory := testAccount(t, "mallory")
			mj, err := mallory.Join(ctx, code2)
			if !old {
				if !errors.Is(err, protocol.ErrJournalFull) {
					t.Fatalf("third join: %v", err)
				}
				if ids, _ := mallory.Journals(); len(ids) != 0 {
					t.Fatalf("a refused join left %d journals behind", len(ids))
				}
				res, err := aj.Sync(ctx)
				if err != nil || len(res.Notices) != 0 {
					t.Fatalf("sync after a refused join: %+v %v", res, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err) // the older relay cannot tell; the inviter's client refuses
			}
			defer mj.Close()
			res, err := aj.Sync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Notices) != 1 || res.Notices[0].Kind != NoticeLateJoin {
				t.Fatalf("the sync that saw the late join said %+v", res.Notices)
			}
			if res, _ := aj.Sync(ctx); len(res.Notices) != 0 {
				t.Fatalf("the same late join was said again: %+v", res.Notices)
			}
			mj.Sync(ctx)
			if ms, _ := aj.Members(); len(ms) != 2 {
				t.Fatalf("alex has %d members", len(ms))
			}
			if got := entryTexts(t, mj); len(got) != 0 {
				t.Fatalf("mallory reads %q", got)
			}
			if _, _, err := aj.Invite(ctx, 0); err == nil {
				t.Fatal("a third invite was made after the partner joined")
			}
			st, _ := aj.Status()
			if st.Partner != "sam" || !unreadKind(st, NoticeLateJoin) {
				t.Fatalf("status: %+v", st)
			}
		})
	}
}

// A joiner cannot claim the inviter's device key and so take over the
// inviter's own entries.
func TestJoinerCannotShadowADevice(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj := testJournal(t, relay, "alex")
	aj.Write(Payload{Kind: KindEntry, Text: "alex before"})
	codeText, _, _ := aj.Invite(ctx, 0)
	code, _ := protocol.ParseInviteCode(codeText)
	keys, _ := crypto.DeriveInvite(code.Secret)
	m := testAccount(t, "mallory")
	c, err := dialRelay(ctx, aj.relay, m.keys, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.request(ctx, func(n uint64) any {
		return &protocol.Redeem{Type: protocol.TypeRedeem, ID: n, Token: keys.Token[:]}
	}); err != nil {
		t.Fatal(err)
	}
	fake := &crypto.Device{BoxPublic: m.Device.BoxPublic, BoxPrivate: m.Device.BoxPrivate, SignPublic: aj.acct.Device.SignPublic}
	fakeCert, _ := crypto.NewDeviceCert(m.Identity, fake, "x", time.Now())
	rec, _ := json.Marshal(memberRecord{V: 1, Name: "mallory", Identity: m.Identity.Public, Devices: [][]byte{m.Cert.Raw, fakeCert}})
	blob, _ := crypto.SealJoin(rand.Reader, keys, protocol.Header{Kind: protocol.KindJoin, Journal: code.Journal, Author: m.Device.SignKey(), Seq: 1}, rec)
	if _, err := c.request(ctx, func(n uint64) any {
		return &protocol.Put{Type: protocol.TypePut, ID: n, Journal: code.Journal, Blob: blob}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	aj.Write(Payload{Kind: KindEntry, Text: "alex after"})
	if got := entryTexts(t, aj); len(got) != 2 {
		t.Fatalf("alex reads %q of his own entries", got)
	}
	if ms, _ := aj.Members(); len(ms) != 1 {
		t.Fatalf("the shadowing joiner was accepted: %d members", len(ms))
	}
}

// A forged "grant from this device" does not stop history being re-boxed
// for the partner.
func TestForgedOwnGrantDoesNotSuppressHistory(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj := testJournal(t, relay, "alex")
	e, _ := aj.Write(Payload{Kind: KindEntry, Text: "history"})
	aj.Sync(ctx)
	code, _, _ := aj.Invite(ctx, 0)
	sam := testAccount(t, "sam")
	sj, err := sam.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	defer sj.Close()
	var eid protocol.BlobID
	copy(eid[:], mustHex(t, e.ID))
	h := protocol.Header{Kind: protocol.KindGrant, Journal: aj.id, Author: aj.acct.Device.SignKey(), Seq: 77, Prev: protocol.BlobID{1}}
	b := h.Marshal(nil)
	kid := crypto.KeyID(sam.Device.BoxPublic)
	b = append(b, kid[:]...)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, eid[:]...)
	b = append(b, make([]byte, 24+80+protocol.GrantBindingSize)...)
	var cur uint64
	aj.withLock(func() error { cur = aj.cursor; return nil })
	aj.receive(&protocol.Blob{Journal: aj.id, Seq: cur + 1, Blob: b})
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := entryTexts(t, sj); len(got) != 1 || got[0] != "history" {
		t.Fatalf("sam reads %q", got)
	}
}

func mustHex(t *testing.T, s string) []byte {
	var b []byte
	for i := 0; i+1 < len(s); i += 2 {
		var v byte
		for _, c := range s[i : i+2] {
			v <<= 4
			if c <= '9' {
				v |= byte(c - '0')
			} else {
				v |= byte(c-'a') + 10
			}
		}
		b = append(b, v)
	}
	return b
}

// Altering another device's slot gives a new blob id but not a second
// entry: the entry is known by its content hash.
func TestSlotTamperingDoesNotDuplicate(t *testing.T) {
	t.Parallel()
	aj, sj := pairedJournals(t)
	ctx := context.Background()
	aj.Write(Payload{Kind: KindQuestion, Text: "q?"})
	aj.Sync(ctx)
	sj.Sync(ctx)
	var raw []byte
	sj.withLock(func() error {
		for _, s := range sj.order {
			if s.Header.Kind == protocol.KindEntry {
				raw = bytes.Clone(sj.raw(s))
			}
		}
		return nil
	})
	e, _ := protocol.ParseEntry(raw)
	mine := crypto.KeyID(sj.acct.Device.BoxPublic)
	for i, r := range e.Recipients {
		if r.KeyID != mine {
			raw[protocol.HeaderSize+25+i*protocol.RecipientSize+10] ^= 1
		}
	}
	var cur uint64
	sj.withLock(func() error { cur = sj.cursor; return nil })
	if n, err := sj.receive(&protocol.Blob{Journal: sj.id, Seq: cur + 1, Blob: raw}); err != nil || n != 1 {
		t.Fatalf("altered copy: %d, %v", n, err)
	}
	es, _ := sj.Entries()
	if len(es) != 1 {
		t.Fatalf("sam sees %d entries, want 1", len(es))
	}
	if st, _ := sj.Status(); len(st.Missing) != 0 {
		t.Fatalf("false alarm: %+v", st.Missing)
	}
}

// A join interrupted between saving the journal and writing the join blob
// is finished the next time the journal is opened.
func TestInterruptedJoinIsFinished(t *testing.T) {
	t.Parallel()
	aj, sj := pairedJournals(t)
	// Simulate the crash: put the secret back and drop the join from the log.
	sj.withLock(func() error {
		sj.st.JoinSecret = bytes.Repeat([]byte{7}, 32)
		return sj.saveState()
	})
	if err := sj.finishJoin(); err != nil {
		t.Fatal(err)
	}
	var joins int
	sj.withLock(func() error {
		for _, s := range sj.order {
			if s.Header.Kind == protocol.KindJoin && s.Local {
				joins++
			}
		}
		if sj.st.JoinSecret != nil {
			t.Error("join secret kept after the join was written")
		}
		return nil
	})
	if joins != 1 {
		t.Fatalf("%d join blobs, want exactly 1 (no second join when one exists)", joins)
	}
	_ = aj
}

// A relay restored from an older backup is noticed, said plainly, and
// changes nothing here; a different relay at the same address is refused.
func TestRelayRollbackAndSwap(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj := testJournal(t, relay, "alex")
	relay.Stop()
	backup := filepath.Join(t.TempDir(), "backup")
	if err := os.CopyFS(backup, os.DirFS(relay.DataDir())); err != nil {
		t.Fatal(err)
	}
	relay.Start()
	for _, s := range []string{"one", "two"} {
		aj.Write(Payload{Kind: KindEntry, Text: s})
	}
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	before := entryTexts(t, aj)

	relay.Stop()
	if err := os.RemoveAll(relay.DataDir()); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(relay.DataDir(), os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	relay.Start()
	if _, err := aj.Sync(ctx); !errors.Is(err, ErrRelayMisbehaved) {
		t.Fatalf("sync against a rolled-back relay: %v", err)
	}
	if got := entryTexts(t, aj); len(got) != len(before) {
		t.Fatalf("entries changed: %q -> %q", before, got)
	}

	// A fresh relay (new id) at the same address.
	relay.Stop()
	os.RemoveAll(relay.DataDir())
	relay.Start()
	if _, err := aj.Sync(ctx); !errors.Is(err, ErrRelayChanged) {
		t.Fatalf("sync against a different relay: %v", err)
	}
}
