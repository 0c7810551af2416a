package ui

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/kintsugi-journal/kintsugi/client"
)

// Prompts by stage, and reflecting on one, as `kintsugi prompts` and
// `kintsugi reflect` do: the seven stages, each with its prompts; a
// reflection on a prompt, or on nothing in particular. Skipping is fine.

// reflectForm is the reflection being written.
type reflectForm struct {
	Prompt *client.Prompt // nil: a reflection of one's own
	Text   string
}

func (s *Server) prompts(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	p := &page{Title: "Prompts", Journal: o.j.Title(), Stages: client.Stages}
	if short := r.URL.Query().Get("saved"); short != "" && len(short) <= client.ShortIDLen && strings.Trim(short, "0123456789abcdef") == "" {
		p.Notice = fmt.Sprintf("Saved your reflection (%s) on this device. %s", short, s.whereItGoes(o))
	}
	s.render(w, r, http.StatusOK, "prompts", p)
}

// reflectPage shows the form for a reflection, on the prompt the URL
// names, if any.
func (s *Server) reflectPage(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	f := reflectForm{}
	if id := r.URL.Query().Get("prompt"); id != "" {
		pr, ok := client.FindPrompt(id)
		if !ok {
			s.problem(w, r, http.StatusNotFound, fmt.Sprintf("there is no prompt %q", id), "the prompts page lists them", true)
			return
		}
		f.Prompt = &pr
	}
	if err := o.j.Writable(); err != nil {
		msg, hint := s.cfg.Describe(err)
		s.problem(w, r, http.StatusConflict, msg, hint, true)
		return
	}
	s.render(w, r, http.StatusOK, "reflect", &page{Title: "Reflect", Journal: o.j.Title(), Reflect: f})
}

// reflect saves a reflection.
func (s *Server) reflect(w http.ResponseWriter, r *http.Request) {
	f := reflectForm{Text: strings.ReplaceAll(r.PostFormValue("text"), "\r\n", "\n")}
	id := r.PostFormValue("prompt")
	o, release := s.journal(r)
	if o == nil {
		s.render(w, r, http.StatusForbidden, "reflect", &page{Title: "Reflect", Locked: true, Reflect: f, Error: &problem{Msg: "kintsugi locked itself while you were writing, so this was not saved", Hint: "copy your words somewhere safe, unlock on the timeline, and save them again"}})
		return
	}
	defer release()
	pl := client.Payload{Kind: client.KindReflection}
	if id != "" {
		pr, ok := client.FindPrompt(id)
		if !ok {
			s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("there is no prompt %q", id), "the prompts page lists them", true)
			return
		}
		f.Prompt, pl.Prompt = &pr, pr.ID
	}
	refuse := func(status int, msg, hint string) {
		s.render(w, r, status, "reflect", &page{Title: "Reflect", Journal: o.j.Title(), Reflect: f, Error: &problem{Msg: msg, Hint: hint}})
	}
	if strings.TrimSpace(f.Text) == "" {
		refuse(http.StatusBadRequest, "there is no text to save", "write in the box, then save")
		return
	}
	if err := o.j.Writable(); err != nil {
		msg, hint := s.cfg.Describe(err)
		refuse(http.StatusConflict, msg, hint)
		return
	}
	pl.Text = f.Text
	en, err := o.j.Write(pl)
	if err != nil {
		msg, hint := s.cfg.Describe(err)
		refuse(http.StatusInternalServerError, msg, hint)
		return
	}
	http.Redirect(w, r, "/prompts?saved="+en.Short, http.StatusSeeOther)
}
