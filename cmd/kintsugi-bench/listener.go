package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// listenerResult is the lost-listener scenario: two relays on one
// PostgreSQL database, a subscriber on relay B, and B's listening session
// ended and kept out while blobs are put on relay A.
type listenerResult struct {
	Rounds int `json:"rounds"`
	// Missed is the blobs put on A each round while B was not listening.
	Missed int `json:"missed_per_round"`
	// DownSeconds is how long B was kept from connecting each round,
	// long enough for its listener to wait its longest between tries.
	DownSeconds float64 `json:"down_seconds"`
	// From letting B connect again to its subscriber having every
	// missed blob: the median and the longest of the rounds.
	RecoverP50ms float64 `json:"recover_p50_ms"`
	RecoverMaxms float64 `json:"recover_max_ms"`
}

// listenerDown is how long B is kept out each round, and listenerMissed
// how many blobs are put on A meanwhile.
const (
	listenerDown   = 2 * time.Second
	listenerMissed = 20
)

// runListener measures how soon a relay whose listening session was lost
// delivers what was put through another relay meanwhile, once the
// database lets it connect again. Relay B's periodic poll is off, so
// only its listener can deliver; B's pool keeps the sessions it has, so
// its subscriber stays served.
func runListener(o *options, rounds, missed int) (*listenerResult, error) {
	relays, err := startRelaysWith(o, backendPostgres, 2, relayOptions{poll: time.Hour})
	if err != nil {
		return nil, err
	}
	defer relays.stop()
	a, b, db := relays.procs[0], relays.procs[1], relays.db

	writer, err := dialDevice(a.wsURL())
	if err != nil {
		return nil, err
	}
	defer writer.close()
	j := newJournalID()
	if err := writer.create(j); err != nil {
		return nil, err
	}
	sub, err := dialDevice(b.wsURL())
	if err != nil {
		return nil, err
	}
	defer sub.close()
	if err := writer.addDevice(j, sub.device); err != nil {
		return nil, err
	}
	if err := sub.subscribe(j, 0); err != nil {
		return nil, err
	}
	var cu protocol.CaughtUp
	if err := sub.readAs(protocol.TypeCaughtUp, &cu); err != nil {
		return nil, err
	}

	ch := &chain{journal: j, author: writer.device, size: o.blobSize}
	var frame []byte
	var seq uint64
	var times []time.Duration
	for round := range rounds {
		// B's listener, back from the round before.
		pid, err := waitListeners(db, 1)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", round, err)
		}
		if err := pgExec(db.admin, "ALTER ROLE "+db.role+" NOLOGIN"); err != nil {
			return nil, err
		}
		if err := pgExec(db.admin, fmt.Sprintf("SELECT pg_terminate_backend(%d)", pid[0])); err != nil {
			return nil, err
		}
		if _, err := waitListeners(db, 0); err != nil {
			return nil, fmt.Errorf("round %d: %w", round, err)
		}
		for range missed {
			id := writer.id()
			var err error
			if frame, err = writer.sendPut(frame, id, j, ch.next()); err != nil {
				return nil, err
			}
			if _, err := writer.waitOK(id); err != nil {
				return nil, err
			}
			seq++
		}
		time.Sleep(listenerDown)
		t0 := time.Now()
		if err := pgExec(db.admin, "ALTER ROLE "+db.role+" LOGIN"); err != nil {
			return nil, err
		}
		var seqs []uint64
		for want := seq - uint64(missed) + 1; want <= seq; {
			binary, data, err := sub.readMessage()
			if err != nil {
				return nil, fmt.Errorf("round %d: the subscriber on relay B: %w", round, err)
			}
			if seqs, err = blobSeqs(binary, data, seqs[:0]); err != nil {
				return nil, fmt.Errorf("round %d: the subscriber on relay B: %w", round, err)
			}
			for _, got := range seqs {
				if got != want {
					return nil, fmt.Errorf("round %d: the subscriber got seq %d, want %d", round, got, want)
				}
				want++
			}
		}
		times = append(times, time.Since(t0))
	}
	slices.Sort(times)
	return &listenerResult{Rounds: rounds, Missed: missed, DownSeconds: listenerDown.Seconds(),
		RecoverP50ms: ms(times[len(times)/2]), RecoverMaxms: ms(times[len(times)-1])}, nil
}

// waitListeners waits until relay B (db's own role) has n listening
// sessions and returns their process ids.
func waitListeners(db *benchDB, n int) ([]int32, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids, err := db.listenerPIDs(db.role)
		if err != nil {
			return nil, err
		}
		if len(pids) == n {
			return pids, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("relay B has %d listening sessions after 30 s, want %d", len(pids), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
