package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/kintsugi-journal/kintsugi/internal/pgtest"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/pgstore"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
	"github.com/kintsugi-journal/kintsugi/server/storetest"
)

// Every test here needs PostgreSQL: .ci/pg start sets
// KINTSUGI_TEST_POSTGRES, and each test gets a database of its own.

// testConfig keeps the pools small: the test server allows 50
// connections, and tests run in parallel.
var testConfig = pgstore.Config{MaxConns: 4}

// newDatabase returns a fresh database for t with the schema in place.
func newDatabase(t *testing.T) string {
	t.Helper()
	db := pgtest.NewDatabase(t)
	if _, err := pgstore.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

func open(t *testing.T, db string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(t.Context(), db, testConfig)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformance runs the Store conformance suite against PostgreSQL,
// with two stores on one database for the races: two relays sharing it.
func TestConformance(t *testing.T) {
	t.Parallel()
	pgtest.AdminURL(t)
	storetest.Run(t, storetest.Backend{
		Name:           "PostgreSQL",
		NewDatabase:    newDatabase,
		Open:           func(t *testing.T, db string) server.Store { return open(t, db) },
		SharedDatabase: true,
	})
}

// A relay refuses a database without its schema, or with an older one,
// and names the versions; migrating fixes it, once, and migrating again
// does nothing.
func TestSchemaOlder(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	_, err := pgstore.Open(t.Context(), db, testConfig)
	var se *pgstore.SchemaError
	if !errors.As(err, &se) || se.Have != 0 || se.Want != pgstore.SchemaVersion || se.Newer() {
		t.Fatalf("open an empty database: %v, want a schema error from 0 to %d", err, pgstore.SchemaVersion)
	}
	res, err := pgstore.Migrate(t.Context(), db)
	if err != nil || res.From != 0 || res.To != pgstore.SchemaVersion || len(res.Applied) != pgstore.SchemaVersion {
		t.Fatalf("migrate: %+v, %v", res, err)
	}
	open(t, db).Close()
	res, err = pgstore.Migrate(t.Context(), db)
	if err != nil || res.From != pgstore.SchemaVersion || res.To != pgstore.SchemaVersion || len(res.Applied) != 0 {
		t.Fatalf("migrate again: %+v, %v; want nothing to do", res, err)
	}

	// An older schema than this relay's: the newest migration's record
	// undone (while SchemaVersion is 1, a schema_version table with no
	// rows, which must read as version 0 too).
	pgtest.Exec(t, db, fmt.Sprintf("DELETE FROM schema_version WHERE version = %d", pgstore.SchemaVersion))
	_, err = pgstore.Open(t.Context(), db, testConfig)
	if !errors.As(err, &se) || se.Have != pgstore.SchemaVersion-1 || se.Want != pgstore.SchemaVersion || se.Newer() {
		t.Fatalf("open an older schema: %v", err)
	}
}

// Open with Migrate set migrates first; two relays starting at once both
// come up, and each migration is applied once.
func TestOpenMigrates(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	cfg := testConfig
	cfg.Migrate = true
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			s, err := pgstore.Open(t.Context(), db, cfg)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if res, err := pgstore.Migrate(t.Context(), db); err != nil || len(res.Applied) != 0 {
		t.Fatalf("migrate after two relays migrated at start: %+v, %v", res, err)
	}
}

// A relay refuses a schema newer than it knows, and so does migrate,
// which changes nothing.
func TestSchemaNewer(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	newer := pgstore.SchemaVersion + 1
	pgtest.Exec(t, db, fmt.Sprintf("INSERT INTO schema_version (version, name) VALUES (%d, '%04d_from_the_future.sql')", newer, newer))
	cfg := testConfig
	for _, migrate := range []bool{false, true} {
		cfg.Migrate = migrate
		_, err := pgstore.Open(t.Context(), db, cfg)
		var se *pgstore.SchemaError
		if !errors.As(err, &se) || !se.Newer() || se.Have != newer || !strings.Contains(err.Error(), "newer") {
			t.Fatalf("open a newer schema (migrate %v): %v", migrate, err)
		}
	}
	res, err := pgstore.Migrate(t.Context(), db)
	var se *pgstore.SchemaError
	if !errors.As(err, &se) || !se.Newer() || len(res.Applied) != 0 {
		t.Fatalf("migrate a newer schema: %+v, %v", res, err)
	}
}

// A relay on PostgreSQL serves partners end to end: a put reaches a
// subscriber at once, a resend is a duplicate, and after a restart the
// journal is all there.
func TestRelayOnPostgres(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	srv := servertest.NewServerOn(t, server.Config{}, func() (server.Store, error) {
		return pgstore.Open(context.Background(), db, testConfig)
	})
	key := servertest.NewKey(t)
	alex := servertest.Dial(t, srv.WebSocketURL(), key)
	phone := servertest.Dial(t, srv.WebSocketURL(), key)
	j := servertest.NewJournalID()
	servertest.MustOK(t, alex.Create(j))
	servertest.MustOK(t, phone.Subscribe(j, 0))
	phone.NextCaughtUp()

	ch := servertest.Chain{Journal: j, Author: alex.Device}
	var blobs [][]byte
	for i := range 3 {
		b := ch.Next(fmt.Sprintf("entry %d", i))
		blobs = append(blobs, b)
		ok := servertest.MustOK(t, alex.Put(j, b))
		if ok.Seq != uint64(i+1) || ok.Duplicate {
			t.Fatalf("put %d: seq %d, duplicate %v", i, ok.Seq, ok.Duplicate)
		}
		got := phone.NextBlob()
		if got.Seq != uint64(i+1) || string(got.Blob) != string(b) {
			t.Fatalf("subscriber got seq %d, want %d with the blob put", got.Seq, i+1)
		}
	}
	if ok := servertest.MustOK(t, alex.Put(j, blobs[1])); !ok.Duplicate || ok.Seq != 2 {
		t.Fatalf("resend: seq %d, duplicate %v; want seq 2, duplicate", ok.Seq, ok.Duplicate)
	}

	srv.Restart()
	again := servertest.Dial(t, srv.WebSocketURL(), key)
	servertest.MustOK(t, again.Subscribe(j, 0))
	for i, b := range blobs {
		if got := again.NextBlob(); got.Seq != uint64(i+1) || string(got.Blob) != string(b) {
			t.Fatalf("after restart: seq %d, want %d with the blob put", got.Seq, i+1)
		}
	}
	if cu := again.NextCaughtUp(); cu.Seq != 3 {
		t.Fatalf("caught up at %d, want 3", cu.Seq)
	}
}

// /readyz turns unready while the database does not answer and ready
// again when it does. The database stops answering for the relay by
// refusing new connections and ending the ones it has.
func TestReadyWhileDatabaseDown(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	srv := servertest.NewServerOn(t, server.Config{}, func() (server.Store, error) {
		return pgstore.Open(context.Background(), db, testConfig)
	})
	ready := func() int {
		t.Helper()
		resp, err := http.Get(srv.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ready(); code != http.StatusOK {
		t.Fatalf("readyz with the database up: %d", code)
	}
	name := databaseName(t, db)
	admin := pgtest.AdminURL(t)
	pgtest.Exec(t, admin, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS false")
	pgtest.Exec(t, admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+name+"'")
	if code := ready(); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the database refusing the relay: %d, want 503", code)
	}
	pgtest.Exec(t, admin, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true")
	if code := ready(); code != http.StatusOK {
		t.Fatalf("readyz with the database back: %d, want 200", code)
	}
	// And it serves again.
	c := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	servertest.MustOK(t, c.Create(servertest.NewJournalID()))
}

func databaseName(t *testing.T, db string) string {
	t.Helper()
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// Appends right after the database ended every session of the relay
// (as a restart of the database does) succeed: the group commit finds
// its connections closed before writing anything and takes new ones.
func TestAppendAfterSessionsEnded(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	s := open(t, db)
	defer s.Close()
	owner := [32]byte{1}
	j := servertest.NewJournalID()
	if err := s.CreateJournal(t.Context(), j, owner); err != nil {
		t.Fatal(err)
	}
	ch := servertest.Chain{Journal: j, Author: owner}
	var blobs [][]byte
	for i := range 5 {
		blobs = append(blobs, ch.Next(fmt.Sprint("blob ", i)))
	}
	// Four appends at once leave connections idle in the pool.
	var wg sync.WaitGroup
	for _, b := range blobs[:4] {
		wg.Go(func() {
			if _, _, _, err := s.Append(t.Context(), j, b); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	pgtest.Exec(t, pgtest.AdminURL(t), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+databaseName(t, db)+"'")
	seq, _, dup, err := s.Append(t.Context(), j, blobs[4])
	if err != nil || dup || seq != 5 {
		t.Fatalf("append after the sessions ended: seq %d, dup %v, %v", seq, dup, err)
	}
}
