package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// check reads every blob: on a running relay through its admin socket, on
// a stopped one directly; a damaged segment byte is named by journal and
// entry and makes it fail, and the relay does not serve that blob.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "relay-data")
	url, stop := startRelay(t, data)
	key := servertest.NewKey(t)
	c := servertest.Dial(t, url, key)
	j := servertest.NewJournalID()
	servertest.MustOK(t, c.Create(j))
	ch := servertest.Chain{Journal: j, Author: c.Device}
	for i := range 3 {
		servertest.MustOK(t, c.Put(j, ch.Next(strings.Repeat("x", i))))
	}

	out, rep, rc := runCmd(ctx, "check", "--data", data, "--json")
	var res checkResult
	if rc != 0 || json.Unmarshal([]byte(out), &res) != nil || !res.Online || res.Checked != 3 || res.DamagedCount != 0 || res.Damaged == nil {
		t.Fatalf("check of a running relay: %d %q %s", rc, out, rep)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out, rep, rc = runCmd(ctx, "check", "--data", data)
	if rc != 0 || !strings.Contains(out, "checked 3 blobs") || !strings.Contains(out, "every blob is whole") {
		t.Fatalf("check of a stopped relay: %d %q %s", rc, out, rep)
	}

	// Change one byte of the second blob: the segment's 8-byte magic, then
	// each blob after its 72-byte record header (server/seglog.go).
	s, err := server.OpenBadger(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Read(ctx, j, 0, 1)
	if err != nil || len(first) != 1 {
		t.Fatal(err)
	}
	s.Close()
	seg := filepath.Join(data, "blobs", "000001.seg")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[8+72+len(first[0].Blob)+72+40] ^= 1
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, rep, rc = runCmd(ctx, "check", "--data", data)
	want := "damaged: journal " + j.String() + ", entry 2: "
	if rc != 1 || !strings.Contains(out, want) || !strings.Contains(rep, "1 stored blobs are damaged") {
		t.Fatalf("check of a damaged segment: %d %q %s", rc, out, rep)
	}

	// A backup refuses the damaged blob and points to check, whether it
	// reads the directory or asks the running relay.
	backupSays := func(when string) {
		t.Helper()
		_, rep, rc := runCmd(ctx, "backup", "--data", data, filepath.Join(t.TempDir(), "b"))
		if rc != 1 || !strings.Contains(rep, "stored blob is damaged") || !strings.Contains(rep, "kintsugi-relay check lists every damaged one") {
			t.Fatalf("backup of a damaged store %s: %d %s", when, rc, rep)
		}
	}
	backupSays("stopped")

	// A relay started on it serves the blob before the damaged one, not it.
	url, _ = startRelay(t, data)
	c = servertest.Dial(t, url, key)
	servertest.MustOK(t, c.Subscribe(j, 0))
	if b := c.NextBlob(); b.Seq != 1 {
		t.Fatalf("first blob served is %d", b.Seq)
	}
	backupSays("running")
}
