package ui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/kintsugi-journal/kintsugi/client"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticRoot embed.FS

// staticFS holds the style sheet and the script, served under /static/.
var staticFS, _ = fs.Sub(staticRoot, "static")

// pages returns the page templates, each parsed with the layout. They are
// parsed on first use, not when the program starts: every kintsugi
// command links this package (for `kintsugi ui`), and parsing took 4 ms
// of each command's start.
var pages = sync.OnceValue(func() map[string]*template.Template {
	layout := template.Must(template.New("layout.html").ParseFS(templateFS, "templates/layout.html"))
	out := map[string]*template.Template{}
	for _, name := range []string{"timeline", "entry", "write", "unlock", "problem", "questions", "feelings", "verify", "commitments", "agreements", "prompts", "reflect", "status", "export", "devices"} {
		t := template.Must(layout.Clone())
		out[name] = template.Must(t.ParseFS(templateFS, "templates/"+name+".html"))
	}
	return out
})

// page is what every page template gets.
type page struct {
	Title   string
	Wide    bool   // the page needs more width (the chart)
	Locked  bool   // no journal is open: no navigation, no Lock button
	Journal string // the journal's title, or ""
	CSRF    string
	Notice  string   // a calm line at the top ("Saved your entry ...")
	Error   *problem // what went wrong, when something did

	// timeline
	Entries  []entryView
	Filter   filter
	Kinds    []string
	Feelings []string
	Empty    string // what to say when Entries is empty
	Page     int
	Prev     string // links to the newer and older pages, or ""
	Next     string
	Pages    int
	Live     bool     // the page reloads its list as entries arrive
	Sync     string   // how syncing goes, in a sentence, or ""
	Notes    []string // what the listing leaves out, and why (Config.Notes)

	// entry
	Entry     *entryView
	RespondTo *entryView
	Responses []entryView

	// entry: the ways to respond
	Forms respondForms

	// questions
	ForYou, FromYou []entryView
	Both            []entryView // reveal-together questions
	Tally           client.QuestionTally
	Partner         string

	// feelings
	Chart        []chartRow
	ChartHeads   []chartHead // the months, oldest first
	ChartMonths  int
	ChartChoices []int

	// verify
	Verify *verifyInfo

	// status
	Status   *statusView
	Warnings int // unread warnings, for the timeline's pointer to status

	// devices
	Devices *devicesInfo

	// commitments
	Commitments []commitmentView

	// prompts and reflect
	Stages  []client.Stage
	Reflect reflectForm

	// agreements
	Agreements     []agreementView
	AgreementKinds []string
	Propose        proposeForm

	// write
	Form writeForm
}

// problem is an error as a person reads it.
type problem struct {
	Msg, Hint string
}

// entryView is an entry as a page shows it.
type entryView struct {
	client.Entry
	Head     string // what it is, worded as the command line words it
	When     string // when it was written, for people
	Datetime string // the same, for machines (<time datetime>)
	NotSent  bool
}

