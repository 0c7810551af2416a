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
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// BenchmarkFirstSync10k measures a partner's first sync of 10,000 entries
// of about 1 KiB from a real relay on loopback, then reading them all back
// decrypted: the whole client path (fetch, record durably, open, parse).
// Each iteration starts from a copy of the partner's home as it was right
// after joining.
func BenchmarkFirstSync10k(b *testing.B) {
	const n = 10000
	ctx := context.Background()
	aj, sam, sj := benchPair(b)
	sj.Close()
	snapshot := filepath.Join(b.TempDir(), "sam-snapshot")
	if err := os.CopyFS(snapshot, os.DirFS(sam.Home.Dir)); err != nil {
		b.Fatal(err)
	}
	if _, err := aj.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("x", 1000)
	batch := make([]client.Payload, n)
	for i := range batch {
		batch[i] = client.Payload{Kind: client.KindEntry, Text: fmt.Sprint(i, text)}
	}
	if _, err := aj.WriteMany(batch); err != nil {
		b.Fatal(err)
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

// benchPair starts a relay on loopback without rate limits (setting up is
// not what is measured), and pairs two fresh accounts: alex's journal
// (closed with the benchmark) and sam's account and journal, just joined.
func benchPair(b *testing.B) (*client.Journal, *client.Account, *client.Journal) {
	b.Helper()
	relay := servertest.NewServerWithConfig(b, server.Config{RequestRate: -1, JournalPutRate: -1})
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
	b.Cleanup(func() { aj.Close() })
	code, _, err := aj.Invite(ctx, 0)
	if err != nil {
		b.Fatal(err)
	}
	sj, err := sam.Join(ctx, code)
	if err != nil {
		b.Fatal(err)
	}
	return aj, sam, sj
}

// benchHome returns the home of a partner who has synced n entries of
// about 1 KiB from a real relay on loopback, and closed the journal.
func benchHome(b *testing.B, n int) client.Home {
	b.Helper()
	ctx := context.Background()
	aj, sam, sj := benchPair(b)
	if _, err := aj.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("x", 1000)
	for done := 0; done < n; {
		var batch []client.Payload
		for ; len(batch) < 1000 && done < n; done++ {
			batch = append(batch, client.Payload{Kind: client.KindEntry, Text: fmt.Sprint(done, text), Feelings: []string{"hope"}})
		}
		if _, err := aj.WriteMany(batch); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := aj.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := sj.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	sj.Close()
	return sam.Home
}

// BenchmarkOpenLogLast10 measures what `kintsugi log -n 10` and `status`
// cost in the client at 10,000 entries, from opening the journal to
// closing it (the key file's unlock excluded).
func BenchmarkOpenLogLast10(b *testing.B) {
	home := benchHome(b, 10000)
	a, err := client.Unlock(home, []byte(pass))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		j, err := a.Current("")
		if err != nil {
			b.Fatal(err)
		}
		r, err := j.Reader()
		if err != nil {
			b.Fatal(err)
		}
		es, err := r.Query(client.Query{Last: 10})
		if err != nil || len(es) != 10 {
			b.Fatalf("read %d entries: %v", len(es), err)
		}
		if _, err := j.Status(); err != nil {
			b.Fatal(err)
		}
		j.Close()
	}
}

// BenchmarkPush2k measures a sync that pushes 2,000 entries of about 1 KiB
// written offline to a real relay on loopback: choosing each window,
// naming it durably as on its way (the sending file), the puts and
// recording every acknowledgement. Each iteration starts from a fresh
// pair; writing the entries is not measured.
func BenchmarkPush2k(b *testing.B) {
	const n = 2000
	ctx := context.Background()
	text := strings.Repeat("x", 1000)
	batch := make([]client.Payload, n)
	for i := range batch {
		batch[i] = client.Payload{Kind: client.KindEntry, Text: fmt.Sprint(i, text)}
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		aj, _, sj := benchPair(b)
		sj.Close()
		if _, err := aj.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := aj.WriteMany(batch); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := aj.Sync(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
