package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Export: everything a BadgerStore holds, for copying it into another
// store (kintsugi-relay copy, to PostgreSQL).

// ExportSink receives what [BadgerStore.Export] reads. Any error it
// returns stops the export, which returns it.
type ExportSink interface {
	// RelayID comes first, once, if the store has an id yet (a relay
	// makes it when it first starts): the id clients know the relay by.
	RelayID(id string) error
	// Journal comes before the journal's blobs.
	Journal(j ExportedJournal) error
	// Blob is one entry of the log of the journal named last.
	Blob(b ExportedBlob) error
	// Invite comes after every journal, once for each invite.
	Invite(inv Invite) error
}

// ExportedJournal is a journal with its members and removed devices.
type ExportedJournal struct {
	ID      protocol.JournalID
	Created time.Time
	LastSeq uint64 // its last sequence number; 0 if its log is empty
	Members []ExportedMember
	Removed []ExportedRemoval
}

// ExportedMember is a member device, filed under Person.
type ExportedMember struct {
	Device, Person [32]byte
	Since          time.Time
}

// ExportedRemoval is a device removed from a journal for good.
type ExportedRemoval struct {
	Device [32]byte
	At     time.Time
}

// ExportedBlob is one entry of a journal's log. ID is the blob's id,
// which for a purged blob is the id of the blob it was (what a device
// resending it, or purging it again, names).
type ExportedBlob struct {
	StoredBlob
	ID protocol.BlobID
}

// Export hands sink everything the store holds, from one consistent
// snapshot: the relay id, then each
// journal followed by its blobs (in sequence order, except that purged
// blobs come after the others of their journal), then the invites. A
// journal's usage count is not exported: it is the sum of its blobs.
func (s *BadgerStore) Export(ctx context.Context, sink ExportSink) error {
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := s.pend.drain(); err != nil { // every acknowledged blob into Badger's snapshot
		return err
	}
	return s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyRelayID)
		switch {
		case err == nil:
			id, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := sink.RelayID(string(id)); err != nil {
				return err
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfxJournal})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := it.Item().Key()
			if len(k) != len(pfxJournal)+protocol.JournalIDSize {
				return fmt.Errorf("journal key is %d bytes", len(k))
			}
			ej := ExportedJournal{ID: protocol.JournalID(k[len(pfxJournal):])}
			err := it.Item().Value(func(v []byte) error {
				if len(v) >= 9 {
					ej.Created = time.Unix(int64(binary.BigEndian.Uint64(v[1:9])), 0)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if err := s.exportJournal(ctx, txn, &ej, sink); err != nil {
				return fmt.Errorf("journal %s: %w", ej.ID, err)
			}
		}
		it.Close()
		return exportInvites(txn, sink)
	})
}

func (s *BadgerStore) exportJournal(ctx context.Context, txn *badger.Txn, ej *ExportedJournal, sink ExportSink) error {
	j := ej.ID
	m, _, err := loadMembers(txn, j)
	if err != nil {
		return err
	}
	since := func(k []byte) (time.Time, error) {
		item, err := txn.Get(k)
		if err != nil {
			return time.Time{}, err
		}
		var t time.Time
		err = item.Value(func(v []byte) error {
			if len(v) < 8 {
				return fmt.Errorf("record is %d bytes", len(v))
			}
			t = time.Unix(int64(binary.BigEndian.Uint64(v[:8])), 0)
			return nil
		})
		return t, err
	}
	for d, p := range m.persons {
		t, err := since(key(pfxMember, j[:], d[:]))
		if err != nil {
			return err
		}
		ej.Members = append(ej.Members, ExportedMember{Device: d, Person: p, Since: t})
	}
	for d := range m.removed {
		t, err := since(key(pfxRemoved, j[:], d[:]))
		if err != nil {
			return err
		}
		ej.Removed = append(ej.Removed, ExportedRemoval{Device: d, At: t})
	}
	if ej.LastSeq, err = lastSeq(txn, j); err != nil {
		return err
	}
	if err := sink.Journal(*ej); err != nil {
		return err
	}

	// The log, in order; a purged blob's id is found in the dedup index
	// afterwards, so purged blobs wait (each is a small record).
	purged := map[uint64]StoredBlob{}
	prefix := key(pfxLog, j[:])
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := it.Item().Key()
		if len(k) != len(prefix)+8 {
			return fmt.Errorf("log key is %d bytes", len(k))
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		seq := binary.BigEndian.Uint64(k[len(prefix):])
		if v, err = s.loadValue(v, s.currentLog(it.Item().KeyCopy(nil))); err != nil {
			s.damaged(j, seq, err)
			return fmt.Errorf("blob %d: %w", seq, err)
		}
		sb := StoredBlob{Seq: seq, Blob: v}
		if len(v) > 0 && v[0] == purgedMark {
			sb.Blob, sb.Purged = v[1:], true
			purged[sb.Seq] = sb
			continue
		}
		if err := sink.Blob(ExportedBlob{StoredBlob: sb, ID: protocol.IDOf(v)}); err != nil {
			return err
		}
	}
	it.Close()
	if len(purged) == 0 {
		return nil
	}
	prefix = key(pfxBlobByID, j[:])
	bit := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer bit.Close()
	for bit.Rewind(); bit.Valid() && len(purged) > 0; bit.Next() {
		k := bit.Item().Key()
		if len(k) != len(prefix)+32 {
			return fmt.Errorf("blob index key is %d bytes", len(k))
		}
		seq, err := u64Value(bit.Item(), "blob index")
		if err != nil {
			return err
		}
		sb, ok := purged[seq]
		if !ok {
			continue
		}
		delete(purged, seq)
		if err := sink.Blob(ExportedBlob{StoredBlob: sb, ID: protocol.BlobID(k[len(prefix):])}); err != nil {
			return err
		}
	}
	if len(purged) > 0 {
		return errors.New("a purged blob has no entry in the blob index")
	}
	return nil
}

func exportInvites(txn *badger.Txn, sink ExportSink) error {
	kinds := map[string]InviteKind{string(pfxInvite): InvitePartner, string(pfxAgain): InviteAgain, string(pfxLink): InviteLink}
	for _, pfx := range invitePrefixes {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != len(pfx)+32 {
				it.Close()
				return fmt.Errorf("invite key is %d bytes", len(k))
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				it.Close()
				return err
			}
			if len(v) < protocol.JournalIDSize+8 {
				it.Close()
				return fmt.Errorf("invite record is %d bytes", len(v))
			}
			inv := Invite{
				Journal:  protocol.JournalID(v[:protocol.JournalIDSize]),
				AuthHash: [32]byte(k[len(pfx):]),
				Kind:     kinds[string(pfx)],
				Expires:  time.Unix(int64(binary.BigEndian.Uint64(v[protocol.JournalIDSize:])), 0),
				Packet:   bytes.Clone(v[protocol.JournalIDSize+8:]),
			}
			if err := sink.Invite(inv); err != nil {
				it.Close()
				return err
			}
		}
		it.Close()
	}
	return nil
}
