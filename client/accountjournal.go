package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// A person's own channel: the account journal.
//
// A person whose devices were linked shares one more journal between
// those devices, on a relay, whose only member is that person: the account
// journal. The relay cannot tell it from any other journal with one person
// in it, and the partner never learns of it. Its entries are account
// records (KindAccount), each device's word on which journals the person
// is in (with what a device needs to open them), which partners it
// verified, and when it last synced; and the roster records of every
// journal (KindDevice, KindDeviceRemoved), which make its roster the list
// of the person's current devices.
//
// Because it is an ordinary journal, what protects a journal protects it:
// records are sealed to the person's current devices only; each device's
// records form a hash chain, so one the relay drops is a gap that is
// named, one it forges does not open, and a relay rolled back is refused;
// and a removed device is refused by the relay and sealed nothing new.
//
// Records merge without conflict, so the order they arrive in, or an old
// one served again, changes nothing: journals are a set, and leaving,
// verifying and removing a device are one-way. After each sync of the
// account journal (SyncAccount) a device takes in what the others said
// (adopting journals it lacks), brings every journal's roster in line
// with the account journal's (adding the person's new devices, removing
// revoked ones), and writes its own record when its word changed or an
// hour has passed (so `device list` can say when each device last synced).

// KindAccount is an account record: Account holds the writing device's
// journals, and Created when it synced. Only written in the account
// journal.
const KindAccount = "account"

// KindAccountJournal hands the account journal to the person's devices
// that were linked before it existed: a roster record in a journal they
// share, sealed to the person's own devices only, whose Account names the
// account journal (one element, with Account set). A device without an
// account journal takes it up from the first one it reads.
const KindAccountJournal = "account-journal"

// accountRecord is what an account record says (Payload.Account).
type accountRecord struct {
	Journals []linkedJournal `json:"journals"`
}

// accountRefresh is how old this device's last account record may grow
// before a sync writes one again when nothing else changed: how exact
// "last synced" is in `device list`.
const accountRefresh = time.Hour

// accountDir is where the account journal of a home lives, apart from the
// journals commands act on.
func (h Home) accountDir(id string) string { return filepath.Join(h.Dir, "account", id) }

// ErrNoAccountJournal: this home has no account journal (no device was
// linked since devices started sharing one).
var ErrNoAccountJournal = errors.New("this device shares no record with your other devices yet")

// openAccountJournal opens the account journal, or returns
// ErrNoAccountJournal.
func (a *Account) openAccountJournal() (*Journal, error) {
	dir, err := a.accountJournalDir()
	if err != nil {
		return nil, err
	}
	return a.openJournalDir(dir)
}

// accountJournalDir returns the account journal's directory, or
// ErrNoAccountJournal.
func (a *Account) accountJournalDir() (string, error) {
	ents, err := os.ReadDir(filepath.Join(a.Home.Dir, "account"))
	if err != nil && !os.IsNotExist(err) {
		return "", err
	}
	for _, e := range ents {
		if _, err := protocol.ParseJournalID(e.Name()); err == nil && hasState(a.Home.accountDir(e.Name())) {
			return a.Home.accountDir(e.Name()), nil
		}
	}
	return "", ErrNoAccountJournal
}

// HasAccountJournal reports whether this device shares an account journal
// with the person's other devices.
func (a *Account) HasAccountJournal() bool {
	_, err := a.accountJournalDir()
	return err == nil
}

