package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Devices, and leaving.
//
// A person's devices share one identity key. Each device has its own keys
// and a certificate signed by the identity key. A journal's roster starts
// with the devices each person brought when they joined; after that it
// changes only through roster records, which are ordinary sealed entries
// (KindDevice, KindDeviceRemoved, KindLeave) written by one of the
// person's own devices. The relay cannot write such an entry, so it cannot
// add a device or a person, or take one away, without every client
// refusing it; its own list of members (AddDevice, RemoveDevice, Leave)
// only decides whom it serves.
//
// Linking: the existing device makes the new device's keys and
// certificate, adds it on every journal's relay, announces it in every
// journal and re-boxes its own history for it, then leaves everything the
// new device needs (identity, keys, journals) on the relay sealed under a
// one-time link code. The new device redeems the code with a throwaway
// key, opens the packet and becomes that device. The partner's client
// re-boxes the partner's history for the new device on its next sync, so
// the whole history is readable once both have synced. Having the existing
// device make the keys keeps linking to one step on each device, with
// nothing to wait for; the keys exist only in the two devices' memory and
// sealed on the relay until the code is used or expires.

// DefaultLinkTTL is how long a device link code works.
const DefaultLinkTTL = time.Hour

// Errors about devices and leaving.
var (
	ErrLeft         = errors.New("you have left this journal")
	ErrNoSuchDevice = errors.New("none of your devices matches that")
	// ErrDeviceAmbiguous: more than one of this person's devices matches
	// a name or id prefix.
	ErrDeviceAmbiguous = errors.New("more than one of your devices matches")
	ErrThisDevice      = errors.New("that is the device you are using")
	ErrRelayTooOld     = errors.New("the relay does not support this yet; whoever runs it needs to update it")
	ErrNotALinkCode    = errors.New("that is a partner invite, not a device link code")
	ErrLinkCodeOnly    = errors.New("that is a device link code, not a partner invite")
	errBadLinkPacket   = errors.New("the link code opened, but what it carried did not check out")
	// ErrLinkUnknown: the relay has no link for the code (mistyped,
	// expired or used). It wraps protocol.ErrInviteUnknown.
	ErrLinkUnknown = fmt.Errorf("%w", protocol.ErrInviteUnknown)
)

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// DeviceID is how people name a device: the first 8 hex digits of its
// signing key.
func DeviceID(sign [32]byte) string { return hex.EncodeToString(sign[:4]) }

// linkPacket is what a link code carries, sealed.
type linkPacket struct {
	V            int             `json:"v"` // 1
	Name         string          `json:"name"`
	IdentitySeed []byte          `json:"identity_seed"`
	BoxPrivate   []byte          `json:"box_private"`
	SignSeed     []byte          `json:"sign_seed"`
	Cert         []byte          `json:"cert"`
	Journals     []linkedJournal `json:"journals"`
}

type linkedJournal struct {
	ID      protocol.JournalID `json:"id"`
	Relay   string             `json:"relay"`
	RelayID string             `json:"relay_id"`
	Title   string             `json:"title,omitempty"`
	Created time.Time          `json:"created"`
	Members []Member           `json:"members"`
	Invites []pendingInvite    `json:"invites,omitempty"`
	// Account marks the account journal (accountjournal.go) in a link
	// packet.
	Account bool `json:"account,omitempty"`
}

// selfRecord is what this person tells a partner who joins: every
// current device of theirs, so the partner seals to all of them. Call with
// the lock held.
func (j *Journal) selfRecord(title string) memberRecord {
	r := j.acct.record(title)
	if self := j.st.self(); self != nil {
		r.Devices = nil
		for _, c := range MemberDevices(*self) {
			if self.removed(c.Sign) == nil && crypto.Equal(c.Identity[:], self.Identity) {
				r.Devices = append(r.Devices, c.Raw)
			}
		}
	}
	return r
}

