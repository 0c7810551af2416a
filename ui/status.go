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
	CanMarkRead         bool // some warning can be marked read
	Read                int  // just marked read
}

type warning struct {
	Text  string
	Holds bool // a condition: it shows while it holds
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
		v.Warnings = append(v.Warnings, warning{Text: s.cfg.Sentence(n), Holds: n.Holds})
		v.CanMarkRead = v.CanMarkRead || !n.Holds
	}
	for _, m := range st.Missing {
		v.Warnings = append(v.Warnings, warning{Text: s.cfg.Sentence(m), Holds: true})
	}
	fmt.Sscan(r.URL.Query().Get("read"), &v.Read)
	s.render(w, r, http.StatusOK, "status", &page{Title: "Status", Journal: o.j.Title(), Status: v, Sync: s.syncLine(o)})
}

// markRead marks every warning read, as `kintsugi status --ack all` does.
func (s *Server) markRead(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	n, err := o.j.AcknowledgeAll()
	if err != nil {
		s.failed(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/status?read=%d", n), http.StatusSeeOther)
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
