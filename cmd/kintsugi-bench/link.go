package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// linkResult is the link scenario: a device linked while the partner is
// offline reads the whole history from what the linking device hands over.
type linkResult struct {
	Entries int `json:"entries"` // entries in the journal, half of them the partner's
	Runs    int `json:"runs"`    // each time is the median of this many first syncs
	// LinkMs: `device link` on the existing device (Account.LinkDevice):
	// its syncs, the device record, and sealing and putting the handover.
	LinkMs float64 `json:"link_ms"`
	// ReadAllMs: from the new device's first Sync starting to every entry
	// read back with its text (Journal.Entries).
	ReadAllMs float64 `json:"read_all_ms"`
	// HandoverBlobs and HandoverBytes are the grants the linking device
	// put for the new device: their count and total size on the relay.
	HandoverBlobs int `json:"handover_blobs"`
	HandoverBytes int `json:"handover_bytes"`
}

// runLink measures linking a device to a journal of n entries, half of
// them sam's, while sam is offline: alex's device links a laptop, and the
// laptop's first sync must read every entry, sam's through the handover.
func runLink(o *options, n, runs int) (*linkResult, error) {
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
	open := []*client.Journal{aj} // closed before the link, or on failure
	defer func() {
		for _, j := range open {
			j.Close()
		}
	}()
	code, _, err := aj.Invite(ctx, 0)
	if err != nil {
		return nil, err
	}
	sj, err := sam.Join(ctx, code)
	if err != nil {
		return nil, err
	}
	open = append(open, sj)
	journal := sj.ID()
	if _, err := aj.Sync(ctx); err != nil { // takes in sam's join
		return nil, err
	}
	// As the sync scenario: about 1 KiB blobs. Sam writes half, then
	// alex the other half; then sam is offline for good.
	text := strings.Repeat("x", 768)
	write := func(j *client.Journal, from, to int) error {
		for i := from; i < to; i++ {
			if _, err := j.Write(client.Payload{Kind: client.KindEntry, Text: fmt.Sprint(i, text)}); err != nil {
				return err
			}
		}
		_, err := j.Sync(ctx)
		return err
	}
	if err := write(sj, 0, n/2); err != nil {
		return nil, err
	}
	if err := write(aj, n/2, n); err != nil {
		return nil, err
	}
	if _, err := aj.Sync(ctx); err != nil {
		return nil, err
	}
	for _, j := range open {
		j.Close()
	}
	open = nil

	start := time.Now()
	link, _, err := alex.LinkDevice(ctx, "bench laptop", 0)
	if err != nil {
		return nil, err
	}
	linkTime := time.Since(start)
	first := filepath.Join(work, "laptop")
	laptop, err := client.JoinLink(ctx, client.Home{Dir: first}, link, pass, crypto.TestingKDF)
	if err != nil {
		return nil, err
	}
	// Each run syncs a copy of the laptop's home as the link left it.
	snapshot := filepath.Join(work, "laptop-snapshot")
	if err := os.CopyFS(snapshot, os.DirFS(first)); err != nil {
		return nil, err
	}
	var times []time.Duration
	for i := range runs {
		home := filepath.Join(work, fmt.Sprint("laptop-", i))
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
		start := time.Now()
		// Labelled for --cpuprofile (go tool pprof -tagfocus phase=link).
		pprof.Do(ctx, pprof.Labels("phase", "link"), func(ctx context.Context) {
			if _, err = j.Sync(ctx); err == nil {
				es, err = j.Entries()
			}
		})
		d := time.Since(start)
		j.Close()
		if err != nil {
			return nil, err
		}
		if len(es) != n {
			return nil, fmt.Errorf("the linked device read %d entries, want %d", len(es), n)
		}
		times = append(times, d)
		if err := os.RemoveAll(home); err != nil {
			return nil, err
		}
	}
	// The handover's size: every grant alex's device put for the laptop,
	// as the relay serves them.
	r := &linkResult{Entries: n, Runs: runs, LinkMs: ms(linkTime), ReadAllMs: ms(median(times))}
	from, to := alex.Device.SignKey(), crypto.KeyID(laptop.Device.BoxPublic)
	_, _, _, err = rawFetch(relay.wsURL(), sam, journal, func(blob []byte) {
		h, err := protocol.ParseHeader(blob)
		if err != nil || h.Kind != protocol.KindGrant || h.Author != from {
			return
		}
		if g, err := protocol.ParseGrant(blob); err == nil && g.KeyID == to {
			r.HandoverBlobs++
			r.HandoverBytes += len(blob)
		}
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}