// self returns this person's member record. Call with the lock held.
func (st *state) self() *Member {
	for i := range st.Members {
		if st.Members[i].Self {
			return &st.Members[i]
		}
	}
	return nil
}

// left returns when this person left the journal, or nil. Call with the
// lock held.
func (st *state) left() *time.Time {
	if m := st.self(); m != nil {
		return m.Left
	}
	return nil
}

// hasDevice reports whether one of the device certificates devices is
// for the device with signing key sign.
func hasDevice(devices [][]byte, sign [32]byte) bool {
	for _, raw := range devices {
		if c, err := crypto.ParseDeviceCert(raw); err == nil && c.Sign == sign {
			return true
		}
	}
	return false
}

// IsRemoved reports whether m removed their device with signing key sign.
func IsRemoved(m Member, sign [32]byte) bool { return m.removed(sign) != nil }

// openAll opens every journal in the home; close them with closeAll.
func (a *Account) openAll() ([]*Journal, error) {
	ids, err := a.Journals()
	if err != nil {
		return nil, err
	}
	var js []*Journal
	for _, id := range ids {
		j, err := a.OpenJournal(id)
		if err != nil {
			closeAll(js)
			return nil, err
		}
		js = append(js, j)
	}
	return js, nil
}

func closeAll(js []*Journal) {
	for _, j := range js {
		j.Close()
	}
}

