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

// BenchmarkRestore2k measures restoring a device whose own chain on the
// relay holds 2,000 entries of about 1 KiB: opening the backup, writing the
// new home, and the first sync that fetches everything and adopts the
// chain, from a real relay on loopback. The key file uses the cheapest
// argon2id setting, so the time is the restore's own.
func BenchmarkRestore2k(b *testing.B) {
	const n = 2000
	relay := servertest.NewServer(b)
	ctx := context.Background()
	alex, err := client.Init(client.Home{Dir: filepath.Join(b.TempDir(), "alex")}, "alex", "", []byte(pass), crypto.TestingKDF)
	if err != nil {
		b.Fatal(err)
	}
	aj, err := alex.CreateJournal(ctx, relay.URL(), "")
	if err != nil {
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
	path := filepath.Join(b.TempDir(), "backup.ksb")
	res, err := alex.WriteBackup(path)
	if err != nil {
		b.Fatal(err)
	}
	aj.Close()
	secret, err := crypto.ParseRecoveryPhrase(res.Phrase)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		data, err := client.ReadBackupFile(path)
		if err != nil {
			b.Fatal(err)
		}
		bk, err := client.OpenBackup(data, secret)
		if err != nil {
			b.Fatal(err)
		}
		a, err := bk.Restore(client.Home{Dir: filepath.Join(b.TempDir(), fmt.Sprint("restored-", i))}, []byte("new"), crypto.TestingKDF)
		bk.Close()
		if err != nil {
			b.Fatal(err)
		}
		j, err := a.Current("")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := j.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		if j.Restoring() {
			b.Fatal("still restoring")
		}
		j.Close()
		b.StopTimer()
		os.RemoveAll(a.Home.Dir)
		b.StartTimer()
	}
}
