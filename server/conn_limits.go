package server

import (
	"errors"
	"net"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// rateLimited answers request id, refused by the connection's request
// rate at now, with rate-limited and a retry hint. A connection that keeps
// being refused (see refusalGuard) is closed instead. The first refusal on
// a connection is logged at info, later ones at debug.
func (c *conn) rateLimited(id uint64, wait time.Duration, now time.Time) bool {
	c.s.metrics.reject(string(protocol.CodeRateLimited), limitRequestRate)
	if c.guard.note(now, true) {
		c.fail(reqError(0, protocol.CodeRateLimited, "this connection kept sending requests after being asked to wait; reconnect later"), websocket.ClosePolicyViolation)
		return false
	}
	c.logRateLimited("request refused: rate limited", wait)
	e := reqError(id, protocol.CodeRateLimited, "this connection is sending requests faster than this relay allows (%g a second); try again in %s", c.s.cfg.RequestRate, wait.Round(time.Millisecond))
	e.RetryAfterMS = retryAfterMS(wait)
	return c.reply(e)
}

func (c *conn) logRateLimited(msg string, wait time.Duration) {
	if !c.guard.logged {
		c.guard.logged = true
		c.log.Info(msg, "limit", limitRequestRate, "retry_after", wait)
		return
	}
	c.log.Debug(msg, "limit", limitRequestRate, "retry_after", wait)
}

// errPingFlood ends the reader of a connection closed for its pings.
var errPingFlood = errors.New("ping flood")

// handlePing answers a client's ping with a pong, as gorilla's default
// handler does, but counts it against the connection's request rate
// first: a pong costs the relay a write, like a reply. A ping over the
// rate is not answered; a connection that keeps sending them is closed
// like one that keeps sending requests, and its close names the pings.
// It runs on the reader goroutine.
func (c *conn) handlePing(data string) error {
	c.pingsIn++
	now := c.s.cfg.Now()
	if wait, ok := take(c.limiter, now); !ok {
		c.s.metrics.reject(string(protocol.CodeRateLimited), limitRequestRate)
		if c.guard.note(now, true) {
			c.noteEnd("client sent pings faster than the relay allows (a ping flood)")
			c.fail(reqError(0, protocol.CodeRateLimited, "this connection sent pings faster than this relay allows; reconnect later"), websocket.ClosePolicyViolation)
			return errPingFlood
		}
		c.logRateLimited("ping not answered: rate limited", wait)
		return nil
	}
	c.guard.note(now, false)
	err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(closeWait))
	var ne net.Error
	if err == nil || errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
		return nil // as gorilla's default: a pong that cannot be written is not the reader's failure
	}
	return err
}

// checkPutLimits applies the journal put rate and the journal quota to a
// put. It returns (continue, allowed); when not allowed it has answered.
// A blob the journal already holds is let through either limit: storing
// it is a no-op, and the client needs its ok to clear its outbox.
func (c *conn) checkPutLimits(r *request, now time.Time) (bool, bool) {
	wait, rateOK := c.s.journals.take(r.Journal, now)
	overQuota := false
	var used, stored int64
	if rateOK && c.s.cfg.JournalQuota >= 0 {
		var err error
		if stored, err = c.s.cfg.Store.JournalUsage(c.ctx, r.Journal); err != nil {
			return c.internal(r, err), false
		}
		used = stored
		// This connection's puts still waiting for their answer count
		// too, or a pipelining client could overshoot by a whole window
		// (one committed but not yet answered counts twice, which near
		// the quota errs on the safe side).
		used += c.pendingBytes(r.Journal)
		overQuota = used+int64(len(r.Blob)) > c.s.cfg.JournalQuota
	}
	if rateOK && !overQuota {
		return true, true
	}
	held, err := c.s.cfg.Store.HasBlob(c.ctx, r.Journal, protocol.IDOf(r.Blob))
	if err != nil {
		return c.internal(r, err), false
	}
	if held {
		return true, true
	}
	if !rateOK {
		c.s.metrics.reject(string(protocol.CodeRateLimited), limitJournalPutRate)
		c.log.Debug("put refused: rate limited", "limit", limitJournalPutRate, "journal", r.Journal.String(), "retry_after", wait)
		e := reqError(r.ID, protocol.CodeRateLimited, "journal %s is taking new entries faster than this relay allows (%g a second); try again in %s", r.Journal, c.s.cfg.JournalPutRate, wait.Round(time.Millisecond))
		e.RetryAfterMS = retryAfterMS(wait)
		return c.reply(e), false
	}
	c.s.metrics.reject(string(protocol.CodeQuotaExceeded), limitJournalQuota)
	c.log.Info("put refused: journal quota", "limit", limitJournalQuota, "journal", r.Journal.String(), "stored", stored, "in_flight", used-stored, "bytes", len(r.Blob))
	return c.reply(reqError(r.ID, protocol.CodeQuotaExceeded, "journal %s holds %s of a %s limit on this relay, and this %s blob would go past it; whoever runs the relay can raise the limit",
		r.Journal, humanBytes(stored), humanBytes(c.s.cfg.JournalQuota), humanBytes(int64(len(r.Blob))))), false
}
