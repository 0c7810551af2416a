package client

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

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
var rosterKinds = map[string]bool{KindDevice: true, KindDeviceRemoved: true, KindLeave: true, KindInvite: true}

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
}

// ShortIDLen is how many hex digits of an id are shown.
const ShortIDLen = 8

// roster maps device signing keys to the member and certificate the
// client accepts for them.
type rosterDevice struct {
	member *Member
	cert   *crypto.DeviceCert
	// removed is set for a device its person removed: its blobs up to
	// removed.Last stay readable, nothing more is sealed to it.
	removed *RemovedDevice
}

// current reports whether entries are sealed to the device: it has not
// been removed, its person has not left, and its key is not an
// unconfirmed new identity.
func (d rosterDevice) current() bool {
	return d.removed == nil && d.member.Left == nil
}

func (j *Journal) roster() map[[32]byte]rosterDevice {
	r := make(map[[32]byte]rosterDevice)
	for i := range j.st.Members {
		m := &j.st.Members[i]
		for _, raw := range m.Devices {
			c, err := crypto.ParseDeviceCert(raw)
			if err != nil || !m.certifies(c.Identity) {
				continue
			}
			if _, taken := r[c.Sign]; taken {
				continue // the first member to claim a device keeps it (self is first)
			}
			r[c.Sign] = rosterDevice{member: m, cert: c, removed: m.removed(c.Sign)}
		}
	}
	return r
}

// recipients returns the box keys of every current device of every
// member (see rosterDevice.current).
func (j *Journal) recipients() [][32]byte {
	var out [][32]byte
	for _, d := range j.roster() {
		if d.current() {
			out = append(out, d.cert.Box)
		}
	}
	sort.Slice(out, func(a, b int) bool { return string(out[a][:]) < string(out[b][:]) })
	return out
}

// grantCheck remembers whether a grant opened for this device under the
// author's box key box; g is the parsed grant when it did.
type grantCheck struct {
	box [32]byte
	g   *protocol.Grant
}

// openedEntry is an entry blob with its content key, once found.
type openedEntry struct {
	s       *stored
	author  rosterDevice
	payload Payload
}

// decryptAll opens every entry this device can read. Call with the lock
// held. Entries it cannot open yet (their key has not been granted to this
// device, or the author is unknown) are returned in unreadable.
func (j *Journal) decryptAll() (entries []*openedEntry, unreadable []*stored, verified map[protocol.BlobID]bool) {
	verified = make(map[protocol.BlobID]bool)
	roster := j.roster()
	op := j.acct.keys
	// Grants addressed to this device, by entry id.
	type grantRef struct {
		item   *protocol.GrantItem
		author [32]byte
		box    [32]byte
	}
	grants := make(map[protocol.BlobID][]grantRef)
	for _, s := range j.order {
		if s.Header.Kind != protocol.KindGrant {
			continue
		}
		rd, ok := roster[s.Header.Author]
		if !ok || s.Header.Journal != j.id || rd.removed != nil && s.Header.Seq > rd.removed.Last {
			continue
		}
		// A grant's check depends only on its bytes (its id) and the
		// author's box key, so it is done once per process.
		c, ok := j.grantChecks[s.ID]
		if !ok || c.box != rd.cert.Box {
			c = grantCheck{box: rd.cert.Box}
			if g, err := protocol.ParseGrant(s.Raw); err == nil && op.OpenGrant(g, rd.cert.Box) == nil {
				c.g = g
			}
			j.grantChecks[s.ID] = c
		}
		g := c.g
		if g == nil {
			continue
		}
		verified[s.ID] = true
		for i := range g.Items {
			grants[g.Items[i].Entry] = append(grants[g.Items[i].Entry], grantRef{&g.Items[i], s.Header.Author, rd.cert.Box})
		}
	}
	done := make(map[protocol.BlobID]bool)
	for _, s := range j.order {
		if s.Header.Kind != protocol.KindEntry || s.Purged {
			continue
		}
		// One entry per chain id: copies whose other recipients' slots
		// were altered on the way are the same entry.
		if done[s.Chain] {
			continue
		}
		if o, ok := j.opened[s.ID]; ok {
			// Opened before: its bytes cannot change (the id is their
			// hash), only the author's name in the roster can.
			if rd, ok := roster[s.Header.Author]; ok && (rd.removed == nil || s.Header.Seq <= rd.removed.Last) {
				o.author = rd
				verified[s.ID] = true
				done[s.Chain] = true
				entries = append(entries, o)
				continue
			}
		}
		rd, ok := roster[s.Header.Author]
		if !ok || s.Header.Journal != j.id || rd.removed != nil && s.Header.Seq > rd.removed.Last {
			unreadable = append(unreadable, s)
			continue
		}
		e, err := protocol.ParseEntry(s.Raw)
		if err != nil {
			unreadable = append(unreadable, s)
			continue
		}
		ck, err := op.EntryKey(e, rd.cert.Box)
		if err != nil {
			for _, g := range grants[s.Chain] {
				if g.author != s.Header.Author {
					continue // only the entry's own author may re-box it
				}
				if ck, err = op.GrantKey(g.item, g.box, e); err == nil {
					break
				}
			}
		}
		if err != nil {
			unreadable = append(unreadable, s)
			continue
		}
		plain, err := crypto.OpenPayload(e, ck)
		if err != nil {
			unreadable = append(unreadable, s)
			continue
		}
		var p Payload
		err = json.Unmarshal(plain, &p)
		clear(plain)
		if err != nil || p.V != 1 {
			unreadable = append(unreadable, s)
			continue
		}
		verified[s.ID] = true
		done[s.Chain] = true
		o := &openedEntry{s: s, author: rd, payload: p}
		j.opened[s.ID] = o
		entries = append(entries, o)
	}
	// A copy that did not open (a relay may strip this device's slot) is
	// not unreadable when another copy of the same entry opened.
	unreadable = slices.DeleteFunc(unreadable, func(s *stored) bool { return done[s.Chain] })
	return entries, unreadable, verified
}

