package client_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// keptOnRelay has Sam write texts (the first is the one x to be taken
// back) and sync, and returns them with x's bytes as the relay stored them
// kept to Sam's own slot (protocol.KeepSlots): what a relay holds of an
// entry its author keeps to itself.
func keptOnRelay(t *testing.T, p *lyingRelay, texts ...string) (es []client.Entry, kept []byte) {
	t.Helper()
	es = write(t, p.sj, texts...)
	p.toSam(func(_ protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		for _, b := range log {
			if !b.Purged && protocol.ChainID(b.Blob).String() == es[0].ID {
				k, err := protocol.KeepSlots(b.Blob, crypto.KeyID(p.sam.Device.BoxPublic))
				if err != nil {
					t.Error(err)
				}
				kept = k
			}
		}
		return log
	})
	mustSync(t, p.sj) // the liar sees the blobs go by
	p.toSam(nil)
	if kept == nil {
		t.Fatal("the entry is not on the relay")
	}
	return es, kept
}

// An entry without a slot for this device that its author device's own
// retraction names is simply retracted: not changed on the way, not
// waiting for a key, even though a later entry of its author vouched for
// the slot (to_since). The partner sees the tombstone and nothing else.
func TestWithdrawnWithoutSlotIsRetracted(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	es, kept := keptOnRelay(t, p, "sam: raw words", "sam: calmer now")
	x := es[0]
	r, _, err := p.sj.Retract(x.ID)
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, p.sj) // purges x on the relay; alex is served the kept copy
	p.toAlex(servertest.Replace(entries(x), func([]byte) []byte { return kept }))
	mustSync(t, p.aj)

	st := status(t, p.aj)
	if st.Changed != 0 || st.Unreadable != 0 || hasShown(st, client.NoticeRelayChanged) {
		t.Fatalf("alex: changed %d, unreadable %d, notices %q", st.Changed, st.Unreadable, shown(st))
	}
	clean(t, "alex", p.aj)
	got, err := p.aj.Entries()
	if err != nil {
		t.Fatal(err)
	}
	var tomb bool
	for _, e := range got {
		if strings.Contains(e.Text, "raw") || e.ID == x.ID {
			t.Fatalf("alex is shown the withdrawn entry: %+v", e)
		}
		tomb = tomb || (e.ID == r.ID && e.Kind == client.KindRetraction && !e.Hidden && e.Ref == x.ID)
	}
	if !tomb || !slices.Contains(texts(t, p.aj), "sam: calmer now") {
		t.Fatalf("alex reads %+v", got)
	}
}

// Only the entry's own author device can withdraw it: a retraction that
// someone else wrote naming the entry (a modified client) leaves a
// stripped slot reported as changed.
func TestWithdrawnOnlyByItsAuthor(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	es, kept := keptOnRelay(t, p, "sam: words", "sam: more words")
	x := es[0]
	if _, err := p.aj.Write(client.Payload{Kind: client.KindRetraction, Ref: x.ID, Purges: []string{x.ID}}); err != nil {
		t.Fatal(err)
	}
	p.toAlex(servertest.Replace(entries(x), func([]byte) []byte { return kept }))
	mustSync(t, p.aj)
	if st := status(t, p.aj); st.Changed != 1 || !hasShown(st, client.NoticeRelayChanged) {
		t.Fatalf("alex: changed %d, notices %q", st.Changed, shown(st))
	}
}

// This device's own entry coming back from the relay kept to its own
// slot (protocol.KeepSlots) is the entry it wrote, held already: not
// "something claiming to come from this device that it never wrote".
func TestOwnEntryKeptToItsSlotComesBack(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	es := write(t, p.sj, "sam: kept to this device")
	samKey := crypto.KeyID(p.sam.Device.BoxPublic)
	p.toSam(servertest.Replace(entries(es...), func(b []byte) []byte {
		k, err := protocol.KeepSlots(b, samKey)
		if err != nil {
			t.Error(err)
		}
		return k
	}))
	mustSync(t, p.sj)
	if st := status(t, p.sj); len(shown(st)) != 0 {
		t.Fatalf("sam's notices: %q", shown(st))
	}
	clean(t, "sam", p.sj)
	same(t, "sam reads", texts(t, p.sj), "sam: kept to this device")

	// A copy kept to another device's slot is not this device's: set
	// aside as before.
	es = write(t, p.sj, "sam: another")
	alexKey := crypto.KeyID(p.alex.Device.BoxPublic)
	p.toSam(servertest.Replace(entries(es...), func(b []byte) []byte {
		k, err := protocol.KeepSlots(b, alexKey)
		if err != nil {
			t.Error(err)
		}
		return k
	}))
	mustSync(t, p.sj)
	if st := status(t, p.sj); !hasShown(st, client.NoticeRelayForgedOwn) {
		t.Fatalf("sam's notices: %q", shown(st))
	}
}

