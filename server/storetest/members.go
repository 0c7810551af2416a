package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// Members, people and removals: AddMember, AddDevice, RemoveDevice,
// Leave.

// join makes device a member of j by an invite it redeems (not held to
// the two-person rule), so it is filed as a person of its own.
func join(t *testing.T, s *store, j protocol.JournalID, device [32]byte) {
	t.Helper()
	h := newHash()
	if err := s.putInvite(ctx(t), j, h, time.Now().Add(time.Hour), []byte("invite")); err != nil {
		t.Fatalf("put invite: %v", err)
	}
	if _, _, err := s.redeem(ctx(t), h, device, time.Now(), 0); err != nil {
		t.Fatalf("redeem invite: %v", err)
	}
}

// addDevice files device under by's person in j.
func addDevice(t *testing.T, s *store, j protocol.JournalID, by, device [32]byte) {
	t.Helper()
	if err := s.AddDevice(ctx(t), j, by, device); err != nil {
		t.Fatalf("add device: %v", err)
	}
}

// mustStayOut checks that device, removed from j, cannot come back by any
// way in: AddDevice, AddMember, or redeeming an invite.
func mustStayOut(t *testing.T, s *store, j protocol.JournalID, by, device [32]byte) {
	t.Helper()
	if err := s.AddDevice(ctx(t), j, by, device); !errors.Is(err, protocol.ErrInvalid) {
		t.Fatalf("add a removed device: %v, want ErrInvalid", err)
	}
	mustMember(t, s, j, device, false)
	var removed bool
	if err := s.UpdateMembers(ctx(t), j, func(m *server.Members) error {
		removed = m.IsRemoved(device)
		return nil
	}); err != nil || !removed {
		t.Fatalf("the members of the journal do not show the device as removed (%v)", err)
	}
	h := newHash()
	if err := s.putInvite(ctx(t), j, h, time.Now().Add(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.redeem(ctx(t), h, device, time.Now(), 0); err == nil {
		t.Fatal("a removed device redeemed an invite to the journal it was removed from")
	}
	mustMember(t, s, j, device, false)
}

// testUpdateMembers checks the store's part of every membership rule:
// fn sees what is stored, its changes are written only if it returns nil,
// and a journal that does not exist takes no changes.
func testUpdateMembers(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	owner, dev, gone := newDevice(), newDevice(), newDevice()
	missing := newJournal()
	calls := 0
	err := s.UpdateMembers(ctx(t), missing, func(m *server.Members) error {
		calls++
		if _, ok := m.Person(owner); ok || m.People() != 0 || m.Journal() != missing {
			t.Error("a journal that does not exist shows members")
		}
		m.Add(dev, dev)
		return nil
	})
	if calls == 0 || !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("changes to a missing journal: %v (fn called %d times), want ErrNotFound", err, calls)
	}
	mustMember(t, s, missing, dev, false)

	j := newJournalWith(t, s, owner)
	see := func() *server.Members {
		t.Helper()
		var seen *server.Members
		if err := s.UpdateMembers(ctx(t), j, func(m *server.Members) error { seen = m; return nil }); err != nil {
			t.Fatal(err)
		}
		return seen
	}
	if p, ok := see().Person(owner); !ok || p != owner {
		t.Fatal("the creator is not filed as a person of its own")
	}
	// An error writes nothing and comes back as it was.
	refused := errors.New("refused by the rule")
	err = s.UpdateMembers(ctx(t), j, func(m *server.Members) error {
		m.Add(dev, owner)
		m.Remove(owner)
		return refused
	})
	if err != refused {
		t.Fatalf("fn's error came back as %v", err)
	}
	mustMember(t, s, j, owner, true)
	mustMember(t, s, j, dev, false)
	// Changes are written, in order.
	if err := s.UpdateMembers(ctx(t), j, func(m *server.Members) error {
		m.Add(dev, owner)
		m.Add(gone, gone)
		m.Remove(gone)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustMember(t, s, j, dev, true)
	mustMember(t, s, j, gone, false)
	m := see()
	if p, ok := m.Person(dev); !ok || p != owner {
		t.Fatal("an added device is not filed under the person it was added for")
	}
	if !m.IsRemoved(gone) || m.IsRemoved(dev) || m.People() != 1 || len(m.Devices(owner)) != 2 {
		t.Fatalf("members after the changes: removed %v, %d people, %d devices of the owner", m.IsRemoved(gone), m.People(), len(m.Devices(owner)))
	}
}

func testAddDevice(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	owner, partner, laptop, phone, stranger := newDevice(), newDevice(), newDevice(), newDevice(), newDevice()
	j := newJournalWith(t, s, owner)
	join(t, s, j, partner)

	if err := s.AddDevice(ctx(t), j, stranger, laptop); !errors.Is(err, protocol.ErrNotMember) {
		t.Fatalf("add device by a non-member: %v, want ErrNotMember", err)
	}
	if err := s.AddDevice(ctx(t), newJournal(), owner, laptop); !errors.Is(err, protocol.ErrNotMember) {
		t.Fatalf("add device to a missing journal: %v, want ErrNotMember", err)
	}
	mustMember(t, s, j, laptop, false)
	addDevice(t, s, j, owner, laptop)
	addDevice(t, s, j, owner, laptop) // again: not an error
	mustMember(t, s, j, laptop, true)
	// The laptop is the owner's: the partner cannot claim it, nor the
	// owner the partner.
	if err := s.AddDevice(ctx(t), j, partner, laptop); !errors.Is(err, protocol.ErrInvalid) {
		t.Fatalf("partner adds the owner's device: %v, want ErrInvalid", err)
	}
	if err := s.AddDevice(ctx(t), j, owner, partner); !errors.Is(err, protocol.ErrInvalid) {
		t.Fatalf("owner adds the partner: %v, want ErrInvalid", err)
	}
	// A device the laptop adds is filed under the owner too: the owner
	// may remove it, the partner may not.
	addDevice(t, s, j, laptop, phone)
	if err := s.RemoveDevice(ctx(t), j, partner, phone); !errors.Is(err, protocol.ErrInvalid) {
		t.Fatalf("partner removes the owner's phone: %v, want ErrInvalid", err)
	}
	if err := s.RemoveDevice(ctx(t), j, owner, phone); err != nil {
		t.Fatalf("owner removes the phone the laptop added: %v", err)
	}
}

func testRemoveDevice(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	owner, partner, laptop, stranger := newDevice(), newDevice(), newDevice(), newDevice()
	j := newJournalWith(t, s, owner)
	join(t, s, j, partner)
	addDevice(t, s, j, owner, laptop)

	for _, c := range []struct {
		what       string
		by, device [32]byte
		want       error
	}{
		{"by a non-member", stranger, laptop, protocol.ErrNotMember},
		{"of a non-member", owner, stranger, protocol.ErrNotFound},
		{"of itself", owner, owner, protocol.ErrInvalid},
		{"of another person's device", partner, laptop, protocol.ErrInvalid},
		{"of another person", owner, partner, protocol.ErrInvalid},
	} {
		if err := s.RemoveDevice(ctx(t), j, c.by, c.device); !errors.Is(err, c.want) {
			t.Fatalf("remove %s: %v, want %v", c.what, err, c.want)
		}
	}
	for _, d := range [][32]byte{owner, partner, laptop} {
		mustMember(t, s, j, d, true)
	}
	if err := s.RemoveDevice(ctx(t), j, owner, laptop); err != nil {
		t.Fatal(err)
	}
	mustMember(t, s, j, laptop, false)
	mustMember(t, s, j, owner, true)
	if err := s.RemoveDevice(ctx(t), j, owner, laptop); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("remove a removed device: %v, want ErrNotFound", err)
	}
	if err := s.RemoveDevice(ctx(t), j, laptop, owner); !errors.Is(err, protocol.ErrNotMember) {
		t.Fatalf("remove by a removed device: %v, want ErrNotMember", err)
	}
	mustStayOut(t, s, j, owner, laptop)
}

func testLeave(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	owner, laptop, partner, partnerLaptop, stranger := newDevice(), newDevice(), newDevice(), newDevice(), newDevice()
	j := newJournalWith(t, s, owner)
	addDevice(t, s, j, owner, laptop)
	join(t, s, j, partner)
	addDevice(t, s, j, partner, partnerLaptop)

	if _, err := s.Leave(ctx(t), j, stranger); !errors.Is(err, protocol.ErrNotMember) {
		t.Fatalf("leave by a non-member: %v, want ErrNotMember", err)
	}
	// The laptop leaves, and takes every device of its person along.
	gone, err := s.Leave(ctx(t), j, laptop)
	if err != nil {
		t.Fatal(err)
	}
	if !sameDevices(gone, owner, laptop) {
		t.Fatalf("leave returned %d devices, want the owner's two", len(gone))
	}
	mustMember(t, s, j, owner, false)
	mustMember(t, s, j, laptop, false)
	mustMember(t, s, j, partner, true)
	mustMember(t, s, j, partnerLaptop, true)
	if _, err := s.Leave(ctx(t), j, owner); !errors.Is(err, protocol.ErrNotMember) {
		t.Fatalf("leave twice: %v, want ErrNotMember", err)
	}
	mustStayOut(t, s, j, partner, owner)
	mustStayOut(t, s, j, partner, laptop)

	gone, err = s.Leave(ctx(t), j, partner)
	if err != nil || !sameDevices(gone, partner, partnerLaptop) {
		t.Fatalf("partner leaves: %d devices, %v; want the partner's two", len(gone), err)
	}
	mustMember(t, s, j, partnerLaptop, false)
}

// sameDevices reports whether got holds exactly want, in any order.
func sameDevices(got [][32]byte, want ...[32]byte) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// raceAddDevice has both partners claim one new device at once: it is
// filed under one of them, and the other is told it is someone else's.
func raceAddDevice(t *testing.T, stores []*store) {
	const rounds = 20
	owner, partner := newDevice(), newDevice()
	j := newJournalWith(t, stores[0], owner)
	join(t, stores[0], j, partner)
	for round := range rounds {
		dev := newDevice()
		by := [2][32]byte{owner, partner}
		var errs [2]error
		race(2, func(i int) { errs[i] = pick(stores, i+round).AddDevice(ctx(t), j, by[i], dev) })
		won := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if won >= 0 {
					t.Fatalf("round %d: one device was added by both partners at once", round)
				}
				won = i
			case !errors.Is(err, protocol.ErrInvalid):
				t.Fatal(err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: neither partner could add the device", round)
		}
		// It is filed under the winner: only the winner may remove it.
		if err := stores[0].RemoveDevice(ctx(t), j, by[1-won], dev); !errors.Is(err, protocol.ErrInvalid) {
			t.Fatalf("round %d: the other partner removes the device: %v, want ErrInvalid", round, err)
		}
	}
}
