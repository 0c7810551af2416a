// Package storetest is the conformance suite for [server.Store]: the
// contract every backend of the relay must meet, written once and run by
// each backend's own tests (as litestream checks every ReplicaClient, and
// ntfy runs one suite against SQLite and PostgreSQL).
//
//	func TestBadgerConformance(t *testing.T) {
//		storetest.Run(t, storetest.Backend{
//			Name: "badger",
//			Open: func(t *testing.T, dir string) server.Store { ... },
//		})
//	}
//
// # What it checks
//
// Exactly what the [server.Store] doc comments promise, method by method:
// contiguous per-journal sequence numbers under concurrent appends,
// idempotent append by blob id, pipelined appends stored in order, reads
// in order, purge that keeps the sequence number and drops the bytes,
// usage counts, one-time invites (and the two-person rule) under a race,
// membership, device filing and removals that stick, and durability
// across closing and reopening the store. The rules about members are
// the relay's (server.AddDevice, server.Redeem, …), the same for every
// backend; the suite runs them on the store, which must keep them atomic.
// Every case asserts behaviour; none measures time.
//
// # Two stores on one database
//
// A backend that several relay processes share (PostgreSQL) must keep the
// same rules when two stores are open on one database at once. The
// concurrent cases therefore run twice: once on one store, and once spread
// over two stores opened on the same database, which is skipped for a
// backend that does not set [Backend.SharedDatabase] (Badger: a directory
// is held by one process).
//
// Such a backend must also have a change feed ([server.ChangeFeed]): what
// one store appends, and the devices it removes, are reported to a
// watcher of the other.
//
// What the suite cannot see: a crash. Durability is checked across a clean
// Close; a backend's own tests should kill a process that is writing.
package storetest

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// Backend is what a store implementation gives the suite.
type Backend struct {
	// Name names the backend in skip messages, such as "badger".
	Name string

	// NewDatabase returns a fresh, empty database for one test, as a
	// string Open understands: a directory, or a connection URL to a
	// database created for the test (and dropped by a t.Cleanup). It
	// is called once per test; each test may open several stores on
	// what it returns. Default: t.TempDir().
	NewDatabase func(t *testing.T) string

	// Open opens a store on db, a string from NewDatabase, creating
	// what is needed on first use; it fails t if it cannot. The suite
	// closes every store it opens, once, before the test ends.
	Open func(t *testing.T, db string) server.Store

	// SharedDatabase reports that two stores may be open on one
	// database at the same time, as two relay processes sharing it
	// would be. When false, the cases that need two stores are
	// skipped.
	SharedDatabase bool
}

// Run runs the conformance suite against b, each case as a parallel
// subtest with a fresh database.
func Run(t *testing.T, b Backend) {
	t.Helper()
	if b.Open == nil {
		t.Fatal("storetest: Backend.Open is nil")
	}
	if b.NewDatabase == nil {
		b.NewDatabase = func(t *testing.T) string { return t.TempDir() }
	}
	if b.Name == "" {
		b.Name = "this backend"
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, b)
		})
	}
	for _, name := range []string{"OneStore", "TwoStores"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if name == "TwoStores" && !b.SharedDatabase {
				t.Skipf("%s cannot open two stores on one database at once (Backend.SharedDatabase is false), so there is no second store to race against", b.Name)
			}
			for _, c := range raceCases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					db := b.NewDatabase(t)
					stores := []*store{b.open(t, db)}
					if name == "TwoStores" {
						stores = append(stores, b.open(t, db))
					}
					c.run(t, stores)
				})
			}
		})
	}
}

// A case checks one part of the contract on a fresh database.
type testCase struct {
	name string
	run  func(t *testing.T, b Backend)
}

// A raceCase checks a rule under concurrency, with calls spread over
// stores, which are open on one database (one store, or two).
type raceCase struct {
	name string
	run  func(t *testing.T, stores []*store)
}

var cases = []testCase{
	{"RelayID", testRelayID},
	{"CreateJournal", testCreateJournal},
	{"UpdateMembers", testUpdateMembers},
	{"AppendRead", testAppendRead},
	{"AppendIdempotent", testAppendIdempotent},
	{"StartAppend", testStartAppend},
	{"Usage", testUsage},
	{"ReadOwnsSlices", testReadOwnsSlices},
	{"Purge", testPurge},
	{"Invites", testInvites},
	{"InviteNamespace", testInviteNamespace},
	{"TwoPersonRule", testTwoPersonRule},
	{"AddDevice", testAddDevice},
	{"RemoveDevice", testRemoveDevice},
	{"Leave", testLeave},
	{"Reopen", testReopen},
	{"CloseWithAppendsInFlight", testCloseInFlight},
	{"Closed", testClosed},
	{"ChangeFeed", testChangeFeed},
}

var raceCases = []raceCase{
	{"RelayID", raceRelayID},
	{"CreateJournal", raceCreateJournal},
	{"AppendContiguous", raceAppendContiguous},
	{"AppendDuplicates", raceAppendDuplicates},
	{"RedeemOnce", raceRedeemOnce},
	{"TwoPersonRule", raceTwoPersonRule},
	{"AddDevice", raceAddDevice},
}

