package client_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// TestWriteMany writes a batch in one go: the partner reads every entry, in
// order, and the writer's own chain carries on from the batch.
func TestWriteMany(t *testing.T) {
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
