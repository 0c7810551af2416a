package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/client/clienttest"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// TestTwoPartnersEndToEnd drives the whole core flow over a real relay on
// 127.0.0.1 and then checks that no plaintext reached any disk: with a
// relay that speaks protocol version 2, and with one that speaks only
// version 1, which the client then speaks too.
func TestTwoPartnersEndToEnd(t *testing.T) {
	t.Parallel()
	for _, v := range []int{protocol.Version, protocol.Version1} {
		t.Run(fmt.Sprintf("relay speaks up to v%d", v), func(t *testing.T) {
			t.Parallel()
			testTwoPartnersEndToEnd(t, servertest.NewServerWithConfig(t, server.Config{MaxProtocolVersion: v}))
		})
	}
}

func testTwoPartnersEndToEnd(t *testing.T, relay *servertest.Server) {
	ctx := ctxFor(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")

	aj, err := alex.CreateJournal(ctx, relay.URL(), "starting again")
	if err != nil {
		t.Fatal(err)
	}
	defer aj.Close()
	// Written before Sam joins: Alex's client must re-box it for Sam.
	secrets := []string{"before you joined: I found the messages on a tuesday"}
	if _, err := aj.Write(client.Payload{Kind: client.KindEntry, Text: secrets[0]}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, aj)

	code, _, err := aj.Invite(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	sj, err := sam.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	defer sj.Close()
	// The code works once.
	if _, err := newAccount(t, "mallory").Join(ctx, code); !errors.Is(err, protocol.ErrInviteUnknown) {
		t.Fatalf("second redeem: %v, want ErrInviteUnknown", err)
	}

	if r := mustSync(t, aj); len(r.Joined) != 1 || r.Joined[0] != "sam" {
		t.Fatalf("alex did not learn that sam joined: %+v", r)
	}
	snA, _, err := aj.SafetyNumber()
	if err != nil {
		t.Fatal(err)
	}
	snS, _, err := sj.SafetyNumber()
	if err != nil || snA != snS {
		t.Fatalf("safety numbers differ: %q vs %q (%v)", snA, snS, err)
	}

	// The relay goes away; Alex writes a feeling entry anyway.
	relay.Stop()
	seven := 7
	secrets = append(secrets, "writing this while the relay is down; grief comes in waves")
	if _, err := aj.Write(client.Payload{Kind: client.KindEntry, Text: secrets[1], Feelings: []string{"grief"}, Intensity: &seven}); err != nil {
		t.Fatalf("offline write: %v", err)
	}
	if _, err := aj.Sync(ctx); !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("sync with relay down: %v, want ErrUnreachable", err)
	}
	if st, _ := aj.Status(); st.Outbox < 1 {
		t.Fatalf("outbox = %d after an offline write", st.Outbox)
	}
	relay.Start()

	mustSync(t, aj)
	mustSync(t, sj)
	got := texts(t, sj)
	if len(got) != 2 || got[0] != secrets[0] || got[1] != secrets[1] {
		t.Fatalf("sam reads %q, want %q", got, secrets)
	}
	es, _ := sj.Entries()
	if es[1].Author != "alex" || es[1].Mine || len(es[1].Feelings) != 1 || es[1].Feelings[0] != "grief" || *es[1].Intensity != 7 {
		t.Fatalf("feeling entry as sam sees it: %+v", es[1])
	}

	// A hard question, answered.
	secrets = append(secrets, "did you tell them about us?")
	q, err := aj.Write(client.Payload{Kind: client.KindQuestion, Text: secrets[2]})
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, aj)
	if r := mustSync(t, sj); len(r.New) != 1 || r.New[0].Kind != client.KindQuestion {
		t.Fatalf("sam's new entries: %+v", r.New)
	}
	if _, _, err := aj.Answer(q.Short, "answering my own question"); !errors.Is(err, client.ErrOwnQuestion) {
		t.Fatalf("alex answering own question: %v", err)
	}
	secrets = append(secrets, "yes, I did, and I am sorry")
	if _, _, err := sj.Answer(q.Short, secrets[3]); err != nil {
		t.Fatal(err)
	}
	mustSync(t, sj)
	mustSync(t, aj)
	es, _ = aj.Entries()
	var question, answer *client.Entry
	for i := range es {
		switch es[i].Kind {
		case client.KindQuestion:
			question = &es[i]
		case client.KindAnswer:
			answer = &es[i]
		}
	}
	if question == nil || answer == nil || !*question.Answered || answer.Ref != question.ID || answer.Text != secrets[3] || answer.Author != "sam" {
		t.Fatalf("alex's view of the question: %+v / %+v", question, answer)
	}
	for _, j := range []*client.Journal{aj, sj} {
		st, err := j.Status()
		if err != nil || st.Outbox != 0 || st.Unreadable != 0 || len(st.Missing) != 0 || len(shown(st)) != 0 {
			t.Fatalf("status after everything synced: %+v, %v", st, err)
		}
	}

	// No plaintext of any entry, and no passphrase, anywhere on disk.
	relay.Stop()
	needles := append([]string{pass}, secrets...)
	for _, dir := range []string{relay.DataDir(), alex.Home.Dir, sam.Home.Dir} {
		clienttest.AssertNoPlaintext(t, dir, needles)
	}
}

