package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
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

// A connection that cannot be made is said in words, not as Go's error
// string: nothing listening, https to a plain http port, a name that does
// not resolve, no answer in time.
func TestDialFailuresInWords(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close() // nothing listens there now
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	for _, c := range []struct {
		url, want string
	}{
		{closedURL, "nothing answered there (connection refused)"},
		{strings.Replace(plain.URL, "http://", "https://", 1), "it does not speak https (is the address http:// instead?)"},
	} {
		u, err := NormalizeRelayURL(c.url)
		if err != nil {
			t.Fatal(err)
		}
		_, err = dialRelay(context.Background(), u, nil, "")
		if !errors.Is(err, ErrUnreachable) || !strings.HasSuffix(err.Error(), ": "+c.want) {
			t.Errorf("%s: %v, want it to end %q", c.url, err, c.want)
		}
		for _, goWords := range []string{"dial tcp", "tls:", "connect:"} {
			if strings.Contains(err.Error(), goWords) {
				t.Errorf("%s: %v says %q", c.url, err, goWords)
			}
		}
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{&net.DNSError{Name: "relay.example.invalid", IsNotFound: true}, "no computer is known by the name relay.example.invalid"},
		{&net.DNSError{Name: "relay.example.org", IsTemporary: true}, "the name relay.example.org could not be looked up just now"},
		{&net.OpError{Op: "dial", Err: syscall.ENETUNREACH}, "this computer has no way to it just now (no network?)"},
		{&net.OpError{Op: "dial", Err: timeoutError{}}, "it did not answer in time"},
	} {
		if got := plainNetError(c.err); got != c.want {
			t.Errorf("plainNetError(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
