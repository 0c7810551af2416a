package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Devices and people on the relay.
//
// The relay cannot tell people apart: it only sees device keys. It files
// every member device under a "person", which is the device that created
// the journal or redeemed an invite into it; a device added with AddDevice
// is filed under the person of the device that added it. A device may then
// remove only devices of its own person, so partners cannot remove each
// other. Which devices clients accept is decided by certificates inside the
// journal, never by this filing.
//
// Member values are: member since, unix seconds (8) | person (32). A value
// of 8 bytes, written before devices could be added, means the device is
// its own person. A removed device leaves x/<journal 16><dev 32> → removed
// at, unix seconds (8), so it cannot be added again.

var pfxRemoved = []byte("x/")

// JournalPersons is the two-person rule: a journal is for two people, so
// once its members are filed under two, the relay admits no one else
// through a partner invite (protocol.ErrJournalFull). A person's own
// devices join by link (AddDevice), not by invite, and are not counted
// twice; an invite made again (protocol.Invite.Again) is let through.
const JournalPersons = 2

// memberValue encodes a member record.
func memberValue(since int64, person [32]byte) []byte {
	return append(u64(uint64(since)), person[:]...)
}

// personOf reads device's person in j; ok is false if it is not a member.
func personOf(txn *badger.Txn, j protocol.JournalID, device [32]byte) (person [32]byte, ok bool, err error) {
	item, err := txn.Get(key(pfxMember, j[:], device[:]))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return person, false, nil
	}
	if err != nil {
		return person, false, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return person, false, err
	}
	switch len(v) {
	case 8:
		return device, true, nil
	case 8 + 32:
		copy(person[:], v[8:])
		return person, true, nil
	}
	return person, false, fmt.Errorf("member record is %d bytes", len(v))
}

// asMember runs fn in an update transaction once by is known to be a
// member of j, with by's person and the time; it returns
// protocol.ErrNotMember otherwise.
func (s *BadgerStore) asMember(ctx context.Context, j protocol.JournalID, by [32]byte, fn func(txn *badger.Txn, person [32]byte, now int64) error) error {
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	now := s.now().Unix()
	return s.update(func(txn *badger.Txn) error {
		person, ok, err := personOf(txn, j, by)
		if err != nil {
			return err
		}
		if !ok {
			return protocol.ErrNotMember
		}
		return fn(txn, person, now)
	})
}

// AddDevice implements [Store].
func (s *BadgerStore) AddDevice(ctx context.Context, j protocol.JournalID, by, device [32]byte) error {
	return s.asMember(ctx, j, by, func(txn *badger.Txn, person [32]byte, now int64) error {
		if gone, err := exists(txn, key(pfxRemoved, j[:], device[:])); err != nil || gone {
			if gone {
				return fmt.Errorf("%w: that device was removed from this journal and cannot come back", protocol.ErrInvalid)
			}
			return err
		}
		theirs, ok, err := personOf(txn, j, device)
		if err != nil {
			return err
		}
		if ok {
			if theirs != person {
				return fmt.Errorf("%w: that device belongs to someone else in this journal", protocol.ErrInvalid)
			}
			return nil
		}
		return txn.Set(key(pfxMember, j[:], device[:]), memberValue(now, person))
	})
}

// RemoveDevice implements [Store].
func (s *BadgerStore) RemoveDevice(ctx context.Context, j protocol.JournalID, by, device [32]byte) error {
	return s.asMember(ctx, j, by, func(txn *badger.Txn, person [32]byte, now int64) error {
		if device == by {
			return fmt.Errorf("%w: a device cannot remove itself; leave the journal instead", protocol.ErrInvalid)
		}
		theirs, ok, err := personOf(txn, j, device)
		if err != nil {
			return err
		}
		if !ok {
			return protocol.ErrNotFound
		}
		if theirs != person {
			return fmt.Errorf("%w: only a person's own devices can remove a device of theirs", protocol.ErrInvalid)
		}
		return removeMember(txn, j, device, now)
	})
}

// Leave implements [Store].
func (s *BadgerStore) Leave(ctx context.Context, j protocol.JournalID, device [32]byte) ([][32]byte, error) {
	done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	now := s.now().Unix()
	var removed [][32]byte
	err = s.update(func(txn *badger.Txn) error {
		removed = removed[:0]
		person, ok, err := personOf(txn, j, device)
		if err != nil {
			return err
		}
		if !ok {
			return protocol.ErrNotMember
		}
		var mine [][32]byte
		err = eachMember(txn, j, func(d, p [32]byte) {
			if p == person {
				mine = append(mine, d)
			}
		})
		if err != nil {
			return err
		}
		for _, d := range mine {
			if err := removeMember(txn, j, d, now); err != nil {
				return err
			}
		}
		removed = mine
		return nil
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// eachMember calls fn with every member device of j and its person.
func eachMember(txn *badger.Txn, j protocol.JournalID, fn func(device, person [32]byte)) error {
	prefix := key(pfxMember, j[:])
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var d [32]byte
		copy(d[:], bytes.TrimPrefix(it.Item().Key(), prefix))
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		p := d
		if len(v) == 8+32 {
			copy(p[:], v[8:])
		}
		fn(d, p)
	}
	return nil
}

// journalFull reports whether redeeming a partner invite would add device
// to j as one person more than limit allows: the two-person rule. A device that is
// a member already adds no one, and a removed one is refused elsewhere
// (it stays out), so neither makes the journal full. The people are the
// labels its current member devices are filed under: a person's linked
// devices are one person, and a person who left has no devices left, so
// counts no more.
func journalFull(txn *badger.Txn, j protocol.JournalID, device [32]byte, limit int) (bool, error) {
	if _, ok, err := personOf(txn, j, device); err != nil || ok {
		return false, err
	}
	if gone, err := exists(txn, key(pfxRemoved, j[:], device[:])); err != nil || gone {
		return false, err
	}
	people := make(map[[32]byte]bool)
	err := eachMember(txn, j, func(_, p [32]byte) { people[p] = true })
	return len(people) >= limit, err
}

func removeMember(txn *badger.Txn, j protocol.JournalID, device [32]byte, now int64) error {
	if err := txn.Delete(key(pfxMember, j[:], device[:])); err != nil {
		return err
	}
	return txn.Set(key(pfxRemoved, j[:], device[:]), binary.BigEndian.AppendUint64(nil, uint64(now)))
}