// ensureAccountJournal opens the account journal, creating it on relay
// when there is none yet. A new one starts with this person's current
// devices known in js.
func (a *Account) ensureAccountJournal(ctx context.Context, relay string, js []*Journal) (*Journal, error) {
	aj, err := a.openAccountJournal()
	if !errors.Is(err, ErrNoAccountJournal) {
		return aj, err
	}
	var id protocol.JournalID
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	self := a.selfMember()
	devs, err := a.devicesIn(js)
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if !d.This && d.Removed == nil {
			self.Devices = append(self.Devices, d.raw)
		}
	}
	c, err := dialRelay(ctx, relay, a.keys, "")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.request(ctx, func(n uint64) any {
		return &protocol.Create{Type: protocol.TypeCreate, ID: n, Journal: id}
	}); err != nil {
		return nil, fmt.Errorf("create the record your devices share: %w", err)
	}
	for _, d := range devs {
		if d.This || d.Removed != nil {
			continue
		}
		if _, err := c.request(ctx, func(n uint64) any {
			return &protocol.AddDevice{Type: protocol.TypeAddDevice, ID: n, Journal: id, Device: d.sign[:]}
		}); err != nil {
			if errors.Is(err, protocol.ErrMalformed) {
				return nil, ErrRelayTooOld
			}
			return nil, err
		}
	}
	st := state{Version: 1, ID: id, Relay: relay, RelayID: c.relayID, Created: time.Now().UTC(), Members: []Member{self}, Account: true}
	aj, err = a.newJournalIn(a.Home.accountDir(id.String()), st)
	if err != nil {
		return nil, err
	}
	// Devices linked before there was an account journal learn of it
	// from a record in the journals they share with this one.
	if len(self.Devices) > 1 {
		lj := linkedJournal{ID: st.ID, Relay: st.Relay, RelayID: st.RelayID, Created: st.Created, Members: st.Members, Account: true}
		for _, j := range js {
			err := j.withLock(func() error {
				if j.st.writable(j.signKey) != nil || len(j.trust().own) < 2 {
					return nil
				}
				_, err := j.writeLocked(Payload{Kind: KindAccountJournal, Account: &accountRecord{Journals: []linkedJournal{lj}}}, j.trust().own)
				return err
			})
			if err != nil {
				aj.Close()
				return nil, err
			}
		}
	}
	return aj, nil
}

// takeUpAccountJournal makes the account journal that p, a
// KindAccountJournal record from another of this person's devices, names,
// if this home has none yet and it lists this device.
func (a *Account) takeUpAccountJournal(p *Payload) error {
	if p.Account == nil || len(p.Account.Journals) != 1 || !p.Account.Journals[0].Account {
		return nil
	}
	if _, err := a.accountJournalDir(); !errors.Is(err, ErrNoAccountJournal) {
		return nil // has one, or cannot tell: leave it
	}
	st, ok := a.adoptable(p.Account.Journals[0])
	if !ok {
		return nil
	}
	st.Account = true
	aj, err := a.newJournalIn(a.Home.accountDir(st.ID.String()), st)
	if err != nil {
		return err
	}
	return aj.Close()
}

// AccountResult is what a sync of the account journal brought.
type AccountResult struct {
	// Added are the journals that followed here from the person's other
	// devices (created or joined there), by title (or id when untitled).
	Added []JournalName
	// Left are the journals the person left on another device.
	Left []JournalName
	// Verified are partners whose safety number the person confirmed on
	// another device, by name.
	Verified []string
	// DevicesAdded and DevicesRemoved count the journals whose roster
	// this device brought in line with the person's devices.
	DevicesAdded, DevicesRemoved int
}

// JournalName names a journal for people.
type JournalName struct {
	ID    protocol.JournalID `json:"id"`
	Title string             `json:"title,omitempty"`
}