// render writes page name with status.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	p.CSRF = s.csrfToken()
	var b bytes.Buffer
	if err := pages()[name].ExecuteTemplate(&b, "layout.html", p); err != nil {
		s.cfg.Logger.Error("a page could not be shown", "page", name, "err", err)
		http.Error(w, "kintsugi: this page could not be shown", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func (s *Server) csrfToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.csrf
}

// problem shows a page that says what went wrong and what to do. nav adds
// the way back to the timeline (only for a person who has a session).
func (s *Server) problem(w http.ResponseWriter, r *http.Request, status int, msg, hint string, nav bool) {
	s.render(w, r, status, "problem", &page{Title: "Kintsugi", Locked: !nav, Error: &problem{Msg: msg, Hint: hint}})
}

// failed shows err, worded as the command line words it.
func (s *Server) failed(w http.ResponseWriter, r *http.Request, err error) {
	msg, hint := s.cfg.Describe(err)
	s.problem(w, r, http.StatusInternalServerError, msg, hint, true)
}

// view returns en as a page shows it; ok is false for an entry shown
// through another one.
func (s *Server) view(en client.Entry, byID Entries) (entryView, bool) {
	head, ok := s.cfg.Head(en, byID)
	if !ok {
		return entryView{}, false
	}
	return viewWith(en, head), true
}

// viewWith returns en as a page shows it, under head.
func viewWith(en client.Entry, head string) entryView {
	return entryView{
		Entry:    en,
		Head:     head,
		When:     en.Created.Local().Format("Mon 2 Jan 2006 15:04"),
		Datetime: en.Created.UTC().Format("2006-01-02T15:04:05Z"),
		NotSent:  en.Mine && !en.Synced,
	}
}

// plainHead is Config.Head's default: who wrote it, the kind, its state,
// and the feelings, in the command line's words where it has them.
func plainHead(en client.Entry, _ Entries) (string, bool) {
	head := en.Author
	if en.Mine {
		head = "You"
	}
	if en.Kind != client.KindEntry {
		head += " · " + en.Kind
	}
	if en.State != "" {
		head += " (" + en.State + ")"
	}
	if len(en.Feelings) > 0 {
		head += " · feeling " + strings.Join(en.Feelings, ", ")
	}
	if en.Intensity != nil {
		head += fmt.Sprintf(" (%d/10)", *en.Intensity)
	}
	if en.ListenOnly {
		head += " · asks to be heard, not answered"
	}
	return head, true
}

// filter is the timeline's filters, from the URL: the ones `kintsugi log`
// has that a page offers.
type filter struct {
	Kind, Feeling, Author, Search string
}

// query returns the filter as a client query.
func (f filter) query() client.Query {
	q := client.Query{Author: f.Author, Contains: f.Search, NoText: true}
	if f.Kind != "" {
		q.Kinds = map[string]bool{f.Kind: true}
		q.Hidden = true // revisions and retractions, when asked for by kind
	}
	if f.Feeling != "" {
		q.Feelings = map[string]bool{f.Feeling: true}
	}
	return q
}

// values returns the filter as URL values, for the links to other pages.
func (f filter) values(page int) string {
	v := url.Values{}
	for k, x := range map[string]string{"kind": f.Kind, "feeling": f.Feeling, "author": f.Author, "q": f.Search} {
		if x != "" {
			v.Set(k, x)
		}
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return "/"
	}
	return "/?" + v.Encode()
}

// any reports whether any filter is set.
func (f filter) any() bool { return f != filter{} }

// timeline shows the journal, newest first, a page at a time.
func (s *Server) timeline(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	qv := r.URL.Query()
	f := filter{
		Kind:    strings.ToLower(strings.TrimSpace(qv.Get("kind"))),
		Feeling: strings.ToLower(strings.TrimSpace(qv.Get("feeling"))),
		Author:  strings.ToLower(strings.TrimSpace(qv.Get("author"))),
		Search:  strings.TrimSpace(qv.Get("q")),
	}
	p := &page{Title: "Timeline", Journal: o.j.Title(), Filter: f, Kinds: s.cfg.Kinds, Feelings: s.cfg.Feelings, Page: 1}
	if f.Kind != "" && !slices.Contains(s.cfg.Kinds, f.Kind) {
		p.Error = &problem{Msg: fmt.Sprintf("%q is not a kind of entry", f.Kind), Hint: "kinds are " + strings.Join(s.cfg.Kinds, ", ")}
		s.render(w, r, http.StatusBadRequest, "timeline", p)
		return
	}
	if n, err := strconv.Atoi(qv.Get("page")); err == nil && n > 1 {
		p.Page = n
	}
	rd, err := o.j.Reader()
	if err != nil {
		s.failed(w, r, err)
		return
	}
	list, err := rd.Query(f.query())
	if err != nil {
		msg, hint := s.cfg.Describe(err)
		p.Error = &problem{Msg: msg, Hint: hint}
		s.render(w, r, http.StatusBadRequest, "timeline", p)
		return
	}
	p.Pages = max(1, (len(list)+PageSize-1)/PageSize)
	p.Page = min(p.Page, p.Pages)
	// Newest first: page 1 is the last PageSize entries, reversed.
	end := len(list) - (p.Page-1)*PageSize
	start := max(0, end-PageSize)
	for i := end - 1; i >= start; i-- {
		en := list[i]
		if en.Text == "" && en.Retracted == nil {
			if full, ok := rd.Get(en.ID); ok {
				en = full
			}
		}
		if v, ok := s.view(en, rd); ok {
			p.Entries = append(p.Entries, v)
		}
	}
	if p.Page > 1 {
		p.Prev = f.values(p.Page - 1)
	}
	if p.Page < p.Pages {
		p.Next = f.values(p.Page + 1)
	}
	p.Live = p.Page == 1
	switch {
	case len(list) > 0:
	case f.any() && rd.Len() > 0:
		p.Empty = "Nothing matches those filters."
	case o.j.Refetching():
		p.Empty = "Nothing is on this device yet: what the relay holds arrives while this page is open."
	default:
		p.Empty = "Nothing here yet. Write when you are ready; there is no hurry."
	}
	p.Sync = s.syncLine(o)
	p.Warnings = unreadCount(o.j)
	if s.cfg.Notes != nil {
		p.Notes = s.cfg.Notes(o.j)
	}
	if id := qv.Get("saved"); id != "" {
		p.Notice = s.saved(o, id)
	}
	s.render(w, r, http.StatusOK, "timeline", p)
}

// saved says where an entry just written goes, as `kintsugi write` does.
func (s *Server) saved(o *opened, short string) string {
	if len(short) > client.ShortIDLen || strings.Trim(short, "0123456789abcdef") != "" {
		return ""
	}
	return "Saved your entry (" + short + ") on this device. " + s.whereItGoes(o)
}

// whereItGoes says truly what happens to what was just written: a partner
// who left no longer gets it; while the watch is connected it is sent
// now; otherwise once the relay can be reached.
func (s *Server) whereItGoes(o *opened) string { return s.whereGoes(o, "it") }

// whereGoes is whereItGoes for what names the thing going: "it", or "the
// retraction" where "it" would be read as the entry it retracts.
func (s *Server) whereGoes(o *opened, what string) string {
	if p, err := o.j.Partner(); err == nil && p.Left != nil {
		return fmt.Sprintf("%s left the journal on %s, so it is for you alone; nothing new is sent to them.", p.Name, p.Left.Local().Format("2 January 2006"))
	}
	s.mu.Lock()
	connected := o.connected
	s.mu.Unlock()
	subject := strings.ToUpper(what[:1]) + what[1:]
	if connected {
		return subject + " is being sent now."
	}
	return subject + " will be sent as soon as the relay can be reached; it is safe here until then."
}

// syncLine says how syncing goes: connected, trying again, or (before the
// first attempt ends) nothing.
func (s *Server) syncLine(o *opened) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case o.stopped != nil:
		msg, hint := s.cfg.Describe(o.stopped)
		line := "Syncing has stopped: " + msg + "."
		if hint != "" {
			line += " " + upperFirst(hint) + "."
		}
		return line
	case o.connected:
		return "Connected to the relay and up to date. What your partner writes appears here as it arrives."
	case o.down:
		return "Cannot reach the relay right now; kintsugi keeps trying. What you write is safe on this device and is sent once the relay answers."
	}
	return ""
}

