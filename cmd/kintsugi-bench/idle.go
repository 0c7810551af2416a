package main

import (
	"fmt"
	"syscall"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// idleResult is the relay's memory at one number of idle connections.
type idleResult struct {
	Connections int `json:"connections"`
	// Per connection, relative to the relay before any connection:
	RSSBytes      float64 `json:"rss_bytes_per_conn"`   // resident set size (what the kernel charges the process)
	GoBytes       float64 `json:"go_bytes_per_conn"`    // Go heap in use plus goroutine stacks
	HeapBytes     float64 `json:"heap_bytes_per_conn"`  // Go heap in use (spans holding objects)
	LiveBytes     float64 `json:"live_bytes_per_conn"`  // Go heap objects alive
	StackBytes    float64 `json:"stack_bytes_per_conn"` // goroutine stacks
	GoroutinesPer float64 `json:"goroutines_per_conn"`
	RelayRSSBytes uint64  `json:"relay_rss_bytes"`    // the whole relay process
	BaselineRSS   uint64  `json:"baseline_rss_bytes"` // before any connection
}

// idleRounds is how many ping intervals the connections sit idle before
// the relay's memory is read: the relay pings each one and its client
// answers, as real clients do.
const idleRounds = 3

// runIdle opens idle subscribed connections, in steps of counts (sorted
// ascending), and reads the relay's memory at each step. Each connection
// is its own device, creates its own journal, subscribes to it, reads
// CaughtUp and then sends nothing. Memory is read after a forced GC in the
// relay process; kernel socket buffers are not part of it. The relay pings
// every o.idlePing and the clients answer, as they would every 30 s with
// the default setting.
func runIdle(o *options, counts []int) ([]idleResult, error) {
	if len(counts) == 0 {
		return nil, nil
	}
	need := uint64(counts[len(counts)-1]) + 256
	if err := raiseFileLimit(need); err != nil {
		return nil, err
	}
	ro := o.relayOptions()
	ro.ping = o.idlePing
	relay, err := startRelay(o.dir, ro)
	if err != nil {
		return nil, err
	}
	defer relay.stop()

	// One connection first, so one-off costs (the first journal, the
	// store's caches, the HTTP server's first goroutines) land in the
	// baseline rather than in the per-connection figure.
	first, err := openIdle(relay)
	if err != nil {
		return nil, err
	}
	conns := []*rawConn{first}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	settle := idleRounds * o.idlePing
	time.Sleep(settle)
	before, err := relay.mem()
	if err != nil {
		return nil, err
	}
	var out []idleResult
	for _, n := range counts {
		add := n - (len(conns) - 1)
		if add <= 0 {
			continue
		}
		fresh := make([]*rawConn, add)
		err := parallel(add, setupParallel, func(i int) error {
			c, err := openIdle(relay)
			fresh[i] = c
			return err
		})
		for _, c := range fresh {
			if c != nil {
				conns = append(conns, c)
			}
		}
		if err != nil {
			return nil, err
		}
		time.Sleep(settle)
		after, err := relay.mem()
		if err != nil {
			return nil, err
		}
		per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
		out = append(out, idleResult{
			Connections:   n,
			RSSBytes:      per(after.RSS, before.RSS),
			GoBytes:       per(after.HeapInuse+after.StackInuse, before.HeapInuse+before.StackInuse),
			HeapBytes:     per(after.HeapInuse, before.HeapInuse),
			LiveBytes:     per(after.HeapAlloc, before.HeapAlloc),
			StackBytes:    per(after.StackInuse, before.StackInuse),
			GoroutinesPer: per(uint64(after.Goroutines), uint64(before.Goroutines)),
			RelayRSSBytes: after.RSS,
			BaselineRSS:   before.RSS,
		})
	}
	return out, nil
}

// openIdle opens one idle subscribed connection.
func openIdle(relay *relayProc) (*rawConn, error) {
	c, err := dialDevice(relay.wsURL())
	if err != nil {
		return nil, err
	}
	j := newJournalID()
	if err := c.create(j); err != nil {
		c.close()
		return nil, err
	}
	if err := c.subscribe(j, 0); err != nil {
		c.close()
		return nil, err
	}
	var cu protocol.CaughtUp
	if err := c.readAs(protocol.TypeCaughtUp, &cu); err != nil {
		c.close()
		return nil, err
	}
	// Keep reading, as a client does: gorilla answers the relay's pings
	// only while reading. The loop ends when the connection is closed.
	go func() {
		for {
			_ = c.ws.SetReadDeadline(time.Time{})
			if _, _, err := c.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	return c, nil
}

// raiseFileLimit raises this process's open-file limit to at least need,
// up to the hard limit; the relay child inherits it. (Go already raises
// the soft limit to the hard one at start-up; this checks it is enough.)
func raiseFileLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= need {
		return nil
	}
	if lim.Max < need {
		return fmt.Errorf("%d connections need about %d open files, and the hard limit here is %d", need-256, need, lim.Max)
	}
	lim.Cur = need
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