// LinkDevice prepares a new device for this person in every journal this
// device is still in and returns a one-time code for it (see the comment
// at the top of this file). The code holds a secret: show it to the user
// only, never log it.
func (a *Account) LinkDevice(ctx context.Context, name string, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		ttl = DefaultLinkTTL
	}
	name = truncateUTF8(cleanName(name), 64)
	all, err := a.openAll()
	if err != nil {
		return "", time.Time{}, err
	}
	defer closeAll(all)
	var js []*Journal
	for _, j := range all {
		var gone bool
		if err := j.withLock(func() error { gone = j.st.left() != nil; return nil }); err != nil {
			return "", time.Time{}, err
		}
		if !gone {
			js = append(js, j)
		}
	}
	if len(js) == 0 {
		return "", time.Time{}, fmt.Errorf("%w: a new device is linked through a journal's relay, so create or join a journal first", ErrNoJournal)
	}
	// The current journal carries the code and becomes the new device's
	// current journal too.
	if cur, err := a.Current(""); err == nil {
		id := cur.ID()
		cur.Close()
		slices.SortStableFunc(js, func(x, y *Journal) int {
			switch {
			case x.id == id:
				return -1
			case y.id == id:
				return 1
			}
			return 0
		})
	}
	dev, err := crypto.NewDevice(rand.Reader)
	if err != nil {
		return "", time.Time{}, err
	}
	certRaw, err := crypto.NewDeviceCert(a.Identity, dev, name, time.Now())
	if err != nil {
		return "", time.Time{}, err
	}
	cert, err := crypto.ParseDeviceCert(certRaw)
	if err != nil {
		return "", time.Time{}, err
	}
	// Check the code can carry everything before anything is changed:
	// the packet as it will be, give or take what a sync brings in.
	if err := linkPacketFits(js, certRaw); err != nil {
		return "", time.Time{}, err
	}
	// The person's own channel goes along: journals created, joined or
	// left later follow on every device (accountjournal.go). It lives on
	// the relay of the journal that carries the code. One that another
	// device of this person made and named in a journal here is taken up
	// first (applyRoster): making a second would split the person's
	// devices into groups that never hear of each other.
	for _, j := range js {
		if a.HasAccountJournal() {
			break
		}
		if _, err := j.Sync(ctx); err != nil {
			return "", time.Time{}, fmt.Errorf("%s: %w", j.name(), err)
		}
	}
	aj, err := a.ensureAccountJournal(ctx, js[0].relay, js)
	if err != nil {
		return "", time.Time{}, err
	}
	defer aj.Close()
	js = append(js, aj)
	// The relays first: if one cannot be reached, nothing is announced
	// anywhere (a relay that already added the device serves a key that
	// nobody else knows, which is harmless).
	for _, j := range js {
		if err := j.relayAddDevice(ctx, cert.Sign); err != nil {
			return "", time.Time{}, fmt.Errorf("%s: %w", j.name(), err)
		}
	}
	pkt := linkPacket{V: 1, Name: a.Name, IdentitySeed: a.Identity.Private.Seed(), BoxPrivate: dev.BoxPrivate[:], SignSeed: dev.SignPrivate.Seed(), Cert: certRaw}
	for _, j := range js {
		// Learn of anyone who joined since the last sync first, so the
		// new device starts with the whole roster.
		if _, err := j.Sync(ctx); err != nil {
			return "", time.Time{}, fmt.Errorf("%s: %w", j.name(), err)
		}
		if err := j.announceDevice(cert); err != nil {
			return "", time.Time{}, err
		}
		err := j.withLock(func() error {
			// Open invites go along, so a partner who joins before the new
			// device first syncs is recognised there too.
			pkt.Journals = append(pkt.Journals, linkedJournal{ID: j.id, Relay: j.relay, RelayID: j.st.RelayID, Title: j.st.Title, Created: j.st.Created, Members: j.st.Members, Invites: j.st.Invites, Account: j.st.Account})
			return nil
		})
		if err != nil {
			return "", time.Time{}, err
		}
		// Hand the announcement and the re-boxed history over now; a later
		// sync would also do it from the outbox.
		if _, err := j.Sync(ctx); err != nil {
			return "", time.Time{}, fmt.Errorf("%s: %w", j.name(), err)
		}
	}
	plain, err := json.Marshal(pkt)
	clear(pkt.IdentitySeed)
	clear(dev.BoxPrivate[:])
	clear(dev.SignPrivate)
	if err != nil {
		return "", time.Time{}, err
	}
	defer clear(plain)
	var code protocol.InviteCode
	code.Relay, code.Journal, code.Link = js[0].relay, js[0].id, true
	if _, err := rand.Read(code.Secret[:]); err != nil {
		return "", time.Time{}, err
	}
	keys, err := crypto.DeriveLink(code.Secret)
	if err != nil {
		return "", time.Time{}, err
	}
	packet, err := crypto.SealInvitePacket(rand.Reader, keys, code.Journal, plain)
	if err != nil {
		return "", time.Time{}, err
	}
	if len(packet) > protocol.MaxInvitePacket {
		return "", time.Time{}, errLinkTooBig
	}
	expires := time.Now().Add(ttl).UTC().Truncate(time.Second)
	c, err := js[0].dial(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	defer c.Close()
	if _, err := c.request(ctx, func(n uint64) any {
		return &protocol.Invite{Type: protocol.TypeInvite, ID: n, Journal: code.Journal, AuthHash: keys.AuthHash[:], Expires: expires.Unix(), Packet: packet, Link: true}
	}); err != nil {
		return "", time.Time{}, fmt.Errorf("store link: %w", err)
	}
	return code.String(), expires, nil
}

var errLinkTooBig = errors.New("you are in more journals than one link code can carry, so the new device could not be linked")

// linkSlack is room left in a link packet for what the syncs during
// linking may add (a partner's device, an open invite).
const linkSlack = 4 << 10

// linkPacketFits reports errLinkTooBig if a link packet for js, with
// cert among this person's devices, would not fit in an invite packet.
// Key material is left out of the estimate; its size is fixed.
func linkPacketFits(js []*Journal, cert []byte) error {
	draft := linkPacket{V: 1, IdentitySeed: make([]byte, 32), BoxPrivate: make([]byte, 32), SignSeed: make([]byte, 32), Cert: cert}
	for _, j := range js {
		err := j.withLock(func() error {
			lj := linkedJournal{ID: j.id, Relay: j.relay, RelayID: j.st.RelayID, Title: j.st.Title, Created: j.st.Created, Members: j.st.Members, Invites: j.st.Invites}
			lj.Members = append(lj.Members, Member{Devices: [][]byte{cert}})
			draft.Journals = append(draft.Journals, lj)
			return nil
		})
		if err != nil {
			return err
		}
	}
	plain, err := json.Marshal(draft)
	if err != nil {
		return err
	}
	if 24+protocol.JournalIDSize+len(plain)+16+linkSlack > protocol.MaxInvitePacket {
		return errLinkTooBig
	}
	return nil
}

