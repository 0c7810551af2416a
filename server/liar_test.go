package server_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// The tests of servertest.Liar, a relay that serves each device its own
// view, live here beside the relay's tests rather than in servertest:
// they were that package's only tests, and a test binary of their own
// cost a link of the whole relay (about 2 s of CPU) for 0.1 s of tests.

// history reads a subscription from after to caught_up and returns the
// blobs by seq.
func history(t *testing.T, c *servertest.Client, j protocol.JournalID, after uint64) [][]byte {
	t.Helper()
	servertest.MustOK(t, c.Subscribe(j, after))
	var out [][]byte
	for {
		env, data := c.Push()
		if env.Type == protocol.TypeCaughtUp {
			var cu protocol.CaughtUp
			if err := protocol.DecodeAs(data, &cu); err != nil {
				t.Fatal(err)
			}
			if cu.Seq != after+uint64(len(out)) {
				t.Fatalf("caught_up at %d after %d blobs from %d", cu.Seq, len(out), after)
			}
			return out
		}
		var b protocol.Blob
		if err := protocol.DecodeAs(data, &b); err != nil {
			t.Fatal(err)
		}
		if b.Seq != after+uint64(len(out))+1 {
			t.Fatalf("blob at seq %d, want %d", b.Seq, after+uint64(len(out))+1)
		}
		out = append(out, b.Blob)
	}
}

func sameBlobs(t *testing.T, what string, got [][]byte, want ...[]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d blobs, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: blob %d differs", what, i+1)
		}
	}
}

// The liar serves each device its own view through the real relay, numbers
// it contiguously, and stores writes honestly.
func TestLiarServesEachDeviceItsView(t *testing.T) {
	s, liar := servertest.NewLyingServer(t)
	a := servertest.Dial(t, s.WebSocketURL(), servertest.NewKey(t))
	j := servertest.NewJournalID()
	servertest.MustOK(t, a.Create(j))
	var token [32]byte
	rand.Read(token[:])
	servertest.MustOK(t, a.Invite(j, token, time.Now().Add(time.Hour), []byte("packet")))
	b := servertest.Dial(t, s.WebSocketURL(), servertest.NewKey(t))
	servertest.MustOK(t, b.Redeem(token))

	ch := &servertest.Chain{Journal: j, Author: a.Device}
	b1, b2, b3 := ch.Next("one"), ch.Next("two"), ch.Next("three")
	for _, blob := range [][]byte{b1, b2, b3} {
		servertest.MustOK(t, a.Put(j, blob))
	}
	second := servertest.ChainIs(protocol.ChainID(b2).String())
	liar.Serve(servertest.Twice(second))
	liar.ServeTo(b.Device, servertest.Drop(second))

	sameBlobs(t, "a's view", history(t, a, j, 0), b1, b2, b2, b3)
	sameBlobs(t, "b's view", history(t, b, j, 0), b1, b3)

	// New blobs reach a live subscriber through its view, at its next seq.
	b4 := ch.Next("four")
	servertest.MustOK(t, a.Put(j, b4))
	if got := b.NextBlob(); got.Seq != 3 || !bytes.Equal(got.Blob, b4) {
		t.Fatalf("live push to b: seq %d", got.Seq)
	}

	// A cursor past the end of the view is refused, as past a real end.
	c := servertest.Dial(t, s.WebSocketURL(), b.Key)
	liar.ServeTo(b.Device, servertest.RollBack(2))
	if r := c.Subscribe(j, 3); r.Err == nil || !errors.Is(r.Err.Err(), protocol.ErrInvalid) {
		t.Fatalf("subscribe past a rolled-back end: %+v", r)
	}

	// The store underneath holds the honest log.
	stored, err := s.Store().Read(t.Context(), j, 0, 10)
	if err != nil || len(stored) != 4 {
		t.Fatalf("honest store: %d blobs, %v", len(stored), err)
	}
	liar.Honest()
	d := servertest.Dial(t, s.WebSocketURL(), b.Key)
	sameBlobs(t, "honest again", history(t, d, j, 0), b1, b2, b3, b4)
}

// Strip removes one device's slot from the entries it matches and lowers
// the count: the chain id stays, the other slot still opens, and the
// device whose slot went finds none. Entries it does not match, and an
// entry sealed to that device alone, are served as stored.
func TestStripRemovesOneSlot(t *testing.T) {
	author, other := mustDevice(t), mustDevice(t)
	h := protocol.Header{Kind: protocol.KindEntry, Seq: 1}
	h.Author = author.SignKey()
	seal := func(to ...[32]byte) []byte {
		b, _, err := crypto.SealEntry(rand.Reader, author, h, to, []byte(`{"v":1}`))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	both, alone, untouched := seal(author.BoxPublic, other.BoxPublic), seal(other.BoxPublic), seal(author.BoxPublic, other.BoxPublic)
	kid := crypto.KeyID(other.BoxPublic)
	log := []server.StoredBlob{{Blob: both}, {Blob: alone}, {Blob: untouched}}
	match := servertest.AnyOf(servertest.ChainPrefix(protocol.ChainID(both).String()[:8]), servertest.ChainPrefix(protocol.ChainID(alone).String()))
	out := servertest.Strip(kid, match)(protocol.JournalID{}, log)
	e, err := protocol.ParseEntry(out[0].Blob)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Recipients) != 1 || e.Recipients[0].KeyID == kid || e.ContentHash() != protocol.ChainID(both) || bytes.Equal(out[0].Blob, both) {
		t.Fatalf("stripped entry: %d recipients, chain id kept %v", len(e.Recipients), e.ContentHash() == protocol.ChainID(both))
	}
	if _, err := crypto.NewKeyring(author).EntryKey(e, author.BoxPublic); err != nil {
		t.Fatalf("the author's own slot no longer opens: %v", err)
	}
	if !bytes.Equal(out[1].Blob, alone) || !bytes.Equal(out[2].Blob, untouched) {
		t.Fatal("an entry with only that slot, or one not matched, was changed")
	}
}

func mustDevice(t *testing.T) *crypto.Device {
	t.Helper()
	d, err := crypto.NewDevice(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
