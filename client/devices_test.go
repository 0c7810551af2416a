package client_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// linkDevice links a new device for a and returns its account and its
// copy of the current journal.
func linkDevice(t *testing.T, a *client.Account, name string) (*client.Account, *client.Journal) {
	t.Helper()
	ctx := ctxFor(t)
	code, _, err := a.LinkDevice(ctx, name, 0)
	if err != nil {
		t.Fatalf("link: %v", err)
	}
	if !strings.HasPrefix(code, protocol.LinkPrefix) {
		t.Fatalf("link code %q", code)
	}
	home := client.Home{Dir: filepath.Join(t.TempDir(), name)}
	b, err := client.JoinLink(ctx, home, code, []byte(pass), crypto.TestingKDF)
	if err != nil {
		t.Fatalf("join link: %v", err)
	}
	// The code is used up.
	if _, err := client.JoinLink(ctx, client.Home{Dir: filepath.Join(t.TempDir(), "again")}, code, []byte(pass), crypto.TestingKDF); !errors.Is(err, protocol.ErrInviteUnknown) {
		t.Fatalf("second use of a link code: %v", err)
	}
	j, err := b.Current("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return b, j
}

func TestLinkedDeviceReadsWholeHistoryAndIsTrusted(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	write(t, aj, "alex before the laptop")
	mustSync(t, aj)
	write(t, sj, "sam before the laptop")
	mustSync(t, sj)
	mustSync(t, aj)

	laptop, lj := linkDevice(t, alex, "laptop")
	if !crypto.Equal(laptop.Identity.Public, alex.Identity.Public) || laptop.Device.SignKey() == alex.Device.SignKey() {
		t.Fatal("the linked device should share the identity and have its own keys")
	}
	mustSync(t, lj)
	// Alex's own history was re-boxed at once (and Sam's handed over: handover_test.go).
	if got := texts(t, lj); !slices.Contains(got, "alex before the laptop") {
		t.Fatalf("laptop reads %q", got)
	}
	res := mustSync(t, sj)
	if len(res.Notices) != 1 || res.Notices[0].Kind != client.NoticeDeviceAdded || res.Notices[0].Who != "alex" || res.Notices[0].Device != "laptop" || res.Notices[0].DeviceID == "" {
		t.Fatalf("sam was told %+v", res.Notices)
	}
	mustSync(t, lj)
	got := texts(t, lj)
	if !slices.Contains(got, "sam before the laptop") || !slices.Contains(got, "alex before the laptop") {
		t.Fatalf("laptop reads %q after sam synced", got)
	}

	// The laptop writes as Alex; Sam reads it as Alex's.
	write(t, lj, "from the laptop")
	mustSync(t, lj)
	mustSync(t, sj)
	es, err := sj.Entries()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range es {
		if e.Text == "from the laptop" {
			found = true
			if e.Author != "alex" || e.Mine {
				t.Fatalf("sam sees the laptop's entry as %+v", e)
			}
		}
	}
	if !found {
		t.Fatalf("sam does not read the laptop's entry: %q", texts(t, sj))
	}
	// New entries reach every device of both.
	write(t, sj, "sam after the laptop")
	mustSync(t, sj)
	mustSync(t, lj)
	mustSync(t, aj)
	for _, j := range []*client.Journal{aj, lj} {
		if got := texts(t, j); !slices.Contains(got, "sam after the laptop") || !slices.Contains(got, "from the laptop") {
			t.Fatalf("a device of alex reads %q", got)
		}
	}
	for _, j := range []*client.Journal{aj, sj, lj} {
		st, err := j.Status()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Missing) != 0 || st.Unreadable != 0 || len(shown(st)) != 0 {
			t.Fatalf("status %+v", st)
		}
	}
	devs, err := laptop.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || !devs[0].This || devs[0].Name != "laptop" || devs[1].Name != "alex-device" {
		t.Fatalf("laptop lists devices %+v", devs)
	}
	// A link code is not an invite, nor the other way round.
	if _, err := sam.Join(ctxFor(t), mustLinkCode(t, alex)); !errors.Is(err, client.ErrLinkCodeOnly) {
		t.Fatalf("joining with a link code: %v", err)
	}
}