// Entries returns every entry this device can read, oldest first, with
// questions marked answered or not.
func (j *Journal) Entries() ([]Entry, error) {
	var out []Entry
	err := j.withLock(func() error {
		opened, _, _ := j.decryptAll()
		out = j.view(opened)
		return nil
	})
	return out, err
}

func (j *Journal) view(opened []*openedEntry) []Entry {
	sort.SliceStable(opened, func(a, b int) bool { return opened[a].payload.Created.Before(opened[b].payload.Created) })
	responses := make(map[string][]*openedEntry)
	for _, o := range opened {
		if (responseKinds[o.payload.Kind] || o.payload.Kind == KindAgree) && o.payload.Ref != "" {
			responses[o.payload.Ref] = append(responses[o.payload.Ref], o)
		}
	}
	out := make([]Entry, 0, len(opened))
	for _, o := range opened {
		if rosterKinds[o.payload.Kind] {
			continue
		}
		id := o.s.Chain.String()
		e := Entry{
			ID:         id,
			Short:      id[:ShortIDLen],
			Kind:       o.payload.Kind,
			Author:     o.author.member.Name,
			Mine:       o.author.member.Self,
			Created:    o.payload.Created,
			Text:       o.payload.Text,
			Feelings:   nonNil(o.payload.Feelings),
			Intensity:  o.payload.Intensity,
			Tags:       nonNil(o.payload.Tags),
			ListenOnly: o.payload.ListenOnly,
			NeedTime:   o.payload.Kind == KindAnswer && o.payload.NeedTime,
			Ref:        o.payload.Ref,
			Synced:     o.s.RelaySeq != 0,
			Responses:  []string{},
			Every:      o.payload.Every,
			Kept:       o.payload.Kept,
			Category:   o.payload.Category,
			Decision:   o.payload.Decision,
			Prompt:     o.payload.Prompt,
		}
		for _, r := range responses[id] {
			e.Responses = append(e.Responses, r.s.Chain.String())
		}
		if e.Kind == KindQuestion {
			e.State = "open"
			for _, r := range responses[id] {
				// Only the partner answers a question.
				if r.payload.Kind != KindAnswer || r.author.member.Self == o.author.member.Self {
					continue
				}
				e.Answers = append(e.Answers, r.s.Chain.String())
				if r.payload.NeedTime {
					if e.State == "open" {
						e.State = "needs-time"
					}
				} else {
					e.State = "answered"
				}
			}
			a := e.State == "answered"
			e.Answered = &a
		}
		if e.Kind == KindTogether {
			var mine, theirs, theirsOpen bool
			for _, r := range responses[id] {
				switch {
				case r.payload.Kind == KindTogetherMark && r.author.member.Self:
					mine = true
				case r.payload.Kind == KindTogetherMark:
					theirs = true
				case r.payload.Kind == KindTogetherAnswer && !r.author.member.Self:
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
		}
		if e.Kind == KindAgree {
			e.State = "proposed"
			for _, r := range responses[id] {
				// The partner decides on a proposal; a later proposal by
				// either that names it as revised replaces it.
				switch {
				case r.payload.Kind == KindAgree:
					e.State = "revised"
				case r.payload.Kind == KindDecision && r.author.member.Self != o.author.member.Self && e.State == "proposed":
					switch r.payload.Decision {
					case "accept":
						e.State = "accepted"
					case "decline":
						e.State = "declined"
					}
				}
			}
		}
		out = append(out, e)
	}
	foldRevisions(out)
	return out
}

// Version is one version of an edited entry, the original first.
type Version struct {
	ID        string    `json:"id"`
	Created   time.Time `json:"created"`
	Text      string    `json:"text"`
	Feelings  []string  `json:"feelings"`
	Intensity *int      `json:"intensity"`
}

// foldRevisions applies revisions and retractions to the entries they
// name. Only an entry's own author can revise or retract it.
func foldRevisions(out []Entry) {
	idx := make(map[string]int, len(out))
	for i := range out {
		idx[out[i].ID] = i
	}
	gone := make(map[string]bool) // retracted ids, whether still here or purged
	for i := range out {
		r := &out[i]
		if r.Kind != KindRetraction {
			continue
		}
		if t, ok := idx[r.Ref]; ok {
			if out[t].Author != r.Author || out[t].Mine != r.Mine {
				continue // only the author retracts
			}
			when := r.Created
			out[t].Retracted = &when
			r.Hidden = true
		}
		gone[r.Ref] = true
	}
	for i := range out {
		r := &out[i]
		if r.Kind != KindRevision {
			continue
		}
		r.Hidden = true
		t, ok := idx[r.Ref]
		if gone[r.Ref] || !ok || out[t].Author != r.Author || out[t].Mine != r.Mine {
			blank(r)
			continue
		}
		e := &out[t]
		if !e.Edited {
			e.History = []Version{{ID: e.ID, Created: e.Created, Text: e.Text, Feelings: e.Feelings, Intensity: e.Intensity}}
		}
		e.Edited = true
		e.Revisions = append(e.Revisions, r.ID)
		e.History = append(e.History, Version{ID: r.ID, Created: r.Created, Text: r.Text, Feelings: r.Feelings, Intensity: r.Intensity})
		e.Text, e.Feelings, e.Intensity, e.Tags = r.Text, r.Feelings, r.Intensity, r.Tags
	}
	for i := range out {
		if out[i].Retracted != nil {
			blank(&out[i])
			out[i].History = nil
		}
	}
}

// blank removes an entry's words and feelings.
func blank(e *Entry) {
	e.Text, e.Feelings, e.Intensity, e.Tags = "", []string{}, nil, []string{}
}
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Find returns the entry whose id starts with prefix (at least 4 hex
// digits).
func Find(entries []Entry, prefix string) (*Entry, error) {
	prefix = strings.ToLower(strings.TrimSpace(prefix))
	if len(prefix) < 4 {
		return nil, fmt.Errorf("%w: an id needs at least 4 characters", ErrNotFound)
	}
	if _, err := hex.DecodeString(prefix[:len(prefix)/2*2]); err != nil {
		return nil, fmt.Errorf("%w: ids are made of 0-9 and a-f", ErrNotFound)
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
