package server_test

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

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

func leave(c *servertest.Client, j protocol.JournalID) servertest.Reply {
	return c.Do(func(id uint64) any { return &protocol.Leave{Type: protocol.TypeLeave, ID: id, Journal: j} })
}

// pairUp creates a journal with an owner and a partner who redeemed an
// invite.
func pairUp(t *testing.T, srv *servertest.Server) (j protocol.JournalID, owner, partner *servertest.Client) {
	t.Helper()
	owner = servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	j = servertest.NewJournalID()
	servertest.MustOK(t, owner.Create(j))
	partner = servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	token := [32]byte{1, 2, 3}
	servertest.MustOK(t, owner.Invite(j, token, time.Now().Add(time.Hour), []byte("packet")))
	servertest.MustOK(t, partner.Redeem(token))
	return j, owner, partner
}

func TestAddAndRemoveDevice(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServer(t)
	j, owner, partner := pairUp(t, srv)

	laptopKey := servertest.NewKey(t)
	laptop := servertest.Dial(t, srv.WebSocketURL(), laptopKey)
	wantError(t, laptop.Subscribe(j, 0), protocol.CodeNotMember)

	servertest.MustOK(t, addDevice(owner, j, laptop.Device))
	servertest.MustOK(t, addDevice(owner, j, laptop.Device)) // idempotent
	lchain := servertest.Chain{Journal: j, Author: laptop.Device}
	servertest.MustOK(t, laptop.Put(j, lchain.Next("from the laptop")))

	// The partner cannot claim the owner's device, nor remove it.
	wantError(t, addDevice(partner, j, laptop.Device), protocol.CodeInvalid)
	wantError(t, removeDevice(partner, j, laptop.Device), protocol.CodeInvalid)
	wantError(t, removeDevice(partner, j, owner.Device), protocol.CodeInvalid)
	// Nobody removes themselves this way, and a stranger removes nothing.
	wantError(t, removeDevice(owner, j, owner.Device), protocol.CodeInvalid)
	stranger := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	wantError(t, removeDevice(stranger, j, laptop.Device), protocol.CodeNotMember)
	wantError(t, removeDevice(owner, j, stranger.Device), protocol.CodeNotFound)

	// A device the laptop adds is the owner's too: the owner can remove it.
	phone := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	servertest.MustOK(t, addDevice(laptop, j, phone.Device))
	servertest.MustOK(t, phone.Subscribe(j, 0))
	phone.NextBlob()
	phone.NextCaughtUp()

	// Removing the phone cuts its open connection at once.
	servertest.MustOK(t, removeDevice(owner, j, phone.Device))
	for {
		if _, err := phone.Read(); err != nil {
			if code := closeCode(err); code != -1 && code != 1008 {
				t.Fatalf("removed device's connection closed with %v, want policy violation", err)
			}
			break
		}
	}
	again := servertest.Dial(t, srv.WebSocketURL(), phone.Key)
	wantError(t, again.Subscribe(j, 0), protocol.CodeNotMember)
	wantError(t, again.Put(j, servertest.JoinBlob(j, again.Device, 1, protocol.BlobID{}, nil)), protocol.CodeNotMember)
	// Removed is for good: it cannot be added back, nor redeem its way in.
	wantError(t, addDevice(owner, j, again.Device), protocol.CodeInvalid)
	token := [32]byte{9}
	servertest.MustOK(t, owner.Invite(j, token, time.Now().Add(time.Hour), []byte("p")))
	wantError(t, again.Redeem(token), protocol.CodeInviteUnknown)

	// The others carry on.
	servertest.MustOK(t, laptop.Put(j, lchain.Next("still here")))
	servertest.MustOK(t, partner.Subscribe(j, 0))
	if b := partner.NextBlob(); b.Seq != 1 {
		t.Fatalf("partner got seq %d first", b.Seq)
	}
}

func TestLeaveRemovesEveryDeviceOfThePerson(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServer(t)
	j, owner, partner := pairUp(t, srv)
	laptop := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	servertest.MustOK(t, addDevice(partner, j, laptop.Device))
	servertest.MustOK(t, laptop.Subscribe(j, 0))
	laptop.NextCaughtUp()

	servertest.MustOK(t, leave(partner, j))
	for {
		if _, err := laptop.Read(); err != nil {
			break
		}
	}
	wantError(t, partner.Subscribe(j, 0), protocol.CodeNotMember)
	l2 := servertest.Dial(t, srv.WebSocketURL(), laptop.Key)
	wantError(t, l2.Subscribe(j, 0), protocol.CodeNotMember)

	// The owner keeps the journal.
	ch := servertest.Chain{Journal: j, Author: owner.Device}
	servertest.MustOK(t, owner.Put(j, ch.Next("still mine")))
	servertest.MustOK(t, owner.Subscribe(j, 0))
	owner.NextBlob()
}

