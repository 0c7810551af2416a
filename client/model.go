package client

import (
	"errors"
	"fmt"
	"sync"
	"time"

	// encoding/json as Go 1.27 has it (the same behaviour, built on
	// json/v2): payloads decode about 2.5 times faster, which is most of
	// opening entries on a first sync.
	json "github.com/go-json-experiment/json/v1"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Entry kinds.
const (
	KindEntry    = "entry"      // a journal entry, often with feelings
	KindQuestion = "question"   // a hard question for the partner
	KindAnswer   = "answer"     // an answer to a question (Ref names it); NeedTime marks "not yet"
	KindFollowup = "followup"   // a further word on a question (Ref names it)
	KindReply    = "reply"      // a reply to an entry (Ref names it)
	KindAck      = "ack"        // "I read this, I'm with you" (Ref names it); Text is an optional note
	KindCommit   = "commitment" // a commitment; Every is "day" or "week"
	KindCheckin  = "checkin"    // a commitment kept or missed (Ref names it; Kept says which)
	KindAgree    = "agreement"  // a proposed agreement; Category is boundary, value or practice; Ref names one it revises
	KindDecision = "decision"   // accept or decline of an agreement (Ref names it; Decision says which)
	// KindRevision is a new version of an earlier entry (Ref) by its author;
	// its fields replace the entry's, and history keeps every version.
	KindRevision = "revision"
	// KindRetraction withdraws an earlier entry (Ref) by its author: its
	// words are no longer shown, only that something was retracted, when.
	KindRetraction = "retraction"
	// KindReflection answers a built-in prompt (Prompt names it) or none.
	KindReflection = "reflection"
	// KindTogether is a "reveal together" prompt both partners answer.
	KindTogether = "together"
	// KindTogetherAnswer is an answer to a together prompt (Ref). It is
	// sealed only to its author's own devices, and its key is released to
	// the partner only once the partner's own answer exists.
	KindTogetherAnswer = "together-answer"
	// KindTogetherMark says "I have answered" (Ref: the prompt; Held: the
	// chain id of the sealed answer, which it commits to). Everyone reads it.
	KindTogetherMark = "together-answered"

	// Roster records change who is in the journal. Views never show them
	// as entries; status, members and device list do.

	// KindDevice announces a device of its author's person: Device holds
	// its certificate, which must be signed by that person's identity key.
	KindDevice = "device"
	// KindDeviceRemoved withdraws a device of its author's person: Device
	// holds its signing key, Seq the last of its blobs the remover holds.
	// Nothing is sealed to it afterwards, and anything it writes past Seq
	// is set aside.
	KindDeviceRemoved = "device-removed"
	// KindLeave says its author's person has left the journal: nothing is
	// sealed to their devices afterwards.
	KindLeave = "left"
	// KindInvite hands an invite made on one of the person's devices to
	// their other devices (Secret, Expires, Again), sealed to those
	// devices only, so each can open the join that answers it.
	KindInvite = "invite"
)

// rosterKinds are the kinds of roster records.
var rosterKinds = map[string]bool{KindDevice: true, KindDeviceRemoved: true, KindLeave: true, KindInvite: true, KindAccount: true, KindAccountJournal: true}

// responseKinds are the kinds that hang off another entry through Ref.
var responseKinds = map[string]bool{KindAnswer: true, KindFollowup: true, KindReply: true, KindAck: true, KindCheckin: true, KindDecision: true, KindTogetherAnswer: true, KindTogetherMark: true}

// Payload is the plaintext inside an entry blob, JSON-encoded, then padded
// and sealed. Unknown fields are ignored so later versions can add some.
type Payload struct {
	V         int       `json:"v"` // 1
	Kind      string    `json:"kind"`
	Created   time.Time `json:"created"`
	Text      string    `json:"text"`
	Feelings  []string  `json:"feelings,omitempty"`
	Intensity *int      `json:"intensity,omitempty"`
	Ref       string    `json:"ref,omitempty"` // full hex id of the entry this one responds to
	Tags      []string  `json:"tags,omitempty"`
	// ListenOnly asks to be heard, not answered: the partner's client
	// offers an acknowledgement instead of a reply.
	ListenOnly bool `json:"listen_only,omitempty"`
	// NeedTime marks an answer as an honest "not yet".
	NeedTime bool `json:"need_time,omitempty"`
	// Every is how often a commitment is meant: "day" or "week".
	Every string `json:"every,omitempty"`
	// Kept says whether a check-in kept its commitment.
	Kept *bool `json:"kept,omitempty"`
	// Category is an agreement's kind: boundary, value or practice.
	Category string `json:"category,omitempty"`
	// Decision is "accept" or "decline" for a decision.
	Decision string `json:"decision,omitempty"`
	// Held is, in a together mark, the chain id of the sealed answer.
	Held string `json:"held,omitempty"`
	// Prompt is the built-in prompt a reflection answers, like "5.2".
	Prompt string `json:"prompt,omitempty"`
	// Purges lists, in a retraction, the chain ids of the entry and of its
	// revisions, which the author's client asks the relay to purge.
	Purges []string `json:"purges,omitempty"`
	// Device is, in a device record, the device's certificate; in a
	// device-removed record, its signing key.
	Device []byte `json:"device,omitempty"`
	// Seq is, in a device-removed record, the removed device's last blob
	// that its remover holds.
	Seq uint64 `json:"seq,omitempty"`
	// Secret, Expires and Again are, in an invite record, the invite's
	// secret, expiry, and whether it was made "again" (InviteAgain).
	Secret  []byte     `json:"secret,omitempty"`
	Expires *time.Time `json:"expires,omitempty"`
	Again   bool       `json:"again,omitempty"`
	// ToSince maps each recipient's key id (16 hex digits) to the
	// author's seq from which every entry its device wrote in this
	// journal, up to this one, carried a slot for that key id (see
	// tosince.go). Readers keep only what it says about themselves.
	ToSince map[string]uint64 `json:"to_since,omitempty"`
	// Account is, in an account record (accountjournal.go), what its
	// device says of the person's journals.
	Account *accountRecord `json:"account,omitempty"`
}

// retracts returns the chain ids (hex) a retraction names: the entry and
// every revision of it.
func (p *Payload) retracts() map[string]bool {
	named := map[string]bool{p.Ref: true}
	for _, id := range p.Purges {
		named[id] = true
	}
	return named
}

// Entry is a decrypted entry as the CLI shows it. Its JSON form is the
// stable document printed by `--json`.
type Entry struct {
	ID        string    `json:"id"`
	Short     string    `json:"short_id"`
	Kind      string    `json:"kind"`
	Author    string    `json:"author"`
	Mine      bool      `json:"mine"`
	Created   time.Time `json:"created"`
	Text      string    `json:"text"`
	Feelings  []string  `json:"feelings"`
	Intensity *int      `json:"intensity"`
	Tags      []string  `json:"tags"`
	// ListenOnly: the writer asked to be heard, not answered.
	ListenOnly bool `json:"listen_only"`
	// NeedTime: an answer that says "I need time", not an answer yet.
	NeedTime bool `json:"need_time,omitempty"`
	// Ref is the entry a response (answer, follow-up, reply, ack) is for.
	Ref string `json:"ref,omitempty"`
	// Answered, State and Answers are set for questions. State is "open",
	// "needs-time" (only "I need time" so far) or "answered". Agreements
	// have State too: "proposed", "accepted" (by both), "declined" or
	// "revised" (a later proposal replaces it).
	Answered *bool    `json:"answered,omitempty"`
	State    string   `json:"state,omitempty"`
	Answers  []string `json:"answers,omitempty"`
	// Responses lists the ids of every entry that responds to this one
	// (answers, follow-ups, replies, acknowledgements, check-ins,
	// decisions), oldest first.
	Responses []string `json:"responses"`
	Every     string   `json:"every,omitempty"`
	Kept      *bool    `json:"kept,omitempty"`
	Category  string   `json:"category,omitempty"`
	Decision  string   `json:"decision,omitempty"`
	Prompt    string   `json:"prompt,omitempty"`
	// Edited is set when the author revised the entry; Revisions lists the
	// revision ids, oldest first. Text and feelings are the latest.
	Edited    bool      `json:"edited"`
	Revisions []string  `json:"revisions,omitempty"`
	History   []Version `json:"history,omitempty"`
	// Retracted is when the author withdrew the entry; its words are gone
	// from every view.
	Retracted *time.Time `json:"retracted,omitempty"`
	// Hidden marks an entry that views show through another one: every
	// revision, and a retraction whose entry is still here. A retraction
	// whose entry was purged stays visible as the tombstone.
	Hidden bool `json:"hidden,omitempty"`
	// Synced is false while the entry waits in this device's outbox.
	Synced bool `json:"synced"`
	// Sending is set by Retract only: how far the entry it retracted had
	// gone when the retraction was written. Elsewhere it is zero.
	Sending Sending `json:"-"`
}

// ShortIDLen is how many hex digits of an id are shown.
const ShortIDLen = 8

// grantCheck remembers whether a grant opened for this device under the
// author's box key box.
type grantCheck struct {
	box [32]byte
	ok  bool
}

// grantRef is one item of a valid grant: a content key re-boxed for this
// device by the entry's author, or handed over by a device of this person.
type grantRef struct {
	item   *protocol.GrantItem
	author [32]byte
	box    [32]byte
}

// openedEntry is an entry this device opened: what its payload says
// without the text (openIndex.text reads that back when it is shown), and its
// content key. There is one per readable entry, held for the whole
// journal, so it is kept small.
type openedEntry struct {
	s       *stored
	author  *rosterDevice // set by decryptAll from the current trust
	payload summary
	key     [32]byte // the content key (its hash was checked when it opened)
}

// summary is a payload without its text: the fields most entries have,
// and the rest (Ref, Every, Device, ...) in the embedded Payload, which is
// the shared noMore when none is set. Read it like a Payload; never write
// through it.
type summary struct {
	*Payload
	Kind       string
	Created    time.Time
	Feelings   []string
	Intensity  *int
	ListenOnly bool
	NeedTime   bool
}

// noMore is the embedded Payload of a summary with nothing more to say.
var noMore = &Payload{}

// decryptAll opens every entry this device can read and has not opened
// yet, and returns every opened entry whose author the journal accepts, in
// log order. Entries it cannot open (their key has not been granted to
// this device, or the author is unknown) are returned in unreadable,
// except one without a slot for this device that its author device's own
// opened retraction names: that one is simply retracted (a relay can hide
// only words their author withdrew). Call with the lock held.
//
// It is incremental: an entry is opened once per process, or once ever
// when the checkpoint holds it (checkpoint.go); what is new since the last
// call is opened, and what could not be opened is tried again only when
// something that could open it arrived (a grant, a change of members).
func (m *openIndex) decryptAll(t *trust) (entries []*openedEntry, unreadable []*stored) {
	m.openNew(t)
	// A command often asks twice (its view, and status for the notices);
	// the answer changes only with the records, what opened, and trust.
	key := decryptedKey{trust: t, records: m.store.records, opens: m.opens}
	if c := &m.decrypted; c.key == key {
		return c.entries[:len(c.entries):len(c.entries)], c.unreadable[:len(c.unreadable):len(c.unreadable)]
	}
	entries = make([]*openedEntry, 0, len(m.store.order))
	var withdrawn map[withdrawal]bool
	defer func() { m.decrypted = decryptedCache{key, entries, unreadable, withdrawn} }()
	for _, s := range m.store.order {
		if s.Header.Kind != protocol.KindEntry || s.Purged {
			continue
		}
		o := s.opened // set on a chain's first blob, which most are
		if o == nil {
			o = m.openedOf(s.Chain)
		}
		if o == nil {
			unreadable = append(unreadable, s)
			continue
		}
		// One entry per chain id: copies whose other recipients' slots
		// were altered on the way are the same entry.
		if o.s != s {
			continue
		}
		rd, ok := t.accepts(s)
		if !ok {
			unreadable = append(unreadable, s)
			continue
		}
		o.author = rd
		if o.payload.Kind == KindRetraction {
			withdrawn = noteWithdrawn(withdrawn, o)
		}
		entries = append(entries, o)
	}
	keep := unreadable[:0]
	for _, s := range unreadable {
		if s.noSlot && withdrawn[withdrawal{s.Header.Author, s.Chain}] {
			// Without a slot for this device, and named by its author
			// device's own retraction: withdrawn, perhaps before it was
			// ever sent (its author then keeps it to itself). Neither
			// waiting nor changed, whatever a later entry vouched.
			s.changed = false
			continue
		}
		// Without a slot for this device, yet within what a later entry
		// of its author says carried one: the slot was stripped on the
		// way (tosince.go).
		if s.noSlot && !s.changed && m.claimed(s) {
			s.changed = true
		}
		keep = append(keep, s)
	}
	return entries, keep
}

// withdrawal names an entry its author device retracted: that device's
// signing key and the entry's chain id.
type withdrawal struct {
	author [32]byte
	chain  protocol.BlobID
}

// noteWithdrawn adds to w what retraction o names (its ref and purges),
// as written by o's own device, and returns w.
func noteWithdrawn(w map[withdrawal]bool, o *openedEntry) map[withdrawal]bool {
	for id := range o.payload.retracts() {
		// As ids are compared everywhere: lowercase hex only.
		if c, ok := parseChainID(id); ok && c.String() == id {
			if w == nil {
				w = make(map[withdrawal]bool)
			}
			w[withdrawal{o.s.Header.Author, c}] = true
		}
	}
	return w
}

// decryptedKey is what decryptAll's answer depends on; decryptedCache
// the last answer.
type decryptedKey struct {
	trust   *trust
	records int
	opens   int
}

type decryptedCache struct {
	key        decryptedKey
	entries    []*openedEntry
	unreadable []*stored
	withdrawn  map[withdrawal]bool // what the opened retractions name
}

// withdrawn returns what the opened retractions name, as decryptAll found
// them: whether an entry's author device retracted it. The map is
// decryptAll's own; callers only read it. Call with the lock held.
func (m *openIndex) withdrawn(t *trust) map[withdrawal]bool {
	m.decryptAll(t)
	return m.decrypted.withdrawn
}

// openNew checks the grants and opens the entries indexed since the last
// call, and tries again the entries that did not open when something that
// could open them arrived. Call with the lock held.
func (m *openIndex) openNew(t *trust) {
	fresh := m.store.order[m.scanned:]
	m.scanned = len(m.store.order)
	// The members changed (or this is the first call): a state reloaded
	// with the same members is not a change.
	changed := !m.tried || m.triedKey != t.key.digest
	m.tried, m.triedKey = true, t.key.digest
	if changed {
		// A grant from a device just accepted counts now.
		pending := m.uncheckedGrants
		m.uncheckedGrants = nil
		for _, s := range pending {
			m.checkGrant(s, t)
		}
	}
	var granted map[protocol.BlobID]bool // entries that new grants name
	for _, s := range fresh {
		if s.Header.Kind != protocol.KindGrant {
			continue
		}
		for _, c := range m.checkGrant(s, t) {
			if granted == nil {
				granted = make(map[protocol.BlobID]bool)
			}
			granted[c] = true
		}
	}
	var try []*stored
	switch {
	case changed:
		try, m.unopened = m.unopened, nil
	case granted != nil:
		keep := m.unopened[:0]
		for _, s := range m.unopened {
			if granted[s.Chain] {
				try = append(try, s)
			} else {
				keep = append(keep, s)
			}
		}
		m.unopened = keep
	}
	retried := len(try)
	for _, s := range fresh {
		if s.Header.Kind == protocol.KindEntry && !s.Purged {
			try = append(try, s)
		}
	}
	for i, s := range try {
		if m.openedOf(s.Chain) != nil {
			continue
		}
		if !m.open(s, t) {
			m.unopened = append(m.unopened, s)
			continue
		}
		if i < retried {
			// Indexed before it opened: the last re-boxing check may
			// have passed it by, and this device may now hand it over
			// to this person's other devices (ensureGrants).
			m.grantsDone.valid = false
		}
	}
	// The bytes are read back from the log if they are needed again, and
	// grant items only matter while an entry waits to open.
	for _, s := range fresh {
		s.held = nil
	}
	if len(m.unopened) == 0 && len(m.grantItems) > 0 {
		m.grantItems, m.grantItemsAll = make(map[protocol.BlobID][]grantRef), false
	}
}

// checkGrant checks grant s once per process (a check depends only on the
// grant's bytes, its id, and the author's box key) and, when it is valid,
// indexes its items. It returns the chain ids of the entries it names.
func (m *openIndex) checkGrant(s *stored, t *trust) []protocol.BlobID {
	rd, ok := t.accepts(s)
	if !ok {
		m.uncheckedGrants = append(m.uncheckedGrants, s)
		return nil
	}
	if c, ok := m.grantChecks[s.ID]; ok && c.box == rd.cert.Box {
		return nil // checked before, by this process or the checkpoint; see loadGrantItems
	}
	g, err := protocol.ParseGrant(m.store.raw(s))
	c := grantCheck{box: rd.cert.Box, ok: err == nil && m.keys.OpenGrant(g, rd.cert.Box) == nil}
	m.grantChecks[s.ID] = c
	if !c.ok {
		return nil
	}
	var named []protocol.BlobID
	for i := range g.Items {
		m.grantItems[g.Items[i].Entry] = append(m.grantItems[g.Items[i].Entry], grantRef{&g.Items[i], s.Header.Author, rd.cert.Box})
		named = append(named, g.Items[i].Entry)
	}
	return named
}

// loadGrantItems indexes the items of every valid grant, reading them back
// from the log: needed only when an entry opened before this process did
// not open with its own slot. Call with the lock held.
func (m *openIndex) loadGrantItems(t *trust) {
	if m.grantItemsAll {
		return
	}
	m.grantItemsAll = true
	m.grantItems = make(map[protocol.BlobID][]grantRef)
	for _, s := range m.store.order[:m.scanned] {
		if s.Header.Kind != protocol.KindGrant {
			continue
		}
		if c, ok := m.grantChecks[s.ID]; ok && c.ok {
			rd, ok := t.accepts(s)
			if !ok || rd.cert.Box != c.box {
				continue
			}
			g, err := protocol.ParseGrant(m.store.raw(s))
			if err != nil {
				continue
			}
			for i := range g.Items {
				m.grantItems[g.Items[i].Entry] = append(m.grantItems[g.Items[i].Entry], grantRef{&g.Items[i], s.Header.Author, rd.cert.Box})
			}
		}
	}
}

// open tries to open entry s: with this device's own slot, else with a
// grant from the entry's own author or from a device of this person. It
// reports whether it opened.
func (m *openIndex) open(s *stored, t *trust) bool {
	m.tries++
	rd, ok := t.accepts(s)
	if !ok {
		return false
	}
	if pre := m.pre[s.ID]; pre != nil {
		delete(m.pre, s.ID)
		if pre.box == rd.cert.Box {
			m.preUsed++
			return m.opened(s, pre.key, &pre.payload)
		}
	}
	var e *protocol.Entry
	if s.held != nil {
		e = s.held.entry // parsed when it was indexed
	}
	if e == nil {
		var err error
		if e, err = protocol.ParseEntry(m.store.raw(s)); err != nil {
			return false
		}
	}
	op := m.keys
	ck, err := op.EntryKey(e, rd.cert.Box)
	// A slot for this device that does not open to this entry's key
	// failed authentication: the entry was changed on the way (its
	// header, nonce or ciphertext, or the slot itself). No slot at all is
	// an entry not sealed to this device, which may still be granted,
	// unless a later entry of its author says it carried one (claimed,
	// checked by decryptAll).
	s.changed, s.noSlot = false, false
	if err != nil {
		has := m.hasSlot(e)
		s.changed, s.noSlot = has, !has
	}
	if err != nil {
		if len(m.grantItems[s.Chain]) == 0 {
			m.loadGrantItems(t)
		}
		for _, g := range m.grantItems[s.Chain] {
			// The entry's own author may re-box it, and so may any device
			// of this person (a handover, §13 of docs/protocol.md); a
			// partner's device only its own entries.
			if g.author != s.Header.Author && !t.handsOver(g.author) {
				continue
			}
			if ck, err = op.GrantKey(g.item, g.box, e); err == nil {
				break
			}
		}
	}
	if err != nil {
		return false
	}
	p, err := openPayload(e, ck)
	if err != nil {
		return false
	}
	return m.opened(s, ck, &p)
}

// openedOf returns the entry opened for chain id c, or nil.
func (m *openIndex) openedOf(c protocol.BlobID) *openedEntry {
	if s := m.store.chainOf(c); s != nil {
		return s.opened
	}
	return nil
}

// offerPreopened keeps what preopen found for blob id, for open to use
// when it opens it. Call with the lock held.
func (m *openIndex) offerPreopened(id protocol.BlobID, p *preopened) {
	if m.pre == nil {
		m.pre = make(map[protocol.BlobID]*preopened)
	}
	m.pre[id] = p
}

// forgetPreopened drops what preopen found and open did not use: it is
// opened as before. Call with the lock held.
func (m *openIndex) forgetPreopened() { clear(m.pre) }

// opened records that s opened with ck to p.
func (m *openIndex) opened(s *stored, ck crypto.ContentKey, p *Payload) bool {
	s.changed, s.noSlot = false, false
	m.noteClaim(s, p)
	o := &openedEntry{s: s, key: ck.Key}
	o.setPayload(p)
	m.opens++
	m.store.chainOf(s.Chain).opened = o
	return true
}

// hasSlot reports whether e carries a recipient slot under this device's
// box key id.
func (m *openIndex) hasSlot(e *protocol.Entry) bool {
	id := crypto.KeyID(m.ownBox)
	for i := range e.Recipients {
		if e.Recipients[i].KeyID == id {
			return true
		}
	}
	return false
}

// openPayload decrypts and decodes an entry's payload.
func openPayload(e *protocol.Entry, ck crypto.ContentKey) (Payload, error) {
	plain, err := crypto.OpenPayload(e, ck)
	if err != nil {
		return Payload{}, err
	}
	var p Payload
	err = json.Unmarshal(plain, &p)
	clear(plain)
	if err != nil || p.V != 1 {
		return Payload{}, errors.New("entry payload does not decode")
	}
	return p, nil
}

// ref returns the payload's Ref parsed; zero if none.
func (o *openedEntry) ref() protocol.BlobID {
	id, _ := parseChainID(o.payload.Ref)
	return id
}

// setPayload keeps p without its text.
func (o *openedEntry) setPayload(p *Payload) {
	o.payload = summary{Payload: noMore, Kind: p.Kind, Created: p.Created, Feelings: p.Feelings, Intensity: p.Intensity, ListenOnly: p.ListenOnly, NeedTime: p.NeedTime}
	if p.Ref != "" || p.Tags != nil || p.Every != "" || p.Kept != nil || p.Category != "" || p.Decision != "" || p.Held != "" ||
		p.Prompt != "" || p.Purges != nil || p.Device != nil || p.Seq != 0 || p.Secret != nil || p.Expires != nil || p.Again {
		o.payload.Payload = &Payload{Ref: p.Ref, Tags: p.Tags, Every: p.Every, Kept: p.Kept, Category: p.Category, Decision: p.Decision, Held: p.Held, Prompt: p.Prompt,
			Purges: p.Purges, Device: p.Device, Seq: p.Seq, Secret: p.Secret, Expires: p.Expires, Again: p.Again}
	}
}

// full returns the summary as a Payload (without text).
func (s *summary) full() Payload {
	p := *s.Payload
	p.V, p.Kind, p.Created, p.Feelings, p.Intensity, p.ListenOnly, p.NeedTime = 1, s.Kind, s.Created, s.Feelings, s.Intensity, s.ListenOnly, s.NeedTime
	return p
}

// textBufs holds buffers text reads records into: a long listing reads
// thousands, and each is done with before the next.
var textBufs = sync.Pool{New: func() any { b := make([]byte, rawGuess); return &b }}

// text reads back the text of an opened entry from the log. Call with the
// lock held.
func (m *openIndex) text(o *openedEntry) (string, error) {
	buf := textBufs.Get().(*[]byte)
	defer textBufs.Put(buf)
	raw := m.store.rawInto(o.s, *buf)
	// A longer record was read into a new buffer: the pool keeps it,
	// unless it is a held blob's own bytes (rawInto returns those as
	// they are), which the next text would overwrite.
	if o.s.held == nil && cap(raw) > cap(*buf) && cap(raw) <= 64<<10 {
		*buf = raw[:0]
	}
	e, err := protocol.ParseEntry(raw)
	if err != nil {
		return "", fmt.Errorf("%w: entry %s", ErrDamagedRecord, o.s.Chain.String()[:ShortIDLen])
	}
	// Only the text: the rest of the payload was read when the entry was
	// first opened (decryptAll), and decoding it again is most of the cost
	// of a long listing.
	plain, err := crypto.OpenPayload(e, crypto.ContentKey{Key: o.key, Hash: e.ContentHash()})
	var p struct {
		V    int    `json:"v"`
		Text string `json:"text"`
	}
	if err == nil {
		err = json.Unmarshal(plain, &p)
		clear(plain)
	}
	if err != nil || p.V != 1 {
		return "", fmt.Errorf("%w: entry %s", ErrDamagedRecord, o.s.Chain.String()[:ShortIDLen])
	}
	return p.Text, nil
}

// verifiedSet returns the blobs this device has authenticated: entries it
// opened and grants that checked, from authors the journal accepts. Call
// with the lock held, after decryptAll.
func (m *openIndex) verifiedSet(opened []*openedEntry, t *trust) map[protocol.BlobID]bool {
	verified := make(map[protocol.BlobID]bool, len(opened))
	for _, o := range opened {
		verified[o.s.ID] = true
	}
	for _, s := range m.store.order {
		if s.Header.Kind != protocol.KindGrant {
			continue
		}
		if c, ok := m.grantChecks[s.ID]; ok && c.ok {
			if rd, ok := t.accepts(s); ok && rd.cert.Box == c.box {
				verified[s.ID] = true
			}
		}
	}
	return verified
}

// Version is one version of an edited entry, the original first.
type Version struct {
	ID        string    `json:"id"`
	Created   time.Time `json:"created"`
	Text      string    `json:"text"`
	Feelings  []string  `json:"feelings"`
	Intensity *int      `json:"intensity"`
}

// blank removes an entry's words and feelings.
func blank(e *Entry) {
	e.Text, e.Feelings, e.Intensity, e.Tags = "", []string{}, nil, []string{}
}

// own and ownInt copy what an Entry takes from a summary, whose lists
// and pointers entries share (see decoder): a caller may change its Entry.
func own(s []string) []string { return append([]string{}, s...) }

func ownInt(p *int) *int {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
