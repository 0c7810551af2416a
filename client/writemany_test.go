package client_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/client/clienttest"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// TestWriteMany writes a batch in one go: the partner reads every entry, in
// order, and the writer's own chain carries on from the batch.
func TestWriteMany(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	var batch []client.Payload
	for i := range 5 {
		batch = append(batch, client.Payload{Kind: client.KindEntry, Text: fmt.Sprint("batch ", i)})
	}
	if _, err := aj.WriteMany([]client.Payload{{Kind: client.KindDevice}}); err == nil {
		t.Fatal("WriteMany accepted a roster record")
	}
	es, err := aj.WriteMany(batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 5 || es[4].Text != "batch 4" || !es[0].Mine {
		t.Fatalf("WriteMany returned %+v", es)
	}
	if _, err := aj.Write(client.Payload{Kind: client.KindEntry, Text: "after"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, aj)
	mustSync(t, sj)
	want := []string{"batch 0", "batch 1", "batch 2", "batch 3", "batch 4", "after"}
	if got := texts(t, sj); !slices.Equal(got, want) {
		t.Fatalf("partner reads %q, want %q", got, want)
	}
	st, err := sj.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Missing) != 0 || st.Unreadable != 0 {
		t.Fatalf("partner's status after a batch: %+v", st)
	}
}

// TestSyncCarriesTheNewest: a sync that brings more than NewShown entries
// carries the newest, with their text, and says how many arrived.
func TestSyncCarriesTheNewest(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	n := client.NewShown + 5
	var batch []client.Payload
	for i := range n {
		batch = append(batch, client.Payload{Kind: client.KindEntry, Text: fmt.Sprint("entry ", i)})
	}
	if _, err := aj.WriteMany(batch); err != nil {
		t.Fatal(err)
	}
	mustSync(t, aj)
	res := mustSync(t, sj)
	if res.NewCount != n || len(res.New) != client.NewShown {
		t.Fatalf("sync carried %d of %d new entries, want %d of %d", len(res.New), res.NewCount, client.NewShown, n)
	}
	if first, last := res.New[0].Text, res.New[len(res.New)-1].Text; first != fmt.Sprint("entry ", n-client.NewShown) || last != fmt.Sprint("entry ", n-1) {
		t.Fatalf("sync carried %q … %q, want the newest", first, last)
	}
	if res := mustSync(t, sj); res.NewCount != 0 || len(res.New) != 0 {
		t.Fatalf("a second sync carried %d new entries", res.NewCount)
	}
}

// TestFirstSyncPreopens: a first sync of several batches of history
// decrypts each batch while the one before is recorded (preopen), and
// what it finds is what opening would find: every entry arrives, in
// order, with its text, and all of them were opened ahead.
func TestFirstSyncPreopens(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServerWithConfig(t, server.Config{RequestRate: -1, JournalPutRate: -1})
	ctx := clienttest.Context(t)
	alex, sam := clienttest.NewAccount(t, "alex"), clienttest.NewAccount(t, "sam")
	aj, err := alex.CreateJournal(ctx, relay.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer aj.Close()
	code, _, err := aj.Invite(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	sj, err := sam.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	defer sj.Close()
	clienttest.Sync(t, aj)
	n := 2*client.ReceiveBatch + 10
	batch := make([]client.Payload, n)
	for i := range batch {
		batch[i] = client.Payload{Kind: client.KindEntry, Text: fmt.Sprint("entry ", i)}
	}
	if _, err := aj.WriteMany(batch); err != nil {
		t.Fatal(err)
	}
	clienttest.Sync(t, aj)
	clienttest.Sync(t, sj)
	texts := clienttest.Texts(t, sj)
	if len(texts) != n {
		t.Fatalf("sam reads %d entries, want %d", len(texts), n)
	}
	for i, text := range texts {
		if want := fmt.Sprint("entry ", i); text != want {
			t.Fatalf("entry %d reads %q, want %q", i, text, want)
		}
	}
	if used := client.PreopenedOf(sj); used != n {
		t.Fatalf("%d entries opened ahead, want %d", used, n)
	}
}
