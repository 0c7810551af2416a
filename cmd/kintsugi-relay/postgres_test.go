package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/internal/pgtest"
	"github.com/kintsugi-journal/kintsugi/server/pgstore"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// runRelay runs the command line args and returns its output and report.
func runRelay(t *testing.T, args ...string) (stdout, rep string, code int) {
	t.Helper()
	var out, r bytes.Buffer
	err := newApp(&out, io.Discard).RunContext(context.Background(), append([]string{"kintsugi-relay"}, args...))
	code = report(&r, err)
	return out.String(), r.String(), code
}

// A relay on PostgreSQL: serve refuses a database without the schema and
// says what to run; migrate sets it up and says so, once; serve then
// runs on it and keeps what it stored across a restart. No message shows
// the database password.
func TestServeOnPostgres(t *testing.T) {
	db := pgtest.NewDatabase(t)
	pw := password(t, db)
	where := pgstore.Where(db)

	_, rep, code := runRelay(t, "serve", "--listen", "127.0.0.1:0", "--store", db)
	if code != exitFailure || !strings.Contains(rep, "kintsugi-relay: "+where+": the database has no relay schema yet (this relay needs version") ||
		!strings.Contains(rep, "hint: run 'kintsugi-relay migrate --store URL' once") {
		t.Fatalf("serve on an empty database: exit %d, %q", code, rep)
	}
	noPassword(t, rep, pw)

	out, rep, code := runRelay(t, "migrate", "--store", db)
	want := fmt.Sprintf("kintsugi-relay: migrated %s from schema version 0 to %d (0001_initial.sql", where, pgstore.SchemaVersion)
	if code != exitOK || !strings.HasPrefix(out, want) {
		t.Fatalf("migrate: exit %d, %q %q", code, out, rep)
	}
	noPassword(t, out, pw)
	out, _, code = runRelay(t, "migrate", "--store", db, "--json")
	var res struct {
		From, To int
		Applied  []string
	}
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || res.From != pgstore.SchemaVersion || res.To != res.From || res.Applied == nil || len(res.Applied) != 0 {
		t.Fatalf("migrate again: exit %d, %q", code, out)
	}

	wsURL, stop, line := startRelayWith(t, "--store", db)
	if !strings.HasSuffix(line, "(data in PostgreSQL at "+where+")") {
		t.Fatalf("start line %q", line)
	}
	noPassword(t, line, pw)
	key := servertest.NewKey(t)
	c := servertest.Dial(t, wsURL, key)
	j := servertest.NewJournalID()
	servertest.MustOK(t, c.Create(j))
	ch := servertest.Chain{Journal: j, Author: c.Device}
	first := ch.Next("kept in PostgreSQL")
	servertest.MustOK(t, c.Put(j, first))
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Started again, with --migrate (nothing to do) and the environment.
	t.Setenv("KINTSUGI_RELAY_STORE", db)
	wsURL, _, _ = startRelayWith(t, "--migrate")
	c = servertest.Dial(t, wsURL, key)
	servertest.MustOK(t, c.Subscribe(j, 0))
	if b := c.NextBlob(); b.Seq != 1 || !bytes.Equal(b.Blob, first) {
		t.Fatalf("after a restart: seq %d", b.Seq)
	}
}

// serve --migrate sets up an empty database itself, and says so in its
// log, so an operator has a record of the change; the log does not show
// the database password.
func TestServeMigrates(t *testing.T) {
	db := pgtest.NewDatabase(t)
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- newApp(pw, &logs).RunContext(ctx, []string{"kintsugi-relay", "serve", "--listen", "127.0.0.1:0", "--store", db, "--migrate", "--store-pool-size", "2", "--store-statement-timeout", "5s"})
		pw.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "kintsugi-relay: listening on http://") {
		t.Fatalf("start: %q, %v", line, err)
	}
	go io.Copy(io.Discard, pr)
	if got := logs.String(); !strings.Contains(got, "migrated the database's schema") || !strings.Contains(got, "0001_initial.sql") {
		t.Fatalf("serve --migrate logged %q, want the migration named", got)
	}
	noPassword(t, logs.String(), password(t, db))
	wsURL := "ws://" + strings.Fields(strings.TrimPrefix(line, "kintsugi-relay: listening on http://"))[0] + "/v1/ws"
	c := servertest.Dial(t, wsURL, servertest.NewKey(t))
	servertest.MustOK(t, c.Create(servertest.NewJournalID()))
}