// relayAddDevice asks the journal's relay to serve device as one of this
// person's devices.
func (j *Journal) relayAddDevice(ctx context.Context, device [32]byte) error {
	c, err := j.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.request(ctx, func(n uint64) any {
		return &protocol.AddDevice{Type: protocol.TypeAddDevice, ID: n, Journal: j.id, Device: device[:]}
	})
	if errors.Is(err, protocol.ErrMalformed) {
		return ErrRelayTooOld
	}
	return err
}

// announceDevice adds cert to this person's devices, writes the roster
// record that tells the partner, and re-boxes this device's history for
// it. Doing it again changes nothing.
func (j *Journal) announceDevice(cert *crypto.DeviceCert) error {
	return j.withLock(func() error {
		self := j.st.self()
		if self == nil {
			return errors.New("journal state has no member for you")
		}
		if !hasDevice(self.Devices, cert.Sign) {
			self.Devices = append(self.Devices, cert.Raw)
			if err := j.saveState(); err != nil {
				return err
			}
		}
		if !j.wroteRecord(KindDevice, cert.Raw, j.trust()) {
			if _, err := j.writeLocked(Payload{Kind: KindDevice, Device: cert.Raw}, j.trust().recipients); err != nil {
				return err
			}
		}
		return j.ensureGrants()
	})
}

// wroteRecord reports whether this device already wrote a roster record
// of kind about device. Call with the lock held.
func (m *openIndex) wroteRecord(kind string, device []byte, t *trust) bool {
	opened, _ := m.decryptAll(t)
	me := m.store.signKey
	for _, o := range opened {
		if o.payload.Kind == kind && o.s.Header.Author == me && (device == nil || crypto.Equal(o.payload.Device, device)) {
			return true
		}
	}
	return false
}

