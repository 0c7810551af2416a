package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL for the scenarios that run on it (--store). The URL names
// a server where the benchmark may create and drop databases and roles
// (a superuser, or a role with CREATEDB and CREATEROLE): each relay run
// gets a fresh database, as each Badger run gets a fresh directory, and
// the database is dropped afterwards.

// Backends a scenario runs on.
const (
	backendBadger   = "badger"
	backendPostgres = "postgres"
	backendNone     = "none" // --store-none: a relay whose store keeps nothing (none.go)
)

// benchDB is a database made for one run.
type benchDB struct {
	admin string // the --store URL
	name  string
	url   string // the database's URL, as the admin user
	role  string // a login role of its own, once made by ownRole
}

// newBenchDB creates an empty database on the server at admin.
func newBenchDB(admin string) (*benchDB, error) {
	u, err := url.Parse(admin)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	d := &benchDB{admin: admin, name: "kintsugi_bench_" + hex.EncodeToString(b)}
	if err := pgExec(admin, "CREATE DATABASE "+d.name); err != nil {
		return nil, err
	}
	u.Path = "/" + d.name
	d.url = u.String()
	return d, nil
}

// ownRole makes a login role for a second relay on d, so that the
// listener scenario can keep that relay alone from connecting, and
// returns d's URL as that role.
func (d *benchDB) ownRole() (string, error) {
	d.role = strings.Replace(d.name, "_bench_", "_bench_role_", 1)
	if err := pgExec(d.admin, "CREATE ROLE "+d.role+" LOGIN PASSWORD 'bench'"); err != nil {
		return "", err
	}
	// The relays' tables exist once a relay has migrated the database.
	// (Each relay migrates at start, finding nothing to do: it may look.)
	if err := pgExec(d.url, "GRANT CREATE ON SCHEMA public TO "+d.role+"; GRANT ALL ON ALL TABLES IN SCHEMA public TO "+d.role); err != nil {
		return "", err
	}
	u, _ := url.Parse(d.url)
	u.User = url.UserPassword(d.role, "bench")
	return u.String(), nil
}

// drop drops d (and its role), ending its sessions.
func (d *benchDB) drop() error {
	err := pgExec(d.admin, "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)")
	if d.role != "" && err == nil {
		err = pgExec(d.admin, "DROP ROLE IF EXISTS "+d.role)
	}
	return err
}

// pgExec runs sql on a session of its own to the database at u.
func pgExec(u, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL (--store): %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("PostgreSQL: %s: %w", strings.Fields(sql)[0], err)
	}
	return nil
}

// listenerPIDs returns the process ids of the sessions of role on d that
// listen for other relays' changes.
func (d *benchDB) listenerPIDs(role string) ([]int32, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.admin)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = $2 AND application_name LIKE '% (changes)'", d.name, role)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int32])
}
