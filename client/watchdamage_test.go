package client_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// Damage found while `sync --watch` runs is healed by the watcher itself:
// it says what it set aside, connects again, and fetches from the relay
// what the cut-off end of the log held, so nothing the partner wrote is
// left missing until some later one-shot sync.
func TestWatcherHealsATornLog(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	events := watchFrom(t, alex.Home)
	waitFor(t, events, func(e client.Event) bool { return e.Connected })

	write(t, sj, "the one that is cut off")
	mustSync(t, sj)
	waitFor(t, events, func(e client.Event) bool {
		return len(e.New) == 1 && e.New[0].Text == "the one that is cut off"
	})
	// The last byte of Alex's log goes: the record that brought Sam's
	// entry is torn.
	log := filepath.Join(alex.Home.Dir, "journals", aj.ID().String(), "log")
	fi, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(log, fi.Size()-1); err != nil {
		t.Fatal(err)
	}
	// Sam writes on; the watcher receives it live, whether before or
	// after it notices the damage.
	write(t, sj, "the one after it")
	mustSync(t, sj)

	var repaired bool
	waitFor(t, events, func(e client.Event) bool {
		for _, r := range e.Repairs {
			repaired = repaired || r.Kind == client.RepairLog && r.Refetch && r.SetAside != ""
		}
		return e.Connected && e.Refetched
	})
	if !repaired {
		t.Fatal("the watcher healed the log without saying what it set aside")
	}
	got := texts(t, aj)
	for _, want := range []string{"the one that is cut off", "the one after it"} {
		if !slices.Contains(got, want) {
			t.Fatalf("after the watcher healed the log, %q is missing: %q", want, got)
		}
	}
	if st := status(t, aj); len(st.Missing) != 0 {
		t.Fatalf("gaps after the watcher healed the log: %+v", st.Missing)
	}
}

// An item that arrived and was then lost to damage here is not reported as
// one that "has not arrived": while what was set aside waits to be fetched
// again, its gap says so (DamagedHere), and the next sync fills it.
func TestGapFromDamageHereIsSaidSo(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	write(t, sj, "first")
	mustSync(t, sj)
	write(t, sj, "second")
	mustSync(t, sj)
	mustSync(t, aj)

	// A byte flips inside the next-to-last item Alex received.
	log := filepath.Join(alex.Home.Dir, "journals", aj.ID().String(), "log")
	p, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var pulled []int
	for at := 0; at+5 <= len(p); {
		n := int(binary.BigEndian.Uint32(p[at+1 : at+5]))
		if p[at] == 'P' {
			pulled = append(pulled, at)
		}
		at += 5 + n + 4
	}
	if len(pulled) < 2 {
		t.Fatalf("%d items received, want at least 2", len(pulled))
	}
	p[pulled[len(pulled)-2]+40] ^= 1
	if err := os.WriteFile(log, p, 0o600); err != nil {
		t.Fatal(err)
	}

	// A new process on Alex's home finds the damage as it opens the log.
	a, err := client.Unlock(alex.Home, []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	j, err := a.Current("")
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	st := status(t, j)
	if len(st.Missing) == 0 {
		t.Fatal("no gap after an item was lost to damage here")
	}
	for _, g := range st.Missing {
		if g.Kind == client.NoticeMissingItems && !g.DamagedHere {
			t.Fatalf("a gap from damage here is said as not arrived: %+v", g)
		}
	}
	mustSync(t, j)
	if st := status(t, j); len(st.Missing) != 0 {
		t.Fatalf("gaps after the sync that fetched again what damage set aside: %+v", st.Missing)
	}
	if got := texts(t, j); !slices.Contains(got, "first") || !slices.Contains(got, "second") {
		t.Fatalf("after the sync: %q", got)
	}
}
