package client

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Reading the journal.
//
// The opened index (decryptAll) holds every readable entry's payload
// without its text. A [Reader] arranges it into the timeline views show
// (entries by the time they were written, and the entries that answer,
// revise or retract each one) without reading any text, and builds an
// [Entry] only for what a command asks for, reading its text back from
// the log then. So `log -n 10` costs ten entries' text, not the journal's.

// Entries returns every entry this device can read, oldest first, hidden
// ones included. It reads every entry's text back: a command that shows a
// few should use a [Reader].
func (j *Journal) Entries() ([]Entry, error) {
	r, err := j.Reader()
	if err != nil {
		return nil, err
	}
	return r.Query(Query{Hidden: true})
}

// Query chooses entries for a listing. Its zero value lists every entry
// views show, oldest first.
type Query struct {
	// Since and Until bound the time an entry was written (Until is
	// exclusive); zero is unbounded.
	Since, Until time.Time
	// Kinds, if not nil, lists the kinds to show.
	Kinds map[string]bool
	// Hidden also lists the entries views show through another one:
	// revisions, and retractions whose entry is still here.
	Hidden bool
	// Author is "me", "partner", a name (any case), or "" for anyone.
	Author string
	// Feelings and Tags, if not nil, keep entries naming any of them
	// (lower case, tags without '#').
	Feelings, Tags map[string]bool
	// Contains keeps entries whose text contains it, in any case. It is
	// the one filter that reads every candidate's text.
	Contains string
	// Last, if positive, keeps only the last Last entries that match.
	Last int
	// OnThisDay, if not zero, keeps the entries written on an earlier
	// day with the same day of the month as OnThisDay, in its location:
	// the same date in earlier years, and the same day of each earlier
	// month ("on this day"). Nothing from OnThisDay's own day is kept, so
	// what was written today does not crowd out what came before. A day a
	// month lacks (the 31st in April) has nothing from that month.
	OnThisDay time.Time
	// Match, if not nil, keeps the entries it returns true for. It sees
	// each entry as built, after the other filters and without its text
	// (Answered, Mine, Responses and the rest are there).
	Match func(*Entry) bool
	// NoText leaves every entry's Text (and its versions') empty: for a
	// view that needs only what an entry says about itself (kind, time,
	// feelings), which then costs no decryption.
	NoText bool
}

// Reader reads entries from one snapshot of the journal's index. It builds
// each entry only when asked, and reads an entry's text only then. Its
// methods are safe to call while the Journal is open.
type Reader struct {
	j  *Journal
	tl *timeline
}

// Reader returns a reader of the journal as it is now.
func (j *Journal) Reader() (*Reader, error) {
	var r *Reader
	err := j.withLock(func() error {
		r = &Reader{j: j, tl: j.timeline(j.trust())}
		return nil
	})
	return r, err
}

// Len returns how many entries the journal shows, hidden ones included.
func (r *Reader) Len() int { return len(r.tl.sorted) }

// Query returns the entries q chooses, oldest first. If an entry's text
// no longer reads back from the log, the log is healed (repair.go) and
// the query runs once more on what is left; Journal.Repairs says what
// happened.
func (r *Reader) Query(q Query) ([]Entry, error) {
	out, err := r.query(q)
	if errors.Is(err, ErrDamagedRecord) {
		if err := r.heal(); err != nil {
			return nil, err
		}
		out, err = r.query(q)
	}
	return out, err
}

// heal heals the log after a read met damage, and reads the timeline
// again.
func (r *Reader) heal() error {
	return r.j.withLock(func() error {
		if err := r.j.healDamage(); err != nil {
			return err
		}
		r.tl = r.j.timeline(r.j.trust())
		return nil
	})
}

