package client

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// These tests cover the handover (§13 of docs/protocol.md): a device of a
// person re-boxes for that person's other devices every entry it reads,
// and a device accepts such keys only from a device of its own person.

// linkFrom links a new device for a's person and returns its account and
// its copy of the current journal, not synced yet.
func linkFrom(t *testing.T, a *Account, name string) (*Account, *Journal) {
	t.Helper()
	ctx := testCtx(t)
	code, _, err := a.LinkDevice(ctx, name, 0)
	if err != nil {
		t.Fatalf("link: %v", err)
	}
	b, err := JoinLink(ctx, Home{Dir: filepath.Join(t.TempDir(), name)}, code, []byte("pw"), crypto.TestingKDF)
	if err != nil {
		t.Fatalf("join link: %v", err)
	}
	j, err := b.Current("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return b, j
}

// readsAll fails the test unless j shows every one of want and nothing is
// left unreadable.
func readsAll(t *testing.T, who string, j *Journal, want ...string) {
	t.Helper()
	got := entryTexts(t, j)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Fatalf("%s reads %q; want %q among them", who, got, w)
		}
	}
	st, err := j.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Unreadable != 0 {
		t.Fatalf("%s: %d entries unreadable", who, st.Unreadable)
	}
}

// grantItemsBy returns, from j's log, the chain ids named by grants that
// the device with signing key author wrote for the device with box key to.
func grantItemsBy(t *testing.T, j *Journal, author, to [32]byte) []protocol.BlobID {
	t.Helper()
	var out []protocol.BlobID
	kid := crypto.KeyID(to)
	j.withLock(func() error {
		for _, s := range j.order {
			if s.Header.Kind != protocol.KindGrant || s.Header.Author != author {
				continue
			}
			g, err := protocol.ParseGrant(j.raw(s))
			if err != nil || g.KeyID != kid {
				continue
			}
			for _, it := range g.Items {
				out = append(out, it.Entry)
			}
		}
		return nil
	})
	return out
}

// A device linked while the partner and this person's other devices are
// all offline reads the whole history after its first sync: the linking
// device hands over the partner's entries and the other device's, not
// only its own. It still does after reopening the journal, from the
// checkpoint and without one.
func TestLinkedDeviceReadsHistoryWhileOthersAreOffline(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	aj, sj := pairedOn(t, relay)
	alex := aj.acct

	// Alex's phone writes, then is never seen again.
	phone, pj := linkFrom(t, alex, "phone")
	syncOK(t, pj)
	mustWrite(t, pj, "from alex's phone")
	syncOK(t, pj)
	// Sam writes, then goes offline for good.
	syncOK(t, sj)
	mustWrite(t, sj, "sam, the first week")
	mustWrite(t, sj, "sam, the second week")
	syncOK(t, sj)
	mustWrite(t, aj, "alex on the old laptop")
	syncOK(t, aj)

	laptop, lj := linkFrom(t, alex, "laptop")
	syncOK(t, lj)
	want := []string{"sam, the first week", "sam, the second week", "from alex's phone", "alex on the old laptop"}
	readsAll(t, "the new laptop", lj, want...)

	// The same in a later process, from the checkpoint...
	id := lj.id
	lj.withLock(func() error { lj.saveCheckpoint(true); return nil })
	lj.closeFiles()
	again, err := laptop.OpenJournal(id)
	if err != nil {
		t.Fatal(err)
	}
	readsAll(t, "the new laptop, reopened", again, want...)
	// ... and with the checkpoint gone: from the log and its grants.
	again.Close()
	if err := os.Remove(again.checkpointPath()); err != nil {
		t.Fatal(err)
	}
	again, err = laptop.OpenJournal(id)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	readsAll(t, "the new laptop, without its checkpoint", again, want...)

	// When the phone comes back, it re-boxes its own entries for the
	// laptop as before, but hands over nothing the old laptop already
	// handed over.
	syncOK(t, pj)
	readsAll(t, "alex's phone", pj, want...)
	me := phone.Device.SignKey()
	var ownChains []protocol.BlobID
	pj.withLock(func() error {
		for _, s := range pj.order {
			if s.Header.Kind == protocol.KindEntry && s.Header.Author == me {
				ownChains = append(ownChains, s.Chain)
			}
		}
		return nil
	})
	for _, c := range grantItemsBy(t, pj, me, laptop.Device.BoxPublic) {
		if !slices.Contains(ownChains, c) {
			t.Fatalf("the phone handed over %s, which the old laptop had handed over already", c)
		}
	}
}

// A partner's device may re-box only its own entries: a grant from Sam
// that names an entry Alex wrote is not used by Alex's new device, even
// though it is well formed and addressed to it.
func TestPartnerCannotHandOverOthersEntries(t *testing.T) {
	t.Parallel()
	relay, liar := servertest.NewLyingServer(t)
	aj, sj := pairedOn(t, relay)
	e := mustWrite(t, aj, "alex's words")
	syncOK(t, aj)
	syncOK(t, sj)

	laptop, lj := linkFrom(t, aj.acct, "laptop")
	syncOK(t, sj) // Sam learns of the laptop
	chain := mustChain(t, e.ID)
	if err := sj.withLock(func() error {
		o := sj.openedOf(chain)
		if o == nil {
			t.Fatal("sam cannot read alex's entry")
		}
		items := []crypto.GrantInput{{Entry: chain, Key: crypto.ContentKey{Key: o.key, Hash: chain}}}
		blob, err := sj.acct.keys.SealGrant(rand.Reader, sj.nextHeader(sj.id, protocol.KindGrant), laptop.Device.BoxPublic, items)
		if err != nil {
			return err
		}
		return sj.writeBlob(blob)
	}); err != nil {
		t.Fatal(err)
	}
	syncOK(t, sj)

	// The relay keeps the old laptop's grants from the new one, so only
	// Sam's could open the entry.
	alexDevice := aj.acct.Device.SignKey()
	liar.ServeTo(laptop.Device.SignKey(), servertest.Drop(func(b server.StoredBlob) bool {
		h, err := protocol.ParseHeader(b.Blob)
		return !b.Purged && err == nil && h.Kind == protocol.KindGrant && h.Author == alexDevice
	}))
	syncOK(t, lj)
	if got := entryTexts(t, lj); slices.Contains(got, "alex's words") {
		t.Fatalf("the laptop read alex's entry through sam's grant: %q", got)
	}
	// Sam's grant arrived and checked: only the author rule refused it.
	sam := sj.acct.Device.SignKey()
	var checked bool
	lj.withLock(func() error {
		for _, s := range lj.order {
			if s.Header.Kind == protocol.KindGrant && s.Header.Author == sam {
				checked = lj.grantChecks[s.ID].ok
			}
		}
		return nil
	})
	if !checked {
		t.Fatal("sam's grant did not reach the laptop, or did not check")
	}
}

