package client_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// BenchmarkFirstSync10k measures a partner's first sync of 10,000 entries
// of about 1 KiB from a real relay on loopback, then reading them all back
// decrypted: the whole client path (fetch, record durably, open, parse).
// Each iteration starts from a copy of the partner's home as it was right
// after joining.
func BenchmarkFirstSync10k(b *testing.B) {
	const n = 10000
	relay := servertest.NewServer(b)
	ctx := context.Background()
	mk := func(name string) *client.Account {
		a, err := client.Init(client.Home{Dir: filepath.Join(b.TempDir(), name)}, name, "", []byte(pass), crypto.TestingKDF)
		if err != nil {
			b.Fatal(err)
		}
		return a
	}
	alex, sam := mk("alex"), mk("sam")
	aj, err := alex.CreateJournal(ctx, relay.URL(), "")
	if err != nil {
		b.Fatal(err)
	}
	defer aj.Close()
	code, _, err := aj.Invite(ctx, 0)
	if err != nil {
		b.Fatal(err)
	}
	sj, err := sam.Join(ctx, code)
	if err != nil {
		b.Fatal(err)
	}
	sj.Close()
	snapshot := filepath.Join(b.TempDir(), "sam-snapshot")
	if err := os.CopyFS(snapshot, os.DirFS(sam.Home.Dir)); err != nil {
		b.Fatal(err)
	}
	if _, err := aj.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("x", 1000)
	for i := range n {
		if _, err := aj.Write(client.Payload{Kind: client.KindEntry, Text: fmt.Sprint(i, text)}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := aj.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		home := filepath.Join(b.TempDir(), fmt.Sprint("sam", i))
		if err := os.CopyFS(home, os.DirFS(snapshot)); err != nil {
			b.Fatal(err)
		}
		a, err := client.Unlock(client.Home{Dir: home}, []byte(pass))
		if err != nil {
			b.Fatal(err)
		}
		j, err := a.Current("")
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := j.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		es, err := j.Entries()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if len(es) != n {
			b.Fatalf("read %d entries, want %d", len(es), n)
		}
		j.Close()
		b.StartTimer()
	}
}
