package pgstore

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// Members and invites. The rules are the relay's (server/devices.go); the
// store runs them between reading a journal's members and writing the
// changes, with the journal's row locked (FOR NO KEY UPDATE: changes to
// one journal's members take turns, across every relay, while appends,
// which only check that the row exists, go on).

// UpdateMembers implements [server.Store].
func (s *Store) UpdateMembers(ctx context.Context, j protocol.JournalID, fn func(*server.Members) error) error {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	var m *server.Members // the last try's
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		ok, err := lockJournal(ctx, tx, j)
		if err != nil {
			return err
		}
		m = server.NewMembers(j)
		if ok {
			if err := loadMembers(ctx, tx, m); err != nil {
				return err
			}
		}
		if err := fn(m); err != nil {
			return err
		}
		if !ok && len(m.Changes()) > 0 {
			return protocol.ErrNotFound
		}
		return applyMembers(ctx, tx, m)
	})
	if err != nil {
		return err
	}
	// Other relays close the removed devices' connections, as this
	// relay does.
	var removed [][32]byte
	for _, c := range m.Changes() {
		if c.Removed {
			removed = append(removed, c.Device)
		}
	}
	s.feed.devicesRemoved(removed)
	return nil
}

// lockJournal locks j's row for a change to its members; ok is false if
// j does not exist.
func lockJournal(ctx context.Context, tx pgx.Tx, j protocol.JournalID) (ok bool, err error) {
	var x int
	err = tx.QueryRow(ctx, "SELECT 1 FROM journals WHERE id = $1 FOR NO KEY UPDATE", j[:]).Scan(&x)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// loadMembers reads m's journal's members and removed devices into m.
func loadMembers(ctx context.Context, tx pgx.Tx, m *server.Members) error {
	j := m.Journal()
	b := &pgx.Batch{}
	b.Queue("SELECT device, person FROM members WHERE journal = $1", j[:]).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var d, p []byte
			if err := rows.Scan(&d, &p); err != nil {
				return err
			}
			m.Load([32]byte(d), [32]byte(p))
		}
		return rows.Err()
	})
	b.Queue("SELECT device FROM removed_devices WHERE journal = $1", j[:]).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var d []byte
			if err := rows.Scan(&d); err != nil {
				return err
			}
			m.LoadRemoved([32]byte(d))
		}
		return rows.Err()
	})
	return tx.SendBatch(ctx, b).Close()
}

// applyMembers writes the changes recorded in m, in order.
func applyMembers(ctx context.Context, tx pgx.Tx, m *server.Members) error {
	changes := m.Changes()
	if len(changes) == 0 {
		return nil
	}
	j := m.Journal()
	b := &pgx.Batch{}
	for _, c := range changes {
		if c.Removed {
			b.Queue("DELETE FROM members WHERE journal = $1 AND device = $2", j[:], c.Device[:])
			b.Queue("INSERT INTO removed_devices (journal, device) VALUES ($1, $2) ON CONFLICT DO NOTHING", j[:], c.Device[:])
			continue
		}
		b.Queue(`INSERT INTO members (journal, device, person) VALUES ($1, $2, $3)
			ON CONFLICT (journal, device) DO UPDATE SET person = excluded.person`, j[:], c.Device[:], c.Person[:])
	}
	return tx.SendBatch(ctx, b).Close()
}

// inviteGrace is how long after expiry an invite is kept (and its hash
// taken), as BadgerStore keeps it.
const inviteGrace = 24 * time.Hour

// PutInvite implements [server.Store]. It also forgets a few invites that
// expired more than a day ago, so they do not pile up.
func (s *Store) PutInvite(ctx context.Context, inv server.Invite) error {
	if inv.Kind > server.InviteLink {
		return errors.New("unknown invite kind")
	}
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM invites WHERE auth_hash IN
				(SELECT auth_hash FROM invites WHERE expires < $1 LIMIT 100)`, time.Now().Add(-inviteGrace)); err != nil {
			return err
		}
		var x int
		err := tx.QueryRow(ctx, "SELECT 1 FROM journals WHERE id = $1", inv.Journal[:]).Scan(&x)
		if errors.Is(err, pgx.ErrNoRows) {
			return protocol.ErrNotFound
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO invites (auth_hash, journal, kind, expires, packet) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (auth_hash) DO NOTHING`,
			inv.AuthHash[:], inv.Journal[:], int16(inv.Kind), inv.Expires.Truncate(time.Second), nonNil(inv.Packet))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return server.ErrInviteExists
		}
		return nil
	})
}

// RedeemInvite implements [server.Store]. The invite's row is locked
// first, then its journal's: of two redemptions of one invite, the
// second waits and then finds it gone.
func (s *Store) RedeemInvite(ctx context.Context, authHash [32]byte, now time.Time, fn func(server.Invite, *server.Members) error) (server.Invite, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return server.Invite{}, err
	}
	defer done()
	var inv server.Invite
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var jb []byte
		var kind int16
		err := tx.QueryRow(ctx, "SELECT journal, kind, expires, packet FROM invites WHERE auth_hash = $1 FOR UPDATE", authHash[:]).
			Scan(&jb, &kind, &inv.Expires, &inv.Packet)
		if errors.Is(err, pgx.ErrNoRows) {
			return protocol.ErrInviteUnknown
		}
		if err != nil {
			return err
		}
		inv.Journal, inv.AuthHash, inv.Kind = journalID(jb), authHash, server.InviteKind(kind)
		if !now.Before(inv.Expires) {
			return protocol.ErrInviteUnknown
		}
		ok, err := lockJournal(ctx, tx, inv.Journal)
		if err != nil {
			return err
		}
		if !ok {
			return protocol.ErrInviteUnknown
		}
		m := server.NewMembers(inv.Journal)
		if err := loadMembers(ctx, tx, m); err != nil {
			return err
		}
		if err := fn(inv, m); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM invites WHERE auth_hash = $1", authHash[:]); err != nil {
			return err
		}
		return applyMembers(ctx, tx, m)
	})
	if err != nil {
		return server.Invite{}, err
	}
	return inv, nil
}

// nonNil returns b, or an empty slice for nil (a NOT NULL bytea).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