func mustLinkCode(t *testing.T, a *client.Account) string {
	t.Helper()
	code, _, err := a.LinkDevice(ctxFor(t), "spare", 0)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func TestRemovedDeviceIsCutOff(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	phone, lj := linkDevice(t, alex, "old phone")
	mustSync(t, sj)
	pe := write(t, lj, "written on the phone")[0]
	mustSync(t, lj)
	if !sealedTo(t, relay, sj.ID(), pe.ID, sam.Device.BoxPublic) {
		t.Fatal("the phone did not seal its entry to sam")
	}

	if _, _, err := alex.RemoveDevice(ctxFor(t), alex.Cert.Name); !errors.Is(err, client.ErrThisDevice) {
		t.Fatalf("removing this device: %v", err)
	}
	if _, _, err := alex.RemoveDevice(ctxFor(t), "no such phone"); !errors.Is(err, client.ErrNoSuchDevice) {
		t.Fatalf("removing an unknown device: %v", err)
	}
	// The phone is watching when it is removed.
	wctx, cancel := context.WithCancel(ctxFor(t))
	defer cancel()
	connected, watchErr := make(chan struct{}, 1), make(chan error, 1)
	go func() {
		watchErr <- lj.Watch(wctx, func(ev client.Event) {
			if ev.Connected {
				select {
				case connected <- struct{}{}:
				default:
				}
			}
		})
	}()
	select {
	case <-connected:
	case err := <-watchErr:
		t.Fatalf("watch ended before connecting: %v", err)
	}
	d, n, err := alex.RemoveDevice(ctxFor(t), "old phone")
	if err != nil || n != 1 || d.Name != "old phone" {
		t.Fatalf("remove: %+v %d %v", d, n, err)
	}
	// Its connection is cut, and the watcher stops rather than retrying
	// for ever (bounded by the test's context).
	if err := <-watchErr; !errors.Is(err, protocol.ErrNotMember) {
		t.Fatalf("the removed device's watch ended with %v", err)
	}
	// The relay refuses the phone at once, in plain words (no ids).
	if _, err := lj.Sync(ctxFor(t)); !errors.Is(err, protocol.ErrNotMember) || !errors.Is(err, client.ErrNotServed) || strings.Contains(err.Error(), lj.ID().String()) {
		t.Fatalf("removed device synced: %v", err)
	}
	// From then on the phone refuses to write up front, rather than
	// keep what it could never send.
	if err := lj.Writable(); !errors.Is(err, client.ErrNotServed) {
		t.Fatalf("the removed phone is writable: %v", err)
	}
	if _, err := lj.Write(client.Payload{Kind: client.KindEntry, Text: "never sent"}); !errors.Is(err, client.ErrNotServed) {
		t.Fatalf("the removed phone wrote: %v", err)
	}
	res := mustSync(t, sj)
	if len(res.Notices) != 1 || res.Notices[0].Kind != client.NoticeDeviceRemoved || res.Notices[0].DeviceID == "" {
		t.Fatalf("sam was told %+v", res.Notices)
	}
	// What the phone wrote before stays readable; nothing new is sealed
	// to it (its key is not among the recipients of a new entry).
	if got := texts(t, sj); !slices.Contains(got, "written on the phone") {
		t.Fatalf("sam lost the phone's entry: %q", got)
	}
	phoneBox := phone.Device.BoxPublic
	for _, j := range []*client.Journal{aj, sj} {
		e := write(t, j, "after the phone was removed")[0]
		mustSync(t, j)
		if sealedTo(t, relay, j.ID(), e.ID, phoneBox) {
			t.Fatalf("an entry written after the removal is sealed to the removed device")
		}
	}
	devs, err := alex.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[1].Removed == nil {
		t.Fatalf("devices %+v", devs)
	}
}

func TestLeaving(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	write(t, sj, "sam's words")
	mustSync(t, sj)
	mustSync(t, aj)

	if err := sj.Leave(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	if err := sj.Leave(ctxFor(t)); !errors.Is(err, client.ErrLeft) {
		t.Fatalf("leaving twice: %v", err)
	}
	if _, err := sj.Write(client.Payload{Kind: client.KindEntry, Text: "after leaving"}); !errors.Is(err, client.ErrLeft) {
		t.Fatalf("writing after leaving: %v", err)
	}
	if _, err := sj.Sync(ctxFor(t)); !errors.Is(err, client.ErrLeft) {
		t.Fatalf("syncing after leaving: %v", err)
	}
	// What Sam had stays readable for Sam (to export).
	if got := texts(t, sj); !slices.Contains(got, "sam's words") {
		t.Fatalf("sam lost their copy: %q", got)
	}
	res := mustSync(t, aj)
	if len(res.Notices) != 1 || res.Notices[0].Kind != client.NoticePartnerLeft || res.Notices[0].Who != "sam" || res.Notices[0].Date.IsZero() {
		t.Fatalf("alex was told %+v", res.Notices)
	}
	st, err := aj.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !hasShown(st, client.NoticePartnerLeft) {
		t.Fatalf("status notices %q", shown(st))
	}
	// Alex keeps writing; nothing is sealed to Sam.
	e := write(t, aj, "for me now")[0]
	mustSync(t, aj)
	if sealedTo(t, relay, aj.ID(), e.ID, sam.Device.BoxPublic) {
		t.Fatal("an entry written after sam left is sealed to sam")
	}
	if got := texts(t, aj); !slices.Contains(got, "sam's words") {
		t.Fatalf("alex lost sam's entry: %q", got)
	}
}

// sealedTo reports whether the entry with chain id id, as the relay holds
// it, has a recipient slot for the device with box key box.
func sealedTo(t *testing.T, relay *servertest.Server, j protocol.JournalID, id string, box [32]byte) bool {
	t.Helper()
	blobs, err := relay.Store().Read(ctxFor(t), j, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if b.Purged || protocol.ChainID(b.Blob).String() != id {
			continue
		}
		e, err := protocol.ParseEntry(b.Blob)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range e.Recipients {
			if r.KeyID == crypto.KeyID(box) {
				return true
			}
		}
		return false
	}
	t.Fatalf("the relay does not hold entry %s", id)
	return false
}

// A device record must carry a certificate signed by its author's own
// identity key: one person cannot slip a device of someone else's (or a
// key of their choosing under another identity) into the roster.
func TestDeviceRecordMustBeSignedByItsAuthor(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)

	mallory := newAccount(t, "mallory")
	if _, err := aj.Write(client.Payload{Kind: client.KindDevice, Device: mallory.Cert.Raw}); err != nil {
		t.Fatal(err)
	}
	// A certificate with a byte changed does not verify at all.
	bad := append([]byte(nil), alex.Cert.Raw...)
	bad[len(bad)-1] ^= 1
	if _, err := aj.Write(client.Payload{Kind: client.KindDevice, Device: bad}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, aj)
	res := mustSync(t, sj)
	if len(res.Notices) != 0 {
		t.Fatalf("sam was told %+v", res.Notices)
	}
	ms, err := sj.Members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if len(client.MemberDevices(m)) != 1 {
			t.Fatalf("%s has %d devices after forged records", m.Name, len(client.MemberDevices(m)))
		}
	}
	st, err := sj.Status()
	if err != nil {
		t.Fatal(err)
	}
	// Both records, as one notice about alex.
	if !slices.Contains(shown(st), "device-invalid:alex x2") {
		t.Fatalf("sam's notices: %q", shown(st))
	}
	// Nothing Sam writes is sealed to mallory's key.
	e := write(t, sj, "for alex only")[0]
	mustSync(t, sj)
	if sealedTo(t, relay, sj.ID(), e.ID, mallory.Device.BoxPublic) {
		t.Fatal("sam sealed an entry to a device alex's identity never signed")
	}
}