// store is a store the suite opened: it is closed once, by the test
// (shut) or when the test ends.
type store struct {
	server.Store
	once sync.Once
	err  error
}

func (s *store) close() error {
	s.once.Do(func() { s.err = s.Store.Close() })
	return s.err
}

// shut closes s, failing t if Close fails.
func (s *store) shut(t *testing.T) {
	t.Helper()
	if err := s.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// The relay's rules on top of the store (server/devices.go), in the shape
// the cases use. The rules are the same for every backend; what the suite
// checks through them is that the store keeps them atomic.

func (s *store) putInvite(ctx context.Context, j protocol.JournalID, h [32]byte, expires time.Time, packet []byte) error {
	return s.PutInvite(ctx, server.Invite{Journal: j, AuthHash: h, Kind: server.InvitePartner, Expires: expires, Packet: packet})
}

func (s *store) PutInviteAgain(ctx context.Context, j protocol.JournalID, h [32]byte, expires time.Time, packet []byte) error {
	return s.PutInvite(ctx, server.Invite{Journal: j, AuthHash: h, Kind: server.InviteAgain, Expires: expires, Packet: packet})
}

func (s *store) PutLink(ctx context.Context, j protocol.JournalID, h [32]byte, expires time.Time, packet []byte) error {
	return s.PutInvite(ctx, server.Invite{Journal: j, AuthHash: h, Kind: server.InviteLink, Expires: expires, Packet: packet})
}

func (s *store) redeem(ctx context.Context, h, device [32]byte, now time.Time, maxPersons int) (protocol.JournalID, []byte, error) {
	return server.Redeem(ctx, s.Store, h, device, now, maxPersons)
}

func (s *store) AddDevice(ctx context.Context, j protocol.JournalID, by, device [32]byte) error {
	return server.AddDevice(ctx, s.Store, j, by, device)
}

func (s *store) RemoveDevice(ctx context.Context, j protocol.JournalID, by, device [32]byte) error {
	return server.RemoveDevice(ctx, s.Store, j, by, device)
}

func (s *store) Leave(ctx context.Context, j protocol.JournalID, device [32]byte) ([][32]byte, error) {
	return server.Leave(ctx, s.Store, j, device)
}

// open opens a store on db and closes it when the test ends.
func (b Backend) open(t *testing.T, db string) *store {
	t.Helper()
	s := b.Open(t, db)
	if s == nil {
		t.Fatal("storetest: Backend.Open returned a nil store")
	}
	st := &store{Store: s}
	t.Cleanup(func() { st.close() })
	return st
}

// ctx returns the test's context.
func ctx(t *testing.T) context.Context { return t.Context() }

func newJournal() protocol.JournalID {
	var j protocol.JournalID
	rand.Read(j[:])
	return j
}

func newDevice() [32]byte {
	var d [32]byte
	rand.Read(d[:])
	return d
}

func newHash() [32]byte { return newDevice() }

// newJournalWith creates a fresh journal in s with owner as its only
// member.
func newJournalWith(t *testing.T, s server.Store, owner [32]byte) protocol.JournalID {
	t.Helper()
	j := newJournal()
	if err := s.CreateJournal(ctx(t), j, owner); err != nil {
		t.Fatalf("create journal: %v", err)
	}
	return j
}

// blob returns a blob of journal j by author whose body is text: a real
// header (which Purge reads the author from) and opaque bytes after it.
func blob(j protocol.JournalID, author [32]byte, text string) []byte {
	h := protocol.Header{Kind: protocol.KindEntry, Journal: j, Author: author, Seq: 1}
	return append(h.Marshal(nil), text...)
}

// readAll reads j's whole log from s, max blobs at a time, and checks
// that the sequence numbers run 1, 2, 3, … with none missing.
func readAll(t *testing.T, s server.Store, j protocol.JournalID, max int) []server.StoredBlob {
	t.Helper()
	var all []server.StoredBlob
	for after := uint64(0); ; {
		got, err := s.Read(ctx(t), j, after, max)
		if err != nil {
			t.Fatalf("read after %d: %v", after, err)
		}
		if len(got) == 0 {
			break
		}
		if len(got) > max {
			t.Fatalf("read after %d, at most %d: got %d blobs", after, max, len(got))
		}
		for _, b := range got {
			if want := uint64(len(all)) + 1; b.Seq != want {
				t.Fatalf("read after %d: blob at seq %d where seq %d belongs: the log is not contiguous", after, b.Seq, want)
			}
			all = append(all, b)
		}
		after = all[len(all)-1].Seq
	}
	return all
}

// mustMember fails t unless device's membership of j in s is want.
func mustMember(t *testing.T, s server.Store, j protocol.JournalID, device [32]byte, want bool) {
	t.Helper()
	got, err := s.IsMember(ctx(t), j, device)
	if err != nil {
		t.Fatalf("is member: %v", err)
	}
	if got != want {
		t.Fatalf("device %x: member %v, want %v", device[:4], got, want)
	}
}

// pick returns the store for worker i: stores take turns.
func pick(stores []*store, i int) *store { return stores[i%len(stores)] }
