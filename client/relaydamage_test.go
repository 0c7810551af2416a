package client_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// One damaged blob on the relay's disk does not shut the partner out of
// the rest of the journal: the blobs after it arrive, and the damaged one
// is named as not arrived.
func TestDamagedBlobOnTheRelayIsSkippedAndNamed(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	es := write(t, sj, "sam: one", "sam: two", "sam: three")
	mustSync(t, sj)

	// Change a byte of "sam: two" where the relay keeps it.
	blobs, err := relay.Store().Read(ctxFor(t), sj.ID(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var target []byte
	for _, b := range blobs {
		if !b.Purged && protocol.ChainID(b.Blob).String() == es[1].ID {
			target = b.Blob
		}
	}
	if target == nil {
		t.Fatal("the relay does not hold sam's second entry")
	}
	relay.Stop()
	segs, _ := filepath.Glob(filepath.Join(relay.DataDir(), "blobs", "*.seg"))
	damaged := false
	for _, p := range segs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(data, target); i >= 0 {
			data[i+len(target)/2] ^= 1
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			damaged = true
		}
	}
	if !damaged {
		t.Fatal("the entry is in no segment file; the test proves nothing")
	}
	relay.Start()

	r, err := aj.Sync(ctxFor(t))
	if err != nil {
		t.Fatalf("alex's sync with one damaged blob on the relay: %v", err)
	}
	if got := newTexts(r); !slices.Equal(got, []string{"sam: one", "sam: three"}) {
		t.Fatalf("alex received %q", got)
	}
	same(t, "alex's missing", gaps(status(t, aj)), missingFrom(samsDevice, 1))
	// The journal goes on.
	write(t, sj, "sam: four")
	mustSync(t, sj)
	if r := mustSync(t, aj); !slices.Equal(newTexts(r), []string{"sam: four"}) {
		t.Fatalf("alex received %q after the damage", newTexts(r))
	}
}
