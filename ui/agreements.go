package ui

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/kintsugi-journal/kintsugi/client"
)

// Agreements, as `kintsugi agreements` and `kintsugi agree` have them:
// either partner proposes one (a boundary, a shared value or a practice),
// the other accepts or declines it, and either can propose a new version
// that revises it.

// agreementKinds are the kinds of agreement, as `agree propose --kind`
// takes them; the first is the default.
var agreementKinds = []string{"practice", "boundary", "value"}

// agreementView is an agreement on its page.
type agreementView struct {
	View   entryView
	Decide bool // this person may accept or decline it
}

// proposeForm is the form to propose an agreement, kept as typed.
type proposeForm struct {
	Text, Kind string
	Revises    *entryView // the agreement a new version revises, if any
}

func (s *Server) agreements(w http.ResponseWriter, r *http.Request) {
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
	p := &page{Title: "Agreements", Journal: o.j.Title(), AgreementKinds: agreementKinds, Propose: proposeForm{Kind: agreementKinds[0]}}
	if id := r.URL.Query().Get("revises"); id != "" {
		if old, ok := rd.Get(id); ok && old.Kind == client.KindAgree {
			v, _ := s.view(old, rd)
			p.Propose = proposeForm{Text: old.Text, Kind: old.Category, Revises: &v}
		}
	}
	s.agreementsPage(w, r, http.StatusOK, o, rd, p)
}

// agreementsPage fills in the agreements and shows p.
func (s *Server) agreementsPage(w http.ResponseWriter, r *http.Request, status int, o *opened, rd *client.Reader, p *page) {
	list, err := rd.Query(client.Query{Kinds: map[string]bool{client.KindAgree: true}})
	if err != nil {
		s.failed(w, r, err)
		return
	}
	for i := len(list) - 1; i >= 0; i-- {
		if v, ok := s.view(list[i], rd); ok {
			p.Agreements = append(p.Agreements, agreementView{View: v, Decide: client.CheckResponse(list[i], client.KindDecision) == nil})
		}
	}
	if q := r.URL.Query(); q.Get("saved") != "" && p.Notice == "" {
		short := q.Get("saved")
		if len(short) <= client.ShortIDLen && strings.Trim(short, "0123456789abcdef") == "" {
			switch q.Get("as") {
			case "accept":
				p.Notice = fmt.Sprintf("You accepted it (%s); it now stands for both of you. %s", short, s.whereItGoes(o))
			case "decline":
				p.Notice = fmt.Sprintf("You declined it (%s). %s can propose a new version. %s", short, s.partnerName(o), s.whereItGoes(o))
			default:
				p.Notice = fmt.Sprintf("Saved your proposed agreement (%s) on this device. %s", short, s.whereItGoes(o))
			}
		}
	}
	s.render(w, r, status, "agreements", p)
}

// propose saves a proposed agreement, or a new version of one.
func (s *Server) propose(w http.ResponseWriter, r *http.Request) {
	f := proposeForm{Text: strings.ReplaceAll(r.PostFormValue("text"), "\r\n", "\n"), Kind: r.PostFormValue("kind")}
	revises := r.PostFormValue("revises")
	o, release := s.journal(r)
	if o == nil {
		s.problem(w, r, http.StatusForbidden, "kintsugi locked itself before this was saved", "copy your words somewhere safe, unlock on the timeline, and save them again", false)
		return
	}
	defer release()
	rd, err := o.j.Reader()
	if err != nil {
		s.failed(w, r, err)
		return
	}
	pl := client.Payload{Kind: client.KindAgree, Category: f.Kind, Text: f.Text}
	if revises != "" {
		old, ok := rd.Get(revises)
		if !ok || old.Kind != client.KindAgree {
			s.problem(w, r, http.StatusBadRequest, "the agreement this would revise is not here", "the agreements page lists them", true)
			return
		}
		v, _ := s.view(old, rd)
		f.Revises, pl.Ref = &v, old.ID
	}
	refuse := func(status int, msg, hint string) {
		p := &page{Title: "Agreements", Journal: o.j.Title(), AgreementKinds: agreementKinds, Propose: f, Error: &problem{Msg: msg, Hint: hint}}
		s.agreementsPage(w, r, status, o, rd, p)
	}
	if !slices.Contains(agreementKinds, f.Kind) {
		refuse(http.StatusBadRequest, fmt.Sprintf("%q is not boundary, value or practice", f.Kind), "choose one of the three")
		return
	}
	if strings.TrimSpace(f.Text) == "" {
		refuse(http.StatusBadRequest, "there is no text to save", "write the agreement in the box, then save")
		return
	}
	if err := o.j.Writable(); err != nil {
		msg, hint := s.cfg.Describe(err)
		refuse(http.StatusConflict, msg, hint)
		return
	}
	en, err := o.j.Write(pl)
	if err != nil {
		msg, hint := s.cfg.Describe(err)
		refuse(http.StatusInternalServerError, msg, hint)
		return
	}
	http.Redirect(w, r, "/agreements?saved="+en.Short+"&as=propose", http.StatusSeeOther)
}
