package client_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// syncAccount syncs a's account journal and fails the test on an error.
func syncAccount(t *testing.T, a *client.Account) *client.AccountResult {
	t.Helper()
	res, err := a.SyncAccount(ctxFor(t))
	if err != nil {
		t.Fatalf("sync the account journal: %v", err)
	}
	return res
}

// openByID opens journal id in a's home.
func openByID(t *testing.T, a *client.Account, id protocol.JournalID) *client.Journal {
	t.Helper()
	j, err := a.OpenJournal(id)
	if err != nil {
		t.Fatalf("open journal %s: %v", id, err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// anySealedTo reports whether any entry the relay holds in journal id
// after position after carries a slot for the box key box.
func anySealedTo(t *testing.T, relay *servertest.Server, id protocol.JournalID, after uint64, box [32]byte) bool {
	t.Helper()
	blobs, err := relay.Store().Read(ctxFor(t), id, after, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	kid := crypto.KeyID(box)
	for _, b := range blobs {
		e, err := protocol.ParseEntry(b.Blob)
		if err != nil {
			continue
		}
		for _, r := range e.Recipients {
			if r.KeyID == kid {
				return true
			}
		}
	}
	return false
}

// The whole story with a real relay: a journal created on one
// device follows on the other and can be written to there; revoking the
// new device shuts it out of both journals.
func TestJournalsFollowThePersonsDevices(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := ctxFor(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	write(t, sj, "sam, before the laptop")
	mustSync(t, sj)
	mustSync(t, aj)

	// Sam's devices are all offline from here on.
	laptop, lj := linkDevice(t, alex, "laptop")
	mustSync(t, lj)
	if got := texts(t, lj); !slices.Contains(got, "sam, before the laptop") {
		t.Fatalf("the laptop reads %q while sam is offline", got)
	}
	if !laptop.HasAccountJournal() || !alex.HasAccountJournal() {
		t.Fatal("linking should give both devices the record they share")
	}
	// The shared record is not a journal people pick.
	if ids, _ := laptop.Journals(); len(ids) != 1 || ids[0] != aj.ID() {
		t.Fatalf("laptop lists journals %v", ids)
	}

	// A second journal, created on the old device after the link.
	j2, err := alex.CreateJournal(ctx, relay.URL(), "just for us")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j2.Close() })
	syncAccount(t, alex)
	write(t, j2, "alex, in the second journal")
	mustSync(t, j2)

	res := syncAccount(t, laptop)
	if len(res.Added) != 1 || res.Added[0].ID != j2.ID() || res.Added[0].Title != "just for us" {
		t.Fatalf("laptop was told %+v", res)
	}
	l2 := openByID(t, laptop, j2.ID())
	mustSync(t, l2)
	if got := texts(t, l2); !slices.Contains(got, "alex, in the second journal") {
		t.Fatalf("laptop reads %q in the second journal", got)
	}
	write(t, l2, "laptop, in the second journal")
	mustSync(t, l2)
	mustSync(t, j2)
	if got := texts(t, j2); !slices.Contains(got, "laptop, in the second journal") {
		t.Fatalf("the old device reads %q in the second journal", got)
	}
	// Once taken in, nothing is added twice.
	if res := syncAccount(t, laptop); len(res.Added) != 0 {
		t.Fatalf("a second sync added %+v", res.Added)
	}

	// Device list on the old device: both, when each last synced.
	syncAccount(t, alex)
	devs, err := alex.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || !devs[0].This || devs[1].Name != "laptop" || devs[1].LastSync == nil || devs[0].LastSync == nil {
		t.Fatalf("devices %+v", devs)
	}

	// Revoke the laptop from the old device: gone from both journals.
	after1, _ := relay.Store().LastSeq(ctx, aj.ID())
	after2, _ := relay.Store().LastSeq(ctx, j2.ID())
	d, n, err := alex.RemoveDevice(ctx, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || d.Name != "laptop" {
		t.Fatalf("removed %+v from %d journals", d, n)
	}
	write(t, aj, "alex, after the laptop was removed")
	mustSync(t, aj)
	write(t, j2, "alex, after, in the second journal")
	mustSync(t, j2)
	for _, j := range []*client.Journal{lj, l2} {
		if _, err := j.Sync(ctx); !errors.Is(err, client.ErrNotServed) {
			t.Fatalf("the removed laptop synced: %v", err)
		}
	}
	box := laptop.Device.BoxPublic
	if anySealedTo(t, relay, aj.ID(), after1, box) || anySealedTo(t, relay, j2.ID(), after2, box) {
		t.Fatal("something written after the removal was sealed to the removed laptop")
	}
	for _, j := range []*client.Journal{lj, l2} {
		for _, s := range texts(t, j) {
			if s == "alex, after the laptop was removed" || s == "alex, after, in the second journal" {
				t.Fatalf("the removed laptop reads %q", s)
			}
		}
	}
}

// A journal joined on one device after a link follows on the other: the
// other device is added there on the relay and announced to the partner,
// who then reads what it writes as the person's.
func TestJoinedJournalFollowsAndPartnerReadsIt(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := ctxFor(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, sj)
	laptop, _ := linkDevice(t, alex, "laptop")

	// Sam starts another journal; Alex joins it on the old device.
	s3, err := sam.CreateJournal(ctx, relay.URL(), "sam's second")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s3.Close() })
	code, _, err := s3.Invite(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	a3, err := alex.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a3.Close() })
	mustSync(t, s3)
	write(t, s3, "sam, in the second")
	mustSync(t, s3)
	res := syncAccount(t, alex)
	if res.DevicesAdded != 1 {
		t.Fatalf("the old device aligned %+v", res)
	}
	mustSync(t, s3) // sam learns of the laptop and re-boxes for it

	res = syncAccount(t, laptop)
	if len(res.Added) != 1 || res.Added[0].ID != s3.ID() {
		t.Fatalf("laptop was told %+v", res)
	}
	l3 := openByID(t, laptop, s3.ID())
	mustSync(t, l3)
	if got := texts(t, l3); !slices.Contains(got, "sam, in the second") {
		t.Fatalf("laptop reads %q", got)
	}
	write(t, l3, "alex's laptop, in the second")
	mustSync(t, l3)
	mustSync(t, s3)
	es, err := s3.Entries()
	if err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, e := range es {
		if e.Text == "alex's laptop, in the second" {
			seen = e.Author == "alex" && !e.Mine
		}
	}
	if !seen {
		t.Fatalf("sam reads %q", texts(t, s3))
	}
	_ = aj
}

// Leaving and verifying on one device follow on the other.
func TestLeavingAndVerifyingFollow(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := ctxFor(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, sj)
	laptop, lj := linkDevice(t, alex, "laptop")
	mustSync(t, lj)

	if err := aj.ConfirmVerified(); err != nil {
		t.Fatal(err)
	}
	syncAccount(t, alex)
	res := syncAccount(t, laptop)
	if !slices.Equal(res.Verified, []string{"sam"}) {
		t.Fatalf("laptop was told %+v", res)
	}
	if st := status(t, lj); !st.Verified {
		t.Fatalf("the laptop does not count sam as verified: %+v", st)
	}

	if err := aj.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	syncAccount(t, alex)
	res = syncAccount(t, laptop)
	if len(res.Left) != 1 || res.Left[0].ID != aj.ID() {
		t.Fatalf("laptop was told %+v", res)
	}
	if err := lj.Writable(); !errors.Is(err, client.ErrLeft) {
		t.Fatalf("the laptop can still write in a journal its person left: %v", err)
	}
}

// lyingAccount links a laptop for alex through a lying relay (honest so
// far), creates a second journal on alex's old device and has it write the
// account record that says so. It returns the laptop, the id of the
// shared record, the record's position there and the second journal.
func lyingAccount(t *testing.T) (p *lyingRelay, laptop *client.Account, own protocol.JournalID, at uint64, j2 *client.Journal) {
	t.Helper()
	p = lyingPair(t)
	laptop, _ = linkDevice(t, p.alex, "laptop")
	syncAccount(t, laptop)
	j2, err := p.alex.CreateJournal(ctxFor(t), p.relay.URL(), "second")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j2.Close() })
	syncAccount(t, p.alex)
	if own, err = p.alex.AccountJournalID(); err != nil {
		t.Fatal(err)
	}
	return p, laptop, own, uint64(p.end(t, own)), j2
}

