package client

// Telling a stripped recipient slot from an entry that is merely late.
//
// An entry's chain id does not cover its recipient table (protocol.md
// §10), so a relay can drop this device's slot from an entry and lower
// the count: the entry then looks like one its author never sealed to
// this device, which waits for a grant that never comes. To tell the two
// apart, every entry carries `to_since` (Payload.ToSince): for each
// recipient's key id, the author's seq S from which every entry that
// device wrote here, up to this one, carried a slot for that key id.
//
// The writer (toSince) derives S from its own log: the previous entry it
// wrote here, found by walking back from its chain head past its grants
// and joins, and that entry's own claims and recipient table. Whatever it
// cannot vouch for (no previous entry, a purged one, a gap, a chain
// adopted after a restore) starts again at this entry's own seq, so it
// never claims more than it knows.
//
// The reader (noteClaim, claimed) keeps, per author device, the seq
// ranges the author's opened entries vouch for this device's slot in. An
// entry of that author in such a range that has no slot for this device
// was changed on the way: decryptAll marks it changed, like a slot that
// fails to authenticate (NoticeRelayChanged, Status.Changed). The ranges
// are kept in the checkpoint, since the entries that carry them are not
// opened again.

import (
	"encoding/hex"
	"slices"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// maxClaimWalk bounds how many of its own grants and joins a writer walks
// back over to find its previous entry; past it, it claims only the new
// entry.
const maxClaimWalk = 256

// kidHex is a key id as to_since names it: 16 lowercase hex digits.
func kidHex(kid [protocol.KeyIDSize]byte) string { return hex.EncodeToString(kid[:]) }

// ownClaims returns what this device's previous entry in the journal
// vouches for, to continue from in an entry at seq: for each key id in
// its recipient table, the seq from which every entry of this device
// carried it. It is empty when the previous entry is not known for
// certain (see the file comment). Call with the lock held.
func (j *Journal) ownClaims(seq uint64) map[[protocol.KeyIDSize]byte]uint64 {
	if j.ownSeq == 0 || j.ownSeq+1 != seq {
		return nil
	}
	me := j.signKey
	cur := j.chainOf(j.ownLast)
	for steps := 0; ; steps++ {
		// Only blobs this device wrote here since its last restore ended
		// (ClaimsFrom): an adopted history is vouched for by nobody here.
		if cur == nil || !cur.Local || cur.Purged || cur.Header.Author != me || cur.Header.Seq < j.st.ClaimsFrom || steps > maxClaimWalk {
			return nil
		}
		if cur.Header.Kind == protocol.KindEntry {
			break
		}
		if cur.Header.Seq <= 1 {
			return nil // no entry before: nothing to continue
		}
		prev := j.chainOf(cur.Header.Prev)
		if prev == nil || prev.Header.Seq != cur.Header.Seq-1 {
			return nil
		}
		cur = prev
	}
	raw := j.raw(cur)
	if raw == nil {
		return nil
	}
	e, err := protocol.ParseEntry(raw)
	if err != nil {
		return nil
	}
	// Its own claims, if this device can read them back (an entry
	// sealed to its other devices only cannot be): otherwise its table
	// alone vouches for its own seq.
	var said map[string]uint64
	if ck, err := j.keys.EntryKey(e, j.ownBox); err == nil {
		if p, err := openPayload(e, ck); err == nil {
			said = p.ToSince
		}
	}
	at := cur.Header.Seq
	out := make(map[[protocol.KeyIDSize]byte]uint64, len(e.Recipients))
	for _, r := range e.Recipients {
		s := at
		if c, ok := said[kidHex(r.KeyID)]; ok && c >= 1 && c <= at {
			s = c
		}
		out[r.KeyID] = s
	}
	return out
}

// toSince returns the to_since of an entry at seq sealed to recipients
// (box keys), continuing prev (ownClaims, or the entry before in one
// batch): a recipient the previous entry carried keeps its S, any other
// starts at seq.
func toSince(prev map[[protocol.KeyIDSize]byte]uint64, seq uint64, recipients [][32]byte) (map[string]uint64, map[[protocol.KeyIDSize]byte]uint64) {
	out := make(map[string]uint64, len(recipients))
	next := make(map[[protocol.KeyIDSize]byte]uint64, len(recipients))
	for _, r := range recipients {
		kid := crypto.KeyID(r)
		s, ok := prev[kid]
		if !ok {
			s = seq
		}
		out[kidHex(kid)], next[kid] = s, s
	}
	return out, next
}

// claimSpan is a range of an author device's seqs, both ends included,
// in which its opened entries say every entry carried this device's slot.
type claimSpan struct{ from, to uint64 }

// noteClaim keeps what opened entry s (payload p) says about this
// device's slot in its author's earlier entries. Call with the lock held.
func (m *openIndex) noteClaim(s *stored, p *Payload) {
	if len(p.ToSince) == 0 || s.Header.Author == m.store.signKey {
		return
	}
	if m.ownKid == "" {
		m.ownKid = kidHex(crypto.KeyID(m.ownBox))
	}
	since, ok := p.ToSince[m.ownKid]
	if !ok || since < 1 || since >= s.Header.Seq {
		return // nothing earlier is vouched for
	}
	m.addClaim(s.Header.Author, claimSpan{since, s.Header.Seq})
}

// addClaim adds span c to author's, merging ranges that overlap or touch.
func (m *openIndex) addClaim(author [32]byte, c claimSpan) {
	if m.claims == nil {
		m.claims = make(map[[32]byte][]claimSpan)
	}
	// Entries mostly open in the order written, each extending the
	// author's last range: no sort for those.
	if spans := m.claims[author]; len(spans) > 0 {
		if last := &spans[len(spans)-1]; last.from <= c.from && c.from <= last.to+1 {
			last.to = max(last.to, c.to)
			return
		}
	}
	spans := append(m.claims[author], c)
	slices.SortFunc(spans, func(a, b claimSpan) int {
		switch {
		case a.from < b.from:
			return -1
		case a.from > b.from:
			return 1
		}
		return 0
	})
	out := spans[:1]
	for _, c := range spans[1:] {
		last := &out[len(out)-1]
		if c.from <= last.to+1 {
			last.to = max(last.to, c.to)
			continue
		}
		out = append(out, c)
	}
	m.claims[author] = out
}

// claimed reports whether an opened entry of s's author vouches that s,
// an entry, was sealed with a slot for this device.
func (m *openIndex) claimed(s *stored) bool {
	for _, c := range m.claims[s.Header.Author] {
		if c.from <= s.Header.Seq && s.Header.Seq <= c.to {
			return true
		}
	}
	return false
}

// encodeClaims and decodeClaims keep the claims in the checkpoint.
func (m *openIndex) encodeClaims(e *encoder) {
	e.uvarint(uint64(len(m.claims)))
	for a, spans := range m.claims {
		e.b = append(e.b, a[:]...)
		e.uvarint(uint64(len(spans)))
		for _, c := range spans {
			e.uvarint(c.from)
			e.uvarint(c.to)
		}
	}
}

func (m *openIndex) decodeClaims(d *decoder) {
	m.claims = nil
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		var a [32]byte
		copy(a[:], d.fixed(32))
		k := d.uvarint()
		if k > uint64(len(d.b)) {
			d.fail()
			return
		}
		for ; k > 0 && d.err == nil; k-- {
			c := claimSpan{d.uvarint(), d.uvarint()}
			if d.err == nil && c.from <= c.to {
				m.addClaim(a, c)
			}
		}
	}
}
