package ui

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
)

// journal returns the open journal, unlocking with the agent when it can,
// and notes the person's request against the idle lock (a page fetching
// itself for a live update, marked with the header liveHeader, is not the
// person). It returns nil while locked: the caller sends the person to the
// unlock page. Otherwise the caller calls release when done with it: the
// journal is not closed (by Lock, or the idle lock) while in use.
func (s *Server) journal(r *http.Request) (o *opened, release func()) {
	s.lockIfIdle()
	if o, release := s.current(r.Header.Get(liveHeader) == ""); o != nil {
		return o, release
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	a := s.cfg.Keys.Agent(ctx)
	cancel()
	if a == nil {
		return nil, func() {}
	}
	if err := s.openWith(a); err != nil {
		s.cfg.Logger.Warn("could not open the journal with the unlocked session", "err", err)
		return nil, func() {}
	}
	o, release = s.current(true)
	if o == nil {
		return nil, func() {}
	}
	return o, release
}

// current returns the open journal, in use until release, or nil; seen
// notes the person's request against the idle lock.
func (s *Server) current(seen bool) (o *opened, release func()) {
	s.mu.Lock()
	o = s.open
	if o != nil && seen {
		s.lastSeen = s.cfg.Now()
	}
	s.mu.Unlock()
	if o == nil {
		return nil, nil
	}
	o.use.RLock()
	s.mu.Lock()
	still := s.open == o
	s.mu.Unlock()
	if !still { // locked in between
		o.use.RUnlock()
		return nil, nil
	}
	return o, o.use.RUnlock
}

// unlocked reports whether the server is unlocked now (or the agent
// unlocks it).
func (s *Server) unlocked(r *http.Request) bool {
	o, release := s.journal(r)
	release()
	return o != nil
}

// liveHeader marks the requests static/live.js makes on its own.
const liveHeader = "X-Kintsugi-Live"

// openWith opens the journal with a, starts the watch, and makes it the
// server's, unless another request unlocked first.
func (s *Server) openWith(a *client.Account) error {
	j, err := s.cfg.Open(a)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	o := &opened{acct: a, j: j, stop: stop, done: make(chan struct{})}
	s.mu.Lock()
	if s.open != nil {
		s.mu.Unlock()
		stop()
		j.Close()
		return nil
	}
	s.open, s.lastSeen = o, s.cfg.Now()
	s.mu.Unlock()
	go s.watch(ctx, o)
	return nil
}

// watch keeps the journal synced while it is open, and tells the open
// pages what arrives.
func (s *Server) watch(ctx context.Context, o *opened) {
	defer close(o.done)
	err := o.j.Watch(ctx, func(ev client.Event) {
		s.mu.Lock()
		was := [2]bool{o.connected, o.down}
		switch {
		case ev.Connected:
			o.connected, o.down = true, false
		case ev.Disconnected != nil:
			o.connected, o.down = false, true
		}
		changed := was != [2]bool{o.connected, o.down}
		s.mu.Unlock()
		if ev.Disconnected != nil {
			s.cfg.Logger.Info("the relay cannot be reached", "retry_in", ev.RetryIn)
		}
		switch {
		case ev.NewCount > 0 || len(ev.Joined) > 0 || len(ev.Notices) > 0:
			s.hub.send("entries")
		case changed:
			s.hub.send("sync") // what the timeline says about syncing changed
		}
	})
	if err != nil {
		// Retrying cannot help (this device was removed, say): the
		// timeline says why, in the command line's words.
		s.cfg.Logger.Warn("syncing stopped", "err", err)
		s.mu.Lock()
		o.connected, o.down, o.stopped = false, false, err
		s.mu.Unlock()
		s.hub.send("sync")
	}
}

// lock forgets the account and closes the journal; agent also locks the
// unlock agent's session. The open pages are told, so they show the
// unlock page.
func (s *Server) lock(agent bool) {
	s.mu.Lock()
	o := s.open
	s.open = nil
	s.mu.Unlock()
	if agent {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.cfg.Keys.LockAgent(ctx)
		cancel()
	}
	if o == nil {
		return
	}
	o.stop()
	<-o.done
	o.use.Lock() // wait for the requests using it
	o.j.Close()
	o.use.Unlock()
	s.hub.send("locked")
}

// unlockPage asks for the passphrase, unless the server is unlocked (or
// the agent unlocks it).
func (s *Server) unlockPage(w http.ResponseWriter, r *http.Request) {
	if s.unlocked(r) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "unlock", &page{Title: "Unlock", Locked: true, Notice: lockedNotice(r)})
}

func lockedNotice(r *http.Request) string {
	if r.URL.Query().Get("locked") == "1" {
		return "Locked. Your keys are no longer held in memory here, and any unlocked session is locked too."
	}
	return ""
}

// unlock opens the key file with the posted passphrase. The body is read
// as bytes and wiped after: the passphrase never becomes a string, is
// never logged, and is not kept.
func (s *Server) unlock(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	defer clear(body)
	if err != nil {
		s.problem(w, r, http.StatusBadRequest, "the form could not be read", "go back and try again", true)
		return
	}
	fields, pass := parseSecretForm(body, "passphrase")
	defer clear(pass)
	if !s.csrfOK(fields["csrf"]) {
		s.problem(w, r, http.StatusForbidden, "this form was not sent from a kintsugi page, so nothing was done", "go back to the timeline and try again from there", false)
		return
	}
	if s.unlocked(r) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if len(pass) == 0 {
		s.render(w, r, http.StatusBadRequest, "unlock", &page{Title: "Unlock", Locked: true, Error: &problem{Msg: "the passphrase is empty", Hint: "type the passphrase you chose when you set kintsugi up"}})
		return
	}
	a, err := s.cfg.Keys.Passphrase(pass)
	if err == nil {
		err = s.openWith(a)
	}
	if err != nil {
		msg, hint := s.cfg.Describe(err)
		s.render(w, r, http.StatusForbidden, "unlock", &page{Title: "Unlock", Locked: true, Error: &problem{Msg: msg, Hint: hint}})
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// lockPage is the Lock button.
func (s *Server) lockPage(w http.ResponseWriter, r *http.Request) {
	s.lock(true)
	http.Redirect(w, r, "/unlock?locked=1", http.StatusSeeOther)
}

// parseSecretForm parses an application/x-www-form-urlencoded body. The
// field named secret is returned as bytes the caller can wipe; the others
// (which hold nothing secret) as strings. A field given twice keeps its
// first value.
func parseSecretForm(body []byte, secret string) (fields map[string]string, value []byte) {
	fields = map[string]string{}
	for len(body) > 0 {
		var pair []byte
		pair, body = cut(body, '&')
		k, v := cut(pair, '=')
		key := string(unescape(k))
		if key == secret {
			if value == nil {
				value = unescape(v)
			}
			continue
		}
		if _, ok := fields[key]; !ok {
			fields[key] = string(unescape(v))
		}
	}
	return fields, value
}

// cut splits b at the first sep.
func cut(b []byte, sep byte) (before, after []byte) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

// unescape decodes a form value into a new slice: '+' is a space, %XX a
// byte; a malformed escape is kept as it is.
func unescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '+':
			out = append(out, ' ')
		case c == '%' && i+2 < len(b) && unhex(b[i+1]) >= 0 && unhex(b[i+2]) >= 0:
			out = append(out, byte(unhex(b[i+1])<<4|unhex(b[i+2])))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
