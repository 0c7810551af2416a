package ui

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Live updates. While unlocked, the server's watch (unlock.go) tells the
// hub when entries arrive or the server locks; GET /events streams that
// to each open page as server-sent events, and static/live.js reloads the
// timeline (or the page). The events carry no content, only what
// happened: the page asks for the content over its own session.

// hub fans events out to the open event streams. Each stream has a small
// queue; an event for a full queue is dropped, since the next one says
// the same ("look again") and a slow page must not hold up the watch.
type hub struct {
	mu     sync.Mutex
	subs   map[chan string]bool
	closed bool
}

func newHub() *hub { return &hub{subs: map[chan string]bool{}} }

// subscribe returns a stream's queue, or nil once the hub is closed.
func (h *hub) subscribe() chan string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	c := make(chan string, 4)
	h.subs[c] = true
	return c
}

func (h *hub) unsubscribe(c chan string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[c] {
		delete(h.subs, c)
		close(c)
	}
}

// send queues event for every stream.
func (h *hub) send(event string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		select {
		case c <- event:
		default:
		}
	}
}

// close ends every stream, for shutdown.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.subs {
		delete(h.subs, c)
		close(c)
	}
}

// heartbeat is how often an idle stream sends a comment, so a connection
// that died is noticed.
const heartbeat = 25 * time.Second

// events streams the hub's events (text/event-stream). It does not count
// as the person's activity for the idle lock.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	f, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported", http.StatusInternalServerError)
		return
	}
	c := s.hub.subscribe()
	if c == nil {
		http.Error(w, "kintsugi ui is stopping", http.StatusServiceUnavailable)
		return
	}
	defer s.hub.unsubscribe(c)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 3000\n\n")
	f.Flush()
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-c:
			if !ok {
				return
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev, ev)
		case <-t.C:
			fmt.Fprint(w, ": still here\n\n")
		}
		f.Flush()
	}
}