// upperFirst capitalises the first letter of s, for a hint that begins a
// sentence.
func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || r == utf8.RuneError {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// entryOf reads the journal and finds the entry the request's path
// names. When it cannot, it has answered the request (a kind page saying
// so) and reports false.
func (s *Server) entryOf(w http.ResponseWriter, r *http.Request, o *opened) (*client.Reader, client.Entry, bool) {
	rd, err := o.j.Reader()
	if err != nil {
		s.failed(w, r, err)
		return nil, client.Entry{}, false
	}
	en, ok := rd.Get(r.PathValue("id"))
	if !ok {
		s.problem(w, r, http.StatusNotFound, "there is no entry here with that id", "it may have been written on another device and not synced yet; the timeline shows everything this device has", true)
		return nil, client.Entry{}, false
	}
	return rd, en, true
}

// entry shows one entry, what it responds to, its responses, and the
// ways to respond to it.
func (s *Server) entry(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	rd, en, ok := s.entryOf(w, r, o)
	if !ok {
		return
	}
	s.entryPage(w, r, http.StatusOK, o, rd, en, nil, "", "")
}

// entryPage shows entry en with status; prob, draftAs and draftText say
// why a response was refused and keep its words.
func (s *Server) entryPage(w http.ResponseWriter, r *http.Request, status int, o *opened, rd *client.Reader, en client.Entry, prob *problem, draftAs, draftText string) {
	v, ok := s.view(en, rd)
	if !ok {
		// Shown through another entry in listings (a sealed answer's
		// mark): on its own page, say plainly what it is.
		head, _ := plainHead(en, rd)
		v = viewWith(en, head)
	}
	p := &page{Title: "Entry " + en.Short, Journal: o.j.Title(), Entry: &v, Forms: formsFor(en), Error: prob, Partner: s.partnerName(o)}
	p.Forms.DraftAs, p.Forms.Draft = draftAs, draftText
	if p.Forms.Change {
		// Asked as the client would decide now; what Retract finds
		// when it writes is what the result says.
		how, err := o.j.RetractSending(&en)
		p.Forms.NotSent, p.Forms.MaybeSent = err == nil && how == client.NotSent, err == nil && how == client.MaybeSent
	}
	if en.Ref != "" {
		if t, ok := rd.Get(en.Ref); ok {
			if tv, ok := s.view(t, rd); ok {
				p.RespondTo = &tv
			}
		}
	}
	for _, id := range en.Responses {
		if x, ok := rd.Get(id); ok {
			if xv, ok := s.view(x, rd); ok {
				p.Responses = append(p.Responses, xv)
			}
		}
	}
	if q := r.URL.Query(); q.Get("saved") != "" {
		p.Notice = s.savedResponse(o, en, q.Get("saved"), q.Get("as"))
	}
	s.render(w, r, status, "entry", p)
}