// atSeq matches the blob the relay stored at position seq.
func atSeq(seq uint64) servertest.Match {
	return func(b server.StoredBlob) bool { return b.Seq == seq }
}

func accountStatus(t *testing.T, a *client.Account) client.Status {
	t.Helper()
	st, err := a.AccountStatus()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A record the relay withholds while serving a later one from the same
// device is a gap, named in the shared record's status; the later record
// still brings everything, since each says all its device knows.
func TestLyingRelayDropsAnAccountRecord(t *testing.T) {
	t.Parallel()
	p, laptop, own, at, j2 := lyingAccount(t)
	j3, err := p.alex.CreateJournal(ctxFor(t), p.relay.URL(), "third")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j3.Close() })
	syncAccount(t, p.alex)
	p.liar.ServeTo(laptop.Device.SignKey(), servertest.In(own, servertest.Drop(atSeq(at))))
	res := syncAccount(t, laptop)
	var added []protocol.JournalID
	for _, jn := range res.Added {
		added = append(added, jn.ID)
	}
	if len(added) != 2 || !slices.Contains(added, j2.ID()) || !slices.Contains(added, j3.ID()) {
		t.Fatalf("laptop took in %+v", res.Added)
	}
	same(t, "laptop's missing", gaps(accountStatus(t, laptop)), missingFrom(alexsDevice, 1))
}

