package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
)

func TestMain(m *testing.M) {
	if data := os.Getenv("KINTSUGI_CRASH_RELAY_DATA"); data != "" {
		// Child: a real relay process for the crash tests to kill, on
		// Badger in data or on the PostgreSQL database named by
		// KINTSUGI_CRASH_RELAY_STORE.
		args := []string{"kintsugi-relay", "serve", "--listen", os.Getenv("KINTSUGI_CRASH_RELAY_ADDR"), "--log-level", "error"}
		if db := os.Getenv("KINTSUGI_CRASH_RELAY_STORE"); db != "" {
			args = append(args, "--store", db, "--store-pool-size", "4")
		} else {
			args = append(args, "--data", data)
		}
		err := newApp(os.Stdout, os.Stderr).RunContext(context.Background(), args)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRelayHardKill kills the relay process with SIGKILL while a real
// client writes and syncs, three times. Every entry the relay acknowledged
// before a kill must still be there after it, and the client's outbox
// must deliver the rest: in the end the partner reads every entry.
func TestRelayHardKill(t *testing.T) {
	data := filepath.Join(t.TempDir(), "relay-data")
	addr := freeAddr(t)

	var child *exec.Cmd
	start := func() {
		t.Helper()
		child = exec.Command(os.Args[0])
		child.Env = append(os.Environ(), "KINTSUGI_CRASH_RELAY_DATA="+data, "KINTSUGI_CRASH_RELAY_ADDR="+addr)
		child.Stderr = os.Stderr
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		for range 800 { // up to 20 s on a loaded machine
			if r, err := http.Get("http://" + addr + "/healthz"); err == nil {
				r.Body.Close()
				if r.StatusCode == http.StatusOK {
					return
				}
			}
			time.Sleep(25 * time.Millisecond)
		}
		t.Fatal("relay did not become healthy")
	}
	kill := func() {
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
	}
	start()
	defer func() { kill() }()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	aj, sj := pairAt(ctx, t, addr)
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	written := 0
	for round := range 3 {
		// Write and sync continuously; kill the relay once it has
		// acknowledged some of this round's entries.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := aj.Write(client.Payload{Kind: client.KindEntry, Text: fmt.Sprintf("round %d entry %d", round, i)}); err != nil {
					t.Error(err)
					return
				}
				written++
				aj.Sync(ctx) // fails while the relay is down; the outbox keeps it
			}
		})
		deadline := time.Now().Add(time.Minute)
		for {
			st, err := aj.Status()
			if err != nil {
				t.Fatal(err)
			}
			if st.Entries-st.Outbox >= (round+1)*15 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the relay acknowledged only %d entries in a minute", round, st.Entries-st.Outbox)
			}
			time.Sleep(5 * time.Millisecond)
		}
		kill()
		// What the client recorded as acknowledged at the moment of the kill.
		entries, _ := aj.Entries()
		acked := map[string]bool{}
		for _, e := range entries {
			if e.Synced {
				acked[e.ID] = true
			}
		}
		close(stop)
		wg.Wait()
		if round == 0 {
			// An operator's first moves after a crash, before starting the
			// relay again: check the stopped directory and back it up.
			// Both repair what the kill left, as starting would.
			if _, rep, rc := runCmd(ctx, "check", "--data", data); rc != 0 {
				t.Fatalf("check after a hard kill: exit %d: %s", rc, rep)
			}
			if _, rep, rc := runCmd(ctx, "backup", "--data", data, filepath.Join(t.TempDir(), "after-kill.backup")); rc != 0 {
				t.Fatalf("backup after a hard kill: exit %d: %s", rc, rep)
			}
		}
		start()
		// Read straight from the restarted relay, before the writer resends.
		if _, err := sj.Sync(ctx); err != nil {
			t.Fatalf("round %d: partner sync after restart: %v", round, err)
		}
		got, _ := sj.Entries()
		have := map[string]bool{}
		for _, e := range got {
			have[e.ID] = true
		}
		for id := range acked {
			if !have[id] {
				t.Fatalf("round %d: entry %s was acknowledged before the kill but is gone", round, id[:8])
			}
		}
	}
	// The outbox delivers everything else.
	if _, err := aj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sj.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := sj.Status()
	if err != nil || st.Entries != written || len(st.Missing) != 0 {
		t.Fatalf("partner status %+v (%v); alex wrote %d", st, err, written)
	}
}
