package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kintsugi-journal/kintsugi/server"
)

// Import: filling an empty database with another store's data
// (kintsugi-relay copy, from a Badger directory).

// ErrNotEmpty is returned by [Import] when the database already holds a
// relay's data.
var ErrNotEmpty = errors.New("the database already holds a relay's data")

// ImportResult says what [Import] copied.
type ImportResult struct {
	RelayID  string
	Journals int
	Blobs    int   // purged ones included
	Purged   int   // of Blobs
	Bytes    int64 // of blobs as stored (a purged blob counts as its record)
	Members  int
	Removed  int
	Invites  int
}

// Import copies what export hands it into the database at url, whose
// schema must be at SchemaVersion and which must hold no relay data yet
// (ErrNotEmpty otherwise): the relay id, journals with their members and
// removed devices, their logs at the same sequence numbers (purged blobs
// as purged, under their original ids) and the invites. Everything is
// one transaction: if anything fails, the database is left as it was.
// Each journal's log must be whole (sequence numbers 1 to its last).
func Import(ctx context.Context, url string, export func(server.ExportSink) error) (ImportResult, error) {
	pcfg, err := poolConfig(url, Config{StatementTimeout: -1})
	if err != nil {
		return ImportResult{}, err
	}
	conn, err := pgx.ConnectConfig(ctx, pcfg.ConnConfig)
	if err != nil {
		return ImportResult{}, fmt.Errorf("connect to the database: %w", err)
	}
	defer conn.Close(context.Background())
	if err := pcfg.AfterConnect(ctx, conn); err != nil { // durable commits
		return ImportResult{}, err
	}
	v, err := schemaVersion(ctx, conn)
	if err != nil {
		return ImportResult{}, err
	}
	if v != SchemaVersion {
		return ImportResult{}, &SchemaError{Have: v, Want: SchemaVersion}
	}
	imp := &importer{ctx: ctx}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var full bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM relay) OR EXISTS (SELECT 1 FROM journals)").Scan(&full); err != nil {
			return err
		}
		if full {
			return ErrNotEmpty
		}
		imp.tx = tx
		if err := export(imp); err != nil {
			return err
		}
		return imp.endJournal()
	})
	if err != nil {
		return ImportResult{}, err
	}
	return imp.res, nil
}

// importer is the ExportSink of Import.
type importer struct {
	ctx context.Context
	tx  pgx.Tx
	res ImportResult

	// The journal being copied.
	j       *server.ExportedJournal
	blobs   int64   // its blobs so far
	bytes   int64   // their bytes
	rows    [][]any // blobs not yet written
	rowSize int     // their bytes
}

// Blobs are written in COPY batches of about this many bytes.
const importBatchBytes = 8 << 20

func (m *importer) RelayID(id string) error {
	m.res.RelayID = id
	_, err := m.tx.Exec(m.ctx, "INSERT INTO relay (key, value) VALUES ('id', $1)", id)
	return err
}

func (m *importer) Journal(ej server.ExportedJournal) error {
	if err := m.endJournal(); err != nil {
		return err
	}
	m.j = &ej
	m.res.Journals++
	j := ej.ID
	b := &pgx.Batch{}
	b.Queue("INSERT INTO journals (id, created) VALUES ($1, $2)", j[:], ej.Created)
	for _, mem := range ej.Members {
		b.Queue("INSERT INTO members (journal, device, person, since) VALUES ($1, $2, $3, $4)", j[:], mem.Device[:], mem.Person[:], mem.Since)
	}
	for _, r := range ej.Removed {
		b.Queue("INSERT INTO removed_devices (journal, device, removed) VALUES ($1, $2, $3)", j[:], r.Device[:], r.At)
	}
	m.res.Members += len(ej.Members)
	m.res.Removed += len(ej.Removed)
	return m.tx.SendBatch(m.ctx, b).Close()
}

func (m *importer) Blob(b server.ExportedBlob) error {
	if m.j == nil {
		return errors.New("a blob before any journal")
	}
	if b.Seq == 0 || b.Seq > m.j.LastSeq {
		return fmt.Errorf("journal %s: a blob at seq %d, past its last (%d)", m.j.ID, b.Seq, m.j.LastSeq)
	}
	m.rows = append(m.rows, []any{m.j.ID[:], int64(b.Seq), b.ID[:], b.Purged, b.Blob})
	m.rowSize += len(b.Blob)
	m.blobs++
	m.bytes += int64(len(b.Blob))
	m.res.Blobs++
	m.res.Bytes += int64(len(b.Blob))
	if b.Purged {
		m.res.Purged++
	}
	if m.rowSize >= importBatchBytes {
		return m.flush()
	}
	return nil
}

func (m *importer) flush() error {
	if len(m.rows) == 0 {
		return nil
	}
	_, err := m.tx.CopyFrom(m.ctx, pgx.Identifier{"blobs"}, []string{"journal", "seq", "id", "purged", "data"}, pgx.CopyFromRows(m.rows))
	m.rows, m.rowSize = m.rows[:0], 0
	return err
}

// endJournal writes the rest of the journal being copied and its log's
// head, once its log has proved whole.
func (m *importer) endJournal() error {
	if m.j == nil {
		return nil
	}
	if err := m.flush(); err != nil {
		return err
	}
	if uint64(m.blobs) != m.j.LastSeq {
		// The primary key has refused a seq given twice, so the log has a
		// gap.
		return fmt.Errorf("journal %s: its log holds %d blobs but its last sequence number is %d", m.j.ID, m.blobs, m.j.LastSeq)
	}
	_, err := m.tx.Exec(m.ctx, "INSERT INTO logs (journal, last_seq, bytes) VALUES ($1, $2, $3)", m.j.ID[:], int64(m.j.LastSeq), m.bytes)
	m.j, m.blobs, m.bytes = nil, 0, 0
	return err
}

func (m *importer) Invite(inv server.Invite) error {
	if err := m.endJournal(); err != nil {
		return err
	}
	if inv.Kind > server.InviteLink {
		return fmt.Errorf("an invite of unknown kind %d", inv.Kind)
	}
	m.res.Invites++
	_, err := m.tx.Exec(m.ctx, "INSERT INTO invites (auth_hash, journal, kind, expires, packet) VALUES ($1, $2, $3, $4, $5)",
		inv.AuthHash[:], inv.Journal[:], int16(inv.Kind), inv.Expires, nonNil(inv.Packet))
	return err
}

var _ server.ExportSink = (*importer)(nil)
