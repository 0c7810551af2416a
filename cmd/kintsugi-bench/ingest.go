package main

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// ingestResult is one durable-ingest run.
type ingestResult struct {
	Store     string  `json:"store"` // "badger" or "postgres"
	Writers   int     `json:"writers"`
	Layout    string  `json:"layout"` // "spread": a journal per writer; "shared": several writers per journal
	Journals  int     `json:"journals"`
	BlobBytes int     `json:"blob_bytes"`
	Blobs     int     `json:"blobs"` // acknowledged within the measured window
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"blobs_per_second"`
	AckP50ms  float64 `json:"ack_p50_ms"`
	AckP99ms  float64 `json:"ack_p99_ms"`
}

// ingestWarmup is run before the measured window and not counted.
const ingestWarmup = 300 * time.Millisecond

// runIngest measures durable ingest: writers connections, each its own
// device, put blobs of blobSize bytes one at a time and wait for each
// acknowledgement (which the relay sends only once the blob is synced to
// disk). With perJournal > 1, that many writers share each journal. The
// relay keeps its data in backend.
func runIngest(o *options, backend string, writers, perJournal int, dur time.Duration) (*ingestResult, error) {
	relays, err := startRelays(o, backend, 1)
	if err != nil {
		return nil, err
	}
	defer relays.stop()
	relay := relays.procs[0]

	perJournal = max(1, min(perJournal, writers))
	layout := "spread"
	if perJournal > 1 {
		layout = "shared"
	}
	conns := make([]*rawConn, writers)
	journals := make([]protocol.JournalID, writers)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	nJournals := 0
	for first := 0; first < writers; first += perJournal {
		j := newJournalID()
		nJournals++
		owner, err := dialDevice(relay.wsURL())
		if err != nil {
			return nil, err
		}
		conns[first], journals[first] = owner, j
		if err := owner.create(j); err != nil {
			return nil, err
		}
		for w := first + 1; w < min(first+perJournal, writers); w++ {
			c, err := dialDevice(relay.wsURL())
			if err != nil {
				return nil, err
			}
			conns[w], journals[w] = c, j
			if err := owner.addDevice(j, c.device); err != nil {
				return nil, err
			}
		}
	}

	type writerResult struct {
		lat []time.Duration
		err error
	}
	results := make([]writerResult, writers)
	start := make(chan struct{})
	var t0 time.Time
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, j := conns[w], journals[w]
			ch := &chain{journal: j, author: c.device, size: o.blobSize}
			var frame []byte
			var last uint64
			<-start
			from, until := t0.Add(ingestWarmup), t0.Add(ingestWarmup+dur)
			for {
				id := c.id()
				blob := ch.next()
				sent := time.Now()
				if !sent.Before(until) {
					return
				}
				var err error
				if frame, err = c.sendPut(frame, id, j, blob); err != nil {
					results[w].err = err
					return
				}
				ok, err := c.waitOK(id)
				if err != nil {
					results[w].err = err
					return
				}
				lat := time.Since(sent)
				if ok.Duplicate || ok.Seq <= last || (layout == "spread" && ok.Seq != last+1) {
					results[w].err = fmt.Errorf("writer %d: the relay answered seq %d (duplicate %v) after %d", w, ok.Seq, ok.Duplicate, last)
					return
				}
				last = ok.Seq
				if !sent.Before(from) {
					results[w].lat = append(results[w].lat, lat)
				}
			}
		}()
	}
	t0 = time.Now()
	close(start)
	wg.Wait()
	var all []time.Duration
	var errs []error
	for _, r := range results {
		all = append(all, r.lat...)
		errs = append(errs, r.err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := percentiles(all)
	return &ingestResult{
		Store:     backend,
		Writers:   writers,
		Layout:    layout,
		Journals:  nJournals,
		BlobBytes: o.blobSize,
		Blobs:     len(all),
		Seconds:   dur.Seconds(),
		PerSecond: float64(len(all)) / dur.Seconds(),
		AckP50ms:  p.p50,
		AckP99ms:  p.p99,
	}, nil
}