// SyncAccount syncs the account journal and follows what it says (see the
// comment at the top of this file). With no account journal it returns
// ErrNoAccountJournal and changes nothing.
func (a *Account) SyncAccount(ctx context.Context) (*AccountResult, error) {
	aj, err := a.openAccountJournal()
	if err != nil {
		return nil, err
	}
	defer aj.Close()
	if _, err := aj.Sync(ctx); err != nil {
		return nil, err
	}
	res := &AccountResult{}
	records, err := aj.accountRecords()
	if err != nil {
		return nil, err
	}
	// Each journal is opened once here: opening a long one reads its
	// checkpoint.
	js, err := a.openAll()
	if err != nil {
		return res, err
	}
	defer func() { closeAll(js) }()
	if err := a.takeIn(records, &js, res); err != nil {
		return res, err
	}
	// A journal whose relay cannot be reached now is aligned at a later
	// sync; the others, and this device's record, go ahead.
	alignErr := a.alignDevices(ctx, aj, js, res)
	wrote, err := a.writeAccountRecord(aj, js)
	if err != nil {
		return res, errors.Join(alignErr, err)
	}
	if wrote {
		if _, err := aj.Sync(ctx); err != nil {
			return res, errors.Join(alignErr, err)
		}
	}
	return res, alignErr
}

// heardRecord is one account record from another device.
type heardRecord struct {
	author  [32]byte
	created time.Time
	rec     accountRecord
}

// accountRecords returns, for each of the person's other devices, its
// newest account record that decodes, in log order. A device's records
// only add (its journals, left, verified), so its newest says all its
// earlier ones did: reading only that keeps a sync as quick after a year
// of records as after one.
func (aj *Journal) accountRecords() ([]heardRecord, error) {
	var out []heardRecord
	err := aj.withLock(func() error {
		opened, _ := aj.decryptAll(aj.trust())
		byAuthor := make(map[[32]byte][]*openedEntry)
		var order [][32]byte
		for _, o := range opened {
			if o.payload.Kind != KindAccount || !o.author.member.Self || o.s.Header.Author == aj.signKey {
				continue
			}
			author := o.s.Header.Author
			if byAuthor[author] == nil {
				order = append(order, author)
			}
			byAuthor[author] = append(byAuthor[author], o)
		}
		for _, author := range order {
			recs := byAuthor[author]
			sort.Slice(recs, func(x, y int) bool { return recs[x].s.Header.Seq > recs[y].s.Header.Seq })
			for _, o := range recs {
				p, err := aj.fullPayload(o)
				if err != nil || p.Account == nil {
					continue
				}
				out = append(out, heardRecord{author: author, created: p.Created, rec: *p.Account})
				break
			}
		}
		return nil
	})
	return out, err
}

// fullPayload reads back and decodes the whole payload of an opened
// entry. Call with the lock held.
func (m *openIndex) fullPayload(o *openedEntry) (Payload, error) {
	e, err := protocol.ParseEntry(m.store.raw(o.s))
	if err != nil {
		return Payload{}, err
	}
	return openPayload(e, crypto.ContentKey{Key: o.key, Hash: e.ContentHash()})
}

// takeIn adopts the journals other devices are in and this one lacks
// (adding them, open, to *js, the journals of the home, open), and follows
// leaving and verifying done on them.
func (a *Account) takeIn(records []heardRecord, js *[]*Journal, res *AccountResult) error {
	have := make(map[protocol.JournalID]*Journal, len(*js))
	for _, j := range *js {
		have[j.id] = j
	}
	for _, r := range records {
		for _, lj := range r.rec.Journals {
			if j := have[lj.ID]; j != nil {
				if err := followJournal(j, lj, res); err != nil {
					return err
				}
				continue
			}
			st, ok := a.adoptable(lj)
			if !ok {
				continue
			}
			j, err := a.newJournalIn(a.Home.journalDir(lj.ID.String()), st)
			if err != nil {
				return err
			}
			*js = append(*js, j)
			have[lj.ID] = j
			res.Added = append(res.Added, JournalName{ID: lj.ID, Title: st.Title})
		}
	}
	return nil
}

