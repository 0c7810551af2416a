package client_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// The misbehaving-relay suite. Each test pairs two real partners (this
// package, each with a home of their own) through a real relay on
// 127.0.0.1 whose store lies on purpose (servertest.Liar): it stores and
// acknowledges honestly, and serves each partner the history the test
// chooses. Each test checks that the client notices what can be noticed
// and says so plainly, keeps everything it already had, and shows nothing
// forged as real. docs/threat-model.md (3.1, 4.1) lists the attacks with
// the tests that cover them.

// How status names each partner's device.
const (
	samsDevice  = "sam/sam-device"
	alexsDevice = "alex/alex-device"
)

type lyingRelay struct {
	relay     *servertest.Server
	liar      *servertest.Liar
	alex, sam *client.Account
	aj, sj    *client.Journal
}

// lyingPair pairs alex and sam through a lying relay, honest so far.
func lyingPair(t *testing.T) *lyingRelay {
	t.Helper()
	relay, liar := servertest.NewLyingServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	mustSync(t, sj)
	return &lyingRelay{relay: relay, liar: liar, alex: alex, sam: sam, aj: aj, sj: sj}
}

// joinWithheld has alex start a journal through a lying relay, write an
// entry from before sam joins and invite sam, who then joins while serve
// (toAlex or toSam) has the relay withhold what withheld matches.
func joinWithheld(t *testing.T, serve func(*lyingRelay, servertest.View), withheld servertest.Match) *lyingRelay {
	t.Helper()
	relay, liar := servertest.NewLyingServer(t)
	ctx := ctxFor(t)
	p := &lyingRelay{relay: relay, liar: liar, alex: newAccount(t, "alex"), sam: newAccount(t, "sam")}
	var err error
	if p.aj, err = p.alex.CreateJournal(ctx, relay.URL(), ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.aj.Close() })
	write(t, p.aj, "alex: from before you joined")
	mustSync(t, p.aj)
	code, _, err := p.aj.Invite(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	serve(p, servertest.Drop(withheld))
	if p.sj, err = p.sam.Join(ctx, code); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.sj.Close() })
	return p
}

// ofKind matches the blobs of kind k that were not purged.
func ofKind(k protocol.Kind) servertest.Match {
	return func(b server.StoredBlob) bool {
		return !b.Purged && len(b.Blob) > 1 && protocol.Kind(b.Blob[1]) == k
	}
}

