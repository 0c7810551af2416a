package main

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/internal/pgtest"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/pgstore"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// When the relay answers but its database does not, what a person sees
// says so, not that the connection was lost: `sync` exits 5 (a passing
// fault, try again later, not a refusal) and names the entry by its id;
// a watcher says the relay could not store it, keeps trying, and sends
// it once the database answers again. A real relay on a real PostgreSQL
// whose database refuses the relay for a while.
func TestDatabaseDownAsPartnersSeeIt(t *testing.T) {
	db := pgtest.NewDatabase(t)
	if _, err := pgstore.Migrate(t.Context(), db); err != nil {
		t.Fatal(err)
	}
	r := servertest.NewServerOn(t, server.Config{}, func() (server.Store, error) {
		return pgstore.Open(context.Background(), db, pgstore.Config{MaxConns: 4})
	})
	home := newHome(t)
	must(t, "--home", home, "journal", "create", "--relay", r.URL())
	must(t, "--home", home, "sync")

	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	name, admin := strings.TrimPrefix(u.Path, "/"), pgtest.AdminURL(t)
	down := func() {
		pgtest.Exec(t, admin, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS false")
		pgtest.Exec(t, admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+name+"'")
	}
	up := func() { pgtest.Exec(t, admin, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true") }

	must(t, "--home", home, "write", "written while the database is down")
	var written []struct {
		Short string `json:"short_id"`
	}
	if err := json.Unmarshal([]byte(must(t, "--home", home, "log", "-n", "1", "--json")), &written); err != nil || len(written) != 1 || written[0].Short == "" {
		t.Fatalf("log -n 1 --json: %v", err)
	}
	id := written[0].Short
	down()
	_, stderr, err := kintsugi(t, context.Background(), "--home", home, "sync")
	if code := exitStatus(err); code != exitUnreachable || !strings.Contains(stderr, "send "+id+":") ||
		!strings.Contains(stderr, "its storage did not answer") || strings.Contains(stderr, "put request") {
		t.Fatalf("sync with the database down: exit %d, %q; want %d naming entry %s", code, stderr, exitUnreachable, id)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var werr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"kintsugi", "--home", home, "sync", "--watch"}, strings.NewReader(""), &syncBuffer{}, &werr)
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(t, &werr, "kintsugi: the relay could not store what was sent just now")
	if strings.Contains(werr.String(), "lost the connection") || strings.Contains(werr.String(), "cannot reach the relay") {
		t.Fatalf("the watcher blames the connection for the database:\n%s", werr.String())
	}
	up()
	waitFor(t, &werr, "Sent 1.")
}
