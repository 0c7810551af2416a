package server

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Devices and people on the relay: the rules, for every store.
//
// The relay cannot tell people apart: it only sees device keys. It files
// every member device under a "person", which is the device that created
// the journal or redeemed an invite into it; a device added with AddDevice
// is filed under the person of the device that added it. A device may then
// remove only devices of its own person, so partners cannot remove each
// other. A device removed from a journal, or gone with its person when
// they left, is remembered and cannot come back by any way in. Which
// devices clients accept is decided by certificates inside the journal,
// never by this filing.
//
// The rules are functions of a journal's [Members], run by the store
// inside one transaction ([Store.UpdateMembers], [Store.RedeemInvite]), so
// they are written once here and hold the same on every backend, also
// when several relays share one database.

// JournalPersons is the two-person rule: a journal is for two people, so
// once its members are filed under two, the relay admits no one else
// through a partner invite (protocol.ErrJournalFull). A person's own
// devices join by link (AddDevice), not by invite, and are not counted
// twice; an invite made again (protocol.Invite.Again) is let through.
const JournalPersons = 2

// Members is one journal's membership as one store transaction sees it:
// its member devices, each filed under a person, and the devices removed
// from it for good. A rule reads it and records changes with Add and
// Remove; the store then writes [Members.Changes] in the same transaction.
//
// A store builds it with [NewMembers], [Members.Load] and
// [Members.LoadRemoved] from what it holds.
type Members struct {
	journal protocol.JournalID
	persons map[[32]byte][32]byte // member device → its person
	removed map[[32]byte]bool     // devices removed for good
	changes []MemberChange
}

// MemberChange is one change a rule recorded in [Members].
type MemberChange struct {
	Device [32]byte
	// Removed: the device leaves the journal and is remembered as removed
	// for good. Otherwise it becomes a member filed under Person.
	Removed bool
	Person  [32]byte
}

// NewMembers returns an empty membership of journal j, for a store to
// load.
func NewMembers(j protocol.JournalID) *Members {
	return &Members{journal: j, persons: make(map[[32]byte][32]byte), removed: make(map[[32]byte]bool)}
}

// Load records, while a store builds m, that device is a member filed
// under person.
func (m *Members) Load(device, person [32]byte) { m.persons[device] = person }

// LoadRemoved records, while a store builds m, that device was removed
// for good.
func (m *Members) LoadRemoved(device [32]byte) { m.removed[device] = true }

// Journal returns the journal m is the membership of.
func (m *Members) Journal() protocol.JournalID { return m.journal }

// Person returns the person device is filed under, and whether it is a
// member at all.
func (m *Members) Person(device [32]byte) ([32]byte, bool) {
	p, ok := m.persons[device]
	return p, ok
}

// IsRemoved reports whether device was removed from the journal for good.
func (m *Members) IsRemoved(device [32]byte) bool { return m.removed[device] }

