// Package pgtest gives tests a PostgreSQL database of their own on the
// throwaway server .ci/pg starts:
//
//	eval "$(.ci/pg start)"   # exports KINTSUGI_TEST_POSTGRES
//	go test ./server/pgstore
//	.ci/pg stop
//
// [NewDatabase] creates a database with a random name for one test and
// drops it when the test ends, so tests run in parallel and leave nothing
// behind. Without KINTSUGI_TEST_POSTGRES a test that needs PostgreSQL is
// skipped, with a message saying how to run it; under CI=true it fails
// instead, so CI cannot pass without having run it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable holding the URL of the test
// server's maintenance database, as .ci/pg start exports it.
const EnvURL = "KINTSUGI_TEST_POSTGRES"

// AdminURL returns the test server's URL from EnvURL. Without it, it
// skips t, or fails t when CI=true.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		const how = `this test needs PostgreSQL: run eval "$(.ci/pg start)" first (it sets ` + EnvURL + `), or .ci/run`
		if os.Getenv("CI") == "true" {
			t.Fatal(how + "; CI must run it")
		}
		t.Skip(how)
	}
	return u
}

// NewDatabase creates an empty database for t on the test server and
// returns its URL; the database is dropped when t ends, connections and
// all. It skips or fails t as AdminURL does.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	name := "kintsugi_test_" + hex.EncodeToString(randomBytes(6))
	Exec(t, admin, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		Exec(t, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return WithDatabase(t, admin, name)
}

// WithDatabase returns u with its database replaced by name.
func WithDatabase(t testing.TB, u, name string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatalf("pgtest: %s is not a URL: %v", EnvURL, err)
	}
	p.Path = "/" + name
	return p.String()
}

// Exec runs sql on a connection of its own to the database at u, failing
// t if it fails.
func Exec(t testing.TB, u, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("pgtest: connect to the test server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