// A record served again at a new position changes nothing (records only
// ever add) and is said.
func TestLyingRelayReplaysAnAccountRecord(t *testing.T) {
	t.Parallel()
	p, laptop, own, at, j2 := lyingAccount(t)
	p.liar.ServeTo(laptop.Device.SignKey(), servertest.In(own, servertest.Twice(atSeq(at))))
	res := syncAccount(t, laptop)
	if len(res.Added) != 1 || res.Added[0].ID != j2.ID() {
		t.Fatalf("laptop took in %+v", res.Added)
	}
	if st := accountStatus(t, laptop); !hasShown(st, client.NoticeRelayReplayed) || len(st.Missing) != 0 {
		t.Fatalf("laptop's shared record: %+v", st)
	}
	if ids, _ := laptop.Journals(); len(ids) != 2 {
		t.Fatalf("laptop has journals %v", ids)
	}
}

// A record changed on the way (a forgery: the relay cannot seal one) is
// set aside and said; nothing it would say is taken in.
func TestLyingRelayForgesAnAccountRecord(t *testing.T) {
	t.Parallel()
	p, laptop, own, at, _ := lyingAccount(t)
	p.liar.ServeTo(laptop.Device.SignKey(), servertest.In(own, servertest.Replace(atSeq(at), func(blob []byte) []byte {
		blob[len(blob)-1] ^= 1
		return blob
	})))
	res := syncAccount(t, laptop)
	if len(res.Added) != 0 {
		t.Fatalf("laptop took in a forged record: %+v", res.Added)
	}
	if st := accountStatus(t, laptop); st.Changed != 1 || !hasShown(st, client.NoticeRelayChanged) {
		t.Fatalf("laptop's shared record: changed %d, notices %+v", st.Changed, st.Notices)
	}
	if ids, _ := laptop.Journals(); len(ids) != 1 {
		t.Fatalf("laptop has journals %v", ids)
	}
}

