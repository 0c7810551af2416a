package client

import (
	"crypto/sha256"
	"encoding/binary"
	"sort"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// trust is who may author what in this journal, decided in one place from
// the members in the journal's state and read by everything else: the
// listing, status, missing items, grants, and adopting this device's own
// chain after a restore. A trustCache builds it once and rebuilds it only
// when the members change; [Journal.trust] is the journal's.
type trust struct {
	journal protocol.JournalID
	// roster maps device signing keys to the member and certificate the
	// client accepts for them.
	roster map[[32]byte]*rosterDevice
	// pending are the signing keys of devices of partners' unconfirmed new
	// identities: nothing from them is shown until it is confirmed.
	pending map[[32]byte]bool
	// recipients are the box keys of every current device (see
	// rosterDevice.current), sorted; own those of this person's.
	recipients, own [][32]byte

	key trustKey // what it was built from
}

// trustKey names the members a trust was built from: a digest of every
// field that decides trust, and where the members live in memory (the
// roster points into them, and a reloaded state is a new slice).
type trustKey struct {
	digest [32]byte
	at     *Member
	n      int
}

// rosterDevice is a device the roster accepts.
type rosterDevice struct {
	member *Member
	cert   *crypto.DeviceCert
	// removed is set for a device its person removed: its blobs up to
	// removed.Last stay readable, nothing more is sealed to it.
	removed *RemovedDevice
}

// current reports whether entries are sealed to the device: it has not
// been removed, and its person has not left.
func (d rosterDevice) current() bool {
	return d.removed == nil && d.member.Left == nil
}

// accepts returns the author of s and reports whether s is accepted from
// them: an item for this journal from a device in the roster, not written
// after that device was removed. This is the one author check.
func (t *trust) accepts(s *stored) (*rosterDevice, bool) {
	rd, ok := t.roster[s.Header.Author]
	if !ok || s.Header.Journal != t.journal || rd.removed != nil && s.Header.Seq > rd.removed.Last {
		return rd, false
	}
	return rd, true
}

// handsOver reports whether the device with signing key sign may hand
// over the content key of any entry it reads, not only of its own: a
// device of this person, certified by this person's current identity key
// (§13 of docs/protocol.md). The grant carrying it must still be accepted
// from that device (accepts: not written after the device was removed),
// and each key is still checked against its entry.
func (t *trust) handsOver(sign [32]byte) bool {
	rd, ok := t.roster[sign]
	return ok && rd.member.Self && crypto.Equal(rd.cert.Identity[:], rd.member.Identity)
}

// trust returns the journal's trust decision for its current members.
// Call with the lock held; the result is valid until the members change.
func (j *Journal) trust() *trust { return j.trusts.of(&j.st) }

// trustCache builds the trust for the members in a state, and keeps it,
// with the certificates it parsed, until they change.
type trustCache struct {
	last  *trust
	certs map[string]*crypto.DeviceCert // parsed certificates, by their bytes
}

// of returns the trust decision for the members in st. The result is
// valid until the members change.
func (tc *trustCache) of(st *state) *trust {
	key := st.trustKey()
	if tc.last != nil && tc.last.key == key {
		return tc.last
	}
	t := &trust{journal: st.ID, roster: make(map[[32]byte]*rosterDevice), pending: make(map[[32]byte]bool), key: key}
	for i := range st.Members {
		m := &st.Members[i]
		for _, raw := range m.Devices {
			c := tc.cert(raw)
			if c == nil || !m.certifies(c.Identity) {
				continue
			}
			if _, taken := t.roster[c.Sign]; taken {
				continue // the first member to claim a device keeps it (self is first)
			}
			rd := &rosterDevice{member: m, cert: c, removed: m.removed(c.Sign)}
			t.roster[c.Sign] = rd
			if rd.current() {
				t.recipients = append(t.recipients, c.Box)
				if m.Self {
					t.own = append(t.own, c.Box)
				}
			}
		}
		if m.Pending != nil {
			for _, raw := range m.Pending.Devices {
				if c := tc.cert(raw); c != nil {
					t.pending[c.Sign] = true
				}
			}
		}
	}
	sort.Slice(t.recipients, func(a, b int) bool { return string(t.recipients[a][:]) < string(t.recipients[b][:]) })
	tc.last = t
	return t
}

// cert parses a device certificate once per process (checking its
// signature is the costly part of building the roster); nil if it does
// not verify.
func (tc *trustCache) cert(raw []byte) *crypto.DeviceCert {
	if c, ok := tc.certs[string(raw)]; ok {
		return c
	}
	c, err := crypto.ParseDeviceCert(raw)
	if err != nil {
		c = nil
	}
	if tc.certs == nil {
		tc.certs = make(map[string]*crypto.DeviceCert)
	}
	tc.certs[string(raw)] = c
	return c
}

// trustKey returns the key of a trust built from the members in st.
func (st *state) trustKey() trustKey {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	flag := func(v bool) {
		if v {
			field([]byte{1})
		} else {
			field([]byte{0})
		}
	}
	for _, m := range st.Members {
		flag(m.Self)
		field(m.Identity)
		for _, d := range m.Devices {
			field(d)
		}
		field(nil)
		for _, r := range m.Removed {
			field(r.Sign)
			field(binary.BigEndian.AppendUint64(nil, r.Last))
		}
		field(nil)
		for _, p := range m.Previous {
			field(p)
		}
		field(nil)
		flag(m.Left != nil)
		flag(m.Pending != nil)
		if m.Pending != nil {
			field(m.Pending.Identity)
			for _, d := range m.Pending.Devices {
				field(d)
			}
		}
		field(nil)
	}
	field(st.ID[:])
	k := trustKey{n: len(st.Members)}
	h.Sum(k.digest[:0])
	if len(st.Members) > 0 {
		k.at = &st.Members[0]
	}
	return k
}

// recipientsFor returns who an entry of kind is sealed to: an invite
// record carries a secret and goes to this person's own devices only;
// everything else goes to every current device.
// ownOnly are the kinds sealed to the person's own devices only (never to
// the partner's, and never re-boxed for them): an invite's secret, and the
// account journal's whereabouts. (A reveal-together answer is held back
// until it is released: heldAnswers.)
var ownOnly = map[string]bool{KindInvite: true, KindAccountJournal: true}

func (t *trust) recipientsFor(kind string) [][32]byte {
	if ownOnly[kind] {
		return t.own
	}
	return t.recipients
}

// authorBoxes returns the box key of every device the journal trusts, by
// signing key.
func (t *trust) authorBoxes() map[[32]byte][32]byte {
	boxes := make(map[[32]byte][32]byte, len(t.roster))
	for sign, rd := range t.roster {
		boxes[sign] = rd.cert.Box
	}
	return boxes
}