// Alex links a laptop before Sam joins, and invites Sam from the phone.
// The laptop learns of the invite from the phone, opens Sam's join itself
// and so reads Sam and writes to Sam.
func TestInviteFromOneDeviceReachesTheOthers(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, err := alex.CreateJournal(ctxFor(t), relay.URL(), "ours")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { aj.Close() })
	_, lj := linkDevice(t, alex, "laptop")
	mustSync(t, lj)

	code, _, err := aj.Invite(ctxFor(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, aj) // hands the invite to the laptop
	sj, err := sam.Join(ctxFor(t), code)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sj.Close() })
	write(t, sj, "hello from sam")
	mustSync(t, sj)

	res := mustSync(t, lj) // the laptop syncs before the phone does
	if len(res.Joined) != 1 || res.Joined[0] != "sam" {
		t.Fatalf("the laptop saw joins %q", res.Joined)
	}
	if got := texts(t, lj); !slices.Contains(got, "hello from sam") {
		t.Fatalf("the laptop reads %q", got)
	}
	e := write(t, lj, "from the laptop")[0]
	mustSync(t, lj)
	if !sealedTo(t, relay, lj.ID(), e.ID, sam.Device.BoxPublic) {
		t.Fatal("the laptop did not seal to sam")
	}
	mustSync(t, aj)
	mustSync(t, sj)
	for _, j := range []*client.Journal{aj, lj, sj} {
		st, err := j.Status()
		if err != nil {
			t.Fatal(err)
		}
		if len(shown(st)) != 0 || st.Partner == "" {
			t.Fatalf("status %+v", st)
		}
	}
	// Sam's invite secret went to Alex's devices only.
	if !sealedToAny(t, relay, lj.ID(), client.KindInvite, alex, alex) {
		t.Fatal("the phone's invite record is not readable by the phone itself")
	}
	if sealedToAny(t, relay, lj.ID(), client.KindInvite, sam, alex) {
		t.Fatal("an invite record is readable by sam")
	}
}

