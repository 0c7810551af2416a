package main

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// pushResult is one push-latency run.
type pushResult struct {
	Store string `json:"store"` // "badger" or "postgres"
	// Nodes is 1 when the writer and the subscribers share a relay, 2
	// when the writer puts on one relay and the subscribers are on
	// another (on one PostgreSQL database).
	Nodes       int     `json:"nodes"`
	Subscribers int     `json:"subscribers"`
	Puts        int     `json:"puts"`
	Samples     int     `json:"samples"` // one per put per subscriber
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	// The writer's put acknowledgements: how much of the push latency is
	// the put's own durable commit, which comes before any push.
	AckP50ms float64 `json:"ack_p50_ms"`
	AckP99ms float64 `json:"ack_p99_ms"`
	// FailedSubscribers counts subscribers whose connection failed or
	// that read something out of order; their samples until then count,
	// and the run goes on with the others. Failures says why.
	FailedSubscribers int `json:"failed_subscribers,omitempty"`
	// Floor is the raw fan-out floor (floor.go) at this many subscribers,
	// measured in the same run just before; P99ms / Floor.P99ms is how
	// far the relay is from it.
	Floor    *floorResult `json:"floor,omitempty"`
	Failures []string     `json:"failures,omitempty"`
}

// setupParallel bounds concurrent connection setup.
const setupParallel = 16

// runPush measures push latency: one partner's device puts a blob, and
// subs subscribed connections (devices the writer added to the journal,
// each its own connection) receive it. A sample is the time from
// sending the put to one subscriber reading the pushed blob, so every put
// gives subs samples. Puts are sent one at a time: the next waits until
// every subscriber has the previous one and its ack is back. With nodes
// 2 the writer is on one relay and the subscribers on another, both on
// one PostgreSQL database.
func runPush(o *options, backend string, nodes, subs, puts int) (*pushResult, error) {
	relays, err := startRelays(o, backend, nodes)
	if err != nil {
		return nil, err
	}
	defer relays.stop()
	relay, subRelay := relays.procs[0], relays.procs[nodes-1]

	writer, err := dialDevice(relay.wsURL())
	if err != nil {
		return nil, err
	}
	defer writer.close()
	j := newJournalID()
	if err := writer.create(j); err != nil {
		return nil, err
	}
	var adding sync.Mutex // one request at a time on the writer's connection
	conns := make([]*rawConn, subs)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	err = parallel(subs, setupParallel, func(i int) error {
		c, err := dialDevice(subRelay.wsURL())
		if err != nil {
			return err
		}
		conns[i] = c
		adding.Lock()
		err = writer.addDevice(j, c.device)
		adding.Unlock()
		if err != nil {
			return err
		}
		if err := c.subscribe(j, 0); err != nil {
			return err
		}
		var cu protocol.CaughtUp
		return c.readAs(protocol.TypeCaughtUp, &cu)
	})
	if err != nil {
		return nil, err
	}

	base := time.Now()
	sent := make([]atomic.Int64, puts+1) // by seq: ns since base when the put was sent
	lat := make([][]time.Duration, subs)
	got := newSeqCount(puts) // one per subscriber per put
	subErr := make([]error, subs)
	var readers sync.WaitGroup
	for i, c := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			want := uint64(1)
			var seqs []uint64
			fail := func(err error) {
				subErr[i] = err
				// Let the writer go on; the error is reported.
				got.add(int(want), puts)
			}
			for want <= uint64(puts) {
				binary, data, err := c.readMessage()
				if err != nil {
					fail(err)
					return
				}
				now := time.Since(base)
				// Not a push (a ping answer or similar): no seqs.
				if seqs, err = blobSeqs(binary, data, seqs[:0]); err != nil {
					fail(err)
					return
				}
				for _, seq := range seqs {
					if seq != want {
						fail(fmt.Errorf("subscriber %d got seq %d, want %d", i, seq, want))
						return
					}
					lat[i] = append(lat[i], now-time.Duration(sent[seq].Load()))
					got.add(int(want), int(want))
					want++
				}
				if o.breakFirst && i == 0 {
					c.close()
				}
			}
		}()
	}
	ch := &chain{journal: j, author: writer.device, size: o.blobSize}
	var frame []byte
	var acks []time.Duration
	for seq := uint64(1); seq <= uint64(puts); seq++ {
		id := writer.id()
		blob := ch.next()
		sent[seq].Store(int64(time.Since(base)))
		if frame, err = writer.sendPut(frame, id, j, blob); err != nil {
			return nil, err
		}
		ok, err := writer.waitOK(id)
		if err != nil {
			return nil, err
		}
		acks = append(acks, time.Since(base)-time.Duration(sent[seq].Load()))
		if ok.Seq != seq {
			return nil, fmt.Errorf("the put was stored at seq %d, want %d", ok.Seq, seq)
		}
		got.wait(int(seq), subs)
	}
	readers.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	var errs []error
	var failures []string
	for _, err := range subErr {
		if err != nil {
			errs = append(errs, err)
			if len(failures) < maxFailures {
				failures = append(failures, err.Error())
			}
		}
	}
	// One failed subscriber does not throw the run away (see
	// ingestResult.FailedWriters); every one failing does.
	if len(errs) == subs {
		return nil, errors.Join(errs...)
	}
	p, a := percentiles(all), percentiles(acks)
	return &pushResult{Store: backend, Nodes: nodes, Subscribers: subs, Puts: puts, Samples: len(all), P50ms: p.p50, P99ms: p.p99, AckP50ms: a.p50, AckP99ms: a.p99,
		FailedSubscribers: len(errs), Failures: failures}, nil
}

// parallel runs fn(0..n-1) with at most width at a time and returns the
// errors joined.
func parallel(n, width int, fn func(i int) error) error {
	sem := make(chan struct{}, width)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// seqCount counts, for each message of a run, the subscribers done with
// it: those that received it and those that failed before it. The sender
// waits for every subscriber before the next message, so latencies are
// measured one message at a time. (A WaitGroup per run cannot do this: a
// failing subscriber must count for messages not yet sent.)
type seqCount struct {
	mu   sync.Mutex
	cond sync.Cond
	n    []int // by message number, from 1
}

func newSeqCount(msgs int) *seqCount {
	c := &seqCount{n: make([]int, msgs+1)}
	c.cond.L = &c.mu
	return c
}

// add counts one subscriber as done with messages from through to.
func (c *seqCount) add(from, to int) {
	c.mu.Lock()
	for i := from; i <= to; i++ {
		c.n[i]++
	}
	c.mu.Unlock()
	c.cond.Broadcast()
}

// wait returns when subs subscribers are done with message seq.
func (c *seqCount) wait(seq, subs int) {
	c.mu.Lock()
	for c.n[seq] < subs {
		c.cond.Wait()
	}
	c.mu.Unlock()
}
