package pgstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/client/clienttest"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// The two partners' flow, end to end, against two relays on one
// PostgreSQL database: Alex's journal lives on relay A, Sam joins through
// relay B (the invite code names B, as a load balancer would have sent
// Sam there) and stays there. What each writes reaches the other, live
// while Sam watches, and both end settled and whole.
func TestTwoPartnersOnTwoRelays(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	cfg := testConfig
	cfg.PollInterval = time.Hour // only the change feed delivers across relays
	a, b := relayOn(t, db, cfg), relayOn(t, db, cfg)
	ctx := clienttest.Context(t)
	alex, sam := clienttest.NewAccount(t, "alex"), clienttest.NewAccount(t, "sam")

	aj, err := alex.CreateJournal(ctx, a.URL(), "starting again")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { aj.Close() })
	clienttest.Write(t, aj, "before you joined: I want to be honest with you")
	clienttest.Sync(t, aj)

	code, _, err := aj.Invite(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	ic, err := protocol.ParseInviteCode(code)
	if err != nil {
		t.Fatal(err)
	}
	ic.Relay = b.URL()
	sj, err := sam.Join(ctx, ic.String())
	if err != nil {
		t.Fatalf("sam joins through relay B: %v", err)
	}
	t.Cleanup(func() { sj.Close() })
	if r := clienttest.Sync(t, aj); len(r.Joined) != 1 || r.Joined[0] != "sam" {
		t.Fatalf("alex, on relay A, did not learn that sam joined on relay B: %+v", r)
	}
	snA, _, errA := aj.SafetyNumber()
	snS, _, errS := sj.SafetyNumber()
	if errA != nil || errS != nil || snA != snS {
		t.Fatalf("safety numbers differ: %q vs %q (%v, %v)", snA, snS, errA, errS)
	}
	clienttest.Sync(t, sj)
	if got := clienttest.Texts(t, sj); len(got) != 1 || got[0] != "before you joined: I want to be honest with you" {
		t.Fatalf("sam reads %q", got)
	}

	// Sam watches on relay B; what Alex sends to relay A arrives live.
	wctx, cancel := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	defer watchers.Wait()
	defer cancel()
	events := make(chan client.Event, 64)
	watchers.Go(func() {
		sj.Watch(wctx, func(e client.Event) {
			select {
			case events <- e:
			case <-wctx.Done():
			}
		})
	})
	waitFor(t, events, func(e client.Event) bool { return e.Connected })
	q, err := aj.Write(client.Payload{Kind: client.KindQuestion, Text: "did you tell them about us?"})
	if err != nil {
		t.Fatal(err)
	}
	clienttest.Sync(t, aj)
	waitFor(t, events, func(e client.Event) bool {
		return len(e.New) == 1 && e.New[0].Kind == client.KindQuestion && e.New[0].Text == "did you tell them about us?"
	})

	// Sam answers; the watcher sends it to relay B, and Alex reads it
	// from relay A.
	if _, _, err := sj.Answer(q.Short, "yes, I did, and I am sorry"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, func(e client.Event) bool { return e.Pushed > 0 })
	clienttest.Sync(t, aj)
	var answered bool
	es, err := aj.Entries()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Kind == client.KindAnswer && e.Ref == q.ID && e.Author == "sam" && e.Text == "yes, I did, and I am sorry" {
			answered = true
		}
	}
	if !answered {
		t.Fatalf("alex, on relay A, does not see sam's answer sent to relay B: %+v", es)
	}
	cancel()
	watchers.Wait()
	clienttest.Sync(t, sj)
	clienttest.Clean(t, "alex", aj)
	clienttest.Clean(t, "sam", sj)
}

// waitFor reads events until one satisfies ok, failing after a generous
// failsafe.
func waitFor(t *testing.T, ch <-chan client.Event, ok func(client.Event) bool) {
	t.Helper()
	timeout := time.After(clienttest.Timeout)
	for {
		select {
		case e := <-ch:
			if ok(e) {
				return
			}
		case <-timeout:
			t.Fatal("the expected event did not arrive")
		}
	}
}
