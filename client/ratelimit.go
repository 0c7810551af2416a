package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// A relay asked for more than it allows answers rate-limited, with a hint
// of when to try again (retry_after_ms), and does nothing else: the request
// was not carried out, so sending it again is always safe. Rather than fail
// a sync for that, relayConn sends a refused request again once the hint
// has passed. Resends of many refused requests (a pipeline of puts) are
// spaced one hint apart, so they arrive at about the rate the relay allows
// instead of all at once. A request refused maxRateRetries times, or whose
// resend would come more than rateRetryBudget after it was first sent, gets
// the error after all (protocol.ErrRateLimited; the outbox keeps its
// entries and the CLI suggests trying again later).
const (
	maxRateRetries  = 8
	rateRetryBudget = 20 * time.Second // below replyTimeout
	minRateWait     = 10 * time.Millisecond
)

// pacer remembers requests awaiting replies so that refused ones can be
// sent again.
type pacer struct {
	mu   sync.Mutex
	reqs map[uint64]*resendable // guarded by mu
	next time.Time              // earliest time for the next resend; guarded by mu
}

type resendable struct {
	msg   any
	sent  time.Time
	tries int
}

func (p *pacer) remember(id uint64, msg any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reqs == nil {
		p.reqs = make(map[uint64]*resendable)
	}
	p.reqs[id] = &resendable{msg: msg, sent: time.Now()}
}

func (p *pacer) forget(id uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.reqs, id)
}

// retryLater schedules request e.ID to be sent again if e is a
// rate-limited refusal that may still be retried, and reports whether it
// did; otherwise the caller delivers e.
func (c *relayConn) retryLater(e *protocol.Error) bool {
	if e.Code != protocol.CodeRateLimited {
		return false
	}
	wait := max(min(e.RetryAfter(), rateRetryBudget), minRateWait)
	now := time.Now()
	c.pace.mu.Lock()
	r := c.pace.reqs[e.ID]
	at := now.Add(wait)
	if c.pace.next.After(at) {
		at = c.pace.next
	}
	if r == nil || r.tries >= maxRateRetries || at.Sub(r.sent) > rateRetryBudget {
		c.pace.mu.Unlock()
		return false
	}
	r.tries++
	c.pace.next = at.Add(wait)
	c.pace.mu.Unlock()
	time.AfterFunc(at.Sub(now), func() {
		if err := c.send(r.msg); err != nil {
			c.deliver(e.ID, reply{err: err})
		}
	})
	return true
}

// dialError describes a failed connection attempt. A relay that refuses
// the upgrade because of a limit (too many connections) or because it is
// stopping answers with a body "code: sentence"; that becomes the
// matching relay error, so the CLI can say to wait rather than to check
// the address.
func dialError(relayURL string, resp *http.Response, err error) error {
	if resp != nil && resp.Body != nil && resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		code, msg, ok := strings.Cut(strings.TrimSpace(string(body)), ": ")
		if ok && isCode(code) {
			e := &protocol.Error{Code: protocol.Code(code), Message: msg}
			if s, err := strconv.ParseUint(resp.Header.Get("Retry-After"), 10, 32); err == nil {
				e.RetryAfterMS = s * 1000
			}
			return fmt.Errorf("%w at %s: %w", ErrUnreachable, relayURL, e.Err())
		}
	}
	if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return fmt.Errorf("%w at %s: it answered %q, as a proxy does when the relay behind it is down", ErrUnreachable, relayURL, resp.Status)
		default:
			return &notRelayError{url: relayURL, status: resp.Status}
		}
	}
	return fmt.Errorf("%w at %s: %s", ErrUnreachable, relayURL, plainNetError(err))
}

// plainNetError says in words why a connection could not be made, for the
// failures people meet (nothing listening, a name that does not resolve,
// no network, no answer, https to a plain http port, a certificate that
// does not check out); anything else is said as Go says it.
func plainNetError(err error) string {
	var dnsErr *net.DNSError
	var recErr tls.RecordHeaderError
	var certErr *tls.CertificateVerificationError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing answered there (connection refused)"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return fmt.Sprintf("no computer is known by the name %s", dnsErr.Name)
		}
		return fmt.Sprintf("the name %s could not be looked up just now", dnsErr.Name)
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "this computer has no way to it just now (no network?)"
	case errors.As(err, &recErr):
		return "it does not speak https (is the address http:// instead?)"
	case errors.As(err, &certErr):
		return fmt.Sprintf("its certificate could not be checked (%v)", certErr.Err)
	case errors.As(err, &netErr) && netErr.Timeout():
		return "it did not answer in time"
	}
	return err.Error()
}

// notRelayError is ErrNotARelay at an address, with what it answered.
type notRelayError struct {
	url, status string
}

func (e *notRelayError) Error() string {
	return fmt.Sprintf("the address %s answered, but not as a kintsugi relay (it said %q)", e.url, e.status)
}

// Is makes a notRelayError both ErrNotARelay and ErrUnreachable: the
// relay could not be used, and whatever waits to be sent stays queued.
func (e *notRelayError) Is(target error) bool {
	return target == ErrNotARelay || target == ErrUnreachable
}

// isCode reports whether s looks like an error code: lowercase words
// joined by hyphens.
func isCode(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && r != '-' {
			return false
		}
	}
	return true
}