// migrate by a database user without the right to create tables says
// that is what is missing; one that cannot log in is told to check the
// connection instead, not the right to create tables.
func TestMigrateHints(t *testing.T) {
	db := pgtest.NewDatabase(t)
	u, _ := url.Parse(db)
	wrong := *u
	wrong.User = url.UserPassword(u.User.Username(), "not-the-password")
	for _, args := range [][]string{
		{"migrate", "--store", wrong.String()},
		{"serve", "--listen", "127.0.0.1:0", "--store", wrong.String(), "--migrate"},
	} {
		_, rep, code := runRelay(t, args...)
		if code != exitFailure || !strings.Contains(rep, "hint: check --store (or KINTSUGI_RELAY_STORE)") || strings.Contains(rep, "create tables") {
			t.Fatalf("%s with a wrong password: exit %d, %q", args[0], code, rep)
		}
	}
	role := fmt.Sprintf("kintsugi_low_%x", time.Now().UnixNano())
	pgtest.Exec(t, db, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'low-password'", role))
	t.Cleanup(func() { pgtest.Exec(t, db, "DROP ROLE IF EXISTS "+role) })
	pgtest.Exec(t, db, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
	low := *u
	low.User = url.UserPassword(role, "low-password")
	_, rep, code := runRelay(t, "migrate", "--store", low.String())
	if code != exitFailure || !strings.Contains(rep, "hint: the database user needs the right to create tables") {
		t.Fatalf("migrate without the right to create tables: exit %d, %q", code, rep)
	}
	noPassword(t, rep, "low-password")
}

// A relay older than the database's schema refuses it, and so does its
// migrate, saying that a newer relay is needed.
func TestSchemaNewerThanRelay(t *testing.T) {
	db := pgtest.NewDatabase(t)
	if _, err := pgstore.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	newer := pgstore.SchemaVersion + 1
	pgtest.Exec(t, db, fmt.Sprintf("INSERT INTO schema_version (version, name) VALUES (%d, 'from_a_newer_relay.sql')", newer))
	for _, args := range [][]string{
		{"serve", "--listen", "127.0.0.1:0", "--store", db},
		{"serve", "--listen", "127.0.0.1:0", "--store", db, "--migrate"},
		{"migrate", "--store", db},
	} {
		_, rep, code := runRelay(t, args...)
		if code != exitFailure || !strings.Contains(rep, fmt.Sprintf("the database's schema is at version %d, newer than this relay knows (%d)", newer, pgstore.SchemaVersion)) ||
			!strings.Contains(rep, "hint: a newer kintsugi-relay has migrated this database") {
			t.Fatalf("%s: exit %d, %q", args[0], code, rep)
		}
	}
}

// A database that cannot be reached is named, without its password, with
// what to check.
func TestStoreUnreachable(t *testing.T) {
	db := pgtest.NewDatabase(t)
	u, _ := url.Parse(db)
	u.User = url.UserPassword(u.User.Username(), "not-the-password")
	_, rep, code := runRelay(t, "serve", "--listen", "127.0.0.1:0", "--store", u.String())
	if code != exitFailure || !strings.Contains(rep, "kintsugi-relay: cannot use the database at "+pgstore.Where(db)) ||
		!strings.Contains(rep, "hint: check --store (or KINTSUGI_RELAY_STORE)") {
		t.Fatalf("serve with a wrong password: exit %d, %q", code, rep)
	}
	noPassword(t, rep, "not-the-password")
}

func password(t *testing.T, db string) string {
	t.Helper()
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	return pw
}

func noPassword(t *testing.T, s, pw string) {
	t.Helper()
	if pw != "" && strings.Contains(s, pw) {
		t.Fatalf("the database password is in %q", s)
	}
}