// A device restored from its backup keeps following the person's other
// devices: the shared record is in the backup, restored like a journal.
func TestRestoredDeviceKeepsFollowing(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := ctxFor(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, _, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, aj)
	laptop, lj := linkDevice(t, alex, "laptop")
	mustSync(t, lj)
	syncAccount(t, laptop)

	path := filepath.Join(t.TempDir(), "laptop.ksb")
	res, err := laptop.WriteBackup(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range res.Journals {
		if b.ID != aj.ID().String() {
			t.Fatalf("the backup lists %+v as a journal", b)
		}
	}
	data, err := client.ReadBackupFile(path)
	if err != nil {
		t.Fatal(err)
	}
	phrase, err := crypto.ParseRecoveryPhrase(res.Phrase)
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.OpenBackup(data, phrase)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(b.Journals()) != 1 {
		t.Fatalf("the backup lists %+v", b.Journals())
	}
	restored, err := b.Restore(client.Home{Dir: filepath.Join(t.TempDir(), "restored")}, []byte(pass), crypto.TestingKDF)
	if err != nil {
		t.Fatal(err)
	}
	if !restored.HasAccountJournal() {
		t.Fatal("the restored device does not share the record")
	}
	syncAccount(t, restored) // finishes the restore of the record

	j2, err := alex.CreateJournal(ctx, relay.URL(), "after the restore")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j2.Close() })
	syncAccount(t, alex)
	if res := syncAccount(t, restored); len(res.Added) != 1 || res.Added[0].ID != j2.ID() {
		t.Fatalf("the restored laptop was told %+v", res)
	}
	if st := accountStatus(t, restored); len(st.Missing) != 0 || len(st.Notices) != 0 {
		t.Fatalf("the restored laptop's shared record: %+v", st)
	}
}

// Devices linked before devices shared a record take it up from a record
// in a journal they share, once another device creates it.
func TestDevicesLinkedBeforeTakeUpTheRecord(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := ctxFor(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, sj)
	laptop, lj := linkDevice(t, alex, "laptop")
	mustSync(t, lj)
	// As an earlier version left them: linked, with no shared record.
	for _, a := range []*client.Account{alex, laptop} {
		if err := os.RemoveAll(filepath.Join(a.Home.Dir, "account")); err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, aj)

	// The phone links a tablet: the record is made, with the laptop in it.
	tablet, _ := linkDevice(t, alex, "tablet")
	if _, err := laptop.SyncAccount(ctx); !errors.Is(err, client.ErrNoAccountJournal) {
		t.Fatalf("the laptop has a shared record before its sync: %v", err)
	}
	mustSync(t, lj)
	if !laptop.HasAccountJournal() {
		t.Fatal("the laptop did not take up the shared record")
	}
	syncAccount(t, laptop)

	j2, err := alex.CreateJournal(ctx, relay.URL(), "new")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j2.Close() })
	syncAccount(t, alex)
	for who, a := range map[string]*client.Account{"laptop": laptop, "tablet": tablet} {
		if res := syncAccount(t, a); len(res.Added) != 1 || res.Added[0].ID != j2.ID() {
			t.Fatalf("the %s was told %+v", who, res)
		}
	}
	// Sam never reads the record meant for Alex's devices.
	mustSync(t, sj)
	// Nor is it re-boxed for Sam, nor counted as something Sam cannot
	// read yet.
	blobs, err := relay.Store().Read(ctx, aj.ID(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	private := 0
	for _, b := range blobs {
		e, err := protocol.ParseEntry(b.Blob)
		if err == nil && e.Header.Author == alex.Device.SignKey() && len(e.Recipients) == 2 {
			private++
		}
	}
	if private != 1 {
		t.Fatalf("%d entries of alex's are sealed to two devices, want the one record", private)
	}
	if grantedTo(t, relay, aj.ID(), sam.Device.BoxPublic) {
		t.Fatal("alex's device re-boxed something for sam: the record meant for alex's devices")
	}
	if st := status(t, sj); st.Unreadable != 0 || st.Changed != 0 || st.Entries != 0 {
		t.Fatalf("sam's status: %+v", st)
	}
}

// grantedTo reports whether the relay holds a grant in journal id for the
// device with box key box.
func grantedTo(t *testing.T, relay *servertest.Server, id protocol.JournalID, box [32]byte) bool {
	t.Helper()
	blobs, err := relay.Store().Read(ctxFor(t), id, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if g, err := protocol.ParseGrant(b.Blob); err == nil && g.KeyID == crypto.KeyID(box) {
			return true
		}
	}
	return false
}

// An invite made on a person's device with others is handed to those
// others only: never re-boxed for the partner, who must not learn its
// secret (an invite made again may be for the partner's new keys).
func TestInviteRecordIsNeverReboxedForThePartner(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := ctxFor(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, sj)
	_, lj := linkDevice(t, alex, "laptop")
	mustSync(t, lj)
	mustSync(t, sj)
	if _, _, err := aj.InviteAgain(ctx, 0); err != nil {
		t.Fatal(err)
	}
	mustSync(t, aj)
	mustSync(t, aj)
	mustSync(t, sj)
	if grantedTo(t, relay, aj.ID(), sam.Device.BoxPublic) {
		t.Fatal("alex's device re-boxed the invite record for sam")
	}
	// Once Alex writes again, Sam's client knows the record was left out
	// on purpose, and no longer counts it as waiting.
	write(t, aj, "alex, after the invite")
	mustSync(t, aj)
	mustSync(t, sj)
	if st := status(t, sj); st.Unreadable != 0 || st.Changed != 0 {
		t.Fatalf("sam counts %d items it cannot read, %d changed", st.Unreadable, st.Changed)
	}
}

// A journal whose relay is down does not hold the others back: they are
// aligned and the record is written; the error names the one that waits.
func TestOneRelayDownDoesNotHoldBackTheOthers(t *testing.T) {
	t.Parallel()
	relay, other := servertest.NewServer(t), servertest.NewServer(t)
	ctx := ctxFor(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	pair(t, relay.URL(), alex, sam)
	laptop, _ := linkDevice(t, alex, "laptop")
	// Two journals created on the phone while the laptop's sync has not
	// run: one on a relay that then goes down.
	j2, err := alex.CreateJournal(ctx, other.URL(), "elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j2.Close() })
	j3, err := alex.CreateJournal(ctx, relay.URL(), "here")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j3.Close() })
	other.Stop()
	_, err = alex.SyncAccount(ctx)
	if err == nil || !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("syncing with one relay down: %v", err)
	}
	res := syncAccount(t, laptop)
	if len(res.Added) != 1 || res.Added[0].ID != j3.ID() {
		t.Fatalf("laptop took in %+v", res.Added)
	}
	other.Start()
	syncAccount(t, alex)
	if res := syncAccount(t, laptop); len(res.Added) != 1 || res.Added[0].ID != j2.ID() {
		t.Fatalf("laptop, once the other relay is back, took in %+v", res.Added)
	}
}