// JoinLink sets up a new home from a device link code made on another of
// this person's devices, protected by passphrase. The caller then syncs
// each journal to fetch its history.
func JoinLink(ctx context.Context, home Home, codeText string, passphrase []byte, kdf crypto.KDFParams) (*Account, error) {
	code, err := protocol.ParseInviteCode(codeText)
	if err != nil {
		return nil, err
	}
	if !code.Link {
		return nil, ErrNotALinkCode
	}
	if home.Exists() {
		return nil, ErrHomeExists
	}
	relay, err := NormalizeRelayURL(code.Relay)
	if err != nil {
		return nil, err
	}
	keys, err := crypto.DeriveLink(code.Secret)
	if err != nil {
		return nil, err
	}
	// Redeem with a throwaway key: a link adds no member on the relay.
	tmp, err := crypto.NewDevice(rand.Reader)
	if err != nil {
		return nil, err
	}
	c, err := dialRelay(ctx, relay, crypto.NewKeyring(tmp), "")
	if err != nil {
		return nil, err
	}
	ok, err := c.request(ctx, func(n uint64) any {
		return &protocol.Redeem{Type: protocol.TypeRedeem, ID: n, Token: keys.Token[:]}
	})
	relayID := c.relayID
	c.Close()
	if errors.Is(err, protocol.ErrInviteUnknown) {
		return nil, ErrLinkUnknown
	}
	if err != nil {
		return nil, err
	}
	if ok.Journal == nil || *ok.Journal != code.Journal {
		return nil, fmt.Errorf("%w: the relay answered for a different journal", crypto.ErrInvitePacket)
	}
	plain, err := crypto.OpenInvitePacket(keys, code.Journal, ok.Packet)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	var pkt linkPacket
	if err := json.Unmarshal(plain, &pkt); err != nil || pkt.V != 1 {
		return nil, errBadLinkPacket
	}
	defer clear(pkt.IdentitySeed)
	defer clear(pkt.BoxPrivate)
	defer clear(pkt.SignSeed)
	s := secrets{Version: 1, Name: pkt.Name, IdentitySeed: pkt.IdentitySeed, BoxPrivate: pkt.BoxPrivate, SignSeed: pkt.SignSeed, Cert: pkt.Cert, StorageKey: make([]byte, 32)}
	if _, err := rand.Read(s.StorageKey); err != nil {
		return nil, err
	}
	if _, err := accountFrom(home, &s); err != nil {
		return nil, errBadLinkPacket
	}
	var states []state
	for _, lj := range pkt.Journals {
		u, err := NormalizeRelayURL(lj.Relay)
		if err != nil {
			return nil, errBadLinkPacket
		}
		st := state{Version: 1, ID: lj.ID, Relay: u, RelayID: lj.RelayID, Title: cleanName(lj.Title), Created: lj.Created, Members: lj.Members, Invites: lj.Invites, Account: lj.Account}
		if lj.ID == code.Journal && u == relay && st.RelayID != relayID {
			return nil, fmt.Errorf("%w (%s): nothing was saved", ErrRelayChanged, relay)
		}
		states = append(states, st)
	}
	a, err := createHome(home, &s, passphrase, kdf)
	if err != nil {
		return nil, err
	}
	for _, st := range states {
		dir := a.Home.journalDir(st.ID.String())
		if st.Account {
			dir = a.Home.accountDir(st.ID.String())
		}
		j, err := a.newJournalIn(dir, st)
		if err != nil {
			return a, err
		}
		j.Close()
	}
	if len(states) > 0 {
		if err := a.SetCurrent(code.Journal); err != nil {
			return a, err
		}
	}
	return a, nil
}

// Device is one of this person's devices, as `device list` shows it.
type Device struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Created time.Time  `json:"created"`
	This    bool       `json:"this_device"`
	Removed *time.Time `json:"removed,omitempty"`
	// LastSync is when the device last synced, as far as this device
	// knows: from the account records it wrote (within an hour), or this
	// device's own last sync. Nil when nothing says.
	LastSync *time.Time `json:"last_sync,omitempty"`
	sign     [32]byte
	raw      []byte // the certificate
}

