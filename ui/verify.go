package ui

import (
	"net/http"
)

// Comparing safety numbers, as `kintsugi verify` does: the number for the
// two of them, whether they compared it, and a form to record that every
// digit matched. A partner's new keys (an invite answered again) hold
// back what is sent to them until this person confirms, so the page says
// that first.

// verifyInfo is what the verify page shows.
type verifyInfo struct {
	Partner      string
	Lines        [2]string // the safety number, in two lines
	Verified     bool
	Pending      string // the name the new keys answered with, or ""
	Confirmed    bool   // just confirmed
	NeedsConfirm bool   // not compared yet, or new keys waiting
}

func (s *Server) verifyPage(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	sn, p, err := o.j.SafetyNumber()
	if err != nil {
		msg, hint := s.cfg.Describe(err)
		s.problem(w, r, http.StatusConflict, msg, hint, true)
		return
	}
	v := &verifyInfo{Partner: p.Name, Verified: p.Verified, Confirmed: r.URL.Query().Get("confirmed") == "1"}
	if len(sn) > 36 {
		v.Lines = [2]string{sn[:35], sn[36:]}
	} else {
		v.Lines[0] = sn
	}
	if p.Pending != nil {
		v.Pending = p.Pending.Name
	}
	v.NeedsConfirm = v.Pending != "" || !v.Verified
	s.render(w, r, http.StatusOK, "verify", &page{Title: "Safety number", Journal: o.j.Title(), Verify: v})
}

// verify records that the safety numbers matched, once the person ticked
// that every digit did.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	if r.PostFormValue("matches") != "1" {
		s.problem(w, r, http.StatusBadRequest, "nothing was recorded: the box saying every digit matches was not ticked", "compare the number together first, then tick the box and confirm", true)
		return
	}
	if err := o.j.ConfirmVerified(); err != nil {
		msg, hint := s.cfg.Describe(err)
		s.problem(w, r, http.StatusConflict, msg, hint, true)
		return
	}
	http.Redirect(w, r, "/verify?confirmed=1", http.StatusSeeOther)
}
