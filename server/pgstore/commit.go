package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// Group commit in PostgreSQL.
//
// The store's [server.Committer] hands commitGroup every append waiting at
// the time; commitGroup writes them in one transaction of two round trips:
//
//  1. BEGIN; lock the heads (logs rows) of the group's journals, in
//     journal order; look up which of the group's blob ids the journals
//     hold already.
//  2. Insert the new blobs, numbered from the heads; move the heads;
//     COMMIT.
//
// Between the two, Go numbers the blobs: a blob the journal holds is a
// duplicate with its stored number, as is a second copy within the group;
// an append to a journal that does not exist fails alone. Each statement
// after the lock sees everything committed before the lock was granted,
// so a blob another relay stored a moment ago is seen, not stored again.
//
// Nothing is acknowledged before COMMIT returns. If anything fails, the
// whole group fails and changed nothing; its appends return the error and
// clients resend (a put is idempotent). A COMMIT whose answer is lost may
// have committed; the resend is then a duplicate, which is the same thing
// to the client.

// commitGroup implements the store's group commit (see above).
func (s *Store) commitGroup(group []*server.AppendRequest) {
	ctx := context.Background()
	if s.opTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opTimeout)
		defer cancel()
	}
	heads, again, err := s.commitTx(ctx, group)
	// A connection the database has closed (it restarted, or ended the
	// relay's sessions) fails before anything is written: try again on
	// another, up to once per connection the pool may hold.
	for try := int32(0); again && ctx.Err() == nil && try < s.pool.Config().MaxConns; try++ {
		heads, again, err = s.commitTx(ctx, group)
	}
	if err != nil {
		for _, r := range group {
			r.Seq, r.Dup, r.Err = 0, false, fmt.Errorf("append: %w", err)
		}
		return
	}
	s.committed(heads)
}

// head is a journal's log head as a group commit locked and moved it.
type head struct {
	lastSeq int64
	bytes   int64
	moved   bool // the group appended to it
}

// committed is called after each group commit with the heads it moved:
// the journals it appended to, their last sequence numbers and byte
// counts. It keeps the usage cache and hands the heads to the change
// feed, which tells other relays after the commit (changes.go).
func (s *Store) committed(heads map[protocol.JournalID]*head) {
	s.feed.appended(heads)
	counts := make(map[protocol.JournalID]int64, len(heads))
	for j, h := range heads {
		if h.moved {
			counts[j] = h.bytes
		}
	}
	if len(counts) > 0 {
		s.usage.set(counts, time.Now())
	}
}

// commitTx writes group in one transaction and sets each append's result;
// see the comment at the top of the file. It returns the heads, as
// committed. again reports a failure worth trying again on another
// connection: the connection it had was closed before it sent the writes,
// so it changed nothing and set no result.
func (s *Store) commitTx(ctx context.Context, group []*server.AppendRequest) (_ map[protocol.JournalID]*head, again bool, _ error) {
	var journals [][]byte // distinct, in order: the order of locking
	wantJ := make([][]byte, len(group))
	wantID := make([][]byte, len(group))
	for i, r := range group {
		wantJ[i], wantID[i] = r.Journal[:], r.ID[:]
		journals = append(journals, r.Journal[:])
	}
	slices.SortFunc(journals, bytes.Compare)
	journals = slices.CompactFunc(journals, bytes.Equal)

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	// A connection left inside a transaction by a failure is closed by
	// the pool on release, which rolls the transaction back.
	defer conn.Release()

	heads := make(map[protocol.JournalID]*head, len(journals))
	stored := make(map[[48]byte]int64) // journal|id → seq, for ids the journals hold
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SELECT journal, last_seq, bytes FROM logs WHERE journal = ANY($1) ORDER BY journal FOR UPDATE", journals).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var jb []byte
				h := &head{}
				if err := rows.Scan(&jb, &h.lastSeq, &h.bytes); err != nil {
					return err
				}
				heads[journalID(jb)] = h
			}
			return rows.Err()
		})
	b.Queue(`SELECT b.journal, b.id, b.seq FROM blobs AS b
			JOIN unnest($1::bytea[], $2::bytea[]) AS w(journal, id) ON b.journal = w.journal AND b.id = w.id`, wantJ, wantID).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var jb, idb []byte
				var seq int64
				if err := rows.Scan(&jb, &idb, &seq); err != nil {
					return err
				}
				stored[blobKey(jb, idb)] = seq
			}
			return rows.Err()
		})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, conn.Conn().IsClosed(), err
	}

	var insJ, insID, insData [][]byte
	var insSeq []int64
	for _, r := range group {
		// Each try starts from zero (the Committer's contract): a try
		// that sets results and then fails must not leave them behind.
		r.Seq, r.Dup, r.Err = 0, false, nil
		h := heads[r.Journal]
		if h == nil {
			r.Err = protocol.ErrNotFound
			continue
		}
		k := blobKey(r.Journal[:], r.ID[:])
		if seq, ok := stored[k]; ok {
			r.Seq, r.Dup = uint64(seq), true
			continue
		}
		h.lastSeq++
		h.bytes += int64(len(r.Blob))
		h.moved = true
		stored[k] = h.lastSeq
		r.Seq = uint64(h.lastSeq)
		insJ, insSeq, insID, insData = append(insJ, r.Journal[:]), append(insSeq, h.lastSeq), append(insID, r.ID[:]), append(insData, r.Blob)
	}
	b = &pgx.Batch{}
	if len(insJ) > 0 {
		b.Queue("INSERT INTO blobs (journal, seq, id, data) SELECT * FROM unnest($1::bytea[], $2::int8[], $3::bytea[], $4::bytea[])",
			insJ, insSeq, insID, insData)
		var hj [][]byte
		var hseq, hbytes []int64
		for j, h := range heads {
			if h.moved {
				hj, hseq, hbytes = append(hj, bytes.Clone(j[:])), append(hseq, h.lastSeq), append(hbytes, h.bytes)
			}
		}
		b.Queue(`UPDATE logs SET last_seq = u.last_seq, bytes = u.bytes
			FROM unnest($1::bytea[], $2::int8[], $3::int8[]) AS u(journal, last_seq, bytes)
			WHERE logs.journal = u.journal`, hj, hseq, hbytes)
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, false, err
	}
	if st := conn.Conn().PgConn().TxStatus(); st != 'I' {
		return nil, false, errors.New("the group's transaction did not end")
	}
	return heads, false, nil
}

func journalID(b []byte) protocol.JournalID {
	var j protocol.JournalID
	copy(j[:], b)
	return j
}

func blobKey(j, id []byte) [48]byte {
	var k [48]byte
	copy(k[:16], j)
	copy(k[16:], id)
	return k
}
