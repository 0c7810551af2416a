package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/server"
)

// serveAt runs "serve" in this process on addr and data until the
// returned stop is called (as SIGTERM would), and returns run's error.
func serveAt(t *testing.T, addr, data string) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := newApp(pw, io.Discard).RunContext(ctx, []string{"kintsugi-relay", "serve", "--listen", addr, "--data", data, "--log-level", "error"})
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() || !strings.Contains(lines.Text(), "listening on") {
		cancel()
		t.Fatalf("relay did not start: %q %v", lines.Text(), <-done)
	}
	go io.Copy(io.Discard, pr)
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return stop
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// pairAt makes two real clients, Alex and Sam, in temporary homes and
// pairs them in a journal on the relay at addr. The journals close when
// the test ends.
func pairAt(ctx context.Context, t *testing.T, addr string) (aj, sj *client.Journal) {
	t.Helper()
	mk := func(name string) *client.Account {
		a, err := client.Init(client.Home{Dir: filepath.Join(t.TempDir(), name)}, name, "", []byte("pw"), crypto.TestingKDF)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	aj, err := mk("alex").CreateJournal(ctx, "http://"+addr, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { aj.Close() })
	code, _, err := aj.Invite(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	sj, err = mk("sam").Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sj.Close() })
	return aj, sj
}

// runCmd runs the relay command line in this process and returns its
// output, report and exit code.
func runCmd(ctx context.Context, args ...string) (stdout, rep string, code int) {
	var out, errb, r bytes.Buffer
	err := newApp(&out, &errb).RunContext(ctx, append([]string{"kintsugi-relay"}, args...))
	code = report(&r, err)
	return out.String(), r.String(), code
}

// The restore drill: while a real client writes to a running relay, a
// backup is taken through the relay; the data is restored into a new
// directory and a relay started from it on the same address serves the
// partner every entry the relay had acknowledged before the backup began.
func TestBackupWhileRunningAndRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addr := freeAddr(t)
	data := filepath.Join(t.TempDir(), "relay-data")
	stop := serveAt(t, addr, data)

	aj, sj := pairAt(ctx, t, addr)

	// Alex writes and syncs without pause through the backup.
	stopWriting := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	written := 0
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopWriting:
				return
			default:
			}
			if _, err := aj.Write(client.Payload{Kind: client.KindEntry, Text: fmt.Sprintf("entry %d", i)}); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			written++
			mu.Unlock()
			if _, err := aj.Sync(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	})
	acked := func() map[string]bool {
		es, err := aj.Entries()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, e := range es {
			if e.Synced {
				m[e.ID] = true
			}
		}
		return m
	}
	for len(acked()) < 20 {
		time.Sleep(5 * time.Millisecond)
	}
	before := acked() // acknowledged before the backup began
	file := filepath.Join(t.TempDir(), "relay.backup")
	out, rep, rc := runCmd(ctx, "backup", "--data", data, "--json", file)
	if rc != 0 {
		t.Fatalf("backup: %s", rep)
	}
	var res backupResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.Online || res.Bytes == 0 {
		t.Fatalf("backup result %q (%v)", out, err)
	}
	// Writing went on during the backup.
	mu.Lock()
	w0 := written
	mu.Unlock()
	for {
		mu.Lock()
		w := written
		mu.Unlock()
		if w > w0+5 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stopWriting)
	wg.Wait()
	// Restore never writes into a running relay's directory.
	if _, rep, rc := runCmd(ctx, "restore", "--data", data, file); rc != exitFailure || !strings.Contains(rep, "a relay is running on "+data) {
		t.Fatalf("restore into the running relay's directory: %d %s", rc, rep)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The backup never overwrites a file.
	if _, rep, rc := runCmd(ctx, "backup", "--data", data, file); rc != exitFailure || !strings.Contains(rep, "already exists") || !strings.Contains(rep, "--force") {
		t.Fatalf("backup over an existing file: %d %s", rc, rep)
	}
	// Restore refuses the old directory, which is not empty.
	if _, rep, rc := runCmd(ctx, "restore", "--data", data, file); rc != exitFailure || !strings.Contains(rep, "is not empty") {
		t.Fatalf("restore into the old directory: %d %s", rc, rep)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	out, rep, rc = runCmd(ctx, "restore", "--data", restored, file)
	if rc != 0 || !strings.Contains(out, "restored relay "+res.RelayID) {
		t.Fatalf("restore: %d %s %s", rc, out, rep)
	}

	// A relay started from the restored data, on the same address, is the
	// same relay to the partner, and has everything acknowledged before
	// the backup.
	serveAt(t, addr, restored)
	if _, err := sj.Sync(ctx); err != nil {
		t.Fatalf("partner sync with the restored relay: %v", err)
	}
	got, err := sj.Entries()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, e := range got {
		have[e.ID] = true
	}
	for id := range before {
		if !have[id] {
			t.Fatalf("entry %s was acknowledged before the backup began but the restored relay lacks it", id[:8])
		}
	}
	t.Logf("%d entries acknowledged before the backup, %d served after restore, %d written in all", len(before), len(got), written)
}

// With no relay running, backup reads the directory itself; the result
// restores the same way.
func TestBackupOffline(t *testing.T) {
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "relay-data")
	_, stop := startRelay(t, data)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "offline.backup")
	out, rep, rc := runCmd(ctx, "backup", "--data", data, file)
	if rc != 0 || !strings.Contains(out, "no relay was running") {
		t.Fatalf("offline backup: %d %q %s", rc, out, rep)
	}
	if _, rep, rc := runCmd(ctx, "restore", "--data", filepath.Join(t.TempDir(), "r"), file); rc != 0 {
		t.Fatalf("restore: %s", rep)
	}
	// --force replaces.
	if _, rep, rc := runCmd(ctx, "backup", "--force", "--data", data, file); rc != 0 {
		t.Fatalf("backup --force: %s", rep)
	}
}

func TestBackupRestoreErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	notBackup := filepath.Join(dir, "notes.txt")
	os.WriteFile(notBackup, []byte("dear diary"), 0o600)
	empty := t.TempDir()
	interrupted := t.TempDir() // as a killed restore leaves it
	os.WriteFile(filepath.Join(interrupted, "RESTORE-IN-PROGRESS"), nil, 0o600)
	os.WriteFile(filepath.Join(interrupted, "MANIFEST"), nil, 0o600)
	locked := t.TempDir()
	st, err := server.OpenBadger(locked, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The store holding locked never answers on an admin socket: the
	// backup need not give it the seconds a starting relay gets. (These
	// tests never run in parallel.)
	defer func(g time.Duration) { startingGrace = g }(startingGrace)
	startingGrace = 200 * time.Millisecond

	tests := []struct {
		name string
		args []string
		code int
		out  []string
	}{
		{"backup without file", []string{"backup", "--data", dir}, exitUsage, []string{"backup takes one argument", "hint:"}},
		{"backup of nothing", []string{"backup", "--data", filepath.Join(dir, "nope"), filepath.Join(dir, "b")}, exitFailure, []string{"there is no relay data directory at", "hint: pass the relay's data directory"}},
		{"backup of a non-store", []string{"backup", "--data", empty, filepath.Join(dir, "b")}, exitFailure, []string{"holds no relay data"}},
		{"backup of a locked store without socket", []string{"backup", "--data", locked, filepath.Join(dir, "b")}, exitFailure, []string{"does not answer on its admin socket", "hint: a relay older"}},
		{"restore of a non-backup", []string{"restore", "--data", filepath.Join(dir, "new"), notBackup}, exitFailure, []string{"not a usable relay backup", "hint: nothing was restored"}},
		{"restore of a missing file", []string{"restore", "--data", filepath.Join(dir, "new"), filepath.Join(dir, "missing")}, exitFailure, []string{"cannot open the backup", "hint: give the path of a file kintsugi-relay backup wrote"}},
		{"restore without file", []string{"restore"}, exitUsage, []string{"restore takes one argument"}},
		{"restore over an interrupted restore", []string{"restore", "--data", interrupted, notBackup}, exitFailure, []string{"holds a restore that was interrupted", "hint: empty it"}},
		{"check of an interrupted restore", []string{"check", "--data", interrupted}, exitFailure, []string{"holds a restore that was interrupted", "hint: empty it"}},
		{"serve an interrupted restore", []string{"serve", "--listen", "127.0.0.1:0", "--data", interrupted}, exitFailure, []string{"the data directory " + interrupted + " holds a restore that was interrupted", "hint: empty it (rm -r " + interrupted + "/*) and run kintsugi-relay restore again"}},
		{"backup of an interrupted restore", []string{"backup", "--data", interrupted, filepath.Join(dir, "b")}, exitFailure, []string{"holds a restore that was interrupted", "hint: empty it"}},
		{"bad gc ratio", []string{"serve", "--gc-discard-ratio", "1.5"}, exitUsage, []string{"--gc-discard-ratio 1.5 is not between 0 and 1"}},
		{"negative gc interval", []string{"serve", "--gc-interval", "-1m"}, exitUsage, []string{"--gc-interval -1m0s is negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rep, code := runCmd(ctx, tt.args...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d (%s)", code, tt.code, rep)
			}
			for _, s := range tt.out {
				if !strings.Contains(rep, s) {
					t.Errorf("report %q lacks %q", rep, s)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
		t.Fatalf("a failed restore left its directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b")); !os.IsNotExist(err) {
		t.Fatalf("a failed backup left a file: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".partial-") {
			t.Fatalf("a failed backup left %s", e.Name())
		}
	}
}

func TestHealth(t *testing.T) {
	ctx := context.Background()
	addr := freeAddr(t)
	stop := serveAt(t, addr, filepath.Join(t.TempDir(), "d"))
	if out, rep, rc := runCmd(ctx, "health", "http://"+addr); rc != 0 || out != "ok\n" {
		t.Fatalf("health: %d %q %s", rc, out, rep)
	}
	// Without a URL it follows --listen, on loopback for a wildcard host.
	_, port, _ := net.SplitHostPort(addr)
	if _, rep, rc := runCmd(ctx, "health", "--listen", "0.0.0.0:"+port); rc != 0 {
		t.Fatalf("health via --listen: %s", rep)
	}
	stop()
	if _, rep, rc := runCmd(ctx, "health", "--timeout", "2s", "http://"+addr+"/healthz"); rc != exitFailure || !strings.Contains(rep, "cannot reach the relay at http://"+addr+"/healthz") {
		t.Fatalf("health of a stopped relay: %d %s", rc, rep)
	}
	if _, rep, rc := runCmd(ctx, "health", "ftp://x"); rc != exitUsage || !strings.Contains(rep, "is not an http:// or https:// URL") {
		t.Fatalf("health with a bad URL: %d %s", rc, rep)
	}
}
