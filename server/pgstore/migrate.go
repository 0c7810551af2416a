package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema migrations.
//
// The schema is built by numbered SQL files in migrations/, embedded in
// the binary: 0001_initial.sql, 0002_..., applied in order, each in a
// transaction of its own that also records it in schema_version. A file
// once released never changes; a change to the schema is a new file. The
// schema's version is the highest number recorded.
//
// Migrate applies what is missing. Two relays migrating one database at
// once take turns (a session advisory lock), so each migration is applied
// once. [Open] refuses a database whose schema is older than this relay's
// (it would fail on a missing table or column, or worse, half work) or
// newer (a newer relay changed it in ways this one does not know), with a
// [SchemaError]; a relay asked to migrate at start applies the missing
// migrations first.

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered schema change.
type migration struct {
	version int
	name    string // file name
	sql     string
}

// migrations are the schema changes this relay knows, in order; they
// number 1, 2, 3, … with none missing (checked by a test).
var migrations = mustLoadMigrations()

// SchemaVersion is the version of the schema this relay works with: the
// number of the last migration it knows.
var SchemaVersion = migrations[len(migrations)-1].version

func mustLoadMigrations() []migration {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	var out []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			panic(fmt.Sprintf("pgstore: migration %s is not named NNNN_what.sql", base))
		}
		sql, err := migrationFiles.ReadFile(name)
		if err != nil {
			panic(err)
		}
		out = append(out, migration{version: v, name: base, sql: string(sql)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			panic(fmt.Sprintf("pgstore: migration %s is number %d, want %d", m.name, m.version, i+1))
		}
	}
	return out
}

// SchemaError is the error of [Open] on a database whose schema is not
// the version this relay works with.
type SchemaError struct {
	Have int // the database's schema version; 0: no schema at all
	Want int // SchemaVersion
}

func (e *SchemaError) Error() string {
	switch {
	case e.Have > e.Want:
		return fmt.Sprintf("the database's schema is at version %d, newer than this relay knows (%d)", e.Have, e.Want)
	case e.Have == 0:
		return fmt.Sprintf("the database has no relay schema yet (this relay needs version %d)", e.Want)
	}
	return fmt.Sprintf("the database's schema is at version %d, older than this relay needs (%d)", e.Have, e.Want)
}

// Newer reports whether the database's schema is newer than this relay
// knows, so that only a newer relay can use it.
func (e *SchemaError) Newer() bool { return e.Have > e.Want }

// NeedsPrivilege reports whether err is the database refusing for want of
// a privilege (SQLSTATE 42501), such as creating tables while migrating,
// rather than a failure to reach or log in to it.
func NeedsPrivilege(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501"
}

// MigrateResult says what [Migrate] did.
type MigrateResult struct {
	From, To int      // schema version before and after
	Applied  []string // the migrations applied, by file name
}

// migrateLock is the advisory lock key that makes migrations take turns:
// "kintsugi" in ASCII.
const migrateLock int64 = 0x6b696e7473756769

// Migrate brings the schema of the database at url up to SchemaVersion.
// It changes nothing on a database whose schema is newer than this relay
// knows, and returns a *SchemaError for it.
func Migrate(ctx context.Context, url string) (MigrateResult, error) {
	cfg, err := poolConfig(url, Config{MaxConns: 1})
	if err != nil {
		return MigrateResult{}, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return MigrateResult{}, err
	}
	defer pool.Close()
	return migrate(ctx, pool)
}

func migrate(ctx context.Context, pool *pgxpool.Pool) (res MigrateResult, err error) {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return res, err
	}
	// The session is the pool's no more, and ends with the migration:
	// that releases the advisory lock, and its settings go with it.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	// A schema change may take longer than a statement is allowed to
	// while serving.
	if _, err := conn.Exec(ctx, "SET statement_timeout = 0"); err != nil {
		return res, err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLock); err != nil {
		return res, fmt.Errorf("wait for other migrations: %w", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version integer PRIMARY KEY,
		name    text NOT NULL,
		applied timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return res, fmt.Errorf("create schema_version: %w", err)
	}
	if res.From, err = schemaVersion(ctx, conn); err != nil {
		return res, err
	}
	res.To = res.From
	if res.From > SchemaVersion {
		return res, &SchemaError{Have: res.From, Want: SchemaVersion}
	}
	for _, m := range migrations[res.From:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_version (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("migration %s: %w", m.name, err)
		}
		res.To = m.version
		res.Applied = append(res.Applied, m.name)
	}
	return res, nil
}

// querier is what schemaVersion needs of a connection.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schemaVersion returns the database's schema version: 0 if it has no
// schema_version table.
func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&v)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the schema version: %w", err)
	}
	return v, nil
}
