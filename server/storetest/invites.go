package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// Invites and links: PutInvite, PutInviteAgain, PutLink, RedeemInvite.

// soon is an expiry an hour ahead, in whole seconds.
func soon() time.Time { return time.Now().Add(time.Hour).Truncate(time.Second) }

func testInvites(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	owner, dev, late, other := newDevice(), newDevice(), newDevice(), newDevice()
	expires := soon()
	for name, put := range putters(s) {
		if err := put(ctx(t), newJournal(), newHash(), expires, nil); !errors.Is(err, protocol.ErrNotFound) {
			t.Fatalf("%s to a missing journal: %v, want ErrNotFound", name, err)
		}
	}
	j := newJournalWith(t, s, owner)
	if _, _, err := s.redeem(ctx(t), newHash(), dev, time.Now(), 0); !errors.Is(err, protocol.ErrInviteUnknown) {
		t.Fatalf("redeem an invite nobody made: %v, want ErrInviteUnknown", err)
	}

	h := newHash()
	if err := s.putInvite(ctx(t), j, h, expires, []byte("packet")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.redeem(ctx(t), h, late, expires.Add(time.Second), 0); !errors.Is(err, protocol.ErrInviteUnknown) {
		t.Fatalf("redeem after expiry: %v, want ErrInviteUnknown", err)
	}
	mustMember(t, s, j, late, false)
	gotJ, packet, err := s.redeem(ctx(t), h, dev, expires.Add(-time.Second), 0)
	if err != nil || gotJ != j || string(packet) != "packet" {
		t.Fatalf("redeem: journal %v, packet %q, %v; want %v, %q", gotJ, packet, err, j, "packet")
	}
	mustMember(t, s, j, dev, true)
	if _, _, err := s.redeem(ctx(t), h, other, time.Now(), 0); !errors.Is(err, protocol.ErrInviteUnknown) {
		t.Fatalf("redeem a used invite: %v, want ErrInviteUnknown", err)
	}
	mustMember(t, s, j, other, false)

	// A link is used up like an invite but adds no member.
	h = newHash()
	if err := s.PutLink(ctx(t), j, h, expires, []byte("link")); err != nil {
		t.Fatal(err)
	}
	gotJ, packet, err = s.redeem(ctx(t), h, other, time.Now(), 0)
	if err != nil || gotJ != j || string(packet) != "link" {
		t.Fatalf("redeem a link: journal %v, packet %q, %v", gotJ, packet, err)
	}
	mustMember(t, s, j, other, false)
	if _, _, err := s.redeem(ctx(t), h, other, time.Now(), 0); !errors.Is(err, protocol.ErrInviteUnknown) {
		t.Fatalf("redeem a used link: %v, want ErrInviteUnknown", err)
	}

	// An invite made again adds its redeemer like an invite.
	h = newHash()
	if err := s.PutInviteAgain(ctx(t), j, h, expires, []byte("again")); err != nil {
		t.Fatal(err)
	}
	if gotJ, packet, err = s.redeem(ctx(t), h, other, time.Now(), 0); err != nil || gotJ != j || string(packet) != "again" {
		t.Fatalf("redeem an invite made again: journal %v, packet %q, %v", gotJ, packet, err)
	}
	mustMember(t, s, j, other, true)
}

type putFunc func(ctx context.Context, j protocol.JournalID, authHash [32]byte, expires time.Time, packet []byte) error

// putters returns the three ways of storing an invite, by name.
func putters(s *store) map[string]putFunc {
	return map[string]putFunc{
		"invite":       s.putInvite,
		"invite again": s.PutInviteAgain,
		"link":         s.PutLink,
	}
}

// testInviteNamespace checks that invites, invites made again and links
// share one namespace of hashes.
func testInviteNamespace(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	j := newJournalWith(t, s, newDevice())
	for first, put1 := range putters(s) {
		for second, put2 := range putters(s) {
			h := newHash()
			if err := put1(ctx(t), j, h, soon(), nil); err != nil {
				t.Fatal(err)
			}
			if err := put2(ctx(t), j, h, soon(), nil); !errors.Is(err, server.ErrInviteExists) {
				t.Fatalf("%s, then %s under the same hash: %v, want ErrInviteExists", first, second, err)
			}
		}
	}
}

func testTwoPersonRule(t *testing.T, b Backend) {
	s := b.open(t, b.NewDatabase(t))
	owner, laptop, partner, third, fourth, linked := newDevice(), newDevice(), newDevice(), newDevice(), newDevice(), newDevice()
	const two = 2
	invite := func(put putFunc, j protocol.JournalID) [32]byte {
		t.Helper()
		h := newHash()
		if err := put(ctx(t), j, h, soon(), nil); err != nil {
			t.Fatal(err)
		}
		return h
	}
	redeem := func(h, device [32]byte, maxPersons int) error {
		_, _, err := s.redeem(ctx(t), h, device, time.Now(), maxPersons)
		return err
	}

	j := newJournalWith(t, s, owner)
	addDevice(t, s, j, owner, laptop) // one person, two devices
	if err := redeem(invite(s.putInvite, j), partner, two); err != nil {
		t.Fatalf("second person joins: %v", err)
	}
	// A third person is refused, and the invite is used up all the same.
	h := invite(s.putInvite, j)
	if err := redeem(h, third, two); !errors.Is(err, protocol.ErrJournalFull) {
		t.Fatalf("third person: %v, want ErrJournalFull", err)
	}
	mustMember(t, s, j, third, false)
	if err := redeem(h, third, 0); !errors.Is(err, protocol.ErrInviteUnknown) {
		t.Fatalf("redeem the invite the full journal used up: %v, want ErrInviteUnknown", err)
	}
	// A member redeeming an invite adds no one, so is not held to it.
	if err := redeem(invite(s.putInvite, j), partner, two); err != nil {
		t.Fatalf("member redeems a partner invite to a full journal: %v", err)
	}
	// Links and invites made again are not held to it.
	if err := redeem(invite(s.PutLink, j), linked, two); err != nil {
		t.Fatalf("link into a full journal: %v", err)
	}
	if err := redeem(invite(s.PutInviteAgain, j), third, two); err != nil {
		t.Fatalf("invite made again into a full journal: %v", err)
	}
	mustMember(t, s, j, third, true)
	// 0 is no limit.
	if err := redeem(invite(s.putInvite, j), fourth, 0); err != nil {
		t.Fatalf("fourth person without a limit: %v", err)
	}
	mustMember(t, s, j, fourth, true)

	// The limit is the caller's: one person is full at 1.
	solo := newJournalWith(t, s, owner)
	if err := redeem(invite(s.putInvite, solo), partner, 1); !errors.Is(err, protocol.ErrJournalFull) {
		t.Fatalf("second person at a limit of 1: %v, want ErrJournalFull", err)
	}

	// People are counted by the devices still members: one who left
	// leaves a place.
	k := newJournalWith(t, s, owner)
	if err := redeem(invite(s.putInvite, k), partner, two); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Leave(ctx(t), k, partner); err != nil {
		t.Fatal(err)
	}
	if err := redeem(invite(s.putInvite, k), third, two); err != nil {
		t.Fatalf("a new partner after the first one left: %v", err)
	}
	mustMember(t, s, k, third, true)
}

// Races.

func raceRedeemOnce(t *testing.T, stores []*store) {
	const n = 8
	owner := newDevice()
	j := newJournalWith(t, stores[0], owner)
	for round, kind := range []string{"invite", "link", "invite again", "invite"} {
		h := newHash()
		if err := putters(stores[round%len(stores)])[kind](ctx(t), j, h, soon(), []byte(kind)); err != nil {
			t.Fatal(err)
		}
		devs := make([][32]byte, n)
		errs := make([]error, n)
		for i := range devs {
			devs[i] = newDevice()
		}
		race(n, func(i int) {
			var gotJ protocol.JournalID
			var packet []byte
			gotJ, packet, errs[i] = pick(stores, i).redeem(ctx(t), h, devs[i], time.Now(), 0)
			if errs[i] == nil && (gotJ != j || string(packet) != kind) {
				errs[i] = fmt.Errorf("redeemed journal %v, packet %q; want %v, %q", gotJ, packet, j, kind)
			}
		})
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
				mustMember(t, stores[0], j, devs[i], kind != "link")
			case errors.Is(err, protocol.ErrInviteUnknown):
				mustMember(t, stores[0], j, devs[i], false)
			default:
				t.Fatal(err)
			}
		}
		if wins != 1 {
			t.Fatalf("%s %d: %d of %d redemptions at once succeeded, want 1", kind, round, wins, n)
		}
	}
}

// raceTwoPersonRule has two newcomers redeem two invites into a journal
// of one person at once: one of them may join.
func raceTwoPersonRule(t *testing.T, stores []*store) {
	const rounds = 50
	owner := newDevice()
	for round := range rounds {
		j := newJournalWith(t, stores[0], owner)
		hs := [2][32]byte{newHash(), newHash()}
		devs := [2][32]byte{newDevice(), newDevice()}
		for i, h := range hs {
			if err := pick(stores, i).putInvite(ctx(t), j, h, soon(), nil); err != nil {
				t.Fatal(err)
			}
		}
		var errs [2]error
		race(2, func(i int) {
			_, _, errs[i] = pick(stores, i).redeem(ctx(t), hs[i], devs[i], time.Now(), 2)
		})
		joined := 0
		for i, err := range errs {
			switch {
			case err == nil:
				joined++
				mustMember(t, stores[0], j, devs[i], true)
			case errors.Is(err, protocol.ErrJournalFull):
				mustMember(t, stores[0], j, devs[i], false)
			default:
				t.Fatal(err)
			}
		}
		if joined != 1 {
			t.Fatalf("round %d: %d of two newcomers joined a journal of one person at once, want 1 (the two-person rule)", round, joined)
		}
	}
}