// adoptable returns the state for a journal another device is in, and
// reports whether this device can take it up: it is not left, and that
// device counts this one among the person's current devices there (else
// this device is no member on its relay yet; alignDevices on that device
// adds it, and a later record says so).
func (a *Account) adoptable(lj linkedJournal) (state, bool) {
	u, err := NormalizeRelayURL(lj.Relay)
	if err != nil {
		return state{}, false
	}
	st := state{Version: 1, ID: lj.ID, Relay: u, RelayID: lj.RelayID, Title: cleanName(lj.Title), Created: lj.Created, Members: lj.Members, Invites: lj.Invites}
	self := st.self()
	if self == nil || self.Left != nil || !crypto.Equal(self.Identity, a.Identity.Public) {
		return state{}, false
	}
	if !hasDevice(self.Devices, a.Cert.Sign) || self.removed(a.Cert.Sign) != nil {
		return state{}, false
	}
	return st, true
}

// followJournal applies to journal j, open, what another device says of
// it (lj): that the person left it, or verified the partner there.
func followJournal(j *Journal, lj linkedJournal, res *AccountResult) error {
	var said *Member
	for i := range lj.Members {
		if lj.Members[i].Self {
			said = &lj.Members[i]
		}
	}
	return j.withLock(func() error {
		self := j.st.self()
		if self == nil {
			return nil
		}
		changed := false
		if said != nil && said.Left != nil && self.Left == nil {
			at := *said.Left
			self.Left, j.st.LeftRelay = &at, true
			res.Left = append(res.Left, JournalName{ID: j.id, Title: j.st.Title})
			changed = true
		}
		for _, m := range lj.Members {
			if m.Self || !m.Verified {
				continue
			}
			for i := range j.st.Members {
				p := &j.st.Members[i]
				if p.Self {
					continue
				}
				switch {
				case p.Pending != nil && crypto.Equal(p.Pending.Identity, m.Identity):
					p.acceptIdentity(p.Pending, j.lastSeq)
					p.Verified = true
				case !p.Verified && crypto.Equal(p.Identity, m.Identity):
					p.Verified = true
				default:
					continue
				}
				res.Verified = append(res.Verified, p.Name)
				changed = true
			}
		}
		if !changed {
			return nil
		}
		if err := j.saveState(); err != nil {
			return err
		}
		if j.st.left() != nil {
			return nil
		}
		return j.ensureGrants()
	})
}