// laptopAndJournalElsewhere pairs alex and sam on relay, links a laptop
// for alex, and has alex's phone create a journal on a second relay,
// other, which the laptop takes up.
func laptopAndJournalElsewhere(t *testing.T) (relay, other *servertest.Server, alex, laptop *client.Account, j2 *client.Journal) {
	t.Helper()
	relay, other = servertest.NewServer(t), servertest.NewServer(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	pair(t, relay.URL(), alex, sam)
	laptop, _ = linkDevice(t, alex, "laptop")
	j2, err := alex.CreateJournal(ctxFor(t), other.URL(), "elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j2.Close() })
	syncAccount(t, alex)
	if res := syncAccount(t, laptop); len(res.Added) != 1 {
		t.Fatalf("laptop took in %+v", res.Added)
	}
	return relay, other, alex, laptop, j2
}

// Revoking a device while one journal's relay is down still takes it out
// of the record the person's devices share, so it learns nothing more
// there, and the other devices remove it from the rest at their next sync.
func TestRevokeWithOneRelayDownStillLeavesTheSharedRecord(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	_, other, alex, laptop, j2 := laptopAndJournalElsewhere(t)

	other.Stop()
	if _, _, err := alex.RemoveDevice(ctx, "laptop"); !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("revoking with a relay down: %v", err)
	}
	if _, err := laptop.SyncAccount(ctx); !errors.Is(err, client.ErrNotServed) {
		t.Fatalf("the revoked laptop still syncs the shared record: %v", err)
	}
	other.Start()
	syncAccount(t, alex)
	l2 := openByID(t, laptop, j2.ID())
	if _, err := l2.Sync(ctx); !errors.Is(err, client.ErrNotServed) {
		t.Fatalf("once the relay is back, the revoked laptop still syncs the other journal: %v", err)
	}
}

// Two devices linked by an earlier version, each linking another before
// hearing of the other's shared record, end up with one shared record,
// not two that never hear of each other: a device links only after taking
// up a record already named to it.
func TestDevicesLinkedBeforeShareOneRecord(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := ctxFor(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, _, _ := pair(t, relay.URL(), alex, sam)
	laptop, lj := linkDevice(t, alex, "laptop")
	mustSync(t, lj)
	// As an earlier version left them: linked, with no shared record.
	for _, a := range []*client.Account{alex, laptop} {
		if err := os.RemoveAll(filepath.Join(a.Home.Dir, "account")); err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, aj)

	// The phone links a tablet (making the record); the laptop, not
	// synced since, links a desktop.
	linkDevice(t, alex, "tablet")
	desktop, _ := linkDevice(t, laptop, "desktop")
	want, err := alex.AccountJournalID()
	if err != nil {
		t.Fatal(err)
	}
	for who, a := range map[string]*client.Account{"laptop": laptop, "desktop": desktop} {
		if got, err := a.AccountJournalID(); err != nil || got != want {
			t.Fatalf("the %s shares record %v (%v), the phone %v", who, got, err, want)
		}
	}
	// And a journal created on the phone reaches the desktop.
	j2, err := alex.CreateJournal(ctx, relay.URL(), "new")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j2.Close() })
	syncAccount(t, alex)
	syncAccount(t, laptop)
	syncAccount(t, alex)
	if res := syncAccount(t, desktop); len(res.Added) != 1 || res.Added[0].ID != j2.ID() {
		t.Fatalf("the desktop was told %+v", res)
	}
}

