package ui

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Export, as `kintsugi export` does it: a readable copy of chosen entries
// (Markdown, JSON, or a self-contained HTML page) to bring to a
// counsellor, decrypted here and downloaded by the browser. The file is
// not encrypted, and the page says so before and after. It is a POST
// (with the form's token), so no link can start a download of what the
// journal holds.

// exportFormats are the formats, with their file name endings and types.
var exportFormats = []struct{ Name, Ext, Type string }{
	{"markdown", "md", "text/markdown; charset=utf-8"},
	{"html", "html", "text/html; charset=utf-8"},
	{"json", "json", "application/json"},
}

func (s *Server) exportPage(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	if s.cfg.Export == nil {
		s.problem(w, r, http.StatusNotFound, "export is not available here", "`kintsugi export` makes one in a terminal", true)
		return
	}
	s.render(w, r, http.StatusOK, "export", &page{Title: "Export", Journal: o.j.Title(), Kinds: s.cfg.Kinds, Feelings: s.cfg.Feelings})
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	if s.cfg.Export == nil {
		s.problem(w, r, http.StatusNotFound, "export is not available here", "`kintsugi export` makes one in a terminal", true)
		return
	}
	f := filter{
		Kind:    strings.ToLower(strings.TrimSpace(r.PostFormValue("kind"))),
		Feeling: strings.ToLower(strings.TrimSpace(r.PostFormValue("feeling"))),
		Author:  strings.ToLower(strings.TrimSpace(r.PostFormValue("author"))),
		Search:  strings.TrimSpace(r.PostFormValue("q")),
	}
	format := r.PostFormValue("format")
	i := slices.IndexFunc(exportFormats, func(x struct{ Name, Ext, Type string }) bool { return x.Name == format })
	if i < 0 {
		s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not an export format", format), "use markdown, json or html", true)
		return
	}
	if f.Kind != "" && !slices.Contains(s.cfg.Kinds, f.Kind) {
		s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not a kind of entry", f.Kind), "kinds are "+strings.Join(s.cfg.Kinds, ", "), true)
		return
	}
	q := f.query()
	q.NoText, q.Hidden = false, false // as `kintsugi export` chooses
	out, n, err := s.cfg.Export(o.acct.Name, o.j, q, format)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	if n == 0 {
		s.render(w, r, http.StatusOK, "export", &page{Title: "Export", Journal: o.j.Title(), Kinds: s.cfg.Kinds, Feelings: s.cfg.Feelings, Notice: "Nothing matches those choices, so there is nothing to export."})
		return
	}
	name := fmt.Sprintf("kintsugi-export-%s.%s", s.cfg.Now().Format("2006-01-02"), exportFormats[i].Ext)
	h := w.Header()
	h.Set("Content-Type", exportFormats[i].Type)
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Write(out)
}

// exportNote is what the export page says about the file, before it is
// made.
const exportNote = "Export decrypts on this device; nothing goes through the relay. The file your browser saves is NOT encrypted: keep it somewhere private, and delete it when you no longer need it."

// ExportNote is exportNote, for the template.
func (p *page) ExportNote() string { return exportNote }