// end is how many blobs the relay really holds for journal j.
func (p *lyingRelay) end(t *testing.T, j protocol.JournalID) int {
	t.Helper()
	n, err := p.relay.Store().LastSeq(ctxFor(t), j)
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// toAlex and toSam choose what the relay shows each of them.
func (p *lyingRelay) toAlex(v servertest.View) { p.liar.ServeTo(p.alex.Device.SignKey(), v) }
func (p *lyingRelay) toSam(v servertest.View)  { p.liar.ServeTo(p.sam.Device.SignKey(), v) }

// entries matches the blobs of es.
func entries(es ...client.Entry) servertest.Match {
	var ms []servertest.Match
	for _, e := range es {
		ms = append(ms, servertest.ChainIs(e.ID))
	}
	return servertest.AnyOf(ms...)
}

// replayed fails the test unless who's status says the relay sent
// something again at a new position (client.NoticeRelayReplayed), which
// a view that moves blobs makes it do; it marks that read and then
// requires the status clean otherwise.
func replayed(t *testing.T, who string, j *client.Journal) {
	t.Helper()
	if !hasShown(status(t, j), client.NoticeRelayReplayed) {
		t.Fatalf("%s was not told of the replay: %+v", who, status(t, j).Notices)
	}
	if err := j.Acknowledge(string(client.NoticeRelayReplayed)); err != nil {
		t.Fatal(err)
	}
	clean(t, who, j)
}

func newTexts(r *client.SyncResult) []string {
	var out []string
	for _, e := range r.New {
		out = append(out, e.Text)
	}
	return out
}

func same(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// A dropped entry is reported, by how many and from which device, as soon
// as a later one from that device arrives; what arrived stays readable and
// the gap closes when the relay delivers.
func TestLyingRelayDropsEntries(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	write(t, p.aj, "alex: I am here")
	mustSync(t, p.aj)
	s := write(t, p.sj, "sam: one", "sam: two", "sam: three", "sam: four")
	mustSync(t, p.sj)

	p.toAlex(servertest.Drop(entries(s[1], s[2])))
	same(t, "new for alex", newTexts(mustSync(t, p.aj)), "sam: one", "sam: four")
	same(t, "alex reads", texts(t, p.aj), "alex: I am here", "sam: one", "sam: four")
	st := status(t, p.aj)
	same(t, "alex's missing", gaps(st), missingFrom(samsDevice, 2))
	if st.Unreadable != 0 || len(shown(st)) != 0 {
		t.Fatalf("alex's status: %+v", st)
	}

	// Sam, served honestly, has everything.
	mustSync(t, p.sj)
	same(t, "sam reads", texts(t, p.sj), "alex: I am here", "sam: one", "sam: two", "sam: three", "sam: four")
	clean(t, "sam", p.sj)

	// The relay delivers them after all: the gap closes.
	p.toAlex(servertest.Later(entries(s[1], s[2])))
	same(t, "new for alex", newTexts(mustSync(t, p.aj)), "sam: two", "sam: three")
	same(t, "alex reads", texts(t, p.aj), "alex: I am here", "sam: one", "sam: two", "sam: three", "sam: four")
	clean(t, "alex", p.aj)
}

// The documented limit: withholding a device's newest entries looks like a
// partner who has not written yet. It is reported once any later entry
// from that device arrives, and nothing is lost meanwhile; until then only
// the partners' compare codes differ (TestCompareCodeShowsWhatARelayWithholds).
func TestLyingRelayWithholdsTheNewest(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	s := write(t, p.sj, "sam: one", "sam: two")
	mustSync(t, p.sj)

	p.toAlex(servertest.Drop(entries(s[1])))
	same(t, "new for alex", newTexts(mustSync(t, p.aj)), "sam: one")
	clean(t, "alex", p.aj) // undetectable in-band, by design (threat model 4.1)
	differ(t, p)

	write(t, p.sj, "sam: three")
	mustSync(t, p.sj)
	same(t, "new for alex", newTexts(mustSync(t, p.aj)), "sam: three")
	same(t, "alex reads", texts(t, p.aj), "sam: one", "sam: three")
	same(t, "alex's missing", gaps(status(t, p.aj)), missingFrom(samsDevice, 1))

	p.toAlex(servertest.Later(entries(s[1])))
	same(t, "new for alex", newTexts(mustSync(t, p.aj)), "sam: two")
	same(t, "alex reads", texts(t, p.aj), "sam: one", "sam: two", "sam: three")
	clean(t, "alex", p.aj)
}

// Reordered history, within one partner's entries and across the two, is
// shown in the order it was written, with nothing reported missing.
func TestLyingRelayReorders(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	s := write(t, p.sj, "sam: one", "sam: two", "sam: three")
	mustSync(t, p.sj)
	a := write(t, p.aj, "alex: one", "alex: two")

	// Sam's first and third swap places, and Sam's second swaps with
	// Alex's first, which this very sync puts after Sam's. Sam is served
	// Alex's two the other way round.
	p.toAlex(servertest.Then(servertest.Swap(entries(s[0]), entries(s[2])), servertest.Swap(entries(s[1]), entries(a[0]))))
	p.toSam(servertest.Swap(entries(a[0]), entries(a[1])))
	want := []string{"sam: one", "sam: two", "sam: three", "alex: one", "alex: two"}
	same(t, "new for alex", newTexts(mustSync(t, p.aj)), "sam: one", "sam: two", "sam: three")
	same(t, "alex reads", texts(t, p.aj), want...)
	replayed(t, "alex", p.aj)
	same(t, "new for sam", newTexts(mustSync(t, p.sj)), "alex: one", "alex: two")
	same(t, "sam reads", texts(t, p.sj), want...)
	clean(t, "sam", p.sj)
}

// Replays at new seqs (every blob served twice, old ones again) are
// recognised: nothing shows twice, nothing counts as new, and the person
// is told once that the relay's history contradicts itself.
func TestLyingRelayReplays(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	write(t, p.sj, "sam: one")
	write(t, p.aj, "alex: one")
	mustSync(t, p.aj)
	mustSync(t, p.sj)
	mustSync(t, p.aj)
	write(t, p.sj, "sam: two")
	mustSync(t, p.sj)

	everything := func(server.StoredBlob) bool { return true }
	p.liar.Serve(servertest.Twice(everything))
	r := mustSync(t, p.aj)
	same(t, "new for alex", newTexts(r), "sam: two")
	if r.Received != 1 {
		t.Fatalf("alex received %d new blobs, want 1", r.Received)
	}
	same(t, "alex reads", texts(t, p.aj), "sam: one", "alex: one", "sam: two")
	replayed(t, "alex", p.aj)
	// Sam is served its own blobs twice too.
	if r := mustSync(t, p.sj); r.Received != 0 || len(r.New) != 0 {
		t.Fatalf("sam, served only replays: %+v", r)
	}
	same(t, "sam reads", texts(t, p.sj), "sam: one", "alex: one", "sam: two")
	replayed(t, "sam", p.sj)
}

// History served again from the start, after what was already received,
// adds nothing and loses nothing; what is really new still arrives.
func TestLyingRelayRewindsHistory(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	write(t, p.sj, "sam: one", "sam: two")
	mustSync(t, p.sj)
	write(t, p.aj, "alex: one")
	mustSync(t, p.aj)

	p.toAlex(servertest.Rewind(0))
	if r := mustSync(t, p.aj); r.Received != 0 || len(r.New) != 0 {
		t.Fatalf("alex, served history again: %+v", r)
	}
	same(t, "alex reads", texts(t, p.aj), "sam: one", "sam: two", "alex: one")
	replayed(t, "alex", p.aj)

	write(t, p.sj, "sam: three")
	mustSync(t, p.sj)
	same(t, "new for alex", newTexts(mustSync(t, p.aj)), "sam: three")
	replayed(t, "alex", p.aj)
}

// A relay that rolls back to an older state is refused with a plain
// message and nothing here changes; a write made meanwhile is still sent.
// The documented limit: if the rolled-back relay carries on, blobs given
// the seqs this device already passed are never asked for, and are
// reported as not arrived once later ones come.
func TestLyingRelayRollsBack(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	ctx := ctxFor(t)
	write(t, p.sj, "sam: one", "sam: two")
	mustSync(t, p.sj)
	write(t, p.aj, "alex: one")
	mustSync(t, p.aj)
	mustSync(t, p.sj)
	before := texts(t, p.aj)
	n := p.end(t, p.aj.ID())

	const kept = 2 // sam's join and one more
	p.toAlex(servertest.RollBack(kept))
	write(t, p.aj, "alex: written while the relay is rolled back")
	_, err := p.aj.Sync(ctx)
	if !errors.Is(err, client.ErrRelayMisbehaved) || !strings.Contains(err.Error(), "fewer items than this device already received") {
		t.Fatalf("sync against a rolled-back relay: %v", err)
	}
	same(t, "alex reads", texts(t, p.aj), append(before, "alex: written while the relay is rolled back")...)
	if st := status(t, p.aj); st.Outbox != 0 || len(st.Missing) != 0 {
		t.Fatalf("alex after the refused sync: outbox %d, missing %+v", st.Outbox, st.Missing)
	}
	same(t, "new for sam", newTexts(mustSync(t, p.sj)), "alex: written while the relay is rolled back")

	// The rolled-back relay carries on: what it held after its first
	// `kept` blobs is gone, Alex's new entry took the next seq, and Sam's
	// next entries take the seqs up to Alex's cursor (n), which Alex never
	// asks for again. Only what lands above the cursor arrives.
	p.toAlex(func(_ protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		return append(log[:kept], log[n:]...)
	})
	reused := n - kept - 1
	if reused < 1 {
		t.Fatalf("no seq is reused (n=%d); the test proves nothing", n)
	}
	var after []string
	for i := range reused + 1 {
		after = append(after, fmt.Sprintf("sam: after the rollback, %d", i+1))
	}
	write(t, p.sj, after...)
	mustSync(t, p.sj)
	same(t, "new for alex", newTexts(mustSync(t, p.aj)), after[reused])
	want := missingFrom(samsDevice, reused)
	same(t, "alex's missing", gaps(status(t, p.aj)), want)
	for _, s := range before {
		if !slices.Contains(texts(t, p.aj), s) {
			t.Fatalf("alex lost %q", s)
		}
	}
}

// Once a relay has said it holds fewer items than this device was sent,
// nothing more is sent to it: an entry written then stays waiting here
// (what a rolled-back relay acknowledges could vanish when it is put
// back, with this device believing it sent), and goes once the relay
// has what it had again.
func TestLyingRelayRolledBackGetsNothingMore(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	ctx := ctxFor(t)
	write(t, p.sj, "sam: one", "sam: two")
	mustSync(t, p.sj)
	mustSync(t, p.aj)

	p.toAlex(servertest.RollBack(2))
	if _, err := p.aj.Sync(ctx); !errors.Is(err, client.ErrRelayMisbehaved) {
		t.Fatalf("sync against a rolled-back relay: %v", err)
	}
	write(t, p.aj, "alex: written after the rollback was seen")
	res, err := p.aj.Sync(ctx)
	if !errors.Is(err, client.ErrRelayMisbehaved) || strings.Contains(err.Error(), "Nothing here was changed") {
		t.Fatalf("second sync against a rolled-back relay: %v", err)
	}
	if res.Pushed != 0 {
		t.Fatalf("sent %d to a relay known to be behind", res.Pushed)
	}
	if st := status(t, p.aj); st.Outbox != 1 {
		t.Fatalf("alex's outbox after the refused sync: %d, want the new entry still waiting", st.Outbox)
	}

	p.liar.Honest()
	if res := mustSync(t, p.aj); res.Pushed != 1 {
		t.Fatalf("once the relay has everything again, sent %d, want 1", res.Pushed)
	}
	same(t, "new for sam", newTexts(mustSync(t, p.sj)), "alex: written after the rollback was seen")
}

// Asking again for a missing item subscribes from below the cursor, which
// a rolled-back relay accepts: its end, not its acceptance, shows it is
// behind, and then nothing is sent to it.
func TestLyingRelayRolledBackWhileAskingAgain(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	ctx := ctxFor(t)
	s := write(t, p.sj, "sam: one", "sam: two", "sam: three", "sam: four")
	mustSync(t, p.sj)
	p.toAlex(servertest.Drop(entries(s[1])))
	mustSync(t, p.aj)
	same(t, "alex's missing", gaps(status(t, p.aj)), missingFrom(samsDevice, 1))

	// Rolled back to just before its last blob: above where alex asks
	// again from, below alex's cursor.
	drop := servertest.Drop(entries(s[1]))
	p.toAlex(func(j protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		log = drop(j, log)
		return log[:len(log)-1]
	})
	if _, err := p.aj.Sync(ctx); !errors.Is(err, client.ErrRelayMisbehaved) {
		t.Fatalf("sync against a rolled-back relay while asking again: %v", err)
	}
	write(t, p.aj, "alex: written while the relay is behind")
	res, err := p.aj.Sync(ctx)
	if !errors.Is(err, client.ErrRelayMisbehaved) || res.Pushed != 0 {
		t.Fatalf("second sync: sent %d, %v", res.Pushed, err)
	}
}

// Each partner is shown a different history at the same time: the blob at
// a given seq differs between them. Every gap is reported on the side that
// has it. Withholding each side's newest entries is the documented limit:
// each history then looks whole.
func TestLyingRelayServesTwoHistories(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	a := write(t, p.aj, "alex: one", "alex: two", "alex: three")
	s := write(t, p.sj, "sam: one", "sam: two", "sam: three")
	p.toAlex(servertest.Drop(entries(s[1])))
	p.toSam(servertest.Drop(entries(a[1])))
	mustSync(t, p.aj)
	mustSync(t, p.sj)
	mustSync(t, p.aj)
	same(t, "alex reads", texts(t, p.aj), "alex: one", "alex: two", "alex: three", "sam: one", "sam: three")
	same(t, "sam reads", texts(t, p.sj), "alex: one", "alex: three", "sam: one", "sam: two", "sam: three")
	same(t, "alex's missing", gaps(status(t, p.aj)), missingFrom(samsDevice, 1))
	same(t, "sam's missing", gaps(status(t, p.sj)), missingFrom(alexsDevice, 1))

	// Each side's newest, withheld from the other: both look whole.
	na := write(t, p.aj, "alex: four")
	ns := write(t, p.sj, "sam: four")
	p.toAlex(servertest.Then(servertest.Later(entries(s[1])), servertest.Drop(entries(ns...))))
	p.toSam(servertest.Then(servertest.Later(entries(a[1])), servertest.Drop(entries(na...))))
	mustSync(t, p.aj)
	mustSync(t, p.sj)
	mustSync(t, p.aj)
	same(t, "alex reads", texts(t, p.aj), "alex: one", "alex: two", "alex: three", "sam: one", "sam: two", "sam: three", "alex: four")
	same(t, "sam reads", texts(t, p.sj), "alex: one", "alex: two", "alex: three", "sam: one", "sam: two", "sam: three", "sam: four")
	clean(t, "alex", p.aj)
	replayed(t, "sam", p.sj)
}

// A blob's body moved under another blob's header (Sam's first entry's
// ciphertext served as Sam's second) opens as neither: it is named as
// changed on the way (not as waiting to be readable), the real second
// entry is reported missing, and the first is not shown twice.
func TestLyingRelayMovesABodyUnderAnotherHeader(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	s := write(t, p.sj, "sam: one", "sam: two", "sam: three")
	mustSync(t, p.sj)
	first, second := entries(s[0]), entries(s[1])
	p.toAlex(func(_ protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		i, k := slices.IndexFunc(log, first), slices.IndexFunc(log, second)
		moved := append(slices.Clone(log[k].Blob[:protocol.HeaderSize]), log[i].Blob[protocol.HeaderSize:]...)
		log[k] = server.StoredBlob{Blob: moved}
		return log
	})
	r := mustSync(t, p.aj)
	same(t, "new for alex", newTexts(r), "sam: one", "sam: three")
	same(t, "alex reads", texts(t, p.aj), "sam: one", "sam: three")
	st := status(t, p.aj)
	same(t, "alex's missing", gaps(st), missingFrom(samsDevice, 1))
	if st.Changed != 1 || st.Unreadable != 0 {
		t.Fatalf("alex counts %d changed and %d unreadable, want 1 changed (the moved body)", st.Changed, st.Unreadable)
	}
	same(t, "alex's warnings", shown(st), fmt.Sprintf("relay-changed x1 @%d", p.end(t, p.aj.ID())-1))
}

// Each way a relay can change an entry meant for this device (a byte of
// its ciphertext, this device's slot, its header) makes it fail
// authentication: it is never shown, and status names it as changed on the
// way, with a kept warning, rather than as something that opens later.
func TestLyingRelayChangesAnEntry(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		change func(p *lyingRelay, blob []byte)
	}{
		{"a byte of the ciphertext", func(_ *lyingRelay, blob []byte) { blob[len(blob)-3] ^= 0x20 }},
		// The last byte of the seq, just before prev.
		{"the header's seq", func(_ *lyingRelay, blob []byte) { blob[protocol.HeaderSize-32-1] ^= 1 }},
		{"this device's slot", func(p *lyingRelay, blob []byte) {
			e, err := protocol.ParseEntry(blob)
			if err != nil {
				panic(err)
			}
			for i, r := range e.Recipients {
				if r.KeyID == crypto.KeyID(p.alex.Device.BoxPublic) {
					blob[protocol.HeaderSize+protocol.NonceSize+1+i*protocol.RecipientSize+protocol.RecipientSize-1] ^= 1
				}
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := lyingPair(t)
			s := write(t, p.sj, "sam: what I meant")
			mustSync(t, p.sj)
			p.toAlex(servertest.Replace(entries(s...), func(blob []byte) []byte {
				c.change(p, blob)
				return blob
			}))
			if r := mustSync(t, p.aj); len(r.New) != 0 {
				t.Fatalf("a changed entry was shown: %q", newTexts(r))
			}
			if got := texts(t, p.aj); len(got) != 0 {
				t.Fatalf("alex reads %q", got)
			}
			st := status(t, p.aj)
			if st.Changed != 1 || st.Unreadable != 0 {
				t.Fatalf("alex's status: changed %d, unreadable %d; want 1 changed", st.Changed, st.Unreadable)
			}
			same(t, "alex's warnings", shown(st), fmt.Sprintf("relay-changed x1 @%d", p.end(t, p.aj.ID())))
			// A second sync counts nothing again.
			mustSync(t, p.aj)
			same(t, "alex's warnings", shown(status(t, p.aj)), fmt.Sprintf("relay-changed x1 @%d", p.end(t, p.aj.ID())))
		})
	}
}

// A blob moved from another journal the two share is set aside with a
// kept warning; with its header rewritten to this journal it does not
// open. Either way it shows in neither journal as something it is not.
func TestLyingRelayMovesABlobToAnotherJournal(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	ctx := ctxFor(t)
	aj2, err := p.alex.CreateJournal(ctx, p.relay.URL(), "a second journal")
	if err != nil {
		t.Fatal(err)
	}
	defer aj2.Close()
	code, _, err := aj2.Invite(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	sj2, err := p.sam.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	defer sj2.Close()
	mustSync(t, aj2)
	other := write(t, sj2, "sam: only for the second journal")
	mustSync(t, sj2)
	var raw []byte
	p.liar.Serve(func(j protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		if i := slices.IndexFunc(log, entries(other...)); j == aj2.ID() && i >= 0 {
			raw = log[i].Blob
		}
		return log
	})
	mustSync(t, aj2) // the liar sees the blob go by
	if raw == nil {
		t.Fatal("the second journal's entry is not on the relay")
	}
	retitled := slices.Clone(raw)
	id := p.aj.ID()
	copy(retitled[2:18], id[:])
	p.toAlex(servertest.In(p.aj.ID(), servertest.Inject(p.end(t, p.aj.ID()), raw, retitled)))

	if r := mustSync(t, p.aj); len(r.New) != 0 {
		t.Fatalf("a moved blob surfaced as new: %q", newTexts(r))
	}
	if got := texts(t, p.aj); len(got) != 0 {
		t.Fatalf("alex's first journal reads %q", got)
	}
	st := status(t, p.aj)
	end := p.end(t, p.aj.ID())
	same(t, "alex's warnings", shown(st), fmt.Sprintf("relay-bad-item x1 @%d", end+1), fmt.Sprintf("relay-changed x1 @%d", end+2))
	if st.Changed != 1 || st.Unreadable != 0 || len(st.Missing) != 0 {
		t.Fatalf("alex's status: changed %d (want 1: the retitled copy), unreadable %d, missing %+v", st.Changed, st.Unreadable, st.Missing)
	}
	same(t, "alex's second journal", texts(t, aj2), "sam: only for the second journal")
}

// An entry from a device that is in no one's roster, even one properly
// sealed to both partners, is never shown; nor is one that claims Sam's
// device as its author but was sealed by someone else; nor does a join
// sealed under an invite the relay made up add anyone.
func TestLyingRelayInjectsAStranger(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	write(t, p.sj, "sam: real")
	mustSync(t, p.sj)
	mustSync(t, p.aj)
	before := texts(t, p.aj)

	mallory := newAccount(t, "mallory")
	var boxes [][32]byte
	ms, err := p.aj.Members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for _, c := range client.MemberDevices(m) {
			boxes = append(boxes, c.Box)
		}
	}
	payload, _ := json.Marshal(client.Payload{V: 1, Kind: client.KindEntry, Created: time.Now(), Text: "mallory: believe me"})
	seal := func(author [32]byte, seq uint64) []byte {
		h := protocol.Header{Kind: protocol.KindEntry, Journal: p.aj.ID(), Author: author, Seq: seq, Prev: protocol.BlobID{1}}
		if seq == 1 {
			h.Prev = protocol.BlobID{}
		}
		b, _, err := crypto.SealEntry(rand.Reader, mallory.Device, h, boxes, payload)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	stranger := seal(mallory.Device.SignKey(), 1)
	asSam := seal(p.sam.Device.SignKey(), 9)
	keys, err := crypto.DeriveInvite([32]byte{7: 1})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(map[string]any{"v": 1, "name": "mallory", "identity": mallory.Identity.Public, "devices": [][]byte{mallory.Cert.Raw}})
	join, err := crypto.SealJoin(rand.Reader, keys, protocol.Header{Kind: protocol.KindJoin, Journal: p.aj.ID(), Author: mallory.Device.SignKey(), Seq: 1}, rec)
	if err != nil {
		t.Fatal(err)
	}
	at := p.end(t, p.aj.ID())
	p.liar.Serve(servertest.Inject(at, stranger, asSam, join))

	const lateJoin = "late-join x1"
	for _, x := range []struct {
		who      string
		j        *client.Journal
		changed  int
		warnings []string
	}{
		// Alex cannot open either forged entry; the one naming Sam's
		// device has a slot for Alex that does not open from Sam's
		// device, and is named as such.
		{"alex", p.aj, 1, []string{lateJoin, fmt.Sprintf("relay-changed x1 @%d", at+2)}},
		// Sam sets aside the one that claims Sam's own device.
		{"sam", p.sj, 0, []string{fmt.Sprintf("relay-forged-own x1 @%d", at+2), lateJoin}},
	} {
		if r := mustSync(t, x.j); len(r.New) != 0 || len(r.Joined) != 0 {
			t.Fatalf("%s: forged blobs surfaced: new %q, joined %q", x.who, newTexts(r), r.Joined)
		}
		same(t, x.who+" reads", texts(t, x.j), before...)
		if ms, _ := x.j.Members(); len(ms) != 2 {
			t.Fatalf("%s has %d members", x.who, len(ms))
		}
		st := status(t, x.j)
		same(t, x.who+"'s warnings", shown(st), x.warnings...)
		// The forged entry from a device outside the roster is counted
		// as such; one claiming a known device does not authenticate.
		if st.Unreadable != 0 || st.Changed != x.changed || st.Strangers != 1 || len(st.Missing) != 0 {
			t.Fatalf("%s's status: unreadable %d, changed %d (want %d), from strangers %d (want 1), missing %+v", x.who, st.Unreadable, st.Changed, x.changed, st.Strangers, st.Missing)
		}
	}
}

// Before the partner joins, the relay (which holds the invite's auth hash
// but not its key) answers the invite with a join of its own: it is
// refused with a kept warning, and the real partner still joins and reads
// the history.
func TestLyingRelayAnswersAnInvite(t *testing.T) {
	t.Parallel()
	relay, liar := servertest.NewLyingServer(t)
	ctx := ctxFor(t)
	alex, sam, mallory := newAccount(t, "alex"), newAccount(t, "sam"), newAccount(t, "mallory")
	aj, err := alex.CreateJournal(ctx, relay.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer aj.Close()
	write(t, aj, "alex: from before you joined")
	code, _, err := aj.Invite(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	ic, err := protocol.ParseInviteCode(code)
	if err != nil {
		t.Fatal(err)
	}
	real, _ := crypto.DeriveInvite(ic.Secret)
	guess, _ := crypto.DeriveInvite([32]byte{1})
	guess.AuthHash = real.AuthHash // what the relay knows
	rec, _ := json.Marshal(map[string]any{"v": 1, "name": "mallory", "identity": mallory.Identity.Public, "devices": [][]byte{mallory.Cert.Raw}})
	join, err := crypto.SealJoin(rand.Reader, guess, protocol.Header{Kind: protocol.KindJoin, Journal: aj.ID(), Author: mallory.Device.SignKey(), Seq: 1}, rec)
	if err != nil {
		t.Fatal(err)
	}
	n, err := relay.Store().LastSeq(ctx, aj.ID())
	if err != nil {
		t.Fatal(err)
	}
	liar.Serve(servertest.Inject(int(n), join))
	if r := mustSync(t, aj); len(r.Joined) != 0 {
		t.Fatalf("the relay's join was accepted: %q", r.Joined)
	}
	// The forged join went in before Alex's own entry, which then came
	// at another position than the relay had acknowledged it at.
	same(t, "alex's warnings", shown(status(t, aj)), "relay-replayed x1 @2", "join-unopened x1")

	sj, err := sam.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	defer sj.Close()
	if r := mustSync(t, aj); !slices.Equal(r.Joined, []string{"sam"}) {
		t.Fatalf("sam's real join: %q", r.Joined)
	}
	mustSync(t, sj)
	same(t, "sam reads", texts(t, sj), "alex: from before you joined")
	if ms, _ := aj.Members(); len(ms) != 2 {
		t.Fatalf("alex has %d members", len(ms))
	}
}

// The watcher is lied to the same way: a dropped entry is reported once a
// later one arrives, live.
func TestLyingRelayDropsWhileWatching(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	ctx, cancel := context.WithCancel(ctxFor(t))
	events := make(chan client.Event)
	done := make(chan error, 1)
	go func() { done <- p.aj.Watch(ctx, send(ctx, events)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, events, func(e client.Event) bool { return e.Connected })

	s := write(t, p.sj, "sam: one", "sam: two", "sam: three")
	p.toAlex(servertest.Drop(entries(s[1])))
	mustSync(t, p.sj)
	var got []string
	waitFor(t, events, func(e client.Event) bool {
		for _, n := range e.New {
			got = append(got, n.Text)
		}
		return len(got) >= 2
	})
	same(t, "alex was shown", got, "sam: one", "sam: three")
	same(t, "alex's missing", gaps(status(t, p.aj)), missingFrom(samsDevice, 1))
}

// The relay cannot make a fork (two authentic blobs at one seq of one
// device's chain); only that device can, when its home is copied or
// restored from a backup. A relay that then shows a partner one branch's
// blob at a seq and a later blob linking to the other branch is caught, as
// is one that shows both branches.
func TestForkedDeviceIsReported(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	write(t, p.sj, "sam: one")
	mustSync(t, p.sj)
	mustSync(t, p.aj)

	// A copy of Sam's home, as a restored backup would be.
	copyHome := t.TempDir()
	if err := os.CopyFS(copyHome, os.DirFS(p.sam.Home.Dir)); err != nil {
		t.Fatal(err)
	}
	sam2, err := client.Unlock(client.Home{Dir: copyHome}, []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	sj2, err := sam2.OpenJournal(p.sj.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer sj2.Close()
	a := write(t, p.sj, "sam: branch a")
	write(t, sj2, "sam: branch b")
	write(t, p.sj, "sam: after branch a")
	mustSync(t, p.sj)
	mustSync(t, sj2)

	// Alex is shown branch b and the entry that follows branch a.
	p.toAlex(servertest.Drop(entries(a...)))
	mustSync(t, p.aj)
	same(t, "alex reads", texts(t, p.aj), "sam: one", "sam: branch b", "sam: after branch a")
	forked := forkedFrom(samsDevice)
	same(t, "alex's missing", gaps(status(t, p.aj)), missingFrom(samsDevice, 1), forked)

	// Both branches.
	p.toAlex(servertest.Later(entries(a...)))
	mustSync(t, p.aj)
	same(t, "alex reads", texts(t, p.aj), "sam: one", "sam: branch a", "sam: branch b", "sam: after branch a")
	same(t, "alex's missing", gaps(status(t, p.aj)), forked)
}

// The documented limit of slot stripping: the recipient table is outside
// the content hash, so a copy without this device's slot is the same entry
// but cannot be read here, and when it is the author's newest entry nothing
// later vouches for the slot (to_since; TestStrippedSlotIsChangedNotLate
// covers an entry that something does). Once the whole copy arrives it
// opens, once, and nothing is left counted as unreadable.
func TestLyingRelayStripsASlot(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	s := write(t, p.sj, "sam: for both of us")
	mustSync(t, p.sj)
	alexKey := crypto.KeyID(p.alex.Device.BoxPublic)
	var whole []byte
	strip := func(blob []byte) []byte {
		whole = blob
		e, err := protocol.ParseEntry(blob)
		if err != nil {
			t.Fatal(err)
		}
		out := append([]byte(nil), blob[:protocol.HeaderSize+protocol.NonceSize]...)
		out = append(out, 0)
		for i, r := range e.Recipients {
			if r.KeyID != alexKey {
				at := protocol.HeaderSize + protocol.NonceSize + 1 + i*protocol.RecipientSize
				out = append(out, blob[at:at+protocol.RecipientSize]...)
				out[protocol.HeaderSize+protocol.NonceSize]++
			}
		}
		return append(out, e.Ciphertext...)
	}
	p.toAlex(servertest.Replace(entries(s...), strip))
	if r := mustSync(t, p.aj); len(r.New) != 0 {
		t.Fatalf("a copy without alex's slot opened: %q", newTexts(r))
	}
	// Without a slot for this device and with no later entry vouching for
	// one, the copy looks like an entry not sealed to it (yet): counted as
	// waiting, not as changed (limit 4.1).
	if st := status(t, p.aj); st.Unreadable != 1 || st.Changed != 0 || len(st.Missing) != 0 {
		t.Fatalf("alex's status with the stripped copy: unreadable %d, changed %d, missing %+v", st.Unreadable, st.Changed, st.Missing)
	}
	p.toAlex(servertest.Then(servertest.Replace(entries(s...), strip), servertest.Inject(p.end(t, p.aj.ID()), whole)))
	same(t, "new for alex", newTexts(mustSync(t, p.aj)), "sam: for both of us")
	same(t, "alex reads", texts(t, p.aj), "sam: for both of us")
	clean(t, "alex", p.aj)
}

// A documented limit: a relay that withholds the partner's join from the
// inviter keeps the inviter from learning that anyone joined. Nothing is
// shown that should not be and nothing is lost; each side sees something
// it cannot read yet, and the inviter's client still says the partner has
// not joined, which the two can notice when they compare safety numbers.
// Once the join is delivered, everything opens.
func TestLyingRelayWithholdsAJoin(t *testing.T) {
	t.Parallel()
	isJoin := ofKind(protocol.KindJoin)
	p := joinWithheld(t, (*lyingRelay).toAlex, isJoin)
	aj, sj := p.aj, p.sj
	write(t, sj, "sam: hello")
	mustSync(t, sj)
	if r := mustSync(t, aj); len(r.Joined) != 0 || len(r.New) != 0 {
		t.Fatalf("alex, without sam's join: %+v", r)
	}
	// Sam's entry comes from a device Alex's roster does not have.
	if st := status(t, aj); st.Partner != "" || st.Strangers != 1 || st.Unreadable != 0 {
		t.Fatalf("alex's status: partner %q, unreadable %d, from strangers %d", st.Partner, st.Unreadable, st.Strangers)
	}
	if _, _, err := aj.SafetyNumber(); !errors.Is(err, client.ErrNotPaired) {
		t.Fatalf("alex's safety number without a partner: %v", err)
	}
	same(t, "alex reads", texts(t, aj), "alex: from before you joined")
	same(t, "sam reads", texts(t, sj), "sam: hello")
	if st := status(t, sj); st.Unreadable != 1 {
		t.Fatalf("sam's status: unreadable %d, want 1 (alex's history, not re-boxed yet)", st.Unreadable)
	}

	p.toAlex(servertest.Later(isJoin))
	if r := mustSync(t, aj); !slices.Equal(r.Joined, []string{"sam"}) || !slices.Equal(newTexts(r), []string{"sam: hello"}) {
		t.Fatalf("alex, once the join arrives: joined %q, new %q", r.Joined, newTexts(r))
	}
	mustSync(t, sj)
	same(t, "sam reads", texts(t, sj), "alex: from before you joined", "sam: hello")
	clean(t, "alex", aj)
	clean(t, "sam", sj)
}

// retractedOnRelay has Sam write an entry, revise it and retract it; Sam's
// sync purges both from the relay. It returns the two entries and, by
// chain id, the bytes the relay held before the purge.
func retractedOnRelay(t *testing.T, p *lyingRelay) (x, rev client.Entry, original map[string][]byte) {
	t.Helper()
	x = write(t, p.sj, "sam: words to take back")[0]
	rev, _, err := p.sj.Revise(x.ID, client.Payload{Text: "sam: second thoughts, also taken back"})
	if err != nil {
		t.Fatal(err)
	}
	original = make(map[string][]byte)
	p.toSam(func(_ protocol.JournalID, log []server.StoredBlob) []server.StoredBlob {
		for _, b := range log {
			if !b.Purged {
				original[protocol.ChainID(b.Blob).String()] = slices.Clone(b.Blob)
			}
		}
		return log
	})
	mustSync(t, p.sj) // the liar sees the blobs go by
	p.toSam(nil)
	if original[x.ID] == nil || original[rev.ID] == nil {
		t.Fatal("the entry and its revision are not on the relay")
	}
	if _, _, err := p.sj.Retract(x.ID); err != nil {
		t.Fatal(err)
	}
	mustSync(t, p.sj)
	return x, rev, original
}

// noWords fails if j shows the words of x or its revision, or does not
// show x as retracted.
func noWords(t *testing.T, j *client.Journal, x client.Entry) {
	t.Helper()
	es, err := j.Entries()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range es {
		if strings.Contains(e.Text, "taken back") || strings.Contains(e.Text, "take back") || len(e.History) > 0 {
			t.Fatalf("retracted words are shown: %+v", e)
		}
		if e.ID == x.ID {
			found = e.Retracted != nil
		}
	}
	if !found {
		t.Fatal("the entry is not shown as retracted")
	}
}

// A retraction served before the entry it retracts: until the (purged)
// entry arrives, the retraction stands as its own tombstone and the gap is
// reported; then the gap closes. The words are never shown.
func TestLyingRelayDeliversARetractionFirst(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	x, rev, _ := retractedOnRelay(t, p)
	p.toAlex(servertest.Drop(entries(x, rev)))
	mustSync(t, p.aj)
	es, err := p.aj.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Kind != client.KindRetraction || es[0].Hidden || es[0].Ref != x.ID {
		t.Fatalf("alex, with only the retraction: %+v", es)
	}
	same(t, "alex's missing", gaps(status(t, p.aj)), missingFrom(samsDevice, 2))

	p.toAlex(servertest.Later(entries(x, rev)))
	mustSync(t, p.aj)
	clean(t, "alex", p.aj)
	if es, _ := p.aj.Entries(); len(es) != 1 || es[0].Kind != client.KindRetraction {
		t.Fatalf("alex, with the purged records: %+v", es)
	}
}

// The documented limit of purge: a relay that ignores it serves the
// ciphertext to a partner who had not received it yet. The retraction
// still hides the words, and the entry shows as retracted.
func TestLyingRelayIgnoresAPurge(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	x, rev, original := retractedOnRelay(t, p)
	p.toAlex(servertest.Replace(entries(x, rev), func(purged []byte) []byte {
		_, chain, err := protocol.ParsePurged(purged)
		if err != nil {
			t.Fatalf("the relay did not purge: %v", err)
		}
		return original[chain.String()]
	}))
	mustSync(t, p.aj)
	noWords(t, p.aj, x)
	clean(t, "alex", p.aj)
}

// since returns a match for the blobs the relay stored after its first n,
// by chain id, so a view can withhold them and later deliver them.
func (p *lyingRelay) since(t *testing.T, n int) servertest.Match {
	t.Helper()
	bs, err := p.relay.Store().Read(ctxFor(t), p.aj.ID(), uint64(n), 1024)
	if err != nil || len(bs) == 0 {
		t.Fatalf("nothing stored after %d: %v", n, err)
	}
	var ms []servertest.Match
	for _, b := range bs {
		ms = append(ms, servertest.ChainIs(protocol.ChainID(b.Blob).String()))
	}
	return servertest.AnyOf(ms...)
}

// differ fails unless the two partners' compare codes differ.
func differ(t *testing.T, p *lyingRelay) {
	t.Helper()
	if a, s := compareCode(t, p.aj), compareCode(t, p.sj); a.Code == s.Code {
		t.Fatalf("the compare codes agree (%s) while the relay withholds something", a.Code)
	}
}

// A relay that withholds the grant re-boxing the history written before
// the partner joined: the partner is told those items cannot be read yet,
// which is true; once a later item from the author arrives the grant is
// reported as not arrived, and the compare codes differ meanwhile. Once it
// is delivered, everything opens.
func TestLyingRelayWithholdsAGrant(t *testing.T) {
	t.Parallel()
	isGrant := ofKind(protocol.KindGrant)
	p := joinWithheld(t, (*lyingRelay).toSam, isGrant)
	aj, sj := p.aj, p.sj
	mustSync(t, aj) // alex re-boxes its history for sam: the grant
	mustSync(t, sj)
	if got := texts(t, sj); len(got) != 0 {
		t.Fatalf("sam reads %q without the grant", got)
	}
	st := status(t, sj)
	if st.Unreadable != 1 || st.Changed != 0 || len(st.Missing) != 0 {
		t.Fatalf("sam's status without the grant: unreadable %d, changed %d, missing %+v", st.Unreadable, st.Changed, st.Missing)
	}
	differ(t, p)

	write(t, aj, "alex: after you joined")
	mustSync(t, aj)
	mustSync(t, sj)
	same(t, "sam reads", texts(t, sj), "alex: after you joined")
	// Alex's chain: the entry from before (held, not readable), the
	// grant (withheld), the entry after. The chain from the entry after
	// stops at the grant, so neither earlier item is accounted for.
	same(t, "sam's missing", gaps(status(t, sj)), missingFrom(alexsDevice, 2))

	p.toSam(servertest.Later(isGrant))
	mustSync(t, sj)
	same(t, "sam reads", texts(t, sj), "alex: from before you joined", "alex: after you joined")
	clean(t, "sam", sj)
	if a, s := compareCode(t, aj), compareCode(t, sj); a.Code != s.Code {
		t.Fatalf("once the grant arrives: alex %s, sam %s", a.Code, s.Code)
	}
}

// A relay that withholds a device removal (the threat model says it can,
// 4.3): the partner is not told the device was removed, keeps sealing new
// entries to it, and lists it among the devices it heard from as current.
// What gives it away: the compare codes differ, and once the person who
// removed it writes again, their record is reported as not arrived. Once
// delivered, the partner is told and stops sealing to it.
func TestLyingRelayWithholdsADeviceRemoval(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	ctx := ctxFor(t)
	phone, lj := linkDevice(t, p.alex, "phone")
	mustSync(t, lj)
	mustSync(t, p.sj)
	mustSync(t, p.aj)
	n := p.end(t, p.aj.ID())
	if _, _, err := p.alex.RemoveDevice(ctx, "phone"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, p.aj)
	removal := p.since(t, n)
	p.toSam(servertest.Drop(removal))

	if r := mustSync(t, p.sj); len(r.Notices) != 0 {
		t.Fatalf("sam was told %+v", r.Notices)
	}
	clean(t, "sam", p.sj) // nothing in-band shows it
	heard := func() []string {
		var out []string
		for _, h := range status(t, p.sj).PartnerDevices {
			out = append(out, fmt.Sprintf("%s removed=%v", h.Device, h.Removed))
		}
		return out
	}
	same(t, "sam heard from", heard(), "alex-device removed=false", "phone removed=false")
	e := write(t, p.sj, "sam: written while the removal is withheld")[0]
	mustSync(t, p.sj)
	if !sealedTo(t, p.relay, p.sj.ID(), e.ID, phone.Device.BoxPublic) {
		t.Fatal("sam did not seal to the phone; the test proves nothing")
	}
	mustSync(t, p.aj)
	differ(t, p)

	write(t, p.aj, "alex: later")
	mustSync(t, p.aj)
	mustSync(t, p.sj)
	same(t, "sam's missing", gaps(status(t, p.sj)), missingFrom(alexsDevice, 1))

	p.toSam(servertest.Later(removal))
	r := mustSync(t, p.sj)
	if len(r.Notices) != 1 || r.Notices[0].Kind != client.NoticeDeviceRemoved {
		t.Fatalf("sam, once the removal arrives, was told %+v", r.Notices)
	}
	same(t, "sam heard from", heard(), "alex-device removed=false", "phone removed=true")
	replayed(t, "sam", p.sj)
	e = write(t, p.sj, "sam: after the removal arrived")[0]
	mustSync(t, p.sj)
	if sealedTo(t, p.relay, p.sj.ID(), e.ID, phone.Device.BoxPublic) {
		t.Fatal("sam still seals to the removed phone")
	}
}

// A relay that withholds a partner's leave record (4.1, 4.6): the other
// partner is not told, and keeps sealing to the devices of someone who
// left. Nothing later from the one who left can reveal it, since they
// write nothing more; status says when their device was last heard from,
// and the compare codes differ. Once delivered, the partner is told.
func TestLyingRelayWithholdsALeave(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	s := write(t, p.sj, "sam: one")[0]
	mustSync(t, p.sj)
	mustSync(t, p.aj)
	n := p.end(t, p.aj.ID())
	if err := p.sj.Leave(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	leave := p.since(t, n)
	p.toAlex(servertest.Drop(leave))

	if r := mustSync(t, p.aj); len(r.Notices) != 0 {
		t.Fatalf("alex was told %+v", r.Notices)
	}
	clean(t, "alex", p.aj)
	st := status(t, p.aj)
	if st.PartnerLeft != nil || len(st.PartnerDevices) != 1 || st.PartnerDevices[0].Chain != s.ID {
		t.Fatalf("alex's status: left %v, last heard %+v (want sam: one)", st.PartnerLeft, st.PartnerDevices)
	}
	e := write(t, p.aj, "alex: to someone who has left")[0]
	mustSync(t, p.aj)
	if !sealedTo(t, p.relay, p.aj.ID(), e.ID, p.sam.Device.BoxPublic) {
		t.Fatal("alex did not seal to sam's device; the test proves nothing")
	}
	differ(t, p)

	p.toAlex(servertest.Later(leave))
	r := mustSync(t, p.aj)
	if len(r.Notices) != 1 || r.Notices[0].Kind != client.NoticePartnerLeft {
		t.Fatalf("alex, once the leave arrives, was told %+v", r.Notices)
	}
	if st := status(t, p.aj); st.PartnerLeft == nil {
		t.Fatal("alex's status does not say sam left")
	}
}

// No false alarm for a device linked later: the partner's entries from
// before it was linked carry no slot for it and nothing vouches for one
// (to_since starts at the first entry sealed to it). While the relay holds
// back the grants that re-box them they wait, counted as unreadable and
// never as changed on the way; once the grants arrive they open.
func TestLyingRelayWithholdsGrantsFromALinkedDevice(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	write(t, p.aj, "alex: before the laptop", "alex: also before")
	mustSync(t, p.aj)
	mustSync(t, p.sj)
	isGrant := ofKind(protocol.KindGrant)
	p.liar.Serve(servertest.Drop(isGrant))
	_, lj := linkDevice(t, p.sam, "laptop")
	mustSync(t, p.sj)
	mustSync(t, p.aj) // alex learns of the laptop and re-boxes for it
	write(t, p.aj, "alex: after the laptop")
	mustSync(t, p.aj)
	mustSync(t, lj)
	same(t, "the laptop reads", texts(t, lj), "alex: after the laptop")
	if st := status(t, lj); st.Changed != 0 || st.Unreadable < 2 || hasShown(st, client.NoticeRelayChanged) {
		t.Fatalf("the laptop without the grants: changed %d, unreadable %d, notices %+v", st.Changed, st.Unreadable, shown(st))
	}
	p.liar.Serve(servertest.Later(isGrant))
	mustSync(t, lj)
	same(t, "the laptop reads", texts(t, lj), "alex: before the laptop", "alex: also before", "alex: after the laptop")
	if st := status(t, lj); st.Changed != 0 || st.Unreadable != 0 || hasShown(st, client.NoticeRelayChanged) {
		t.Fatalf("the laptop with the grants: changed %d, unreadable %d, notices %+v", st.Changed, st.Unreadable, shown(st))
	}
}

// A relay that skipped entries and then serves them in their place, below
// what this device has already been sent, is asked again at each sync:
// what is held comes again without being recorded again, and the gap
// closes when the entries arrive, shown as new.
func TestLyingRelaySkipsThenServesInPlace(t *testing.T) {
	t.Parallel()
	p := lyingPair(t)
	s := write(t, p.sj, "sam: one", "sam: two", "sam: three")
	mustSync(t, p.sj)

	p.toAlex(servertest.Drop(entries(s[1])))
	same(t, "new for alex", newTexts(mustSync(t, p.aj)), "sam: one", "sam: three")
	same(t, "alex's missing", gaps(status(t, p.aj)), missingFrom(samsDevice, 1))

	// Asked again while the relay still skips it: nothing new, nothing
	// recorded twice.
	logFile := filepath.Join(p.alex.Home.Dir, "journals", p.aj.ID().String(), "log")
	before := fileSize(t, logFile)
	same(t, "new for alex", newTexts(mustSync(t, p.aj)))
	if after := fileSize(t, logFile); after != before {
		t.Errorf("asking again recorded %d more bytes of what was held", after-before)
	}

	p.liar.Honest()
	same(t, "new for alex", newTexts(mustSync(t, p.aj)), "sam: two")
	same(t, "alex reads", texts(t, p.aj), "sam: one", "sam: two", "sam: three")
	clean(t, "alex", p.aj)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