func (r *Reader) query(q Query) ([]Entry, error) {
	r.j.mu.Lock()
	defer r.j.mu.Unlock()
	q.Contains = strings.ToLower(q.Contains)
	if !r.isAuthor(q.Author) {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchAuthor, q.Author)
	}
	sorted := r.tl.sorted
	// Room for every entry that can match, counted with the cheap filters
	// first: a long listing otherwise copies its entries over and over as
	// it grows.
	room := q.Last
	// A search (Contains) keeps few of the candidates: let it grow.
	if room <= 0 && q.Contains == "" {
		for _, o := range sorted {
			if q.matchSummary(o) {
				room++
			}
		}
	}
	room = min(room, len(sorted))
	out, texts := make([]Entry, 0, room), make([]textPlan, 0, room)
	for k := range sorted {
		i := k
		if q.Last > 0 {
			if len(out) == q.Last {
				break
			}
			i = len(sorted) - 1 - k // the newest first, then reversed
		}
		o := sorted[i]
		if !q.matchSummary(o) {
			continue
		}
		e, plan := r.build(o)
		if e.Hidden && !q.Hidden || !q.matchEntry(&e) || q.Match != nil && !q.Match(&e) {
			continue
		}
		if q.Contains != "" {
			if err := r.fill(&e, plan); err != nil {
				return nil, err
			}
			if !strings.Contains(strings.ToLower(e.Text), q.Contains) {
				continue
			}
		}
		out, texts = append(out, e), append(texts, plan)
	}
	if q.Last > 0 {
		slices.Reverse(out)
		slices.Reverse(texts)
	}
	for i := range out {
		if q.Contains == "" && !q.NoText {
			if err := r.fill(&out[i], texts[i]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// isAuthor reports whether a Query's Author can name anyone: "", "me",
// "partner", or the name of someone in the journal (any case), so that a
// misspelt name is an error rather than an empty listing. Call with j.mu
// held.
func (r *Reader) isAuthor(author string) bool {
	switch author {
	case "", "me", "partner":
		return true
	}
	for _, d := range r.tl.trust.roster {
		if strings.EqualFold(d.member.Name, author) {
			return true
		}
	}
	return false
}

// matchSummary applies the filters that need no built entry.
func (q *Query) matchSummary(o *openedEntry) bool {
	p := &o.payload
	if !q.Since.IsZero() && p.Created.Before(q.Since) || !q.Until.IsZero() && !p.Created.Before(q.Until) {
		return false
	}
	if q.Kinds != nil && !q.Kinds[p.Kind] {
		return false
	}
	if !q.OnThisDay.IsZero() && !onThisDay(p.Created, q.OnThisDay) {
		return false
	}
	switch q.Author {
	case "":
	case "me":
		return o.author.member.Self
	case "partner":
		return !o.author.member.Self
	default:
		return strings.EqualFold(o.author.member.Name, q.Author)
	}
	return true
}

// onThisDay reports whether created fell on an earlier day than day with
// the same day of the month, in day's location (Query.OnThisDay).
func onThisDay(created, day time.Time) bool {
	loc := day.Location()
	c := created.In(loc)
	today := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, loc)
	return c.Day() == day.Day() && c.Before(today)
}

// matchEntry applies the filters on what an entry shows after revisions.
func (q *Query) matchEntry(e *Entry) bool {
	if q.Feelings != nil && !slices.ContainsFunc(e.Feelings, func(x string) bool { return q.Feelings[x] }) {
		return false
	}
	if q.Tags != nil && !slices.ContainsFunc(e.Tags, func(x string) bool { return q.Tags[x] }) {
		return false
	}
	return true
}

// Get returns the entry with id (the full hex id). An entry whose text no
// longer reads back is not found (and the log is healed).
func (r *Reader) Get(id string) (Entry, bool) {
	e, ok, err := r.get(id)
	if errors.Is(err, ErrDamagedRecord) && r.heal() == nil {
		e, ok, err = r.get(id)
	}
	return e, ok && err == nil
}

func (r *Reader) get(id string) (Entry, bool, error) {
	r.j.mu.Lock()
	defer r.j.mu.Unlock()
	o := r.lookupLocked(id)
	if o == nil {
		return Entry{}, false, nil
	}
	e, plan := r.build(o)
	if err := r.fill(&e, plan); err != nil {
		return Entry{}, false, err
	}
	return e, true, nil
}

// Find returns the entry whose id starts with prefix (at least 4 hex
// digits).
func (r *Reader) Find(prefix string) (*Entry, error) {
	e, err := r.find(prefix)
	if errors.Is(err, ErrDamagedRecord) {
		if err := r.heal(); err != nil {
			return nil, err
		}
		e, err = r.find(prefix)
	}
	return e, err
}

func (r *Reader) find(prefix string) (*Entry, error) {
	prefix, err := checkPrefix(prefix)
	if err != nil {
		return nil, err
	}
	r.j.mu.Lock()
	defer r.j.mu.Unlock()
	return r.findLocked(prefix)
}

// findLocked is find for a prefix checkPrefix has normalised, with the
// journal's mutex held.
func (r *Reader) findLocked(prefix string) (*Entry, error) {
	var found *openedEntry
	for _, o := range r.tl.sorted {
		if hasHexPrefix(o.s.Chain[:], prefix) {
			if found != nil {
				return nil, fmt.Errorf("%w %q: add a few more characters", ErrAmbiguous, prefix)
			}
			found = o
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w %q", ErrNotFound, prefix)
	}
	e, plan := r.build(found)
	if err := r.fill(&e, plan); err != nil {
		return nil, err
	}
	return &e, nil
}

// checkPrefix checks and normalises an id prefix a person typed.
func checkPrefix(prefix string) (string, error) {
	prefix = strings.ToLower(strings.TrimSpace(prefix))
	if len(prefix) < 4 {
		return "", fmt.Errorf("%w: an id needs at least 4 characters", ErrNotFound)
	}
	if _, err := hex.DecodeString(prefix[:len(prefix)/2*2]); err != nil {
		return "", fmt.Errorf("%w: ids are made of 0-9 and a-f", ErrNotFound)
	}
	return prefix, nil
}

// hasHexPrefix reports whether b's hex form starts with prefix (lower-case
// hex digits), without encoding b.
func hasHexPrefix(b []byte, prefix string) bool {
	const digits = "0123456789abcdef"
	if len(prefix) > 2*len(b) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		n := b[i/2] >> 4
		if i%2 == 1 {
			n = b[i/2] & 0x0f
		}
		if digits[n] != prefix[i] {
			return false
		}
	}
	return true
}

// lookupLocked returns the timeline's entry with chain id id (hex), or
// nil. Call with j.mu held.
func (r *Reader) lookupLocked(id string) *openedEntry {
	c, ok := parseChainID(id)
	if !ok {
		return nil
	}
	return r.chain(c)
}

// chain returns the timeline's entry with chain id c, or nil: an entry
// opened and accepted from its author (as decryptAll decides), not a
// roster record.
func (r *Reader) chain(c protocol.BlobID) *openedEntry {
	o := r.j.openedOf(c)
	if o == nil || rosterKinds[o.payload.Kind] {
		return nil
	}
	if _, ok := r.tl.trust.accepts(o.s); !ok {
		return nil
	}
	return o
}

// textPlan names the entries whose texts an Entry shows: none for a
// blanked one; its own; or, for an edited one, each version's, the
// original first.
type textPlan []*openedEntry

// build returns entry o as views show it, without its text (fill reads
// the texts plan names): its state, the entries that respond to it, and
// its revisions and retraction applied (only an entry's own author can
// revise or retract it). Call with j.mu held.
func (r *Reader) build(o *openedEntry) (Entry, textPlan) {
	p := &o.payload
	id := o.s.Chain.String()
	e := Entry{
		ID:         id,
		Short:      id[:ShortIDLen],
		Kind:       p.Kind,
		Author:     o.author.member.Name,
		Mine:       o.author.member.Self,
		Created:    p.Created,
		Feelings:   own(p.Feelings),
		Intensity:  ownInt(p.Intensity),
		Tags:       own(p.Tags),
		ListenOnly: p.ListenOnly,
		NeedTime:   p.Kind == KindAnswer && p.NeedTime,
		Ref:        p.Ref,
		Synced:     o.s.RelaySeq != 0,
		Responses:  []string{},
		Every:      p.Every,
		Kept:       p.Kept,
		Category:   p.Category,
		Decision:   p.Decision,
		Prompt:     p.Prompt,
	}
	var responses []*openedEntry
	for _, x := range r.tl.refs[o.s.Chain] {
		if responseKinds[x.payload.Kind] || x.payload.Kind == KindAgree {
			responses = append(responses, x)
			e.Responses = append(e.Responses, x.s.Chain.String())
		}
	}
	switch e.Kind {
	case KindQuestion:
		e.State = r.questionState(o, func(x *openedEntry) {
			e.Answers = append(e.Answers, x.s.Chain.String())
		})
		a := e.State == "answered"
		e.Answered = &a
	case KindTogether:
		var mine, theirs, theirsOpen bool
		for _, x := range responses {
			switch {
			case x.payload.Kind == KindTogetherMark && x.author.member.Self:
				mine = true
			case x.payload.Kind == KindTogetherMark:
				theirs = true
			case x.payload.Kind == KindTogetherAnswer && !x.author.member.Self:
				theirsOpen = true
			}
		}
		switch {
		case mine && theirs && theirsOpen:
			e.State = "revealed"
		case mine && theirs:
			e.State = "revealing" // both answered; the keys travel on the next syncs
		case theirs:
			e.State = "waiting-for-you"
		case mine:
			e.State = "waiting-for-partner"
		default:
			e.State = "open"
		}
	case KindAgree:
		e.State = "proposed"
		for _, x := range responses {
			// The partner decides on a proposal; a later proposal by
			// either that names it as revised replaces it.
			switch {
			case x.payload.Kind == KindAgree:
				e.State = "revised"
			case x.payload.Kind == KindDecision && x.author.member.Self != o.author.member.Self && e.State == "proposed":
				switch x.payload.Decision {
				case "accept":
					e.State = "accepted"
				case "decline":
					e.State = "declined"
				}
			}
		}
	case KindRevision:
		if t := r.chain(o.ref()); t == nil || !sameAuthor(t, o) || r.retracted(t) != nil {
			e.Hidden = true
			blank(&e) // what it revised is gone
			return e, nil
		}
	}
	e.Hidden = r.hidden(o)
	if when := r.retracted(o); when != nil {
		e.Retracted = when
		if e.Kind == KindQuestion {
			// Withdrawn: no longer open, and waiting on no one.
			e.State = "retracted"
		}
		blank(&e)
		return e, nil
	}
	plan := textPlan{o}
	for _, x := range r.tl.refs[o.s.Chain] {
		if x.payload.Kind != KindRevision || !sameAuthor(x, o) {
			continue
		}
		if !e.Edited {
			e.History = []Version{{ID: e.ID, Created: e.Created, Feelings: e.Feelings, Intensity: e.Intensity}}
		}
		e.Edited = true
		e.Revisions = append(e.Revisions, x.s.Chain.String())
		e.History = append(e.History, Version{ID: x.s.Chain.String(), Created: x.payload.Created, Feelings: own(x.payload.Feelings), Intensity: ownInt(x.payload.Intensity)})
		e.Feelings, e.Intensity, e.Tags = own(x.payload.Feelings), ownInt(x.payload.Intensity), own(x.payload.Tags)
		plan = append(plan, x)
	}
	return e, plan
}

// questionState returns the state of question o from its answers: "open",
// "answered" once the partner answered it, "needs-time" while the
// partner's only answers say they need time (build says "retracted"
// instead when its author withdrew it). answer, if not nil, is called with each answer, in
// order. Call with j.mu held.
func (r *Reader) questionState(o *openedEntry, answer func(*openedEntry)) string {
	state := "open"
	for _, x := range r.tl.refs[o.s.Chain] {
		// Only the partner answers a question.
		if x.payload.Kind != KindAnswer || x.author.member.Self == o.author.member.Self {
			continue
		}
		if answer != nil {
			answer(x)
		}
		if !x.payload.NeedTime {
			state = "answered"
		} else if state == "open" {
			state = "needs-time"
		}
	}
	return state
}

// QuestionTally counts a journal's questions by who asked and what state
// they are in (Entry.State): the numbers behind a listing that shows only
// some of them.
type QuestionTally struct {
	// Mine are the questions this person asked, Partner's the others.
	Mine, Partner QuestionCount
}

// QuestionCount counts questions by state.
type QuestionCount struct {
	Open, NeedsTime, Answered, Retracted int
}

// Questions counts the questions Query lists for KindQuestion, from what
// the index holds: no text is read and no entry is built.
func (r *Reader) Questions() QuestionTally {
	r.j.mu.Lock()
	defer r.j.mu.Unlock()
	var t QuestionTally
	for _, o := range r.tl.sorted {
		if o.payload.Kind != KindQuestion {
			continue
		}
		c := &t.Partner
		if o.author.member.Self {
			c = &t.Mine
		}
		if r.retracted(o) != nil {
			c.Retracted++
			continue
		}
		switch r.questionState(o, nil) {
		case "answered":
			c.Answered++
		case "needs-time":
			c.NeedsTime++
		default:
			c.Open++
		}
	}
	return t
}

// hidden reports whether views show o through another entry (build sets
// Entry.Hidden the same way): a revision, or a retraction whose entry is
// here. Call with j.mu held.
func (r *Reader) hidden(o *openedEntry) bool {
	switch o.payload.Kind {
	case KindRevision:
		return true
	case KindRetraction:
		t := r.chain(o.ref())
		return t != nil && sameAuthor(t, o)
	}
	return false
}

// retracted returns when o's own author retracted it (the last
// retraction), or nil.
func (r *Reader) retracted(o *openedEntry) *time.Time {
	var when *time.Time
	for _, x := range r.tl.refs[o.s.Chain] {
		if x.payload.Kind == KindRetraction && sameAuthor(x, o) {
			t := x.payload.Created
			when = &t
		}
	}
	return when
}

// fill reads back the texts plan names from the log into e. Call with
// j.mu held.
func (r *Reader) fill(e *Entry, plan textPlan) error {
	if len(plan) == 0 || e.Text != "" {
		return nil
	}
	texts := make([]string, len(plan))
	for i, o := range plan {
		t, err := r.j.text(o)
		if err != nil {
			return err
		}
		texts[i] = t
	}
	for i := range e.History {
		e.History[i].Text = texts[i]
	}
	e.Text = texts[len(texts)-1]
	return nil
}

// sameAuthor reports whether a and b were written by the same person.
func sameAuthor(a, b *openedEntry) bool { return a.author.member == b.author.member }

// timeline is the readable journal as views show it, built from the
// opened index without reading any text.
type timeline struct {
	sorted []*openedEntry                     // entries views show (no roster records), by time written
	refs   map[protocol.BlobID][]*openedEntry // the entries naming each one in Ref, in sorted order
	trust  *trust                             // the trust it was built with
}

// timeline builds the timeline. Call with the lock held.
func (m *openIndex) timeline(t *trust) *timeline {
	opened, _ := m.decryptAll(t)
	tl := &timeline{sorted: make([]*openedEntry, 0, len(opened)), refs: make(map[protocol.BlobID][]*openedEntry), trust: t}
	for _, o := range opened {
		if !rosterKinds[o.payload.Kind] {
			tl.sorted = append(tl.sorted, o)
		}
	}
	// Most of a log is already in time order: check before sorting.
	before := func(a, b *openedEntry) int { return a.payload.Created.Compare(b.payload.Created) }
	if !slices.IsSortedFunc(tl.sorted, before) {
		slices.SortStableFunc(tl.sorted, before)
	}
	for _, o := range tl.sorted {
		if o.payload.Ref != "" {
			ref := o.ref()
			tl.refs[ref] = append(tl.refs[ref], o)
		}
	}
	return tl
}

// Find returns the entry whose id starts with prefix (at least 4 hex
// digits) among entries.
func Find(entries []Entry, prefix string) (*Entry, error) {
	prefix, err := checkPrefix(prefix)
	if err != nil {
		return nil, err
	}
	var found *Entry
	for i := range entries {
		if strings.HasPrefix(entries[i].ID, prefix) {
			if found != nil {
				return nil, fmt.Errorf("%w %q: add a few more characters", ErrAmbiguous, prefix)
			}
			found = &entries[i]
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w %q", ErrNotFound, prefix)
	}
	return found, nil
}
