package ui

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/kintsugi-journal/kintsugi/client"
)

// The status page, as `kintsugi status` has it: who, which journal, the
// relay, the partner, what waits to be sent, and the warnings (notices)
// until they are marked read. The timeline points here while a warning
// is unread.

// statusView is what the status page shows.
type statusView struct {
	You, Journal, Relay string
	Partner             string // a sentence about the partner
	Entries             int
	ToSend              string
	LastSync            string
	Writing             string // why nothing can be written here, if so
	Held                int
	Unreadable          int
	Warnings            []warning
	// Own is what the record the person's devices share says: its
	// missing items and unread notices (`kintsugi status` prints them as
	// "Your devices: …").
	Own         []warning
	CanMarkRead bool // some warning can be marked read
	Marked      bool // just marked read:
	Read        int  // how many
}

type warning struct {
	Text  string
	ID    string // the notice's id, to mark it read alone; "" when it cannot be
	Holds bool   // a condition: it shows while it holds
}

// unreadWarnings returns the notices status shows as warnings: unread
// ones, and conditions that hold.
func unreadWarnings(ns []client.Notice) []client.Notice {
	var out []client.Notice
	for _, n := range ns {
		if !n.Acknowledged || n.Holds {
			out = append(out, n)
		}
	}
	return out
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	st, err := o.j.Status()
	if err != nil {
		s.failed(w, r, err)
		return
	}
	v := &statusView{You: o.acct.Name, Journal: st.Title, Relay: st.Relay, Entries: st.Entries, ToSend: "nothing", Held: st.Held, Unreadable: st.Unreadable}
	if v.Journal == "" {
		v.Journal = "(untitled)"
	}
	v.Journal += " (" + st.Journal[:8] + ")"
	if werr := o.j.Writable(); errors.Is(werr, client.ErrLeft) || errors.Is(werr, client.ErrNotServed) {
		v.Writing, _ = s.cfg.Describe(werr)
	}
	if st.Outbox > 0 {
		s.mu.Lock()
		connected := o.connected
		s.mu.Unlock()
		v.ToSend = fmt.Sprintf("%d, once the relay can be reached", st.Outbox)
		if connected {
			v.ToSend = fmt.Sprintf("%d, being sent now", st.Outbox)
		}
	}
	switch {
	case st.Partner == "":
		v.Partner = "not joined yet"
	case st.PartnerLeft != nil:
		v.Partner = fmt.Sprintf("%s left the journal on %s; nothing new is sent to them", st.Partner, st.PartnerLeft.Local().Format("2 January 2006"))
	case st.Verified:
		v.Partner = st.Partner + " (safety number verified)"
	default:
		v.Partner = st.Partner + " (safety number not compared yet)"
	}
	if st.LastSync != nil {
		v.LastSync = st.LastSync.Local().Format("Mon 2 Jan 15:04")
	}
	for _, n := range unreadWarnings(st.Notices) {
		w := warning{Text: s.cfg.Sentence(n), Holds: n.Holds}
		if !n.Holds {
			w.ID = n.ID
		}
		v.Warnings = append(v.Warnings, w)
		v.CanMarkRead = v.CanMarkRead || !n.Holds
	}
	for _, m := range st.Missing {
		v.Warnings = append(v.Warnings, warning{Text: s.cfg.Sentence(m), Holds: true})
	}
	// The record the person's devices share, when there is one: what a
	// relay did to it is said apart, so nobody takes it for the journal
	// with their partner. Its notices are marked read with the rest.
	if own, err := o.acct.AccountStatus(); err == nil {
		for _, m := range own.Missing {
			v.Own = append(v.Own, warning{Text: s.cfg.Sentence(m), Holds: true})
		}
		for _, n := range unreadWarnings(own.Notices) {
			v.Own = append(v.Own, warning{Text: s.cfg.Sentence(n), Holds: n.Holds})
			v.CanMarkRead = v.CanMarkRead || !n.Holds
		}
	} else if !errors.Is(err, client.ErrNoAccountJournal) {
		s.cfg.Logger.Warn("the record your devices share could not be read", "err", err)
	}
	if read := r.URL.Query().Get("read"); read != "" {
		v.Marked = true
		fmt.Sscan(read, &v.Read)
	}
	s.render(w, r, http.StatusOK, "status", &page{Title: "Status", Journal: o.j.Title(), Status: v, Sync: s.syncLine(o)})
}

// markRead marks warnings read: the one the form names (its "notice"),
// as `kintsugi status --ack ID` does, or, without one, every warning, the
// shared record's included, as `kintsugi status --ack all` does.
func (s *Server) markRead(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	n, err := 0, error(nil)
	if id := r.PostFormValue("notice"); id != "" {
		n, err = s.markOne(o.j, id)
	} else {
		n, err = o.j.AcknowledgeAll()
		if err == nil {
			var own int
			own, err = o.acct.AcknowledgeAccountNotices()
			n += own
		}
	}
	if errors.Is(err, client.ErrNoSuchNotice) || errors.Is(err, client.ErrNoticeHolds) {
		msg, hint := s.cfg.Describe(err)
		s.problem(w, r, http.StatusConflict, msg, hint, true)
		return
	}
	if err != nil {
		s.failed(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/status?read=%d", n), http.StatusSeeOther)
}

// markOne marks the notice id read and says how many warnings that took
// away (none when it was read already).
func (s *Server) markOne(j *client.Journal, id string) (int, error) {
	before, err := j.Notices()
	if err != nil {
		return 0, err
	}
	if err := j.Acknowledge(id); err != nil {
		return 0, err
	}
	after, err := j.Notices()
	if err != nil {
		return 0, err
	}
	return len(unreadWarnings(before)) - len(unreadWarnings(after)), nil
}

// unreadCount says how many warnings the status page shows, for the
// timeline's pointer to it.
func unreadCount(j *client.Journal) int {
	ns, err := j.Notices()
	if err != nil {
		return 0
	}
	return len(unreadWarnings(ns))
}