// alignDevices brings the roster of every journal here in line with the
// account journal's: a current device of the person missing from a
// journal is added there (on its relay, announced, history re-boxed), and
// one removed in the account journal is removed there too. So a journal
// joined on one device reaches the others, and a revoked device is
// removed from journals the revoking device did not know of.
func (a *Account) alignDevices(ctx context.Context, aj *Journal, js []*Journal, res *AccountResult) error {
	var current []*crypto.DeviceCert
	var removed [][32]byte
	err := aj.withLock(func() error {
		self := aj.st.self()
		if self == nil {
			return nil
		}
		for _, c := range MemberDevices(*self) {
			if self.removed(c.Sign) != nil {
				removed = append(removed, c.Sign)
			} else if c.Sign != a.Cert.Sign {
				current = append(current, c)
			}
		}
		return nil
	})
	if err != nil || len(current)+len(removed) == 0 {
		return err
	}
	var errs []error
	for _, j := range js {
		var add []*crypto.DeviceCert
		var drop [][32]byte
		err := j.withLock(func() error {
			self := j.st.self()
			if self == nil || j.st.left() != nil || j.st.writable(j.signKey) != nil {
				return nil
			}
			for _, c := range current {
				if !hasDevice(self.Devices, c.Sign) {
					add = append(add, c)
				}
			}
			for _, sign := range removed {
				if hasDevice(self.Devices, sign) && self.removed(sign) == nil {
					drop = append(drop, sign)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := alignJournal(ctx, j, add, drop, res); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", j.name(), err))
		}
	}
	return errors.Join(errs...)
}

// alignJournal adds the devices add to journal j and removes drop from
// it (see alignDevices).
func alignJournal(ctx context.Context, j *Journal, add []*crypto.DeviceCert, drop [][32]byte, res *AccountResult) error {
	for _, c := range add {
		if err := j.relayAddDevice(ctx, c.Sign); err != nil {
			return err
		}
		if err := j.announceDevice(c); err != nil {
			return err
		}
	}
	if len(add) > 0 {
		res.DevicesAdded++
		if _, err := j.Sync(ctx); err != nil {
			return err
		}
	}
	for _, sign := range drop {
		if err := j.removeOwnDevice(ctx, sign); err != nil {
			return err
		}
	}
	if len(drop) > 0 {
		res.DevicesRemoved++
	}
	return nil
}

// ownRecord is this device's word on its journals js, as an account
// record says it.
func ownRecord(js []*Journal) (accountRecord, error) {
	rec := accountRecord{Journals: []linkedJournal{}}
	for _, j := range js {
		err := j.withLock(func() error {
			rec.Journals = append(rec.Journals, linkedJournal{ID: j.id, Relay: j.relay, RelayID: j.st.RelayID, Title: j.st.Title, Created: j.st.Created, Members: j.st.Members, Invites: j.st.Invites})
			return nil
		})
		if err != nil {
			return accountRecord{}, err
		}
	}
	sort.Slice(rec.Journals, func(x, y int) bool { return rec.Journals[x].ID.String() < rec.Journals[y].ID.String() })
	return rec, nil
}

// writeAccountRecord writes this device's account record (on the
// journals js, every one in the home) in the account
// journal if what it says changed since the last one this device wrote,
// or that one is older than accountRefresh. It reports whether it wrote.
func (a *Account) writeAccountRecord(aj *Journal, js []*Journal) (bool, error) {
	rec, err := ownRecord(js)
	if err != nil {
		return false, err
	}
	now, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	wrote := false
	err = aj.withLock(func() error {
		if aj.st.writable(aj.signKey) != nil {
			return nil // removed, or restoring: nothing could be sent
		}
		opened, _ := aj.decryptAll(aj.trust())
		for i := len(opened) - 1; i >= 0; i-- {
			o := opened[i]
			if o.payload.Kind != KindAccount || o.s.Header.Author != aj.signKey {
				continue
			}
			p, err := aj.fullPayload(o)
			if err == nil && p.Account != nil && time.Since(p.Created) < accountRefresh {
				if last, err := json.Marshal(p.Account); err == nil && string(last) == string(now) {
					return nil
				}
			}
			break
		}
		if _, err := aj.writeLocked(Payload{Kind: KindAccount, Account: &rec}, aj.trust().recipients); err != nil {
			return err
		}
		wrote = true
		return nil
	})
	return wrote, err
}

// name names the journal in an error: its title, or what the account
// journal is to people.
func (j *Journal) name() string {
	var own bool
	_ = j.withLock(func() error { own = j.st.Account; return nil })
	if own {
		return "the record your devices share"
	}
	return fmt.Sprintf("journal %q", j.Title())
}

// AccountStatus is the status of the record the person's devices share:
// what a relay did to it (items missing or changed, forged, replayed) is
// said there, as for any journal. It returns ErrNoAccountJournal when
// there is none.
func (a *Account) AccountStatus() (Status, error) {
	aj, err := a.openAccountJournal()
	if err != nil {
		return Status{}, err
	}
	defer aj.Close()
	return aj.Status()
}

// AcknowledgeAccountNotices marks the notices of the shared record read,
// as Journal.AcknowledgeAll does, and returns how many. With no account
// journal there is nothing to mark.
func (a *Account) AcknowledgeAccountNotices() (int, error) {
	aj, err := a.openAccountJournal()
	if errors.Is(err, ErrNoAccountJournal) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer aj.Close()
	return aj.AcknowledgeAll()
}

// AccountJournalID returns the id of the record the person's devices
// share, or ErrNoAccountJournal.
func (a *Account) AccountJournalID() (protocol.JournalID, error) {
	aj, err := a.openAccountJournal()
	if err != nil {
		return protocol.JournalID{}, err
	}
	defer aj.Close()
	return aj.ID(), nil
}
