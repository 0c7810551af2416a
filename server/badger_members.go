package server

import (
	"context"
	"encoding/binary"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Members in the BadgerStore (the rules are in devices.go).
//
// Member values are: member since, unix seconds (8) | person (32). A value
// of 8 bytes, written before devices could be added, means the device is
// its own person. A removed device leaves x/<journal 16><dev 32> → removed
// at, unix seconds (8), so it cannot be added again.

var pfxRemoved = []byte("x/")

// memberValue encodes a member record.
func memberValue(since int64, person [32]byte) []byte {
	return append(u64(uint64(since)), person[:]...)
}

// UpdateMembers implements [Store].
func (s *BadgerStore) UpdateMembers(ctx context.Context, j protocol.JournalID, fn func(*Members) error) error {
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	now := s.now().Unix()
	s.joinMu.Lock()
	defer s.joinMu.Unlock()
	return s.update(func(txn *badger.Txn) error {
		m, ok, err := loadMembers(txn, j)
		if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
		if !ok && len(m.Changes()) > 0 {
			return protocol.ErrNotFound
		}
		return applyMembers(txn, m, now)
	})
}

// loadMembers reads j's members and removed devices; ok is false if j
// does not exist (m is then empty).
func loadMembers(txn *badger.Txn, j protocol.JournalID) (m *Members, ok bool, err error) {
	m = NewMembers(j)
	if ok, err = exists(txn, key(pfxJournal, j[:])); err != nil || !ok {
		return m, ok, err
	}
	prefix := key(pfxMember, j[:])
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if len(k) != len(prefix)+32 {
			return nil, false, fmt.Errorf("member key is %d bytes", len(k))
		}
		var d [32]byte
		copy(d[:], k[len(prefix):])
		p := d
		err := item.Value(func(v []byte) error {
			switch len(v) {
			case 8:
			case 8 + 32:
				copy(p[:], v[8:])
			default:
				return fmt.Errorf("member record is %d bytes", len(v))
			}
			return nil
		})
		if err != nil {
			return nil, false, err
		}
		m.Load(d, p)
	}
	it.Close()
	prefix = key(pfxRemoved, j[:])
	rit := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer rit.Close()
	for rit.Rewind(); rit.Valid(); rit.Next() {
		k := rit.Item().Key()
		if len(k) != len(prefix)+32 {
			return nil, false, fmt.Errorf("removed-device key is %d bytes", len(k))
		}
		var d [32]byte
		copy(d[:], k[len(prefix):])
		m.LoadRemoved(d)
	}
	return m, true, nil
}

// applyMembers writes the changes recorded in m, at now (unix seconds).
func applyMembers(txn *badger.Txn, m *Members, now int64) error {
	j := m.Journal()
	for _, c := range m.Changes() {
		mk := key(pfxMember, j[:], c.Device[:])
		if c.Removed {
			if err := txn.Delete(mk); err != nil {
				return err
			}
			if err := txn.Set(key(pfxRemoved, j[:], c.Device[:]), binary.BigEndian.AppendUint64(nil, uint64(now))); err != nil {
				return err
			}
			continue
		}
		if err := txn.Set(mk, memberValue(now, c.Person)); err != nil {
			return err
		}
	}
	return nil
}
