package client

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/kintsugi-journal/kintsugi/crypto"
)

// Comparing what the two partners hold.
//
// A relay can withhold a device's newest items, from one partner or from
// both, and nothing in-band can show it: a journal whose newest items are
// withheld looks like a partner who has not written yet. Out of band it
// can: each device sums up the newest item it holds from every device of
// the journal (its chain head: seq and chain id) in a short code
// ([crypto.CompareCode]), and the partners read their codes to each other.
// Equal codes mean both hold the same newest item from every device.
//
// A head counts only what every member's device can authenticate, so
// that two honest views agree and a relay cannot forge a head: entries
// this device opened, or wrote, that the relay has acknowledged. Kinds
// sealed only to their author's own devices (reveal-together answers,
// invite records) are left out, since the partner cannot open them;
// grants are left out, since only the device they are for can check them.

// Head is the newest item this device holds from one device of the
// journal, as the compare code counts it.
type Head struct {
	// Who, Device, DeviceID and ThisDevice name the device, as in a Notice.
	Who        string `json:"who"`
	Device     string `json:"device,omitempty"`
	DeviceID   string `json:"device_id"`
	ThisDevice bool   `json:"this_device,omitempty"`
	// Mine is set for this person's own devices.
	Mine bool `json:"mine"`
	// Removed is set for a device its person removed.
	Removed bool `json:"removed,omitempty"`
	// Seq is the item's place in the device's chain; Chain its chain id.
	Seq   uint64 `json:"seq"`
	Chain string `json:"chain_id"`
	// Written is when the device says it wrote the item; zero (omitted)
	// when nothing from the device is held.
	Written time.Time `json:"written,omitzero"`
}

// Comparison is what [Journal.Compare] returns.
type Comparison struct {
	// Code is the compare code over Heads, in four groups of five digits.
	Code string `json:"code"`
	// Heads are the newest items this device holds from each device,
	// this person's first, then the partner's.
	Heads []Head `json:"heads"`
	// Unsent counts items written here that the relay does not have yet:
	// they are not in the code, and the partner cannot have them.
	Unsent int `json:"unsent"`
	// LastSync is when this device last finished a sync; nil if never.
	LastSync *time.Time `json:"last_sync"`
}

// Compare returns the compare code of what this device holds, for the
// partners to read to each other. It returns ErrNotPaired before the
// partner has joined.
func (j *Journal) Compare() (Comparison, error) {
	var c Comparison
	err := j.withLock(func() error {
		if j.st.partner() == nil {
			return ErrNotPaired
		}
		opened, _ := j.decryptAll(j.trust())
		heads := j.heads(opened)
		list := make([]crypto.ChainHead, 0, len(heads))
		for _, o := range heads {
			list = append(list, crypto.ChainHead{Device: o.s.Header.Author, Seq: o.s.Header.Seq, Chain: o.s.Chain})
			c.Heads = append(c.Heads, j.headOf(o))
		}
		c.Code = crypto.CompareCode(j.id, list)
		sortHeads(c.Heads)
		c.Unsent = len(j.outbox())
		if !j.st.LastSync.IsZero() {
			t := j.st.LastSync
			c.LastSync = &t
		}
		return nil
	})
	return c, err
}

// heads returns, per device, the newest entry in opened that the compare
// code counts (see above). Call with the lock held, after decryptAll.
func (m *openIndex) heads(opened []*openedEntry) map[[32]byte]*openedEntry {
	heads := make(map[[32]byte]*openedEntry)
	for _, o := range opened {
		if o.s.RelaySeq == 0 || o.payload.Kind == KindTogetherAnswer || o.payload.Kind == KindInvite {
			continue
		}
		d := o.s.Header.Author
		old := heads[d]
		// Two items at one seq are a forked device; take one the same
		// way every time.
		if old == nil || o.s.Header.Seq > old.s.Header.Seq ||
			(o.s.Header.Seq == old.s.Header.Seq && bytes.Compare(o.s.Chain[:], old.s.Chain[:]) < 0) {
			heads[d] = o
		}
	}
	return heads
}

// partnerHeads returns a Head for every device of the partner's (removed
// ones too), with Seq zero for one nothing is held from: when each was
// last heard from. Call with the lock held, after decryptAll.
func (m *openIndex) partnerHeads(opened []*openedEntry, t *trust) []Head {
	heads := m.heads(opened)
	out := []Head{}
	for d, rd := range t.roster {
		if rd.member.Self {
			continue
		}
		if o := heads[d]; o != nil {
			out = append(out, m.headOf(o))
			continue
		}
		out = append(out, Head{Who: rd.member.Name, Device: rd.cert.Name, DeviceID: DeviceID(d), Removed: rd.removed != nil})
	}
	sortHeads(out)
	return out
}

// headOf describes a head. Call with the lock held.
func (m *openIndex) headOf(o *openedEntry) Head {
	d := o.s.Header.Author
	h := Head{DeviceID: DeviceID(d), ThisDevice: d == m.store.signKey, Seq: o.s.Header.Seq, Chain: o.s.Chain.String(), Written: o.payload.Created}
	if o.author != nil {
		h.Who, h.Device, h.Removed, h.Mine = o.author.member.Name, o.author.cert.Name, o.author.removed != nil, o.author.member.Self
	}
	return h
}

// sortHeads puts this device first, then this person's other devices,
// then the partner's, each by name and id.
func sortHeads(hs []Head) {
	key := func(h Head) string {
		rank := "2"
		switch {
		case h.ThisDevice:
			rank = "0"
		case h.Mine:
			rank = "1"
		}
		return rank + h.Who + "\x00" + h.Device + "\x00" + h.DeviceID
	}
	slices.SortFunc(hs, func(a, b Head) int { return strings.Compare(key(a), key(b)) })
}
