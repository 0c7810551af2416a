package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/internal/wire"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

var (
	crashRounds  = flag.Int("crash.rounds", 3, "SIGKILL-and-restart rounds in TestCrashLoad")
	crashClients = flag.Int("crash.clients", 16, "concurrent writing connections in TestCrashLoad")
)

// TestCrashLoad kills the relay process with SIGKILL while many clients
// write distinct blobs to it, and restarts it, -crash.rounds times. Each
// client keeps an outbox: a blob leaves it only when the relay has
// acknowledged it. After every restart, before any client reconnects,
// every blob acknowledged so far must be in the relay at the sequence
// number it was acknowledged with, byte for byte. In the end the clients
// deliver their outboxes and every journal holds exactly the blobs its
// client wrote, each once.
//
// A SIGKILL tests the relay process dying, not the machine: data the
// relay wrote but did not fsync survives a SIGKILL in the page cache, so
// this test cannot catch a missing fsync (see docs/operations.md).
func TestCrashLoad(t *testing.T) {
	rounds, n := *crashRounds, *crashClients
	if testing.Short() {
		rounds = min(rounds, 2)
	}
	start := time.Now()
	relay := newCrashRelay(t)
	relay.start()
	defer relay.kill()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := newGate()
	clients := make([]*loadClient, n)
	var wg sync.WaitGroup
	for i := range clients {
		clients[i] = newLoadClient(t, relay.url)
		wg.Go(func() { clients[i].run(ctx, g) })
	}
	defer func() {
		cancel()
		g.open()
		wg.Wait()
	}()

	totalAcked := func() int {
		sum := 0
		for _, c := range clients {
			sum += c.ackedCount()
		}
		return sum
	}
	for round := range rounds {
		// Let the clients write until the relay has acknowledged a good
		// number of new blobs, then a little more, to vary the moment of
		// the kill.
		base := totalAcked()
		deadline := time.Now().Add(time.Minute)
		for totalAcked() < base+2*n {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the relay acknowledged only %d blobs in a minute", round, totalAcked()-base)
			}
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(randDuration(50 * time.Millisecond))

		g.shut()
		relay.kill()
		if !g.waitParked(n, time.Minute) {
			t.Fatalf("round %d: clients did not notice the relay died", round)
		}
		relay.start()
		checkAcked(t, relay.wsURL(), clients, false)
		g.open()
	}

	// Stop writing new blobs; deliver the outboxes.
	for _, c := range clients {
		c.stopGenerating.Store(true)
	}
	waitOutboxes(t, clients)
	checkAcked(t, relay.wsURL(), clients, true)
	var acked, dups int64
	for _, c := range clients {
		acked += int64(c.ackedCount())
		dups += c.dups.Load()
	}
	t.Logf("crash load: %d rounds, %d clients, %d blobs acknowledged, 0 lost, %d resent blobs the relay already had, %s",
		rounds, n, acked, dups, time.Since(start).Round(time.Millisecond))
}

