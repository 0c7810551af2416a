package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// syncResult is the first-sync scenario.
type syncResult struct {
	Entries      int `json:"entries"`       // entries written, and read back by the new device
	FetchedBlobs int `json:"fetched_blobs"` // blobs in the journal: the entries plus the partners' join and key blobs
	BlobBytes    int `json:"blob_bytes"`    // mean size of the blobs fetched
	Runs         int `json:"runs"`          // each figure is the median of this many runs
	// FetchMs: a raw protocol client subscribes from the start and reads
	// every blob (base64-decoded) up to CaughtUp.
	FetchMs float64 `json:"fetch_ms"`
	// SyncMs: the real client's first sync alone: fetch, record durably,
	// and open (decrypt) every entry, which the client does as blobs
	// arrive.
	SyncMs float64 `json:"sync_ms"`
	// FetchDecryptMs: the same first sync followed by reading every
	// entry back with its text (Journal.Entries). Before the incremental
	// store, Sync kept every text in memory, so Entries cost little; now
	// Sync keeps no text, and Entries reads and decrypts each again.
	FetchDecryptMs float64 `json:"fetch_decrypt_ms"`
}

// runFirstSync measures a new device's first sync of n entries: alex
// writes them with the real client and pushes them to the relay; then
// sam's device, which joined before any was written, fetches them.
func runFirstSync(o *options, n, runs int) (*syncResult, error) {
	relay, err := startRelay(o.dir, o.relayOptions())
	if err != nil {
		return nil, err
	}
	defer relay.stop()
	work, err := os.MkdirTemp(o.dir, "homes-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	ctx := context.Background()
	pass := []byte(rand.Text()) // never shown; the homes are deleted after the run
	alex, sam, err := benchAccounts(work, pass)
	if err != nil {
		return nil, err
	}
	aj, err := alex.CreateJournal(ctx, relay.httpURL(), "")
	if err != nil {
		return nil, err
	}
	defer aj.Close()
	code, _, err := aj.Invite(ctx, 0)
	if err != nil {
		return nil, err
	}
	sj, err := sam.Join(ctx, code)
	if err != nil {
		return nil, err
	}
	journal := sj.ID()
	sj.Close()
	snapshot := filepath.Join(work, "sam-snapshot")
	if err := os.CopyFS(snapshot, os.DirFS(sam.Home.Dir)); err != nil {
		return nil, err
	}
	if _, err := aj.Sync(ctx); err != nil { // takes in sam's join
		return nil, err
	}
	// An entry's payload is padded to a size bucket (256 bytes, then
	// powers of two) and sealed to each device, so its blob cannot be
	// exactly blobSize: with 3/4 of blobSize of text the payload fills
	// the bucket of blobSize, and the blob is that plus about 355 bytes
	// (1,379 bytes for 1 KiB, as in client's BenchmarkFirstSync10k).
	text := strings.Repeat("x", max(1, o.blobSize*3/4))
	for i := range n {
		if _, err := aj.Write(client.Payload{Kind: client.KindEntry, Text: fmt.Sprint(i, text)}); err != nil {
			return nil, err
		}
	}
	if _, err := aj.Sync(ctx); err != nil {
		return nil, err
	}

	var fetch, syncOnly, full []time.Duration
	var total, count int
	for range runs {
		d, blobs, bytes, err := rawFetch(relay.wsURL(), sam, journal, nil)
		if err != nil {
			return nil, err
		}
		fetch = append(fetch, d)
		total, count = total+bytes, count+blobs
	}
	for i := range runs {
		home := filepath.Join(work, fmt.Sprint("sam-", i))
		if err := os.CopyFS(home, os.DirFS(snapshot)); err != nil {
			return nil, err
		}
		a, err := client.Unlock(client.Home{Dir: home}, pass)
		if err != nil {
			return nil, err
		}
		j, err := a.Current("")
		if err != nil {
			return nil, err
		}
		var es []client.Entry
		var synced time.Duration
		start := time.Now()
		// Labelled so that --cpuprofile can be narrowed to this part
		// (go tool pprof -tagfocus phase=first-sync).
		pprof.Do(ctx, pprof.Labels("phase", "first-sync"), func(ctx context.Context) {
			if _, err = j.Sync(ctx); err == nil {
				synced = time.Since(start)
				es, err = j.Entries()
			}
		})
		d := time.Since(start)
		syncOnly = append(syncOnly, synced)
		j.Close()
		if err != nil {
			return nil, err
		}
		if len(es) != n {
			return nil, fmt.Errorf("the first sync read %d entries, want %d", len(es), n)
		}
		full = append(full, d)
		if err := os.RemoveAll(home); err != nil {
			return nil, err
		}
	}
	return &syncResult{
		Entries:        n,
		FetchedBlobs:   count / max(1, runs),
		BlobBytes:      total / max(1, count),
		Runs:           runs,
		FetchMs:        ms(median(fetch)),
		SyncMs:         ms(median(syncOnly)),
		FetchDecryptMs: ms(median(full)),
	}, nil
}

// rawFetch subscribes to journal from the start as sam's device and reads
// every blob up to CaughtUp, decoding each message fully, as the client
// does: binary blobs frames (version 2) without copying the blobs out,
// JSON blobs (version 1) with protocol.FastBlob. It returns the time
// taken, the blobs read and their total size. each, if not nil, is shown
// every blob, which it must not keep.
func rawFetch(wsURL string, sam *client.Account, journal protocol.JournalID, each func(blob []byte)) (time.Duration, int, int, error) {
	start := time.Now()
	c, err := dialAs(wsURL, sam.AuthSigner())
	if err != nil {
		return 0, 0, 0, err
	}
	defer c.close()
	if err := c.subscribe(journal, 0); err != nil {
		return 0, 0, 0, err
	}
	blobs, size := 0, 0
	var batch []protocol.Blob
	for {
		binary, data, err := c.w.ReadNext(ioTimeout)
		if err != nil {
			return 0, 0, 0, err
		}
		if binary {
			if batch, err = protocol.DecodeBlobs(data, batch[:0]); err != nil {
				return 0, 0, 0, err
			}
			for _, b := range batch {
				if b.Seq != uint64(blobs+1) {
					return 0, 0, 0, fmt.Errorf("fetched seq %d, want %d", b.Seq, blobs+1)
				}
				blobs++
				size += len(b.Blob)
				if each != nil {
					each(b.Blob)
				}
			}
			continue
		}
		// As the real client does: the one-pass decoder for blobs,
		// encoding/json for anything else.
		if b, ok := protocol.FastBlob(data); ok {
			if b.Seq != uint64(blobs+1) {
				return 0, 0, 0, fmt.Errorf("fetched seq %d, want %d", b.Seq, blobs+1)
			}
			blobs++
			size += len(b.Blob)
			if each != nil {
				each(b.Blob)
			}
			continue
		}
		env, err := protocol.Decode(data)
		if err != nil {
			return 0, 0, 0, err
		}
		switch env.Type {
		case protocol.TypeBlob:
			var b protocol.Blob
			if err := protocol.DecodeAs(data, &b); err != nil {
				return 0, 0, 0, err
			}
			if b.Seq != uint64(blobs+1) {
				return 0, 0, 0, fmt.Errorf("fetched seq %d, want %d", b.Seq, blobs+1)
			}
			blobs++
			size += len(b.Blob)
			if each != nil {
				each(b.Blob)
			}
		case protocol.TypeCaughtUp:
			return time.Since(start), blobs, size, nil
		default:
			return 0, 0, 0, fmt.Errorf("unexpected %s message while fetching", env.Type)
		}
	}
}

// median returns the middle of xs (of an even count, the upper of the
// two middle values), or zero if xs is empty.
func median[T cmp.Ordered](xs []T) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchAccounts makes alex's and sam's homes under work, locked with
// pass. Throw-away homes: the cheapest key-file setting, as in tests, so
// the figures leave out the passphrase's key derivation.
func benchAccounts(work string, pass []byte) (alex, sam *client.Account, err error) {
	mk := func(name string) (*client.Account, error) {
		return client.Init(client.Home{Dir: filepath.Join(work, name)}, name, "bench", pass, crypto.TestingKDF)
	}
	if alex, err = mk("alex"); err != nil {
		return nil, nil, err
	}
	if sam, err = mk("sam"); err != nil {
		return nil, nil, err
	}
	return alex, sam, nil
}
