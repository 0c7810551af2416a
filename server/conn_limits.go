package server

import (
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// rateLimited answers request id, refused by the connection's request
// rate, with rate-limited and a retry hint. A connection that has had
// maxLimitedInARow requests refused in a row is closed instead.
func (c *conn) rateLimited(id uint64, wait time.Duration) bool {
	c.s.metrics.reject(string(protocol.CodeRateLimited), limitRequestRate)
	c.limited++
	if c.limited > maxLimitedInARow {
		c.fail(reqError(0, protocol.CodeRateLimited, "this connection kept sending requests after being asked to wait; reconnect later"), websocket.ClosePolicyViolation)
		return false
	}
	if c.limited == 1 {
		c.log.Info("request refused: rate limited", "limit", limitRequestRate, "retry_after", wait)
	}
	e := reqError(id, protocol.CodeRateLimited, "this connection is sending requests faster than this relay allows (%g a second); try again in %s", c.s.cfg.RequestRate, wait.Round(time.Millisecond))
	e.RetryAfterMS = retryAfterMS(wait)
	return c.reply(e)
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
		if stored, err = c.s.usage.JournalUsage(c.ctx, r.Journal); err != nil {
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
	if c.s.usage != nil {
		held, err := c.s.usage.HasBlob(c.ctx, r.Journal, protocol.IDOf(r.Blob))
		if err != nil {
			return c.internal(r, err), false
		}
		if held {
			return true, true
		}
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