// sealedToAny reports whether a's device can open any entry of kind
// written by author.
func sealedToAny(t *testing.T, relay *servertest.Server, j protocol.JournalID, kind string, a, author *client.Account) bool {
	t.Helper()
	blobs, err := relay.Store().Read(ctxFor(t), j, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	kr := crypto.NewKeyring(a.Device)
	for _, b := range blobs {
		if b.Purged {
			continue
		}
		plain, err := kr.OpenEntry(b.Blob, j, author.Device.BoxPublic)
		if err == nil && strings.Contains(string(plain), `"kind":"`+kind+`"`) {
			return true
		}
	}
	return false
}

// A leave interrupted after the partner was told, but before the relay
// was, is finished by running leave again.
func TestInterruptedLeaveIsFinished(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	// The leave record went out, then the process stopped.
	if _, err := sj.Write(client.Payload{Kind: client.KindLeave}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, sj)
	if ok, err := relay.Store().IsMember(ctxFor(t), sj.ID(), sam.Device.SignKey()); err != nil || !ok {
		t.Fatalf("sam is member: %v %v", ok, err)
	}
	if err := sj.Leave(ctxFor(t)); err != nil {
		t.Fatalf("leaving again: %v", err)
	}
	if ok, err := relay.Store().IsMember(ctxFor(t), sj.ID(), sam.Device.SignKey()); err != nil || ok {
		t.Fatalf("the relay still serves sam: %v %v", ok, err)
	}
	if err := sj.Leave(ctxFor(t)); !errors.Is(err, client.ErrLeft) {
		t.Fatalf("a third leave: %v", err)
	}
}

// An invite record carries a secret: even written through Write, it is
// sealed to this person's own devices only, never to the partner.
func TestInviteRecordIsNeverSealedToThePartner(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, _, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	exp := time.Now().Add(time.Hour)
	if _, err := aj.Write(client.Payload{Kind: client.KindInvite, Secret: make([]byte, 32), Expires: &exp}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, aj)
	if !sealedToAny(t, relay, aj.ID(), client.KindInvite, alex, alex) {
		t.Fatal("the invite record is not readable by its own author")
	}
	if sealedToAny(t, relay, aj.ID(), client.KindInvite, sam, alex) {
		t.Fatal("an invite record written through Write is readable by the partner")
	}
}

// A link that cannot fit in one code is refused before any relay or
// journal is told of the new device: bad input changes nothing.
func TestTooBigALinkChangesNothing(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	alex := newAccount(t, "alex")
	// Each journal adds about a kilobyte to the packet: 100 are more than
	// one code carries (the real check, without the early one, fails
	// only after announcing the device).
	for i := range 100 {
		j, err := alex.CreateJournal(ctxFor(t), relay.URL(), fmt.Sprintf("journal %d, with a title long enough to take some room", i))
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
	}
	if _, _, err := alex.LinkDevice(ctxFor(t), "laptop", 0); err == nil || !strings.Contains(err.Error(), "more journals than one link code can carry") {
		t.Fatalf("linking: %v", err)
	}
	devs, err := alex.Devices()
	if err != nil || len(devs) != 1 {
		t.Fatalf("devices after a refused link: %+v %v", devs, err)
	}
	ids, err := alex.Journals()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if n, err := relay.Store().LastSeq(ctxFor(t), id); err != nil || n != 0 {
			t.Fatalf("journal %s holds %d blobs after a refused link (%v)", id, n, err)
		}
	}
}
