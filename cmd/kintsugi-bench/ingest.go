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
	Store string `json:"store"` // "badger", "postgres", or "none" (--store-none: keeps nothing)
	// Durable is false for a run on the store that keeps nothing
	// (--store-none): its puts were acknowledged without being stored.
	Durable   bool    `json:"durable"`
	Writers   int     `json:"writers"`
	Layout    string  `json:"layout"` // "spread": a journal per writer; "shared": several writers per journal
	Journals  int     `json:"journals"`
	BlobBytes int     `json:"blob_bytes"`
	Blobs     int     `json:"blobs"` // acknowledged within the measured window
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"blobs_per_second"`
	AckP50ms  float64 `json:"ack_p50_ms"`
	AckP99ms  float64 `json:"ack_p99_ms"`
	// RelayCPUPerPutUs is the relay process's CPU time (user + system,
	// from its own getrusage) over the whole run, warm-up included,
	// divided by every put it acknowledged in that time.
	RelayCPUPerPutUs float64 `json:"relay_cpu_per_put_us"`
	// FailedWriters counts writers whose connection failed during the
	// run; their puts until then are counted, and the run goes on with
	// the others. Failures says why (the first few).
	FailedWriters int      `json:"failed_writers,omitempty"`
	Failures      []string `json:"failures,omitempty"`
}

// maxFailures is how many failures a result keeps the words of.
const maxFailures = 3

// ingestWarmup is run before the measured window and not counted.
const ingestWarmup = 300 * time.Millisecond

// runIngest measures durable ingest: writers connections, each its own
// device, put blobs of blobSize bytes one at a time and wait for each
// acknowledgement (which the relay sends only once the blob is synced to
// disk). With perJournal > 1, that many writers share each journal. The
// relay keeps its data in backend (or, for backendNone, keeps nothing).
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
		lat  []time.Duration
		puts int // acknowledged, warm-up included
		err  error
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
				results[w].puts++
				if o.breakFirst && w == 0 {
					c.close()
				}
				if !sent.Before(from) {
					results[w].lat = append(results[w].lat, lat)
				}
			}
		}()
	}
	cpu0, err := relay.cpu()
	if err != nil {
		return nil, err
	}
	t0 = time.Now()
	close(start)
	wg.Wait()
	cpu1, err := relay.cpu()
	if err != nil {
		return nil, err
	}
	var all []time.Duration
	var errs []error
	var failures []string
	puts := 0
	for _, r := range results {
		all = append(all, r.lat...)
		puts += r.puts
		if r.err != nil {
			errs = append(errs, r.err)
			if len(failures) < maxFailures {
				failures = append(failures, r.err.Error())
			}
		}
	}
	// One failed connection does not throw the run away: the others'
	// figures stand, and the result says how many failed and why.
	if len(all) == 0 {
		return nil, errors.Join(append(errs, errors.New("no put was acknowledged in the measured window"))...)
	}
	p := percentiles(all)
	return &ingestResult{
		RelayCPUPerPutUs: float64(cpu1-cpu0) / float64(time.Microsecond) / float64(max(puts, 1)),
		FailedWriters:    len(errs),
		Failures:         failures,
		Store:            backend,
		Durable:          backend != backendNone,
		Writers:          writers,
		Layout:           layout,
		Journals:         nJournals,
		BlobBytes:        o.blobSize,
		Blobs:            len(all),
		Seconds:          dur.Seconds(),
		PerSecond:        float64(len(all)) / dur.Seconds(),
		AckP50ms:         p.p50,
		AckP99ms:         p.p99,
	}, nil
}
