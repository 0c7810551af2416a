package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// serveHealthz answers 200 ok while the relay serves, 503 once Close has
// begun.
func (s *Server) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	if s.isClosed() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok"))
}

// readyCheckTimeout bounds the store check behind /readyz.
const readyCheckTimeout = 2 * time.Second

// serveReadyz answers 200 ready when the relay accepts connections and its
// store answers a read; 503 with the reason while it shuts down (drains)
// or when the store fails (for PostgreSQL: when the database does not
// answer within readyCheckTimeout). The log says when the store stops
// answering and when it answers again.
func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request) {
	if s.isClosed() {
		http.Error(w, "draining: the relay is shutting down", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyCheckTimeout)
	defer cancel()
	if err := s.cfg.Store.Check(ctx); err != nil {
		// Logged when it starts failing, not at every probe.
		if s.storeDown.CompareAndSwap(false, true) {
			s.log.Warn("the store is not answering: the relay is not ready", "err", err)
		} else {
			s.log.Debug("readiness check failed", "err", err)
		}
		http.Error(w, "the relay's store is not answering", http.StatusServiceUnavailable)
		return
	}
	if s.storeDown.CompareAndSwap(true, false) {
		s.log.Info("the store answers again: the relay is ready")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ready"))
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Info returns the relay information document served at
// protocol.InfoPath.
func (s *Server) Info() protocol.RelayInfo {
	c := &s.cfg
	nonNeg := func(v float64) float64 { return max(v, 0) }
	lim := protocol.RelayLimits{
		MaxBlobSize:      c.MaxBlobSize,
		MaxMessageSize:   protocol.MaxMessageSize,
		MaxAuthMessage:   maxAuthMessage,
		MaxInvitePacket:  protocol.MaxInvitePacket,
		AuthTimeout:      c.AuthTimeout.Seconds(),
		PingInterval:     c.PingInterval.Seconds(),
		InviteMaxTTL:     c.InviteMaxTTL.Seconds(),
		RequestRate:      nonNeg(c.RequestRate),
		JournalPutRate:   nonNeg(c.JournalPutRate),
		JournalQuota:     max(c.JournalQuota, 0),
		MaxConnections:   max(c.MaxConns, 0),
		MaxUnauthConns:   max(c.MaxUnauthConns, 0),
		MaxConnsPerAddr:  max(c.MaxConnsPerAddress, 0),
		MaxSubscriptions: max(c.MaxSubscriptions, 0),
	}
	if c.RequestRate >= 0 {
		lim.RequestBurst = c.RequestBurst
	}
	if c.JournalPutRate >= 0 {
		lim.JournalPutBurst = c.JournalPutBurst
	}
	return protocol.RelayInfo{
		Software:        "kintsugi-relay",
		Version:         c.Version,
		ProtocolVersion: c.MaxProtocolVersion,
		Subprotocol:     protocol.SubprotocolOf(c.MaxProtocolVersion),
		Subprotocols:    s.upgrader.Subprotocols,
		RelayID:         s.relayID,
		Limits:          lim,
	}
}

// serveInfo serves the information document. It holds nothing private, so
// any web page may read it.
func (s *Server) serveInfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	body, err := json.MarshalIndent(s.Info(), "", "  ")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(append(body, '\n'))
}
