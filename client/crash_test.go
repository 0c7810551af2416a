package client_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

func TestMain(m *testing.M) {
	if home := os.Getenv("KINTSUGI_CRASH_HOME"); home != "" {
		crashWriter(home) // never returns
	}
	os.Exit(m.Run())
}

// crashWriter is the child side of TestHardKillLosesNoSavedWrite: it writes
// entries as fast as it can and prints each id once Write has told it the
// entry is saved, until it is killed.
func crashWriter(home string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	a, err := client.Unlock(client.Home{Dir: home}, []byte(pass))
	if err != nil {
		fail(err)
	}
	j, err := a.Current("")
	if err != nil {
		fail(err)
	}
	for i := 0; ; i++ {
		e, err := j.Write(client.Payload{Kind: client.KindEntry, Text: fmt.Sprintf("entry %d", i)})
		if err != nil {
			fail(err)
		}
		fmt.Printf("saved %s\n", e.ID)
	}
}

// A writer killed with SIGKILL at an arbitrary moment loses nothing it
// reported saved, and the store stays usable: the torn tail is cut off,
// later writes chain on, and everything syncs.
func TestHardKillLosesNoSavedWrite(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)

	saved := map[string]bool{}
	for round := range 3 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "KINTSUGI_CRASH_HOME="+alex.Home.Dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "saved "); ok {
				saved[id] = true
				n++
				if n == 20+round*15 {
					cmd.Process.Signal(syscall.SIGKILL)
					break
				}
			}
		}
		cmd.Wait()
		if n == 0 {
			t.Fatalf("round %d: the child saved nothing", round)
		}
	}
	j2, err := alex.OpenJournal(aj.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	es, err := j2.Entries()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, e := range es {
		have[e.ID] = true
	}
	for id := range saved {
		if !have[id] {
			t.Errorf("entry %s was reported saved but is gone after the kill", id[:8])
		}
	}
	// The survivors form one unbroken chain the partner receives whole.
	mustSync(t, j2)
	mustSync(t, sj)
	st, err := sj.Status()
	if err != nil || len(st.Missing) != 0 || st.Entries < len(saved) {
		t.Fatalf("partner after the kills: %+v, %v (saved %d)", st, err, len(saved))
	}
}