// waitOutboxes waits until every client has delivered its outbox,
// failing t if that takes more than two minutes.
func waitOutboxes(t *testing.T, clients []*loadClient) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for _, c := range clients {
		for c.pending() > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("outboxes not delivered in time: %d blobs left in one", c.pending())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// checkAcked reads every client's journal from the relay and checks that
// each acknowledged blob is there at its sequence number. With all, the
// journal must hold exactly the client's blobs.
func checkAcked(t *testing.T, url string, clients []*loadClient, all bool) {
	t.Helper()
	for _, c := range clients {
		c.mu.Lock()
		acked := make(map[uint64]protocol.BlobID, len(c.acked))
		for seq, id := range c.acked {
			acked[seq] = id
		}
		created, generated := c.created, c.generated
		c.mu.Unlock()
		if !created {
			if len(acked) > 0 {
				t.Fatal("blobs acknowledged for a journal never created")
			}
			continue
		}
		got := readJournal(t, url, c)
		for seq, id := range acked {
			if seq == 0 || seq > uint64(len(got)) || got[seq-1] != id {
				t.Fatalf("blob acknowledged at seq %d of a journal is gone after the kill (the journal has %d)", seq, len(got))
			}
		}
		if all && (len(got) != generated || len(acked) != generated) {
			t.Fatalf("journal holds %d blobs, client wrote %d and has %d acknowledged", len(got), generated, len(acked))
		}
	}
}

// readJournal subscribes to c's journal from the start and returns the id
// of each blob, recomputed from its bytes, in sequence order.
func readJournal(t *testing.T, url string, c *loadClient) []protocol.BlobID {
	t.Helper()
	r := servertest.Dial(t, url, c.key)
	defer r.WS.Close()
	servertest.MustOK(t, r.Subscribe(c.journal, 0))
	var ids []protocol.BlobID
	for {
		env, data := r.Push()
		if env.Type == protocol.TypeCaughtUp {
			return ids
		}
		var b protocol.Blob
		if err := protocol.DecodeAs(data, &b); err != nil {
			t.Fatal(err)
		}
		if b.Seq != uint64(len(ids)+1) {
			t.Fatalf("blob seq %d after %d", b.Seq, len(ids))
		}
		ids = append(ids, protocol.IDOf(b.Blob))
	}
}

// loadClient writes blobs to its own journal, one request at a time, and
// keeps every blob the relay has not acknowledged in its outbox, resending
// them in order after each reconnect.
type loadClient struct {
	t       *testing.T
	urls    []string // relays to connect to, each connection to the next
	dials   int      // connections tried; owned by run
	key     ed25519.PrivateKey
	journal protocol.JournalID
	chain   servertest.Chain

	stopGenerating atomic.Bool
	dups           atomic.Int64 // acknowledgements of blobs the relay already had

	mu        sync.Mutex
	created   bool                         // the relay acknowledged the journal
	outbox    [][]byte                     // written, not acknowledged, in order
	acked     map[uint64]protocol.BlobID   // seq -> id
	ackedIDs  map[protocol.BlobID]struct{} // ids in acked
	generated int                          // blobs written in all
}

func newLoadClient(t *testing.T, url string) *loadClient {
	c := &loadClient{t: t, urls: []string{url}, key: servertest.NewKey(t), journal: servertest.NewJournalID(), acked: map[uint64]protocol.BlobID{}, ackedIDs: map[protocol.BlobID]struct{}{}}
	c.chain = servertest.Chain{Journal: c.journal}
	copy(c.chain.Author[:], c.key.Public().(ed25519.PublicKey))
	return c
}

func (c *loadClient) ackedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.acked)
}

func (c *loadClient) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.outbox)
}

// next returns the blob to send: the outbox's head, or a new blob.
func (c *loadClient) next() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.outbox) == 0 {
		if c.stopGenerating.Load() {
			return nil
		}
		c.generated++
		c.outbox = append(c.outbox, c.chain.Next(fmt.Sprintf("blob %d of a crash-test client", c.generated)))
	}
	return c.outbox[0]
}

func (c *loadClient) run(ctx context.Context, g *gate) {
	for ctx.Err() == nil {
		if !g.wait(ctx) {
			return
		}
		ws, err := c.dial()
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		c.session(ctx, ws)
		ws.Close()
	}
}

// session sends until the connection fails or ctx is done.
func (c *loadClient) session(ctx context.Context, ws *websocket.Conn) {
	var id uint64
	c.mu.Lock()
	created := c.created
	c.mu.Unlock()
	if !created {
		id++
		if err := ws.WriteJSON(&protocol.Create{Type: protocol.TypeCreate, ID: id, Journal: c.journal}); err != nil {
			return
		}
		ok, e, err := readReply(ws, id)
		if err != nil || (e != nil && e.Code != protocol.CodeExists) || (e == nil && ok == nil) {
			return
		}
		c.mu.Lock()
		c.created = true // "exists" means our create was stored earlier
		c.mu.Unlock()
	}
	for ctx.Err() == nil {
		blob := c.next()
		if blob == nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		id++
		if err := ws.WriteJSON(&protocol.Put{Type: protocol.TypePut, ID: id, Journal: c.journal, Blob: blob}); err != nil {
			return
		}
		ok, e, err := readReply(ws, id)
		if err != nil {
			return
		}
		if e != nil {
			c.t.Errorf("put refused: %s: %s", e.Code, e.Message)
			return
		}
		bid := protocol.IDOf(blob)
		c.mu.Lock()
		if _, seen := c.ackedIDs[bid]; seen || len(c.outbox) == 0 || protocol.IDOf(c.outbox[0]) != bid {
			c.mu.Unlock()
			c.t.Errorf("acknowledged a blob twice or out of order")
			return
		}
		c.outbox = c.outbox[1:]
		c.acked[ok.Seq] = bid
		c.ackedIDs[bid] = struct{}{}
		c.mu.Unlock()
		if ok.Duplicate {
			c.dups.Add(1)
		}
	}
}

