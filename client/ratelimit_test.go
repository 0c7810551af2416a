package client_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// A relay that refuses puts as rate-limited slows a sync down but does not
// fail it: the client sends each refused put again after the relay's hint,
// and every entry arrives.
func TestSyncWaitsOutRateLimits(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServerWithConfig(t, server.Config{JournalPutRate: 50, JournalPutBurst: 1})
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	const n = 8
	for i := range n {
		if _, err := aj.Write(client.Payload{Kind: client.KindEntry, Text: fmt.Sprint("entry ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if r := mustSync(t, aj); r.Pushed != n {
		t.Fatalf("pushed %d, want %d", r.Pushed, n)
	}
	if refused := rateRejections(t, relay); refused == 0 {
		t.Fatal("the relay never refused a put; the test did not exercise rate limits")
	}
	mustSync(t, sj)
	if got := len(texts(t, sj)); got != n {
		t.Fatalf("partner has %d entries, want %d", got, n)
	}
}

// A relay with no room for another connection says so, and the client
// reports it as the relay asking to wait, not as a wrong address.
func TestDialRefusedForTooManyConnections(t *testing.T) {
	t.Parallel()
	full := servertest.NewServerWithConfig(t, server.Config{MaxConns: 1})
	// A connection that has logged in: one that has not would be closed
	// to make room.
	servertest.Dial(t, full.WebSocketURL(), servertest.NewKey(t))
	_, err := newAccount(t, "kim").CreateJournal(ctxFor(t), full.URL(), "")
	if !errors.Is(err, protocol.ErrRateLimited) || !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("create on a full relay: %v", err)
	}
	if !strings.Contains(err.Error(), "as many connections as it allows") {
		t.Fatalf("error %q does not carry the relay's sentence", err)
	}
}

// rateRejections reads how many puts the relay refused for the journal
// put rate from its metrics.
func rateRejections(t *testing.T, relay *servertest.Server) int {
	t.Helper()
	rec := httptest.NewRecorder()
	relay.Relay().MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	const series = `kintsugi_relay_limit_rejections_total{code="rate-limited",limit="journal_put_rate"} `
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("metric line %q", line)
			}
			return n
		}
	}
	return 0
}
