package ui

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kintsugi-journal/kintsugi/client"
)

// writeForm is the write page's form: what the person chose, kept as
// they typed it, so a refusal loses nothing.
type writeForm struct {
	Text       string
	Feelings   []string // picked from the list
	Other      string   // feelings of their own, separated by commas
	Rate       bool     // say how strong
	Intensity  int
	ListenOnly bool
	Tags       string
}

// Picked reports whether feeling f was picked, for the template.
func (f writeForm) Picked(x string) bool { return slices.Contains(f.Feelings, x) }

// payload checks the form as `kintsugi write` checks its flags, with the
// same words (the hints name the form's fields instead of flags).
func (f writeForm) payload() (client.Payload, *problem) {
	p := client.Payload{Kind: client.KindEntry, ListenOnly: f.ListenOnly}
	feelings := slices.Clone(f.Feelings)
	for x := range strings.SplitSeq(f.Other, ",") {
		if strings.TrimSpace(x) != "" {
			feelings = append(feelings, x)
		}
	}
	for _, x := range feelings {
		x = strings.ToLower(strings.TrimSpace(x))
		if x == "" || len(x) > 40 {
			return p, &problem{Msg: fmt.Sprintf("%q is not a feeling word kintsugi can store", x), Hint: "use a single word or short phrase, like grief"}
		}
		if !slices.Contains(p.Feelings, x) {
			p.Feelings = append(p.Feelings, x)
		}
	}
	if f.Rate {
		n := f.Intensity
		if n < 0 || n > 10 {
			return p, &problem{Msg: fmt.Sprintf("intensity %d is outside 0 to 10", n), Hint: "0 is barely there, 10 is as strong as it gets"}
		}
		p.Intensity = &n
	}
	for t := range strings.FieldsFuncSeq(f.Tags, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		t = strings.ToLower(strings.TrimPrefix(t, "#"))
		if t == "" || len(t) > 40 {
			return p, &problem{Msg: fmt.Sprintf("%q is not a tag kintsugi can store", t), Hint: "use one word for each tag, like sunday-talk"}
		}
		if !slices.Contains(p.Tags, t) {
			p.Tags = append(p.Tags, t)
		}
	}
	if strings.TrimSpace(f.Text) == "" {
		return p, &problem{Msg: "there is no text to save", Hint: "write in the box, then save"}
	}
	p.Text = f.Text
	return p, nil
}

// writePage shows the form, unless nothing can be written here now: then
// it says why before anyone types.
func (s *Server) writePage(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	p := &page{Title: "Write", Journal: o.j.Title(), Feelings: s.cfg.Feelings, Form: writeForm{Intensity: 5}}
	if err := o.j.Writable(); err != nil {
		msg, hint := s.cfg.Describe(err)
		s.problem(w, r, http.StatusConflict, msg, hint, true)
		return
	}
	s.render(w, r, http.StatusOK, "write", p)
}

// write saves an entry with Journal.Write; the watch sends it.
func (s *Server) write(w http.ResponseWriter, r *http.Request) {
	f := writeForm{
		Text:       strings.ReplaceAll(r.PostFormValue("text"), "\r\n", "\n"),
		Feelings:   r.PostForm["feeling"],
		Other:      r.PostFormValue("other"),
		Rate:       r.PostFormValue("rate") != "",
		ListenOnly: r.PostFormValue("listen") != "",
		Tags:       r.PostFormValue("tags"),
		Intensity:  5,
	}
	if n, err := strconv.Atoi(r.PostFormValue("intensity")); err == nil {
		f.Intensity = n
	} else if f.Rate {
		f.Intensity = -1
	}
	o, release := s.journal(r)
	if o == nil {
		// Locked while the person wrote (the idle lock): nothing is lost
		// if the page keeps their words, so show them again under the
		// unlock form's message.
		s.render(w, r, http.StatusForbidden, "write", &page{Title: "Write", Locked: true, Feelings: s.cfg.Feelings, Form: f, Error: &problem{Msg: "kintsugi locked itself while you were writing, so this was not saved", Hint: "copy your words somewhere safe, unlock on the timeline, and save them again"}})
		return
	}
	defer release()
	p := &page{Title: "Write", Journal: o.j.Title(), Feelings: s.cfg.Feelings, Form: f}
	pl, prob := f.payload()
	if prob != nil {
		p.Error = prob
		s.render(w, r, http.StatusBadRequest, "write", p)
		return
	}
	en, err := o.j.Write(pl)
	if err != nil {
		msg, hint := s.cfg.Describe(err)
		p.Error = &problem{Msg: msg, Hint: hint}
		status := http.StatusInternalServerError
		if errors.Is(err, client.ErrTooLong) {
			status = http.StatusBadRequest
		}
		s.render(w, r, status, "write", p)
		return
	}
	http.Redirect(w, r, "/?saved="+en.Short, http.StatusSeeOther)
}
