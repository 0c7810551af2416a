package client

import (
	"sort"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Status is what a journal's status shows, as counts and notices (the CLI
// words them). Its JSON form is stable.
type Status struct {
	Journal  string     `json:"journal"`
	Title    string     `json:"title,omitempty"`
	Relay    string     `json:"relay"`
	Partner  string     `json:"partner,omitempty"`
	Verified bool       `json:"partner_verified"`
	Invites  int        `json:"open_invites"`
	Entries  int        `json:"entries"`
	Outbox   int        `json:"outbox"`
	LastSync *time.Time `json:"last_sync"`
	// Unreadable counts entries this device cannot open yet: not sealed
	// to it, waiting for their author to re-box them (a grant).
	Unreadable int `json:"unreadable"`
	// Changed counts entries that carry a slot for this device and do not
	// authenticate, or lack the slot a later entry of their author says
	// they carried (its to_since): changed on the way, or not sealed by
	// the device they name (NoticeRelayChanged). They never open; they
	// are not shown.
	Changed int `json:"changed"`
	// Strangers counts items from a device that is not in the journal's
	// roster, or written by a removed device after its removal: set aside,
	// never shown. Only a relay (or a removed device through one) can put
	// them there.
	Strangers int `json:"strangers"`
	// Held counts the partner's "reveal together" answers that stay sealed
	// until this person answers too.
	Held int `json:"held_for_reveal"`
	// Missing lists, per device, entries the client knows exist (from the
	// hash chain) but has not received (NoticeMissingItems), and devices
	// with two histories (NoticeForkedHistory).
	Missing []Notice `json:"gaps"`
	// Notices are the conditions that hold and the problems noticed
	// earlier, including those marked read (Acknowledged); see notice.go.
	Notices []Notice `json:"notices"`
	// PartnerDevices says, for each of the partner's devices, the newest
	// item this device holds from it and when it was written: when it was
	// last heard from. A relay can hold back what is newer; the compare
	// code ([Journal.Compare]) is how the partners check.
	PartnerDevices []Head `json:"partner_devices"`
	// PartnerLeft is when the partner left the journal; nothing new is
	// sent to them since.
	PartnerLeft *time.Time `json:"partner_left,omitempty"`
}

// Status reports the journal's state, including gaps in each device's
// history.
func (j *Journal) Status() (Status, error) {
	var st Status
	err := j.withLock(func() error {
		j.loadUnsent() // heals the list of unsent entries if it is damaged (small; it may hold words not yet sent)
		t := j.trust()
		opened, unreadable := j.decryptAll(t)
		held := make(map[string]bool)
		for _, o := range opened {
			if o.payload.Kind == KindTogetherMark && !o.author.member.Self {
				held[o.payload.Held] = true
			}
		}
		entries := 0
		for _, o := range opened {
			if !rosterKinds[o.payload.Kind] {
				entries++
			}
		}
		nHeld, strangers, changed, private := 0, 0, 0, 0
		var span map[[32]byte][2]uint64 // per author device: the first and last seq that opened here
		for _, s := range unreadable {
			_, accepted := t.accepts(s)
			switch {
			case held[s.Chain.String()]:
				nHeld++
			case t.pending[s.Header.Author]:
				// A partner's unconfirmed new identity: a notice says so
				// (NoticeIdentityChanged).
			case !accepted:
				strangers++
			case s.changed:
				changed++
			case s.noSlot:
				// Sealed without this device, between entries of the
				// same device that were sealed to it: left out on
				// purpose (a record for the partner's own devices), not
				// waiting for anything. (A slot stripped on the way is
				// named by the later entry's to_since: changed, above.)
				if span == nil {
					span = openedSpans(opened)
				}
				if sp, ok := span[s.Header.Author]; ok && sp[0] < s.Header.Seq && s.Header.Seq < sp[1] {
					private++
				}
			}
		}
		st = Status{
			Journal: j.id.String(), Title: j.st.Title, Relay: j.relay,
			Invites: len(j.st.Invites), Entries: entries, Outbox: len(j.outbox()),
			Unreadable: len(unreadable) - nHeld - strangers - changed - private, Changed: changed, Strangers: strangers, Held: nHeld, Missing: append([]Notice{}, j.gaps(opened, t, j.st.Members)...), Notices: append([]Notice{}, j.st.notices()...),
		}
		if j.st.refetchPending() {
			for i := range st.Missing {
				st.Missing[i].DamagedHere = st.Missing[i].Kind == NoticeMissingItems
			}
		}
		if !j.st.LastSync.IsZero() {
			last := j.st.LastSync
			st.LastSync = &last
		}
		st.PartnerDevices = j.partnerHeads(opened, t)
		for _, m := range j.st.Members {
			if !m.Self {
				st.Partner, st.Verified, st.PartnerLeft = m.Name, m.Verified, m.Left
			}
		}
		return nil
	})
	return st, err
}

// missing walks each device's hash chain back from its newest blob this
// device has authenticated. Every blob reached through a Prev link is
// authentic too (its id is its hash); a link to a blob not held means the
// relay has not delivered it yet, or dropped it. Call with the lock held.
// gaps returns the gaps in each device's history (see missing). The
// answer depends only on the records indexed and the members, so it is
// kept, with them, in memory and in the checkpoint: a status on a journal
// that has not changed walks no chain. Call with the lock held, after
// decryptAll.
func (m *openIndex) gaps(opened []*openedEntry, t *trust, members []Member) []Notice {
	key := gapsKey{records: m.store.records, trust: t.key.digest}
	if m.gapsCache != nil && m.gapsCache.key == key {
		return m.gapsCache.gaps
	}
	verified := m.verifiedSet(opened, t)
	// A purged blob is accounted for when its author's own retraction
	// (authenticated) names it.
	purged := make(map[string]*stored)
	for _, s := range m.store.order {
		if s.Purged {
			purged[s.Chain.String()] = s
		}
	}
	if len(purged) > 0 {
		for _, o := range opened {
			if o.payload.Kind != KindRetraction {
				continue
			}
			for id := range o.payload.retracts() {
				if s := purged[id]; s != nil && s.Header.Author == o.s.Header.Author {
					verified[s.ID] = true
				}
			}
		}
	}
	m.gapsCache = &gapsCache{key: key, gaps: m.missing(verified, t, members)}
	return m.gapsCache.gaps
}

// gapWindow bounds how far back, in relay positions, a sync asks the
// relay again for items this device knows exist and has not received. A
// relay that skipped an item and later serves it in its place (it was
// down, restored, or stopped lying) is then asked again at every sync,
// and the gap's notice clears when the item arrives; a gap further back
// than the window stays reported. Every sync with a gap downloads up to
// this many items again (about 2 MiB of 1 KiB entries), skipping what is
// held without recording it.
const gapWindow = 2048

// gapStart returns the relay position to ask from so that the earliest
// item missing from a device's history (NoticeMissingItems) comes again,
// if the relay holds it there: right after the item held just before it,
// since a device sends its items in order. It is bounded by gapWindow
// below the cursor, and ok is false when there is no gap or nothing to
// ask for again. Call with the lock held.
func (j *Journal) gapStart() (from uint64, ok bool) {
	if j.cursor == 0 {
		return 0, false
	}
	t := j.trust()
	opened, _ := j.decryptAll(t)
	gapped := make(map[string]bool)
	for _, g := range j.gaps(opened, t, j.st.Members) {
		if g.Kind == NoticeMissingItems {
			gapped[g.DeviceID] = true
		}
	}
	if len(gapped) == 0 {
		return 0, false
	}
	// Each gapped device's items by seq: their relay positions.
	ids := make(map[[32]byte]string)
	held := make(map[[32]byte]map[uint64]uint64)
	for _, s := range j.store.order {
		a := s.Header.Author
		id, seen := ids[a]
		if !seen {
			id = DeviceID(a)
			ids[a] = id
		}
		if !gapped[id] {
			continue
		}
		if held[a] == nil {
			held[a] = make(map[uint64]uint64)
		}
		held[a][s.Header.Seq] = s.RelaySeq
	}
	from = j.cursor
	for _, seqs := range held {
		first := uint64(1) // the earliest seq not held
		for {
			if _, ok := seqs[first]; !ok {
				break
			}
			first++
		}
		if first == 1 {
			from = 0 // the device's first item is missing: from the start
		} else {
			from = min(from, seqs[first-1])
		}
	}
	from = max(from, j.cursor-min(j.cursor, gapWindow))
	return from, from < j.cursor
}

// gapsKey is what the gaps were found for; gapsCache the answer.
type gapsKey struct {
	records int
	trust   [32]byte
}

type gapsCache struct {
	key   gapsKey
	gaps  []Notice
	saved bool // the checkpoint on disk holds this answer
}

func (m *openIndex) missing(verified map[protocol.BlobID]bool, t *trust, members []Member) []Notice {
	roster := t.roster
	me := m.store.signKey
	accepted := make(map[string]bool)
	for _, mb := range members {
		if mb.JoinBlob != "" {
			accepted[mb.JoinBlob] = true
		}
	}
	for _, s := range m.store.order {
		// Own blobs are authentic: this device wrote them. A member's join
		// is authentic if it is the one that was opened and accepted.
		if s.Header.Author == me && s.Local {
			verified[s.ID] = true
		}
		if s.Header.Kind == protocol.KindJoin && accepted[s.Chain.String()] {
			verified[s.ID] = true
		}
	}
	byDevice := make(map[[32]byte][]*stored)
	for _, s := range m.store.order {
		if verified[s.ID] {
			byDevice[s.Header.Author] = append(byDevice[s.Header.Author], s)
		}
	}
	var out []Notice
	devices := make([][32]byte, 0, len(byDevice))
	for d := range byDevice {
		devices = append(devices, d)
	}
	sort.Slice(devices, func(a, b int) bool { return string(devices[a][:]) < string(devices[b][:]) })
	for _, d := range devices {
		list := byDevice[d]
		sort.Slice(list, func(a, b int) bool { return list[a].Header.Seq > list[b].Header.Seq })
		reached := make(map[uint64]protocol.BlobID, len(list))
		// wanted[n] is the chain id a reached blob at seq n+1 names as its prev.
		wanted := make(map[uint64]protocol.BlobID, len(list))
		forked := false
		for _, s := range list {
			for cur := s; cur != nil; {
				if id, ok := reached[cur.Header.Seq]; ok {
					if id != cur.Chain {
						forked = true
					}
					break
				}
				reached[cur.Header.Seq] = cur.Chain
				if cur.Header.Seq == 1 {
					break
				}
				wanted[cur.Header.Seq-1] = cur.Header.Prev
				prev := m.store.chainOf(cur.Header.Prev)
				if prev != nil && prev.Purged && !verified[prev.ID] {
					// A purged record no retraction of its author names:
					// the relay may have dropped a real entry. Missing.
					break
				}
				if prev != nil && (prev.Header.Author != cur.Header.Author || prev.Header.Seq != cur.Header.Seq-1) {
					forked = true // a link to the wrong place: not this device's history
					break
				}
				cur = prev
			}
		}
		// A link to a blob not held, at a seq another blob fills: one
		// history shown where another was linked to.
		var absent uint64
		for n, w := range wanted {
			if got, ok := reached[n]; ok && got != w {
				forked = true
				if m.store.chainOf(w) == nil {
					absent++
				}
			}
		}
		top := list[0].Header.Seq
		// Who is empty for a device not in the roster.
		dev := Notice{DeviceID: DeviceID(d), Count: 1}
		if rd, ok := roster[d]; ok {
			dev.Who, dev.Device, dev.ThisDevice = rd.member.Name, rd.cert.Name, d == me
		}
		if n := top - min(top, uint64(len(reached))) + absent; n > 0 {
			g := dev
			g.Kind, g.ID, g.Count = NoticeMissingItems, noticeID(NoticeMissingItems, g.DeviceID), int(n)
			out = append(out, g)
		}
		if forked {
			// Only the device itself can make a second history: the relay
			// cannot forge a blob that authenticates.
			g := dev
			g.Kind, g.ID = NoticeForkedHistory, noticeID(NoticeForkedHistory, g.DeviceID)
			out = append(out, g)
		}
	}
	return out
}

// openedSpans returns, per author device, the first and last seq of its
// entries that opened.
func openedSpans(opened []*openedEntry) map[[32]byte][2]uint64 {
	out := make(map[[32]byte][2]uint64)
	for _, o := range opened {
		a, seq := o.s.Header.Author, o.s.Header.Seq
		sp, ok := out[a]
		if !ok {
			sp = [2]uint64{seq, seq}
		}
		out[a] = [2]uint64{min(sp[0], seq), max(sp[1], seq)}
	}
	return out
}

// refetchPending reports whether what a repair of the log set aside is
// still to be fetched again from the relay (repair.go, tornTail).
func (st *state) refetchPending() bool {
	return st.Refetch || st.RefetchFrom != 0 || st.Restored != nil && st.Restored.Reason == reasonRepair
}
