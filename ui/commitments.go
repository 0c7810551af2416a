package ui

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
)

// Commitments and their check-ins, as `kintsugi commitments` shows them:
// each commitment with a strip of its last 28 days (or 12 weeks), one mark
// for each, kept, not this time, or nothing noted. It shows what
// happened and counts nothing. Its author checks in from the strip; the
// latest check-in of a day (or week) is the one that stands.

// commitmentView is a commitment and its strip.
type commitmentView struct {
	View    entryView
	Strip   []stripCell
	CheckIn bool // this person may check in on it
}

type stripCell struct {
	Mark  string // ● kept, ○ not this time, · nothing noted
	Class string
	Title string
}

func (s *Server) commitments(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	rd, err := o.j.Reader()
	if err != nil {
		s.failed(w, r, err)
		return
	}
	list, err := rd.Query(client.Query{Kinds: map[string]bool{client.KindCommit: true}})
	if err != nil {
		s.failed(w, r, err)
		return
	}
	now, loc := s.cfg.Now(), time.Local
	p := &page{Title: "Commitments", Journal: o.j.Title()}
	for i := len(list) - 1; i >= 0; i-- {
		cm := list[i]
		v, ok := s.view(cm, rd)
		if !ok {
			continue
		}
		cv := commitmentView{View: v, CheckIn: client.CheckResponse(cm, client.KindCheckin) == nil}
		var checkins []client.Entry
		for _, id := range cm.Responses {
			if c, ok := rd.Get(id); ok {
				checkins = append(checkins, c)
			}
		}
		record := client.CheckinRecord(cm, checkins, loc)
		day := "Mon 2 Jan"
		if cm.Every == "week" {
			day = "week of Mon 2 Jan"
		}
		for _, period := range client.RecentPeriods(cm, now, loc) {
			cell := stripCell{Mark: "·", Class: "none", Title: period.Format(day) + ": nothing noted"}
			if c, ok := record[period]; ok {
				if *c.Kept {
					cell = stripCell{Mark: "●", Class: "kept", Title: period.Format(day) + ": kept"}
				} else {
					cell = stripCell{Mark: "○", Class: "missed", Title: period.Format(day) + ": not this time"}
				}
			}
			cv.Strip = append(cv.Strip, cell)
		}
		p.Commitments = append(p.Commitments, cv)
	}
	if q := r.URL.Query(); q.Get("saved") != "" {
		short := q.Get("saved")
		if len(short) <= client.ShortIDLen && strings.Trim(short, "0123456789abcdef") == "" {
			what := "check-in"
			if q.Get("as") == "commit" {
				what = "commitment"
			}
			p.Notice = fmt.Sprintf("Saved your %s (%s) on this device. %s", what, short, s.whereItGoes(o))
		}
	}
	s.render(w, r, http.StatusOK, "commitments", p)
}

// commit saves a new commitment.
func (s *Server) commit(w http.ResponseWriter, r *http.Request) {
	text := strings.ReplaceAll(r.PostFormValue("text"), "\r\n", "\n")
	every := r.PostFormValue("every")
	o, release := s.journal(r)
	if o == nil {
		s.problem(w, r, http.StatusForbidden, "kintsugi locked itself before this was saved", "copy your words somewhere safe, unlock on the timeline, and save them again", false)
		return
	}
	defer release()
	refuse := func(status int, msg, hint string) {
		s.render(w, r, status, "problem", &page{Title: "Commitments", Journal: o.j.Title(), Error: &problem{Msg: msg, Hint: hint}, Forms: respondForms{Draft: text, DraftAs: "commit"}})
	}
	if every != "day" && every != "week" {
		refuse(http.StatusBadRequest, fmt.Sprintf("%q is not day or week", every), "choose each day or each week")
		return
	}
	if strings.TrimSpace(text) == "" {
		refuse(http.StatusBadRequest, "there is no text to save", "write what you commit to, then save")
		return
	}
	if err := o.j.Writable(); err != nil {
		msg, hint := s.cfg.Describe(err)
		refuse(http.StatusConflict, msg, hint)
		return
	}
	en, err := o.j.Write(client.Payload{Kind: client.KindCommit, Every: every, Text: text})
	if err != nil {
		msg, hint := s.cfg.Describe(err)
		refuse(http.StatusInternalServerError, msg, hint)
		return
	}
	http.Redirect(w, r, "/commitments?saved="+en.Short+"&as=commit", http.StatusSeeOther)
}