// An entry a device could not read when it last looked at what it owes
// its person's other devices, and that opens later (its grant came late),
// is handed over then: the shortcut that looks only at what is new does
// not pass it by.
func TestEntryOpenedLateIsHandedOver(t *testing.T) {
	t.Parallel()
	relay, liar := servertest.NewLyingServer(t)
	aj, sj := pairedOn(t, relay)
	mustWrite(t, sj, "sam, before any new device")
	syncOK(t, sj)
	syncOK(t, aj)

	// Alex links a phone; the relay keeps the old device's grants from
	// it, so the phone cannot read Sam's entry yet.
	old := aj.acct.Device.SignKey()
	byOld := func(b server.StoredBlob) bool {
		h, err := protocol.ParseHeader(b.Blob)
		return !b.Purged && err == nil && h.Kind == protocol.KindGrant && h.Author == old
	}
	phone, pj := linkFrom(t, aj.acct, "phone")
	liar.ServeTo(phone.Device.SignKey(), servertest.Drop(byOld))
	syncOK(t, pj)
	if got := entryTexts(t, pj); slices.Contains(got, "sam, before any new device") {
		t.Fatalf("the phone reads %q before the grant came", got)
	}
	// The old device and Sam are never seen again. The phone links a
	// tablet: it cannot hand over what it cannot read.
	_, tj := linkFrom(t, phone, "tablet")
	syncOK(t, pj)
	// The grants arrive late; the phone reads Sam's entry now, and on
	// its next sync hands it over to the tablet.
	liar.ServeTo(phone.Device.SignKey(), servertest.Later(byOld))
	syncOK(t, pj)
	readsAll(t, "the phone", pj, "sam, before any new device")
	syncOK(t, pj)
	syncOK(t, tj)
	readsAll(t, "the tablet", tj, "sam, before any new device")
}

// A removed device of this person is trusted for its handover as for
// anything else it wrote: up to the last of its blobs the remover held.
// A grant it writes after its removal opens nothing.
func TestRemovedDeviceHandsOverOnlyUpToItsRemoval(t *testing.T) {
	t.Parallel()
	relay, liar := servertest.NewLyingServer(t)
	aj, sj := pairedOn(t, relay)
	alex := aj.acct
	_, bj := linkFrom(t, alex, "phone")
	syncOK(t, bj)
	syncOK(t, sj)
	before := mustChain(t, mustWrite(t, sj, "granted before the removal").ID)
	after := mustChain(t, mustWrite(t, sj, "granted after the removal").ID)
	syncOK(t, sj)
	syncOK(t, bj)
	syncOK(t, aj)

	// The laptop never sees the old device's handover, only the phone's.
	laptop, lj := linkFrom(t, alex, "laptop")
	old := alex.Device.SignKey()
	liar.ServeTo(laptop.Device.SignKey(), servertest.Drop(func(b server.StoredBlob) bool {
		h, err := protocol.ParseHeader(b.Blob)
		return !b.Purged && err == nil && h.Kind == protocol.KindGrant && h.Author == old
	}))
	grant := func(c protocol.BlobID) []byte {
		t.Helper()
		var blob []byte
		if err := bj.withLock(func() error {
			o := bj.openedOf(c)
			if o == nil {
				t.Fatal("the phone cannot read sam's entry")
			}
			var err error
			items := []crypto.GrantInput{{Entry: c, Key: crypto.ContentKey{Key: o.key, Hash: c}}}
			if blob, err = bj.acct.keys.SealGrant(rand.Reader, bj.nextHeader(bj.id, protocol.KindGrant), laptop.Device.BoxPublic, items); err != nil {
				return err
			}
			return bj.writeBlob(blob)
		}); err != nil {
			t.Fatal(err)
		}
		return blob
	}
	grant(before)
	syncOK(t, bj)
	syncOK(t, aj)
	if _, _, err := alex.RemoveDevice(testCtx(t), "phone"); err != nil {
		t.Fatal(err)
	}
	late := grant(after) // the relay no longer takes it; a lying one could serve it

	syncOK(t, lj)
	var cur uint64
	lj.withLock(func() error { cur = lj.cursor; return nil })
	if _, err := lj.receive(&protocol.Blob{Journal: lj.id, Seq: cur + 1, Blob: late}); err != nil {
		t.Fatal(err)
	}
	got := entryTexts(t, lj)
	if !slices.Contains(got, "granted before the removal") {
		t.Fatalf("the laptop does not read what the phone handed over before its removal: %q", got)
	}
	if slices.Contains(got, "granted after the removal") {
		t.Fatalf("the laptop read an entry through a grant the phone wrote after its removal: %q", got)
	}
}