func TestWrongPassphrase(t *testing.T) {
	t.Parallel()
	a := newAccount(t, "alex")
	if _, err := client.Unlock(a.Home, []byte("not it")); !errors.Is(err, crypto.ErrWrongPassphrase) {
		t.Fatalf("unlock with wrong passphrase: %v", err)
	}
	if _, err := client.Unlock(a.Home, []byte(pass)); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if _, err := client.Init(a.Home, "again", "", []byte(pass), crypto.TestingKDF); !errors.Is(err, client.ErrHomeExists) {
		t.Fatalf("init over an existing home: %v", err)
	}
	fi, err := os.Stat(a.Home.KeyPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
}

// A watcher and a writer on the same home, as two terminals would be: the
// writer's entry is pushed by the watcher and arrives at the partner's
// watcher.
func TestWatchAndWriteOnOneHome(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)

	alexEvents := watchFrom(t, alex.Home)
	ctx, cancel := context.WithCancel(ctxFor(t))
	var watchers sync.WaitGroup
	defer watchers.Wait()
	defer cancel()
	samEvents := make(chan client.Event, 64)
	watchers.Go(func() { sj.Watch(ctx, send(ctx, samEvents)) })
	waitFor(t, samEvents, func(e client.Event) bool { return e.Connected })
	waitFor(t, alexEvents, func(e client.Event) bool { return e.Connected })

	// The "other terminal" writes; it never touches the network.
	if _, err := aj.Write(client.Payload{Kind: client.KindEntry, Text: "from the other terminal"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, samEvents, func(e client.Event) bool {
		return len(e.New) == 1 && e.New[0].Text == "from the other terminal"
	})
	// And Sam's reply arrives at Alex's watcher live.
	if _, err := sj.Write(client.Payload{Kind: client.KindEntry, Text: "I read it. I'm here."}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, alexEvents, func(e client.Event) bool {
		return len(e.New) == 1 && e.New[0].Text == "I read it. I'm here."
	})
}

// A writer on the home can tell that a watcher is connected and will send
// what it writes at once; once the watcher stops, it cannot.
func TestWriterKnowsAWatcherSends(t *testing.T) {
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, _, _ := pair(t, relay.URL(), alex, sam)
	if aj.Watched() {
		t.Fatal("watched before any watcher ran")
	}
	a, err := client.Unlock(alex.Home, []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	wj, err := a.Current("")
	if err != nil {
		t.Fatal(err)
	}
	defer wj.Close()
	ctx, cancel := context.WithCancel(ctxFor(t))
	events := make(chan client.Event, 64)
	done := make(chan struct{})
	go func() { defer close(done); wj.Watch(ctx, send(ctx, events)) }()
	waitFor(t, events, func(e client.Event) bool { return e.Connected })
	if !aj.Watched() {
		t.Fatal("a connected watcher is not seen")
	}
	cancel()
	<-done
	if aj.Watched() {
		t.Fatal("a stopped watcher is still seen")
	}
}

// watchFrom starts `sync --watch` on home as a second process would, with
// its own Account and Journal, and returns its events. It stops when the
// test ends.
func watchFrom(t *testing.T, home client.Home) <-chan client.Event {
	t.Helper()
	a, err := client.Unlock(home, []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	j, err := a.Current("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctxFor(t))
	events := make(chan client.Event, 64)
	var wg sync.WaitGroup
	wg.Go(func() { j.Watch(ctx, send(ctx, events)) })
	t.Cleanup(func() { cancel(); wg.Wait(); j.Close() })
	return events
}

// send returns an event callback that never blocks a watcher after ctx ends.
func send(ctx context.Context, ch chan<- client.Event) func(client.Event) {
	return func(e client.Event) {
		select {
		case ch <- e:
		case <-ctx.Done():
		}
	}
}

func waitFor(t *testing.T, ch <-chan client.Event, ok func(client.Event) bool) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-ch:
			if ok(e) {
				return
			}
		case <-timeout:
			t.Fatal("the expected event did not arrive within 30s")
		}
	}
}

// The watcher reconnects by itself when the relay comes back.
func TestWatchReconnects(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	ctx, cancel := context.WithCancel(ctxFor(t))
	var watchers sync.WaitGroup
	defer watchers.Wait()
	defer cancel()
	events := make(chan client.Event, 64)
	watchers.Go(func() { sj.Watch(ctx, send(ctx, events)) })
	waitFor(t, events, func(e client.Event) bool { return e.Connected })
	relay.Stop()
	waitFor(t, events, func(e client.Event) bool { return e.Disconnected != nil })
	relay.Start()
	waitFor(t, events, func(e client.Event) bool { return e.Connected })
	if _, err := aj.Write(client.Payload{Kind: client.KindEntry, Text: "after the outage"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, aj)
	waitFor(t, events, func(e client.Event) bool { return len(e.New) == 1 && e.New[0].Text == "after the outage" })
}

func TestBadInviteCodes(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, err := alex.CreateJournal(ctxFor(t), relay.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer aj.Close()
	code, _, err := aj.Invite(ctxFor(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sam.Join(ctxFor(t), code[:len(code)-4]); !errors.Is(err, protocol.ErrBadInviteCode) {
		t.Fatalf("truncated code: %v", err)
	}
	if _, err := alex.Join(ctxFor(t), code); err == nil {
		t.Fatal("alex joined her own journal with her own invite")
	}
	// A wrong secret with the right journal and relay is refused by the relay.
	c, _ := protocol.ParseInviteCode(code)
	c.Secret[0] ^= 1
	if _, err := sam.Join(ctxFor(t), c.String()); !errors.Is(err, protocol.ErrInviteUnknown) {
		t.Fatalf("forged code: %v", err)
	}
	if ids, _ := sam.Journals(); len(ids) != 0 {
		t.Fatalf("failed joins left journals behind: %v", ids)
	}
	if _, err := sam.Join(ctxFor(t), strings.ToUpper(code)); err != nil {
		t.Fatalf("the real code, upper-cased: %v", err)
	}
}

// TestWatchPurgesARetraction: a retraction written in one terminal while
// `sync --watch` runs in another is sent by the watcher, which then asks
// the relay to drop the retracted ciphertext, as a plain sync does.
func TestWatchPurgesARetraction(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	x, err := aj.Write(client.Payload{Kind: client.KindEntry, Text: "words I want to take back"})
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, aj)
	mustSync(t, sj)

	events := watchFrom(t, alex.Home)
	waitFor(t, events, func(e client.Event) bool { return e.Connected })

	if _, _, err := aj.Retract(x.Short); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, func(e client.Event) bool { return e.Pushed > 0 })
	stored, err := relay.Store().Read(ctxFor(t), aj.ID(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	purged := 0
	for _, b := range stored {
		if b.Purged {
			purged++
		}
	}
	if purged != 1 {
		t.Fatalf("the relay holds %d purged records after the watcher sent the retraction, want 1", purged)
	}
}
