package pgstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/internal/pgtest"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/pgstore"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// relayOn starts a relay on the database db with cfg: one of several
// relays sharing it.
func relayOn(t *testing.T, db string, cfg pgstore.Config) *servertest.Server {
	t.Helper()
	return servertest.NewServerOn(t, server.Config{}, func() (server.Store, error) {
		return pgstore.Open(context.Background(), db, cfg)
	})
}

// listenerPID waits until the relay's store listens for other relays'
// changes and returns the listening session's process id.
func listenerPID(t *testing.T, srv *servertest.Server) uint32 {
	t.Helper()
	st := srv.Backend().(*pgstore.Store)
	deadline := time.Now().Add(servertest.ReadTimeout)
	for {
		if pid := st.ListenerPID(); pid != 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatal("the relay's store is not listening for other relays' changes")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ownRole returns db's URL as a login role of its own, so that a relay
// on it can be kept from connecting while others go on.
func ownRole(t *testing.T, db string) string {
	t.Helper()
	admin := pgtest.AdminURL(t)
	role := "kintsugi_relay_" + databaseName(t, db)[len("kintsugi_test_"):]
	pgtest.Exec(t, admin, "CREATE ROLE "+role+" LOGIN PASSWORD 'relay'")
	pgtest.Exec(t, db, "GRANT ALL ON ALL TABLES IN SCHEMA public TO "+role)
	t.Cleanup(func() {
		pgtest.Exec(t, db, "DROP OWNED BY "+role)
		pgtest.Exec(t, admin, "DROP ROLE "+role)
	})
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "relay")
	return u.String()
}

// cutListener ends relay srv's listening session and keeps its role from
// logging in until the returned func is called, so that the listener
// stays down meanwhile. The relay's pool keeps the sessions it has.
func cutListener(t *testing.T, srvURL string, srv *servertest.Server) (restore func()) {
	t.Helper()
	u, err := url.Parse(srvURL)
	if err != nil {
		t.Fatal(err)
	}
	admin, role := pgtest.AdminURL(t), u.User.Username()
	pid := listenerPID(t, srv)
	pgtest.Exec(t, admin, "ALTER ROLE "+role+" NOLOGIN")
	restored := false
	restore = func() {
		if !restored {
			restored = true
			pgtest.Exec(t, admin, "ALTER ROLE "+role+" LOGIN")
		}
	}
	t.Cleanup(restore)
	pgtest.Exec(t, admin, fmt.Sprintf("SELECT pg_terminate_backend(%d)", pid))
	st := srv.Backend().(*pgstore.Store)
	deadline := time.Now().Add(servertest.ReadTimeout)
	for st.ListenerPID() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the relay did not notice its listening session ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return restore
}

// Two relays on one database: a put on A reaches a subscriber on B at
// once. When B's listening session is ended (pg_terminate_backend) and
// cannot come back for a while, a put made on A meanwhile still reaches
// the subscriber once it does, and so does the next; a device removed
// through A meanwhile has its connection to B closed then. Polling is off
// here (an hour), so only the listener can deliver. A device removed
// through A while B listens is cut off on B at once.
func TestLiveAcrossRelays(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	cfg := testConfig
	cfg.PollInterval = time.Hour
	a := relayOn(t, db, cfg)
	var blog logBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&blog, t.Output()), nil))
	bURL := ownRole(t, db)
	b := relayOn(t, bURL, cfg)

	key := servertest.NewKey(t)
	alex := servertest.Dial(t, a.WebSocketURL(), key)
	phone := servertest.Dial(t, b.WebSocketURL(), key)
	j := servertest.NewJournalID()
	servertest.MustOK(t, alex.Create(j))
	servertest.MustOK(t, phone.Subscribe(j, 0))
	phone.NextCaughtUp()
	listenerPID(t, b)

	ch := servertest.Chain{Journal: j, Author: alex.Device}
	put := func(what string) []byte {
		t.Helper()
		blob := ch.Next(what)
		servertest.MustOK(t, alex.Put(j, blob))
		return blob
	}
	want := func(seq uint64, blob []byte, what string) {
		t.Helper()
		got := phone.NextBlob()
		if got.Seq != seq || !bytes.Equal(got.Blob, blob) {
			t.Fatalf("%s: the subscriber on relay B got seq %d, want %d with the blob put on relay A", what, got.Seq, seq)
		}
	}

	want(1, put("put on A"), "live")

	// A laptop of Alex's, on relay B, removed while B's listener is down.
	laptop := servertest.Dial(t, b.WebSocketURL(), servertest.NewKey(t))
	servertest.MustOK(t, addDevice(alex, j, laptop.Device))
	servertest.MustOK(t, laptop.Subscribe(j, 0))
	laptop.NextBlob()
	laptop.NextCaughtUp()

	restore := cutListener(t, bURL, b)
	missed := put("put on A while B's listener is down")
	servertest.MustOK(t, removeDevice(alex, j, laptop.Device))
	restore()
	want(2, missed, "after B's listener came back")
	wantClosed(t, laptop, "removed while B's listener was down")
	for _, line := range []string{
		`level=WARN msg="lost the connection that hears other relays' changes; connecting again"`,
		`level=INFO msg="listening for other relays' changes again; every subscription reads what it missed"`,
	} {
		if !strings.Contains(blog.String(), line) {
			t.Errorf("relay B's log lacks %s", line)
		}
	}
	want(3, put("put on A after B's listener came back"), "live again")

	// A device removed through relay A is cut off on relay B at once.
	tablet := servertest.Dial(t, b.WebSocketURL(), servertest.NewKey(t))
	servertest.MustOK(t, addDevice(alex, j, tablet.Device))
	servertest.MustOK(t, tablet.Subscribe(j, 3))
	tablet.NextCaughtUp()
	servertest.MustOK(t, removeDevice(alex, j, tablet.Device))
	wantClosed(t, tablet, "removed")
}

