package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/kintsugi-journal/kintsugi/client"
)

// Responding to an entry from its page: answer a question (or say "I need
// time"), follow up on one, reply to an entry, or let the partner know it
// was read (ack). The page offers only what client.CheckResponse allows
// for the entry, and Journal.Respond checks again when it saves.

// responses are the ways to respond the entry page offers, by the form's
// "as" value.
var responses = map[string]client.Payload{
	"answer":   {Kind: client.KindAnswer},
	"needtime": {Kind: client.KindAnswer, NeedTime: true},
	"followup": {Kind: client.KindFollowup},
	"reply":    {Kind: client.KindReply},
	"ack":      {Kind: client.KindAck},
	"kept":     {Kind: client.KindCheckin, Kept: ptr(true)},
	"missed":   {Kind: client.KindCheckin, Kept: ptr(false)},
	"accept":   {Kind: client.KindDecision, Decision: "accept"},
	"decline":  {Kind: client.KindDecision, Decision: "decline"},
}

func ptr[T any](v T) *T { return &v }

// textOptional are the responses that may have no text: "I need time" and
// an acknowledgement say enough by themselves.
var textOptional = map[string]bool{"needtime": true, "ack": true, "kept": true, "missed": true, "accept": true, "decline": true}

// respondForms says which responses entry t takes from this person.
type respondForms struct {
	Answer, Followup, Reply, Ack bool
	Together                     bool // a reveal-together question this person has not answered
	Change                       bool // this person's own entry: edit or retract it
	// How far it has gone, for the retract wording (client.RetractSending).
	NotSent, MaybeSent bool
	Draft              string // the text of a response that was refused, kept
	DraftAs            string
}

// Offers reports whether the page has a form for response as.
func (f respondForms) Offers(as string) bool {
	switch as {
	case "answer", "needtime":
		return f.Answer
	case "followup":
		return f.Followup
	case "reply":
		return f.Reply
	case "ack":
		return f.Ack
	case "together":
		return f.Together
	case "edit", "retract":
		return f.Change
	}
	return false
}

// Orphan returns the words of a refused response that no form on the page
// takes, so the page can show them rather than lose them.
func (f respondForms) Orphan() string {
	if f.Offers(f.DraftAs) {
		return ""
	}
	return f.Draft
}

// changeable reports whether t is this person's own entry that they can
// edit or retract (Journal.Revise and Retract take it).
func changeable(t client.Entry) bool {
	switch t.Kind {
	case client.KindRevision, client.KindRetraction, client.KindTogetherAnswer, client.KindTogetherMark:
		return false
	}
	return t.Mine && t.Retracted == nil
}

func formsFor(t client.Entry) respondForms {
	f := formsFor1(t)
	f.Change = changeable(t)
	return f
}

func formsFor1(t client.Entry) respondForms {
	ok := func(kind string) bool { return client.CheckResponse(t, kind) == nil }
	if t.Kind == client.KindTogether {
		// Answered with TogetherAnswer only, once each; nothing else
		// responds to it.
		return respondForms{Together: t.Retracted == nil && (t.State == "open" || t.State == "waiting-for-you")}
	}
	return respondForms{
		Answer:   ok(client.KindAnswer),
		Followup: ok(client.KindFollowup),
		Reply:    ok(client.KindReply),
		Ack:      ok(client.KindAck),
	}
}