func (c *loadClient) dial() (*websocket.Conn, error) {
	d := wire.Dialer{Timeout: 10 * time.Second}
	url := c.urls[c.dials%len(c.urls)]
	c.dials++
	w, _, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil, err
	}
	if err := w.Handshake(crypto.AuthKey(c.key), ""); err != nil {
		w.WS.Close()
		return nil, err
	}
	return w.WS, nil
}

// readReply reads the OK or Error for request id.
func readReply(ws *websocket.Conn, id uint64) (*protocol.OK, *protocol.Error, error) {
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		return nil, nil, err
	}
	env, err := protocol.Decode(data)
	if err != nil {
		return nil, nil, err
	}
	switch env.Type {
	case protocol.TypeOK:
		var ok protocol.OK
		if err := protocol.DecodeAs(data, &ok); err != nil || ok.ID != id {
			return nil, nil, fmt.Errorf("ok for %d while waiting for %d (%v)", ok.ID, id, err)
		}
		return &ok, nil, nil
	case protocol.TypeError:
		var e protocol.Error
		if err := protocol.DecodeAs(data, &e); err != nil {
			return nil, nil, err
		}
		if e.ID != id {
			return nil, nil, errors.New(e.Message)
		}
		return nil, &e, nil
	}
	return nil, nil, fmt.Errorf("unexpected %s", env.Type)
}

// gate holds the clients while the test checks a restarted relay.
type gate struct {
	mu     sync.Mutex
	ch     chan struct{} // closed while open
	parked atomic.Int32  // clients waiting at the shut gate
}

func newGate() *gate {
	g := &gate{ch: make(chan struct{})}
	close(g.ch)
	return g
}

func (g *gate) shut() {
	g.mu.Lock()
	g.ch = make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) open() {
	g.mu.Lock()
	select {
	case <-g.ch:
	default:
		close(g.ch)
	}
	g.mu.Unlock()
}

func (g *gate) wait(ctx context.Context) bool {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	select {
	case <-ch:
		return true
	default:
	}
	g.parked.Add(1)
	defer g.parked.Add(-1)
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

func (g *gate) waitParked(n int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for int(g.parked.Load()) < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// crashRelay is a real relay process on a fixed loopback address.
type crashRelay struct {
	t     *testing.T
	data  string
	store string // a PostgreSQL URL, or "" for Badger in data
	addr  string
	url   string
	cmd   *exec.Cmd
}

func newCrashRelay(t *testing.T) *crashRelay {
	r := &crashRelay{t: t, data: filepath.Join(t.TempDir(), "relay-data"), addr: freeAddr(t)}
	r.url = "ws://" + r.addr + protocol.Path
	return r
}

func (r *crashRelay) wsURL() string { return r.url }

func (r *crashRelay) start() {
	r.t.Helper()
	r.cmd = exec.Command(os.Args[0])
	r.cmd.Env = append(os.Environ(), "KINTSUGI_CRASH_RELAY_DATA="+r.data, "KINTSUGI_CRASH_RELAY_ADDR="+r.addr, "KINTSUGI_CRASH_RELAY_STORE="+r.store)
	r.cmd.Stderr = os.Stderr
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	hc := http.Client{Timeout: time.Second}
	for range 800 { // up to 20 s on a loaded machine
		if resp, err := hc.Get("http://" + r.addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	r.t.Fatal("relay did not become healthy")
}

func (r *crashRelay) kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	r.cmd.Wait()
	r.cmd = nil
}

func randDuration(max time.Duration) time.Duration {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(max)))
	return time.Duration(n.Int64())
}