func TestLinkInviteAddsNoMember(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServer(t)
	owner := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	j := servertest.NewJournalID()
	servertest.MustOK(t, owner.Create(j))
	token := [32]byte{7}
	h := sha256.Sum256(token[:])
	link := func(id uint64) any {
		return &protocol.Invite{Type: protocol.TypeInvite, ID: id, Journal: j, AuthHash: h[:], Expires: time.Now().Add(time.Hour).Unix(), Packet: []byte("sealed"), Link: true}
	}
	servertest.MustOK(t, owner.Do(link))
	// The same hash cannot be stored again, as a link or an invite.
	wantError(t, owner.Do(link), protocol.CodeInvalid)
	wantError(t, owner.Invite(j, token, time.Now().Add(time.Hour), []byte("x")), protocol.CodeInvalid)

	someone := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	ok := servertest.MustOK(t, someone.Redeem(token))
	if string(ok.Packet) != "sealed" || ok.Journal == nil || *ok.Journal != j {
		t.Fatalf("redeem gave %+v", ok)
	}
	wantError(t, someone.Subscribe(j, 0), protocol.CodeNotMember)
	wantError(t, someone.Redeem(token), protocol.CodeInviteUnknown)
}

// Leaving ends the leaving connection's subscription to the journal at
// once, though the connection stays open: it is no longer counted, and a
// blob put afterwards is not pushed to it.
func TestLeaveStopsTheLeavingSubscription(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServer(t)
	j, owner, partner := pairUp(t, srv)
	servertest.MustOK(t, partner.Subscribe(j, 0))
	partner.NextCaughtUp()
	if got := metricValue(t, srv, "kintsugi_relay_subscriptions"); got != 1 {
		t.Fatalf("%v subscriptions before the leave, want 1", got)
	}

	servertest.MustOK(t, leave(partner, j))
	if got := metricValue(t, srv, "kintsugi_relay_subscriptions"); got != 0 {
		t.Fatalf("%v subscriptions after the leave, want 0", got)
	}
	ch := servertest.Chain{Journal: j, Author: owner.Device}
	servertest.MustOK(t, owner.Put(j, ch.Next("after the leave")))
	// The relay hands a new blob to caught-up subscribers before it
	// answers the put: had the subscription survived, its push would
	// come before the answer to this request.
	id := partner.NextID()
	partner.Send(&protocol.Create{Type: protocol.TypeCreate, ID: id, Journal: servertest.NewJournalID()})
	data := partner.ReadFrame()
	var ok protocol.OK
	if protocol.DecodeAs(data, &ok) != nil || ok.Type != protocol.TypeOK || ok.ID != id {
		t.Fatalf("after leaving, the connection got %s, want the answer to its request", data)
	}
}

// A journal is for two: once its members are two people, a partner invite
// adds no one, and is used up. A person's linked devices are one person;
// a person who left counts no more; an invite made again is let through.
func TestTwoPersonRule(t *testing.T) {
	srv := servertest.NewServer(t)
	j, owner, partner := pairUp(t, srv)
	invite := func(token [32]byte, again bool) {
		t.Helper()
		h := sha256.Sum256(token[:])
		servertest.MustOK(t, owner.Do(func(id uint64) any {
			return &protocol.Invite{Type: protocol.TypeInvite, ID: id, Journal: j, AuthHash: h[:], Expires: time.Now().Add(time.Hour).Unix(), Packet: []byte("p"), Again: again}
		}))
	}

	// The owner's second device joins by link: still two people.
	laptop := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	servertest.MustOK(t, addDevice(owner, j, laptop.Device))

	// A third person with an invite made before the partner joined.
	third := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	invite([32]byte{7}, false)
	e := wantError(t, third.Redeem([32]byte{7}), protocol.CodeJournalFull)
	if !strings.Contains(e.Message, "already has both of its people") {
		t.Errorf("refusal reads %q", e.Message)
	}
	wantError(t, third.Subscribe(j, 0), protocol.CodeNotMember)
	// The invite died: used again, it is unknown.
	wantError(t, third.Redeem([32]byte{7}), protocol.CodeInviteUnknown)
	// A member redeeming changes nothing and is not refused.
	invite([32]byte{8}, false)
	servertest.MustOK(t, partner.Redeem([32]byte{8}))

	// An invite made again (the partner set kintsugi up anew) goes through.
	again := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	invite([32]byte{9}, true)
	servertest.MustOK(t, again.Redeem([32]byte{9}))
	servertest.MustOK(t, again.Subscribe(j, 0))
	// Marked again and link at once is not an invite.
	h := sha256.Sum256([]byte{10})
	wantError(t, owner.Do(func(id uint64) any {
		return &protocol.Invite{Type: protocol.TypeInvite, ID: id, Journal: j, AuthHash: h[:], Expires: time.Now().Add(time.Hour).Unix(), Packet: []byte("p"), Again: true, Link: true}
	}), protocol.CodeInvalid)

	// Once the others have left, the journal has room again.
	servertest.MustOK(t, leave(partner, j))
	servertest.MustOK(t, leave(again, j))
	newcomer := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	invite([32]byte{11}, false)
	servertest.MustOK(t, newcomer.Redeem([32]byte{11}))
}