// respond saves a response to the entry named in the path.
func (s *Server) respond(w http.ResponseWriter, r *http.Request) {
	as := r.PostFormValue("as")
	text := strings.ReplaceAll(r.PostFormValue("text"), "\r\n", "\n")
	o, release := s.journal(r)
	if o == nil {
		s.problem(w, r, http.StatusForbidden, "kintsugi locked itself before this was saved", "copy your words somewhere safe, unlock on the timeline, and save them again", false)
		return
	}
	defer release()
	if as == "edit" || as == "retract" {
		s.change(w, r, o, as, text)
		return
	}
	p, ok := responses[as]
	if as == "together" {
		ok, p = true, client.Payload{Kind: client.KindTogetherAnswer}
	}
	if !ok {
		s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not a way to respond", as), "go back to the entry and use one of its buttons", true)
		return
	}
	rd, t, found := s.entryOf(w, r, o)
	if !found {
		return
	}
	refuse := func(status int, msg, hint string) {
		s.entryPage(w, r, status, o, rd, t, &problem{Msg: msg, Hint: hint}, as, text)
	}
	if strings.TrimSpace(text) == "" && !textOptional[as] {
		refuse(http.StatusBadRequest, "there is no text to save", "write in the box, then save")
		return
	}
	if as == "together" && !formsFor(t).Together {
		refuse(http.StatusConflict, "you have already answered this one", "this page shows where it stands")
		return
	}
	if as != "together" {
		if err := client.CheckResponse(t, p.Kind); err != nil {
			msg, _ := s.cfg.Describe(err)
			refuse(http.StatusConflict, msg, "this page shows the ways to respond to it")
			return
		}
	}
	if err := o.j.Writable(); err != nil {
		msg, hint := s.cfg.Describe(err)
		refuse(http.StatusConflict, msg, hint)
		return
	}
	p.Text = text
	var saved client.Entry
	var err error
	if as == "together" {
		saved, _, err = o.j.TogetherAnswer(t.ID, text)
		if t.State == "waiting-for-you" {
			as = "together-both" // the notice says both open now
		}
	} else {
		saved, _, err = o.j.Respond(t.ID, p)
	}
	if err != nil {
		msg, hint := s.cfg.Describe(err)
		refuse(http.StatusConflict, msg, hint)
		return
	}
	switch p.Kind {
	case client.KindCheckin:
		http.Redirect(w, r, "/commitments?"+url.Values{"saved": {saved.Short}, "as": {as}}.Encode(), http.StatusSeeOther)
		return
	case client.KindDecision:
		http.Redirect(w, r, "/agreements?"+url.Values{"saved": {saved.Short}, "as": {as}}.Encode(), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/entry/"+t.ID+"?"+url.Values{"saved": {saved.Short}, "as": {as}}.Encode(), http.StatusSeeOther)
}

// savedResponse says what a response just saved does, as the command line
// says it.
func (s *Server) savedResponse(o *opened, t client.Entry, short, as string) string {
	if len(short) > client.ShortIDLen || strings.Trim(short, "0123456789abcdef") != "" {
		return ""
	}
	var msg string
	switch as {
	case "ack":
		msg = fmt.Sprintf("%s will see that you read it (%s).", t.Author, short)
	case "needtime":
		msg = fmt.Sprintf("Saved (%s): %s will see that you need time with this question. That is an honest answer too.", short, t.Author)
	case "followup":
		msg = fmt.Sprintf("Saved your follow-up (%s) on this device.", short)
	case "answer", "reply":
		msg = fmt.Sprintf("Saved your %s (%s) on this device.", as, short)
	case "together":
		return fmt.Sprintf("Saved your answer (%s), sealed to your own devices. It opens for %s once they answer too.", short, s.partnerName(o))
	case "edit":
		return fmt.Sprintf("Saved a new version (%s). %s will see that it was edited; every version stays in its history. %s", short, s.partnerName(o), s.whereItGoes(o))
	case "retract":
		return fmt.Sprintf("Retracted it (%s). %s", short, s.whereGoes(o, "the retraction"))
	case "retract-unsent":
		return fmt.Sprintf("Retracted it (%s) before it was sent: %s will see only that you wrote something and took it back, and when; never its words. %s", short, s.partnerName(o), s.whereGoes(o, "the retraction"))
	case "retract-sent-meanwhile":
		return fmt.Sprintf("Retracted it (%s). It was sent while you were deciding, so %s may have read it; its words are hidden everywhere once the retraction arrives. %s", short, s.partnerName(o), s.whereGoes(o, "the retraction"))
	case "retract-maybe":
		return fmt.Sprintf("Retracted it (%s). It may have reached %s: a sync was sending it and had not heard back from the relay. Its words are hidden everywhere once the retraction arrives. %s", short, s.partnerName(o), s.whereGoes(o, "the retraction"))
	case "together-both":
		return fmt.Sprintf("Saved your answer (%s). %s has answered too, so both answers open for each other as your devices sync.", short, s.partnerName(o))
	default:
		return ""
	}
	return msg + " " + s.whereItGoes(o)
}

// questions lists the questions that wait on someone: the partner's that
// wait on this person first, then this person's own.
func (s *Server) questions(w http.ResponseWriter, r *http.Request) {
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
	waiting := func(mine bool) []entryView {
		list, err := rd.Query(client.Query{
			Kinds: map[string]bool{client.KindQuestion: true},
			Match: func(e *client.Entry) bool {
				return e.Mine == mine && (e.State == "open" || e.State == "needs-time")
			},
			Last: PageSize,
		})
		if err != nil {
			return nil
		}
		var out []entryView
		for i := len(list) - 1; i >= 0; i-- {
			if v, ok := s.view(list[i], rd); ok {
				out = append(out, v)
			}
		}
		return out
	}
	var both []entryView
	if list, err := rd.Query(client.Query{Kinds: map[string]bool{client.KindTogether: true}, Last: PageSize}); err == nil {
		for i := len(list) - 1; i >= 0; i-- {
			if v, ok := s.view(list[i], rd); ok {
				both = append(both, v)
			}
		}
	}
	p := &page{Title: "Questions", Journal: o.j.Title(), ForYou: waiting(false), FromYou: waiting(true), Both: both, Tally: rd.Questions(), Partner: s.partnerName(o)}
	if saved := r.URL.Query().Get("asked"); saved != "" && len(saved) <= client.ShortIDLen && strings.Trim(saved, "0123456789abcdef") == "" {
		p.Notice = fmt.Sprintf("Saved your question (%s) on this device. %s", saved, s.whereItGoes(o))
	}
	s.render(w, r, http.StatusOK, "questions", p)
}

// partnerName is the partner's name, or "your partner" before they join.
func (s *Server) partnerName(o *opened) string {
	if pt, err := o.j.Partner(); err == nil {
		return pt.Name
	}
	return "your partner"
}

// ask saves a hard question, or a question for both to answer
// (reveal-together), from the questions page.
func (s *Server) ask(w http.ResponseWriter, r *http.Request) {
	kind := r.PostFormValue("kind")
	text := strings.ReplaceAll(r.PostFormValue("text"), "\r\n", "\n")
	o, release := s.journal(r)
	if o == nil {
		s.problem(w, r, http.StatusForbidden, "kintsugi locked itself before this was saved", "copy your words somewhere safe, unlock on the timeline, and save them again", false)
		return
	}
	defer release()
	if kind != client.KindQuestion && kind != client.KindTogether {
		s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not a kind of question", kind), "go back to the questions and use one of their forms", true)
		return
	}
	refuse := func(status int, msg, hint string) {
		s.render(w, r, status, "problem", &page{Title: "Questions", Journal: o.j.Title(), Error: &problem{Msg: msg, Hint: hint}, Forms: respondForms{Draft: text, DraftAs: "ask"}})
	}
	if strings.TrimSpace(text) == "" {
		refuse(http.StatusBadRequest, "there is no text to save", "write the question in the box, then save")
		return
	}
	if err := o.j.Writable(); err != nil {
		msg, hint := s.cfg.Describe(err)
		refuse(http.StatusConflict, msg, hint)
		return
	}
	en, err := o.j.Write(client.Payload{Kind: kind, Text: text})
	if err != nil {
		msg, hint := s.cfg.Describe(err)
		refuse(http.StatusInternalServerError, msg, hint)
		return
	}
	http.Redirect(w, r, "/questions?asked="+en.Short, http.StatusSeeOther)
}

// change edits or retracts this person's own entry, as `kintsugi edit`
// (the text only; its feelings, intensity and tags stay) and `kintsugi
// retract` do. Retracting needs the box ticked that says what it does and
// does not do.
func (s *Server) change(w http.ResponseWriter, r *http.Request, o *opened, as, text string) {
	rd, t, found := s.entryOf(w, r, o)
	if !found {
		return
	}
	refuse := func(status int, msg, hint string) {
		s.entryPage(w, r, status, o, rd, t, &problem{Msg: msg, Hint: hint}, as, text)
	}
	if !changeable(t) {
		refuse(http.StatusConflict, "only its author can change or retract this entry", "this page shows the ways to respond to it")
		return
	}
	if err := o.j.Writable(); err != nil {
		msg, hint := s.cfg.Describe(err)
		refuse(http.StatusConflict, msg, hint)
		return
	}
	var saved client.Entry
	var err error
	if as == "edit" {
		if strings.TrimSpace(text) == "" {
			refuse(http.StatusBadRequest, "the new version is empty, so nothing was changed", "to withdraw an entry, retract it below")
			return
		}
		saved, _, err = o.j.Revise(t.ID, client.Payload{Text: text, Feelings: t.Feelings, Intensity: t.Intensity, Tags: t.Tags})
	} else {
		if r.PostFormValue("sure") != "1" {
			refuse(http.StatusBadRequest, "nothing was retracted: the box saying you understand was not ticked", "tick it, then retract")
			return
		}
		var was *client.Entry
		saved, was, err = o.j.Retract(t.ID)
		switch {
		case err != nil:
		case was.Sending == client.NotSent:
			as = "retract-unsent"
		case was.Sending == client.MaybeSent:
			as = "retract-maybe"
		case r.PostFormValue("said") == "not-sent" || r.PostFormValue("said") == "maybe-sent":
			// The box said it had not been sent, or might have been;
			// the page's own watcher sent it meanwhile.
			as = "retract-sent-meanwhile"
		}
	}
	if err != nil {
		msg, hint := s.cfg.Describe(err)
		refuse(http.StatusConflict, msg, hint)
		return
	}
	http.Redirect(w, r, "/entry/"+t.ID+"?"+url.Values{"saved": {saved.Short}, "as": {as}}.Encode(), http.StatusSeeOther)
}
