package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// An address that answers HTTP but not as a relay is ErrNotARelay (and
// still ErrUnreachable, so what waits to be sent stays queued); a proxy
// whose relay is down is only unreachable.
func TestDialNotARelay(t *testing.T) {
	for _, c := range []struct {
		status   int
		notRelay bool
	}{
		{http.StatusOK, true},
		{http.StatusNotFound, true},
		{http.StatusMovedPermanently, true},
		{http.StatusBadGateway, false},
		{http.StatusServiceUnavailable, false},
	} {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
			}))
			defer web.Close()
			u, err := NormalizeRelayURL(web.URL)
			if err != nil {
				t.Fatal(err)
			}
			_, err = dialRelay(context.Background(), u, nil, "")
			if !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrNotARelay) != c.notRelay {
				t.Fatalf("%v: unreachable %v, not a relay %v", err, errors.Is(err, ErrUnreachable), errors.Is(err, ErrNotARelay))
			}
			if strings.Contains(err.Error(), "bad handshake") {
				t.Errorf("error names the handshake: %v", err)
			}
		})
	}
}
