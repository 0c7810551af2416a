package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Members, people and removals: AddMember, AddDevice, RemoveDevice,
// Leave.

// join makes device a member of j by an invite it redeems (not held to
// the two-person rule), so it is filed as a person of its own.
func join(t *testing.T, s *store, j protocol.JournalID, device [32]byte) {
	t.Helper()
	h := newHash()
	if err := s.PutInvite(ctx(t), j, h, time.Now().Add(time.Hour), []byte("invite")); err != nil {
		t.Fatalf("put invite: %v", err)
	}
	if _, _, err := s.RedeemInvite(ctx(t), h, device, time.Now(), 0); err != nil {
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
	if err := s.AddMember(ctx(t), j, device); err == nil {
		t.Fatal("add member of a removed device: no error")
	}
	mustMember(t, s, j, device, false)
	h := newHash()
	if err := s.PutInvite(ctx(t), j, h, time.Now().Add(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RedeemInvite(ctx(t), h, device, time.Now(), 0); err == nil {
		t.Fatal("a removed device redeemed an invite to the journal it was removed from")
	}
	mustMember(t, s, j, device, false)
}

func testAddMember(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	owner, dev := newDevice(), newDevice()
	if err := s.AddMember(ctx(t), newJournal(), dev); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("add member to a missing journal: %v, want ErrNotFound", err)
	}
	j := newJournalWith(t, s, owner)
	for range 2 {
		if err := s.AddMember(ctx(t), j, dev); err != nil {
			t.Fatal(err)
		}
		mustMember(t, s, j, dev, true)
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