// Devices lists this person's devices known in any journal here and in
// the record the person's devices share, this device first, then by when
// they were made.
func (a *Account) Devices() ([]Device, error) {
	js, err := a.openAll()
	if err != nil {
		return nil, err
	}
	defer closeAll(js)
	aj, err := a.openAccountJournal()
	switch {
	case err == nil:
		defer aj.Close()
		js = append(js, aj)
	case !errors.Is(err, ErrNoAccountJournal):
		return nil, err
	}
	devs, err := a.devicesIn(js)
	if err != nil {
		return nil, err
	}
	seen := make(map[[32]byte]time.Time)
	for _, j := range js {
		err := j.withLock(func() error {
			if !j.st.LastSync.IsZero() && j.st.LastSync.After(seen[a.Cert.Sign]) {
				seen[a.Cert.Sign] = j.st.LastSync
			}
			if !j.st.Account {
				return nil
			}
			opened, _ := j.decryptAll(j.trust())
			for _, o := range opened {
				if o.payload.Kind == KindAccount && o.payload.Created.After(seen[o.s.Header.Author]) {
					seen[o.s.Header.Author] = o.payload.Created
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for i := range devs {
		if t, ok := seen[devs[i].sign]; ok {
			devs[i].LastSync = &t
		}
	}
	return devs, nil
}

// devicesIn lists this person's devices known in the open journals js,
// as Devices does.
func (a *Account) devicesIn(js []*Journal) ([]Device, error) {
	byKey := map[[32]byte]*Device{a.Cert.Sign: {ID: DeviceID(a.Cert.Sign), Name: a.Cert.Name, Created: a.Cert.Created, This: true, sign: a.Cert.Sign, raw: a.Cert.Raw}}
	for _, j := range js {
		err := j.withLock(func() error {
			self := j.st.self()
			if self == nil {
				return nil
			}
			for _, c := range MemberDevices(*self) {
				d := byKey[c.Sign]
				if d == nil {
					d = &Device{ID: DeviceID(c.Sign), Name: c.Name, Created: c.Created, sign: c.Sign, raw: c.Raw}
					byKey[c.Sign] = d
				}
				if r := self.removed(c.Sign); r != nil && d.Removed == nil {
					at := r.At
					d.Removed = &at
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	out := make([]Device, 0, len(byKey))
	for _, d := range byKey {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, k int) bool {
		if out[i].This != out[k].This {
			return out[i].This
		}
		return out[i].Created.Before(out[k].Created)
	})
	return out, nil
}

// findDevice finds one of this person's devices known in the open
// journals js by id prefix (at least 4 hex digits) or by exact name.
func (a *Account) findDevice(js []*Journal, which string) (*Device, error) {
	devs, err := a.devicesIn(js)
	if err != nil {
		return nil, err
	}
	which = strings.TrimSpace(which)
	var found []*Device
	for i := range devs {
		d := &devs[i]
		if strings.EqualFold(d.Name, which) || len(which) >= 4 && strings.HasPrefix(d.ID, strings.ToLower(which)) {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w %q", ErrNoSuchDevice, which)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%w %q", ErrDeviceAmbiguous, which)
}

// RemoveDevice removes one of this person's other devices from every
// journal here: the relays refuse it at once, nothing written afterwards
// is sealed to it, and the partner's client is told. It returns the device
// and how many journals it was removed from; when one could not be done,
// it goes on with the others and returns the first failure too.
func (a *Account) RemoveDevice(ctx context.Context, which string) (*Device, int, error) {
	// Learn first of journals created or joined on the person's other
	// devices, so the device is removed from those too. Those this sync
	// misses are aligned by the other devices when they next sync.
	_, _ = a.SyncAccount(ctx)
	js, err := a.openAll()
	if err != nil {
		return nil, 0, err
	}
	defer closeAll(js)
	aj, err := a.openAccountJournal()
	switch {
	case err == nil:
		// The shared record first: once the device is out of it, the
		// person's other devices remove it from every journal at their
		// next sync (alignDevices), even one whose relay cannot be
		// reached now.
		defer aj.Close()
		js = append([]*Journal{aj}, js...)
	case !errors.Is(err, ErrNoAccountJournal):
		return nil, 0, err
	}
	d, err := a.findDevice(js, which)
	if err != nil {
		return nil, 0, err
	}
	if d.This {
		return d, 0, ErrThisDevice
	}
	// A journal that cannot be done now does not keep the device in the
	// others: a lost device is cut off wherever it can be. The first
	// failure is returned; running it again, or the person's other
	// devices (alignDevices), finish the rest.
	n := 0
	var first error
	for _, j := range js {
		var in, gone, own bool
		err := j.withLock(func() error {
			self := j.st.self()
			in = self != nil && hasDevice(self.Devices, d.sign) && self.removed(d.sign) == nil
			gone, own = j.st.left() != nil, j.st.Account
			return nil
		})
		if err != nil {
			return d, n, err
		}
		if !in || gone {
			continue
		}
		if err := j.removeOwnDevice(ctx, d.sign); err != nil {
			if first == nil {
				first = fmt.Errorf("%s: %w", j.name(), err)
			}
			continue
		}
		if !own {
			n++
		}
	}
	return d, n, first
}

func (j *Journal) removeOwnDevice(ctx context.Context, sign [32]byte) error {
	c, err := j.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.request(ctx, func(n uint64) any {
		return &protocol.RemoveDevice{Type: protocol.TypeRemoveDevice, ID: n, Journal: j.id, Device: sign[:]}
	})
	switch {
	case errors.Is(err, protocol.ErrMalformed):
		return ErrRelayTooOld
	case errors.Is(err, protocol.ErrNotFound):
		// The relay no longer serves it: removed already.
	case err != nil:
		return err
	}
	// The relay takes nothing more from the device now. Fetch what it
	// stored before that, so the line drawn below (its last readable
	// blob) leaves none of its earlier words out.
	x := &exchange{j: j, c: c}
	if _, err := x.pull(ctx); err != nil {
		return err
	}
	err = j.withLock(func() error {
		last := j.lastSeq(sign)
		self := j.st.self()
		if self.removed(sign) == nil {
			self.Removed = append(self.Removed, RemovedDevice{Sign: sign[:], Last: last, At: time.Now().UTC()})
			if err := j.saveState(); err != nil {
				return err
			}
		}
		if !j.wroteRecord(KindDeviceRemoved, sign[:], j.trust()) {
			_, err := j.writeLocked(Payload{Kind: KindDeviceRemoved, Device: sign[:], Seq: last}, j.trust().recipients)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = x.push(ctx)
	return err
}

// Leave takes this person out of the journal: the partner is told, the
// relay stops serving every device of this person, and nothing written
// afterwards is sealed to them. What is already on this device stays
// readable here (export it with `kintsugi export`); the partner keeps what
// they already read.
func (j *Journal) Leave(ctx context.Context) error {
	var gone *time.Time
	var told bool
	if err := j.withLock(func() error { gone, told = j.st.left(), j.st.LeftRelay; return nil }); err != nil {
		return err
	}
	if gone != nil && told {
		return leftError(*gone)
	}
	// Reach the relay before writing anything, so a failure changes
	// nothing.
	c, err := j.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if gone == nil {
		// Tell the partner first. (When gone is set, the leave record is
		// already written, here or on another of this person's devices,
		// and only the relay is left to tell.)
		err = j.withLock(func() error {
			if j.wroteRecord(KindLeave, nil, j.trust()) {
				return nil // an earlier attempt wrote it
			}
			_, err := j.writeLocked(Payload{Kind: KindLeave}, j.trust().recipients)
			return err
		})
		if err != nil {
			return err
		}
		if _, err := (&exchange{j: j, c: c}).push(ctx); err != nil {
			return err
		}
	}
	_, err = c.request(ctx, func(n uint64) any {
		return &protocol.Leave{Type: protocol.TypeLeave, ID: n, Journal: j.id}
	})
	switch {
	case errors.Is(err, protocol.ErrMalformed):
		return ErrRelayTooOld
	case errors.Is(err, protocol.ErrNotMember):
		// Already out on the relay (another of this person's devices left).
	case err != nil:
		return err
	}
	return j.withLock(func() error {
		if self := j.st.self(); self.Left == nil {
			now := time.Now().UTC()
			self.Left = &now
		}
		j.st.LeftRelay = true
		return j.saveState()
	})
}

// applyRoster applies the roster records this device can read (devices
// added or removed, people leaving, invites made on the person's other
// devices) until nothing changes, since a device one record adds may have
// written the next. It returns the roster changes to tell the person
// about, and records problems as notices. Call with the lock held.
func (j *Journal) applyRoster() ([]Notice, error) {
	var notices []Notice
	me := j.signKey
	changed := false
	warn := func(n Notice, s *stored) {
		if j.st.raise(n, s.RelaySeq) {
			changed = true
		}
	}
	for range 16 {
		opened, _ := j.decryptAll(j.trust())
		sort.Slice(opened, func(a, b int) bool { return opened[a].s.Order < opened[b].s.Order })
		more := false
		for _, o := range opened {
			if !rosterKinds[o.payload.Kind] {
				continue
			}
			m := o.author.member
			switch o.payload.Kind {
			case KindDevice:
				c, err := crypto.ParseDeviceCert(o.payload.Device)
				if err != nil || !crypto.Equal(c.Identity[:], m.Identity) || crypto.CheckBoxKey(c.Box) != nil {
					warn(Notice{Kind: NoticeDeviceInvalid, Who: m.Name}, o.s)
					continue
				}
				if hasDevice(m.Devices, c.Sign) {
					continue
				}
				if collides(&memberRecord{Identity: m.Identity, Devices: [][]byte{c.Raw}}, j.trust().roster) {
					warn(Notice{Kind: NoticeDeviceCollides, Who: m.Name}, o.s)
					continue
				}
				m.Devices = append(m.Devices, c.Raw)
				more = true
				if !m.Self {
					notices = append(notices, rosterNotice(Notice{Kind: NoticeDeviceAdded, Who: m.Name, Device: cleanName(c.Name), DeviceID: DeviceID(c.Sign)}))
				}
			case KindDeviceRemoved:
				if len(o.payload.Device) != 32 {
					continue
				}
				sign := [32]byte(o.payload.Device)
				if !hasDevice(m.Devices, sign) || m.removed(sign) != nil {
					continue
				}
				m.Removed = append(m.Removed, RemovedDevice{Sign: sign[:], Last: o.payload.Seq, At: o.payload.Created})
				more = true
				switch {
				case sign == me:
					warn(Notice{Kind: NoticeThisDeviceRemoved}, o.s)
				case !m.Self:
					notices = append(notices, rosterNotice(Notice{Kind: NoticeDeviceRemoved, Who: m.Name, DeviceID: DeviceID(sign)}))
				}
			case KindLeave:
				if m.Left != nil {
					continue
				}
				at := o.payload.Created
				m.Left = &at
				more = true
				if !m.Self {
					n := Notice{Kind: NoticePartnerLeft, Who: m.Name, Date: at}
					warn(n, o.s)
					notices = append(notices, rosterNotice(n))
				}
			case KindAccountJournal:
				if !m.Self || o.s.Header.Author == me {
					continue
				}
				if p, err := j.fullPayload(o); err == nil {
					if err := j.acct.takeUpAccountJournal(&p); err != nil {
						return notices, err
					}
				}
			case KindInvite:
				// An invite made on another of this person's devices, so
				// this one can open the join that answers it too.
				if !m.Self || o.s.Header.Author == me || len(o.payload.Secret) != 32 || o.payload.Expires == nil || !time.Now().Before(*o.payload.Expires) {
					continue
				}
				if j.st.knowsInvite(o.payload.Secret, &j.logIndex) {
					continue
				}
				j.st.Invites = append(j.st.Invites, pendingInvite{Secret: o.payload.Secret, Expires: *o.payload.Expires, Again: o.payload.Again})
				more = true
			}
		}
		if !more {
			break
		}
		changed = true
	}
	if changed {
		return notices, j.saveState()
	}
	return notices, nil
}

// knowsInvite reports whether the invite with secret is pending here or
// was answered by a join this device accepted. Call with the lock held.
func (st *state) knowsInvite(secret []byte, l *logIndex) bool {
	for _, inv := range st.Invites {
		if crypto.Equal(inv.Secret, secret) {
			return true
		}
	}
	keys, err := crypto.DeriveInvite([32]byte(secret))
	if err != nil {
		return true
	}
	for _, s := range st.acceptedJoins(l) {
		if s.Purged {
			continue
		}
		if jb, err := protocol.ParseJoin(l.raw(s)); err == nil && jb.InviteHash == keys.AuthHash {
			return true
		}
	}
	return false
}

// rosterNotice completes a roster change said once (SyncResult.Notices).
func rosterNotice(n Notice) Notice {
	n.ID, n.Count, n.Since = noticeID(n.Kind, n.Who), 1, time.Now().UTC()
	return n
}
