package client

import (
	"path/filepath"
	"testing"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// A sync reads only each other device's newest account record: its
// records only add, so the newest says all the earlier ones did, and a
// sync must not grow slower with every record a device ever wrote (it
// opened every journal once per record: 500 records from one device made
// each sync take seconds).
func TestAccountRecordsReadsEachDevicesNewest(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	aj, _ := pairedOn(t, relay)
	alex := aj.acct
	code, _, err := alex.LinkDevice(ctx, "laptop", 0)
	if err != nil {
		t.Fatal(err)
	}
	laptop, err := JoinLink(ctx, Home{Dir: filepath.Join(t.TempDir(), "laptop")}, code, []byte("pw"), crypto.TestingKDF)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.SyncAccount(ctx); err != nil {
		t.Fatal(err)
	}
	// A journal created on the laptop: its next record says one more.
	j2, err := laptop.CreateJournal(ctx, relay.URL(), "second")
	if err != nil {
		t.Fatal(err)
	}
	j2.Close()
	if _, err := laptop.SyncAccount(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alex.SyncAccount(ctx); err != nil {
		t.Fatal(err)
	}
	own, err := alex.openAccountJournal()
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	recs, err := own.accountRecords()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].author != laptop.Cert.Sign || len(recs[0].rec.Journals) != 2 {
		t.Fatalf("read %d records, want the laptop's newest alone (2 journals)", len(recs))
	}
}