// Devices returns the member devices filed under person, in byte order.
func (m *Members) Devices(person [32]byte) [][32]byte {
	var out [][32]byte
	for d, p := range m.persons {
		if p == person {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// People returns how many people the member devices are filed under.
func (m *Members) People() int {
	people := make(map[[32]byte]bool, len(m.persons))
	for _, p := range m.persons {
		people[p] = true
	}
	return len(people)
}

// Add makes device a member filed under person.
func (m *Members) Add(device, person [32]byte) {
	m.persons[device] = person
	m.changes = append(m.changes, MemberChange{Device: device, Person: person})
}

// Remove takes device out of the journal for good.
func (m *Members) Remove(device [32]byte) {
	delete(m.persons, device)
	m.removed[device] = true
	m.changes = append(m.changes, MemberChange{Device: device, Removed: true})
}

// Changes returns the changes recorded, in order, for the store to write.
func (m *Members) Changes() []MemberChange { return m.changes }

// AddDevice makes device a member of j filed under the same person as by,
// which must be a member. Adding a device already filed under that person
// is not an error. It returns an error wrapping protocol.ErrNotMember if by
// is not a member, and one wrapping protocol.ErrInvalid, with a sentence
// for the person, if device belongs to another person or was removed
// from j before.
func AddDevice(ctx context.Context, st Store, j protocol.JournalID, by, device [32]byte) error {
	return st.UpdateMembers(ctx, j, func(m *Members) error {
		person, ok := m.Person(by)
		if !ok {
			return protocol.ErrNotMember
		}
		if m.IsRemoved(device) {
			return fmt.Errorf("%w: that device was removed from this journal and cannot come back", protocol.ErrInvalid)
		}
		if theirs, ok := m.Person(device); ok {
			if theirs != person {
				return fmt.Errorf("%w: that device belongs to someone else in this journal", protocol.ErrInvalid)
			}
			return nil
		}
		m.Add(device, person)
		return nil
	})
}

// RemoveDevice removes device, which must be filed under the same person
// as by, from j, for good. It returns an error wrapping
// protocol.ErrNotMember if by is not a member, protocol.ErrNotFound if
// device is not a member, and one wrapping protocol.ErrInvalid, with a
// sentence for the person, if device is by itself or another person's.
func RemoveDevice(ctx context.Context, st Store, j protocol.JournalID, by, device [32]byte) error {
	return st.UpdateMembers(ctx, j, func(m *Members) error {
		person, ok := m.Person(by)
		if !ok {
			return protocol.ErrNotMember
		}
		if device == by {
			return fmt.Errorf("%w: a device cannot remove itself; leave the journal instead", protocol.ErrInvalid)
		}
		theirs, ok := m.Person(device)
		if !ok {
			return protocol.ErrNotFound
		}
		if theirs != person {
			return fmt.Errorf("%w: only a person's own devices can remove a device of theirs", protocol.ErrInvalid)
		}
		m.Remove(device)
		return nil
	})
}

// Leave removes every device filed under the same person as device,
// device included, from j for good, and returns them. It returns an error
// wrapping protocol.ErrNotMember if device is not a member.
func Leave(ctx context.Context, st Store, j protocol.JournalID, device [32]byte) ([][32]byte, error) {
	var gone [][32]byte
	err := st.UpdateMembers(ctx, j, func(m *Members) error {
		person, ok := m.Person(device)
		if !ok {
			return protocol.ErrNotMember
		}
		gone = m.Devices(person)
		for _, d := range gone {
			m.Remove(d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return gone, nil
}

// Redeem redeems the invite stored under authHash for device at now: a
// partner invite (of either kind) makes device a member filed as a person
// of its own; a link adds no one. It returns the invite's journal and
// packet, or protocol.ErrInviteUnknown, and nothing else, whether the
// invite never existed, has expired or was already used. A device removed
// from the journal stays out: for it the invite is unknown too (and stays
// unused).
//
// maxPersons is the two-person rule (0: no limit): a partner invite
// redeemed by a device that is not a member yet, into a journal whose
// member devices are already filed under maxPersons people or more, adds
// nobody, is used up all the same, and returns protocol.ErrJournalFull.
// Links and invites made again are not held to it. The relay passes
// JournalPersons.
func Redeem(ctx context.Context, st Store, authHash, device [32]byte, now time.Time, maxPersons int) (protocol.JournalID, []byte, error) {
	var full bool
	inv, err := st.RedeemInvite(ctx, authHash, now, func(inv Invite, m *Members) error {
		full = false
		if inv.Kind == InviteLink {
			return nil // the linking device adds the new one itself
		}
		if _, ok := m.Person(device); ok {
			return nil // a member already: adds no one
		}
		if m.IsRemoved(device) {
			return protocol.ErrInviteUnknown // a removed device stays out
		}
		if inv.Kind == InvitePartner && maxPersons > 0 && m.People() >= maxPersons {
			// The two-person rule: the invite is used up (fn returns
			// nil) and nobody is added.
			full = true
			return nil
		}
		m.Add(device, device)
		return nil
	})
	if err != nil {
		return protocol.JournalID{}, nil, err
	}
	if full {
		return protocol.JournalID{}, nil, protocol.ErrJournalFull
	}
	return inv.Journal, inv.Packet, nil
}

// ErrNotAuthor is the error, wrapping protocol.ErrInvalid, of a purge by a
// device that did not write the blob.
var ErrNotAuthor = fmt.Errorf("%w: only the device that wrote a blob may purge it", protocol.ErrInvalid)

// PurgedRecord is the rule of purging: only the device that wrote a blob
// may purge it, and what is left is the purged record, the blob's clear
// header followed by chain (protocol.PurgedRecordSize bytes). blob is the
// stored blob; its first protocol.HeaderSize bytes are enough. It returns
// ErrNotAuthor if device did not write it. A store calls it inside its
// purge transaction ([Store.Purge]).
func PurgedRecord(blob []byte, device [32]byte, chain protocol.BlobID) ([]byte, error) {
	if len(blob) < protocol.HeaderSize || !bytes.Equal(blob[18:50], device[:]) {
		return nil, ErrNotAuthor
	}
	rec := make([]byte, 0, protocol.PurgedRecordSize)
	rec = append(rec, blob[:protocol.HeaderSize]...)
	return append(rec, chain[:]...), nil
}