// A relay that cannot be reached does not keep a revoked device in the
// journals on other relays: revoking goes on to each of them, and says
// what failed.
func TestRevokeGoesOnPastARelayDown(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	relay, _, alex, laptop, j2 := laptopAndJournalElsewhere(t)

	// The relay of the first journal and of the shared record goes down.
	relay.Stop()
	if _, n, err := alex.RemoveDevice(ctx, "laptop"); !errors.Is(err, client.ErrUnreachable) || n != 1 {
		t.Fatalf("revoking with a relay down: removed from %d journals, %v", n, err)
	}
	l2 := openByID(t, laptop, j2.ID())
	if _, err := l2.Sync(ctx); !errors.Is(err, client.ErrNotServed) {
		t.Fatalf("the revoked laptop still syncs the journal on the relay that was up: %v", err)
	}
}

// A partner's new identity confirmed on one device is confirmed on the
// person's other devices too (confirmation is the person's, not the
// device's): the laptop stops warning, reads the new keys' words and
// seals to them.
func TestConfirmingANewIdentityFollows(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := ctxFor(t)
	alex, sam := newAccount(t, "alex"), newAccount(t, "sam")
	aj, sj, _ := pair(t, relay.URL(), alex, sam)
	mustSync(t, sj)
	laptop, lj := linkDevice(t, alex, "laptop")
	mustSync(t, lj)
	syncAccount(t, laptop)

	code, _, err := aj.InviteAgain(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, aj)
	mustSync(t, lj)
	sam2 := newAccount(t, "sam")
	s2, err := sam2.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	write(t, s2, "sam, with new keys")
	mustSync(t, s2)
	mustSync(t, aj)
	mustSync(t, lj)
	if st := status(t, lj); !hasShown(st, client.NoticeIdentityChanged) {
		t.Fatalf("the laptop was not told of the new keys: %+v", st.Notices)
	}

	if err := aj.ConfirmVerified(); err != nil {
		t.Fatal(err)
	}
	syncAccount(t, alex)
	res := syncAccount(t, laptop)
	if !slices.Equal(res.Verified, []string{"sam"}) {
		t.Fatalf("the laptop was told %+v", res)
	}
	mustSync(t, lj)
	st := status(t, lj)
	if hasShown(st, client.NoticeIdentityChanged) || !st.Verified {
		t.Fatalf("the laptop after the confirmation: %+v", st)
	}
	if got := texts(t, lj); !slices.Contains(got, "sam, with new keys") {
		t.Fatalf("the laptop reads %q", got)
	}
	e := write(t, lj, "laptop, to the new keys")[0]
	mustSync(t, lj)
	if !sealedTo(t, relay, lj.ID(), e.ID, sam2.Device.BoxPublic) {
		t.Fatal("the laptop does not seal to the confirmed new keys")
	}
}