// wantClosed reads c until the relay closes it, failing if it does not.
func wantClosed(t *testing.T, c *servertest.Client, what string) {
	t.Helper()
	for {
		if _, err := c.Read(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("relay B kept the connection of a device %s through relay A", what)
			}
			return
		}
	}
}

// The poll delivers what a lost notification would have: with B's
// listener down for the whole test, a put on A reaches B's subscriber
// through B's reading of the journal heads.
func TestPollCatchesLostChanges(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	a := relayOn(t, db, testConfig)
	cfg := testConfig
	cfg.PollInterval = 50 * time.Millisecond
	bURL := ownRole(t, db)
	b := relayOn(t, bURL, cfg)

	key := servertest.NewKey(t)
	alex := servertest.Dial(t, a.WebSocketURL(), key)
	phone := servertest.Dial(t, b.WebSocketURL(), key)
	j := servertest.NewJournalID()
	servertest.MustOK(t, alex.Create(j))
	servertest.MustOK(t, phone.Subscribe(j, 0))
	phone.NextCaughtUp()

	cutListener(t, bURL, b)
	ch := servertest.Chain{Journal: j, Author: alex.Device}
	blob := ch.Next("put on A, never heard of by B's listener")
	servertest.MustOK(t, alex.Put(j, blob))
	if got := phone.NextBlob(); got.Seq != 1 || !bytes.Equal(got.Blob, blob) {
		t.Fatalf("the subscriber on relay B got seq %d, want 1 with the blob put on relay A", got.Seq)
	}
}

// logBuffer is a log's output, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func addDevice(c *servertest.Client, j protocol.JournalID, d [32]byte) servertest.Reply {
	return c.Do(func(id uint64) any {
		return &protocol.AddDevice{Type: protocol.TypeAddDevice, ID: id, Journal: j, Device: d[:]}
	})
}

func removeDevice(c *servertest.Client, j protocol.JournalID, d [32]byte) servertest.Reply {
	return c.Do(func(id uint64) any {
		return &protocol.RemoveDevice{Type: protocol.TypeRemoveDevice, ID: id, Journal: j, Device: d[:]}
	})
}
