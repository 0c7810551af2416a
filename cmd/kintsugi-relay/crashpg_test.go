package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/internal/pgtest"
	"github.com/kintsugi-journal/kintsugi/server/pgstore"
)

// TestCrashLoadPostgres is TestCrashLoad for relays sharing PostgreSQL:
// two relay processes on one database, and clients that connect to each
// in turn, as a load balancer would spread them. Each round kills one
// node with SIGKILL while the clients write; the clients it served go on
// through the other node (which must take their writes meanwhile), and
// the node starts again. Every blob acknowledged so far, by either node,
// must then be in the database at the sequence number it was
// acknowledged with, read through the restarted node. In the end the
// clients deliver their outboxes and every journal holds exactly the
// blobs its client wrote, each once.
func TestCrashLoadPostgres(t *testing.T) {
	db := pgtest.NewDatabase(t)
	if _, err := pgstore.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	rounds, n := *crashRounds, *crashClients
	if testing.Short() {
		rounds = min(rounds, 2)
	}
	start := time.Now()
	nodes := []*crashRelay{newCrashRelay(t), newCrashRelay(t)}
	for _, node := range nodes {
		node.store = db
		node.start()
		defer node.kill()
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := newGate() // stays open: one node serves while the other is down
	clients := make([]*loadClient, n)
	var wg sync.WaitGroup
	for i := range clients {
		clients[i] = newLoadClient(t, nodes[i%2].wsURL())
		clients[i].urls = append(clients[i].urls, nodes[(i+1)%2].wsURL())
		wg.Go(func() { clients[i].run(ctx, g) })
	}
	defer func() {
		cancel()
		wg.Wait()
	}()

	totalAcked := func() int {
		sum := 0
		for _, c := range clients {
			sum += c.ackedCount()
		}
		return sum
	}
	waitAcked := func(round int, more int, what string) {
		t.Helper()
		base := totalAcked()
		deadline := time.Now().Add(time.Minute)
		for totalAcked() < base+more {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %s: only %d blobs acknowledged in a minute", round, what, totalAcked()-base)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	for round := range rounds {
		waitAcked(round, 2*n, "both nodes up")
		time.Sleep(randDuration(50 * time.Millisecond))
		victim := nodes[round%2]
		victim.kill()
		waitAcked(round, n, "one node down")
		victim.start()
		checkAcked(t, victim.wsURL(), clients, false)
	}

	for _, c := range clients {
		c.stopGenerating.Store(true)
	}
	waitOutboxes(t, clients)
	for _, node := range nodes {
		checkAcked(t, node.wsURL(), clients, true)
	}
	var acked, dups int64
	for _, c := range clients {
		acked += int64(c.ackedCount())
		dups += c.dups.Load()
	}
	t.Logf("crash load on PostgreSQL: %d rounds, %d clients on 2 nodes, %d blobs acknowledged, 0 lost, %d resent blobs the database already had, %s",
		rounds, n, acked, dups, time.Since(start).Round(time.Millisecond))
}