// The key of an entry its author device retracted is re-boxed for no
// device that comes later: not by its author, not handed over by the
// partner's device that had read it.
func TestRetractedKeyIsNeverGranted(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	es := write(t, sj, "sam: words to take back", "sam: words to keep")
	mustSync(t, sj)
	mustSync(t, aj) // alex reads both, and could hand them over
	if _, _, err := sj.Retract(es[0].ID); err != nil {
		t.Fatal(err)
	}
	mustSync(t, sj)
	mustSync(t, aj)

	laptop, lj := linkDevice(t, alex, "laptop")
	mustSync(t, lj)
	mustSync(t, sj) // sam re-boxes its history for the laptop
	mustSync(t, aj)
	mustSync(t, lj)
	if got := texts(t, lj); !slices.Contains(got, "sam: words to keep") {
		t.Fatalf("the laptop reads %q", got)
	}
	bs, err := relay.Store().Read(ctxFor(t), aj.ID(), 0, 1024)
	if err != nil {
		t.Fatal(err)
	}
	kid := crypto.KeyID(laptop.Device.BoxPublic)
	granted := map[string]bool{}
	for _, b := range bs {
		if b.Purged || protocol.Kind(b.Blob[1]) != protocol.KindGrant {
			continue
		}
		g, err := protocol.ParseGrant(b.Blob)
		if err != nil || g.KeyID != kid {
			continue
		}
		for _, it := range g.Items {
			granted[it.Entry.String()] = true
		}
	}
	if !granted[es[1].ID] || granted[es[0].ID] {
		t.Fatalf("grants for the laptop: the kept entry %v, the retracted one %v", granted[es[1].ID], granted[es[0].ID])
	}
}

// A partner watching live while the author sends an entry retracted
// before it was sent, an entry written after it (which vouches for its
// slot) and the retraction never gets the retracted words, and is not
// told the relay changed anything: the retraction arrives first.
func TestUnsentRetractionWhileThePartnerWatches(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	mustSync(t, sj)
	ctx, cancel := context.WithCancel(ctxFor(t))
	events := make(chan client.Event)
	done := make(chan error, 1)
	go func() { done <- aj.Watch(ctx, send(ctx, events)) }()
	waitFor(t, events, func(e client.Event) bool { return e.Connected })

	es := write(t, sj, "sam: raw words", "sam: calmer now")
	if _, _, err := sj.Retract(es[0].ID); err != nil {
		t.Fatal(err)
	}
	mustSync(t, sj)
	var kinds []string
	waitFor(t, events, func(e client.Event) bool {
		for _, n := range e.New {
			if strings.Contains(n.Text, "raw") {
				t.Errorf("the watcher was shown the retracted words: %+v", n)
			}
			kinds = append(kinds, n.Kind+":"+n.Text)
		}
		return slices.Contains(kinds, client.KindEntry+":sam: calmer now")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := status(t, aj); st.Changed != 0 || st.Unreadable != 0 || len(shown(st)) != 0 || len(st.Missing) != 0 {
		t.Fatalf("alex: changed %d, unreadable %d, notices %q, missing %q", st.Changed, st.Unreadable, shown(st), gaps(st))
	}
	if !slices.Contains(kinds, client.KindRetraction+":") {
		t.Fatalf("the watcher was shown %q", kinds)
	}
	// What alex's device holds of the entry opens for none of alex's
	// devices: its one slot is Sam's device's (whole bytes would carry
	// one for alex's, and open there).
	raw := client.HeldBytes(aj, es[0].ID)
	if raw == nil {
		t.Fatal("alex holds nothing of the retracted entry")
	}
	e, err := protocol.ParseEntry(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range e.Recipients {
		if r.KeyID != crypto.KeyID(sam.Device.BoxPublic) {
			t.Fatalf("alex's device holds the retracted entry with %d slots, not Sam's device's alone", len(e.Recipients))
		}
	}
}

// The author's other devices lose the words too (they were never sent):
// the laptop, watching while the author's main device sends the entry
// kept to itself, never opens it, shows the tombstone, counts nothing as
// changed or waiting, and is never granted its key.
func TestUnsentRetractionOnTheAuthorsOtherDevice(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	_, lj := linkDevice(t, sam, "laptop")
	mustSync(t, lj)
	mustSync(t, sj)
	mustSync(t, aj)
	mustSync(t, lj)

	ctx, cancel := context.WithCancel(ctxFor(t))
	events := make(chan client.Event)
	done := make(chan error, 1)
	go func() { done <- lj.Watch(ctx, send(ctx, events)) }()
	waitFor(t, events, func(e client.Event) bool { return e.Connected })
	go func() { // nothing more to wait for from it
		for {
			select {
			case <-events:
			case <-ctx.Done():
				return
			}
		}
	}()
	es := write(t, sj, "sam: raw words", "sam: calmer now")
	r, _, err := sj.Retract(es[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, sj)
	// Entries from the person's own devices are not events: the laptop
	// has all three once it reads the last.
	for deadline := time.Now().Add(30 * time.Second); !slices.Contains(texts(t, lj), "sam: calmer now"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the laptop did not receive the entries within 30s")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustSync(t, sj) // would re-box for the laptop now, if anything
	mustSync(t, lj)
	if got := texts(t, lj); slices.Contains(got, "sam: raw words") || !slices.Contains(got, "sam: calmer now") {
		t.Fatalf("the laptop reads %q", got)
	}
	// It never opened: the retraction stands as its tombstone.
	all, err := lj.Entries()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if e.ID == es[0].ID || (e.ID == r.ID && e.Hidden) {
			t.Fatalf("the laptop opened the retracted entry: %+v", e)
		}
	}
	if st := status(t, lj); st.Changed != 0 || st.Unreadable != 0 || len(shown(st)) != 0 || len(st.Missing) != 0 {
		t.Fatalf("the laptop: changed %d, unreadable %d, notices %q, missing %q", st.Changed, st.Unreadable, shown(st), gaps(st))
	}
}
