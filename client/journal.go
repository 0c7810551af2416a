package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// DefaultInviteTTL is how long an invite code works.
const DefaultInviteTTL = 24 * time.Hour

// memberRecord is what partners exchange under the invite key: who they
// are and which devices speak for them. The inviter's record also carries
// the journal's title.
type memberRecord struct {
	V        int      `json:"v"` // 1
	Name     string   `json:"name"`
	Identity []byte   `json:"identity"`
	Devices  [][]byte `json:"devices"`
	Title    string   `json:"title,omitempty"`
}

func (a *Account) record(title string) memberRecord {
	return memberRecord{V: 1, Name: a.Name, Identity: a.Identity.Public, Devices: [][]byte{a.Cert.Raw}, Title: title}
}

func (a *Account) selfMember() Member {
	return Member{Name: a.Name, Identity: a.Identity.Public, Devices: [][]byte{a.Cert.Raw}, Self: true, Joined: time.Now().UTC()}
}

// errBadRecord means a partner's record did not check out.
var errBadRecord = errors.New("the partner's details did not check out")

// parseRecord checks a member record: an identity key, at least one device
// certificate signed by it, and a printable name.
func parseRecord(b []byte) (*memberRecord, error) {
	var r memberRecord
	if err := json.Unmarshal(b, &r); err != nil || r.V != 1 || len(r.Identity) != 32 || len(r.Devices) == 0 || len(r.Devices) > protocol.MaxRecipients {
		return nil, errBadRecord
	}
	for _, raw := range r.Devices {
		c, err := crypto.ParseDeviceCert(raw)
		if err != nil || !crypto.Equal(c.Identity[:], r.Identity) || crypto.CheckBoxKey(c.Box) != nil {
			return nil, errBadRecord
		}
	}
	r.Name = cleanName(r.Name)
	if r.Name == "" {
		r.Name = "your partner"
	}
	r.Title = cleanName(r.Title)
	return &r, nil
}

// cleanName drops control characters (which could drive the terminal) and
// bounds the length of names and titles that come from the other side.
func cleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > 80 {
		s = string(r[:80])
	}
	return s
}

// CreateJournal creates a journal on the relay with this device as its
// first member, and makes it the current journal.
func (a *Account) CreateJournal(ctx context.Context, relay, title string) (*Journal, error) {
	u, err := NormalizeRelayURL(relay)
	if err != nil {
		return nil, err
	}
	var id protocol.JournalID
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	c, err := dialRelay(ctx, u, a.keys, "")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.request(ctx, func(n uint64) any {
		return &protocol.Create{Type: protocol.TypeCreate, ID: n, Journal: id}
	}); err != nil {
		return nil, fmt.Errorf("create journal: %w", err)
	}
	st := state{Version: 1, ID: id, Relay: u, RelayID: c.relayID, Title: cleanName(title), Created: time.Now().UTC(), Members: []Member{a.selfMember()}}
	return a.newJournal(st)
}

func (a *Account) newJournal(st state) (*Journal, error) {
	j, err := a.newJournalIn(a.Home.journalDir(st.ID.String()), st)
	if err != nil {
		return nil, err
	}
	if err := a.SetCurrent(st.ID); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

// newJournalIn saves st as a new journal in dir and opens it.
func (a *Account) newJournalIn(dir string, st state) (*Journal, error) {
	if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
		return nil, fmt.Errorf("this home already has journal %s", st.ID)
	}
	j, err := a.openJournalDir(dir)
	if err != nil {
		return nil, err
	}
	j.id, j.relay = st.ID, st.Relay
	err = j.withLock(func() error {
		j.st = st
		return j.saveState()
	})
	if err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

// SetCurrent makes id the journal commands act on.
func (a *Account) SetCurrent(id protocol.JournalID) error {
	return writeFileAtomic(filepath.Join(a.Home.Dir, "current"), []byte(id.String()+"\n"), false)
}

// Journals lists the ids of the journals in this home.
func (a *Account) Journals() ([]protocol.JournalID, error) {
	ents, err := os.ReadDir(filepath.Join(a.Home.Dir, "journals"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []protocol.JournalID
	for _, e := range ents {
		if id, err := protocol.ParseJournalID(e.Name()); err == nil && hasState(a.Home.journalDir(e.Name())) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Current opens the journal commands act on: the one which names if not
// empty (see FindJournal), else the current one (SetCurrent: the one last
// chosen, created or joined).
func (a *Account) Current(which string) (*Journal, error) {
	id, err := a.CurrentID(which)
	if err != nil {
		return nil, err
	}
	return a.OpenJournal(id)
}

// CurrentID is the id of the journal Current would open, without opening
// it.
func (a *Account) CurrentID(which string) (protocol.JournalID, error) {
	ids, err := a.Journals()
	if err != nil {
		return protocol.JournalID{}, err
	}
	if len(ids) == 0 {
		return protocol.JournalID{}, ErrNoJournal
	}
	if which == "" {
		b, err := os.ReadFile(filepath.Join(a.Home.Dir, "current"))
		if err != nil {
			return ids[0], nil
		}
		which = strings.TrimSpace(string(b))
	}
	return a.FindJournal(which)
}

// FindJournal returns the journal in this home that which names: its id
// or the start of it, or else its title (in any case). An id wins over a
// title; titles are read only when no id matches. It returns an error
// wrapping ErrJournalPrefix when nothing matches, and ErrJournalAmbiguous
// when more than one does.
func (a *Account) FindJournal(which string) (protocol.JournalID, error) {
	which = strings.TrimSpace(which)
	ids, err := a.Journals()
	if err != nil {
		return protocol.JournalID{}, err
	}
	if len(ids) == 0 {
		return protocol.JournalID{}, ErrNoJournal
	}
	if which == "" {
		return protocol.JournalID{}, fmt.Errorf("%w: no journal was named", ErrJournalPrefix)
	}
	var byID, byTitle []protocol.JournalID
	for _, id := range ids {
		if strings.HasPrefix(id.String(), strings.ToLower(which)) {
			byID = append(byID, id)
		}
	}
	if len(byID) == 1 {
		return byID[0], nil
	}
	if len(byID) == 0 {
		for _, id := range ids {
			j, err := a.OpenJournal(id)
			if err != nil {
				return protocol.JournalID{}, err
			}
			if strings.EqualFold(strings.TrimSpace(j.Title()), which) {
				byTitle = append(byTitle, id)
			}
			j.Close()
		}
	}
	switch {
	case len(byTitle) == 1:
		return byTitle[0], nil
	case len(byID) > 1 || len(byTitle) > 1:
		return protocol.JournalID{}, fmt.Errorf("%w: %q", ErrJournalAmbiguous, which)
	}
	return protocol.JournalID{}, fmt.Errorf("%w: no journal here has the id or title %q", ErrJournalPrefix, which)
}

// Invite makes a one-time invite for the partner and returns its code,
// which holds the secret: show it to the user only, never log it.
func (j *Journal) Invite(ctx context.Context, ttl time.Duration) (string, time.Time, error) {
	return j.invite(ctx, ttl, false)
}

// InviteAgain makes a one-time invite for the partner who is already in
// the journal but set kintsugi up again with a new identity, for example
// after losing every device without a backup. When the new identity
// answers, this client treats it as a changed safety number: it warns,
// drops the verified mark, and seals nothing to the new keys until the
// user compares the new safety number and confirms it (ConfirmVerified).
func (j *Journal) InviteAgain(ctx context.Context, ttl time.Duration) (string, time.Time, error) {
	return j.invite(ctx, ttl, true)
}

// ErrBothHere: a journal is for two, and both are in it.
var ErrBothHere = errors.New("this journal already has both of you")

// ErrPartnerLeft: the partner left this journal. A journal is for the two
// of them, so it takes no one new; the partner may come back through an
// invite made again (InviteAgain).
var ErrPartnerLeft = errors.New("your partner left this journal")

// ErrNoPartnerYet: an invite "again" is for a partner already here.
var ErrNoPartnerYet = errors.New("your partner has not joined yet, so there is no one to invite again")

func (j *Journal) invite(ctx context.Context, ttl time.Duration, again bool) (string, time.Time, error) {
	if ttl <= 0 {
		ttl = DefaultInviteTTL
	}
	var code protocol.InviteCode
	code.Relay, code.Journal = j.relay, j.id
	if _, err := rand.Read(code.Secret[:]); err != nil {
		return "", time.Time{}, err
	}
	keys, err := crypto.DeriveInvite(code.Secret)
	if err != nil {
		return "", time.Time{}, err
	}
	expires := time.Now().Add(ttl).UTC().Truncate(time.Second)
	var mine memberRecord
	if err := j.withLock(func() error { mine = j.selfRecord(j.st.Title); return nil }); err != nil {
		return "", time.Time{}, err
	}
	rec, err := json.Marshal(mine)
	if err != nil {
		return "", time.Time{}, err
	}
	packet, err := crypto.SealInvitePacket(rand.Reader, keys, j.id, rec)
	if err != nil {
		return "", time.Time{}, err
	}
	// Remember the invite before the relay does, so a join can always be
	// opened once the relay has accepted the invite.
	err = j.withLock(func() error {
		if t := j.st.left(); t != nil {
			return leftError(*t)
		}
		switch p := j.st.partner(); {
		case p != nil && p.Left != nil && !again:
			return fmt.Errorf("%w on %s", ErrPartnerLeft, p.Left.Local().Format("2 January 2006"))
		case p != nil && !again:
			return fmt.Errorf("%w (you and %s), so it needs no more invites", ErrBothHere, p.Name)
		case p == nil && again:
			return ErrNoPartnerYet
		}
		j.st.Invites = append(j.st.Invites, pendingInvite{Secret: code.Secret[:], Expires: expires, Again: again})
		if err := j.saveState(); err != nil {
			return err
		}
		// This person's other devices learn of the invite (and only
		// they: it is sealed to them alone), so whichever syncs first
		// can open the join that answers it.
		if others := j.trust().own; len(others) > 1 {
			if _, err := j.writeLocked(Payload{Kind: KindInvite, Secret: code.Secret[:], Expires: &expires, Again: again}, others); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", time.Time{}, err
	}
	c, err := j.dial(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	defer c.Close()
	if _, err := c.request(ctx, func(n uint64) any {
		return &protocol.Invite{Type: protocol.TypeInvite, ID: n, Journal: j.id, AuthHash: keys.AuthHash[:], Expires: expires.Unix(), Packet: packet, Again: again}
	}); err != nil {
		return "", time.Time{}, fmt.Errorf("store invite: %w", err)
	}
	return code.String(), expires, nil
}

// CheckInviteCode reports whether codeText is a whole invite code that
// [Account.Join] can use, with the same errors Join returns for it. It
// needs neither the key file nor the network, so a caller can check a
// code before the passphrase is asked for and the key derivation runs.
func CheckInviteCode(codeText string) error {
	_, _, err := parseJoinCode(codeText)
	return err
}

// parseJoinCode parses a partner's invite code and its relay's address.
func parseJoinCode(codeText string) (*protocol.InviteCode, string, error) {
	code, err := protocol.ParseInviteCode(codeText)
	if err != nil {
		return nil, "", err
	}
	if code.Link {
		return nil, "", ErrLinkCodeOnly
	}
	relay, err := NormalizeRelayURL(code.Relay)
	if err != nil {
		return nil, "", err
	}
	return code, relay, nil
}

// Join redeems an invite code: it proves the code to the relay, opens the
// inviter's sealed details, pins their identity, and leaves this device's
// own details for them as the journal's first blob from this device.
func (a *Account) Join(ctx context.Context, codeText string) (*Journal, error) {
	code, relay, err := parseJoinCode(codeText)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(a.Home.journalDir(code.Journal.String()), "state")); err == nil {
		return nil, fmt.Errorf("this home is already in journal %s", code.Journal)
	}
	keys, err := crypto.DeriveInvite(code.Secret)
	if err != nil {
		return nil, err
	}
	c, err := dialRelay(ctx, relay, a.keys, "")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ok, err := c.request(ctx, func(n uint64) any {
		return &protocol.Redeem{Type: protocol.TypeRedeem, ID: n, Token: keys.Token[:]}
	})
	if errors.Is(err, protocol.ErrJournalFull) {
		// The journal has both its people; nothing was saved here. Our
		// own words, not the relay's.
		return nil, protocol.ErrJournalFull
	}
	if err != nil {
		return nil, err
	}
	if ok.Journal == nil || *ok.Journal != code.Journal {
		return nil, fmt.Errorf("%w: the relay answered for a different journal", crypto.ErrInvitePacket)
	}
	rec, err := crypto.OpenInvitePacket(keys, code.Journal, ok.Packet)
	if err != nil {
		return nil, err
	}
	inviter, err := parseRecord(rec)
	if err != nil {
		return nil, err
	}
	if crypto.Equal(inviter.Identity, a.Identity.Public) {
		return nil, errors.New("this invite was made by you: give the code to your partner to use on their device")
	}
	st := state{
		Version: 1, ID: code.Journal, Relay: relay, RelayID: c.relayID, Title: inviter.Title, Created: time.Now().UTC(),
		Members:    []Member{a.selfMember(), {Name: inviter.Name, Identity: inviter.Identity, Devices: inviter.Devices, Joined: time.Now().UTC()}},
		JoinSecret: code.Secret[:],
	}
	j, err := a.newJournal(st)
	if err != nil {
		return nil, err
	}
	if err := j.finishJoin(); err != nil {
		j.Close()
		return nil, err
	}
	// Hand over the join at once on the connection we have; a later sync
	// would also do it from the outbox.
	if _, err := (&exchange{j: j, c: c}).push(ctx); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

// dial connects to the journal's relay and checks it is the relay the
// journal lives on (trust on first use of its relay id).
func (j *Journal) dial(ctx context.Context) (*relayConn, error) {
	var want string
	if err := j.withLock(func() error { want = j.st.RelayID; return nil }); err != nil {
		return nil, err
	}
	c, err := dialRelay(ctx, j.relay, j.acct.keys, want)
	if err != nil {
		return nil, err
	}
	err = j.withLock(func() error {
		switch j.st.RelayID {
		case c.relayID:
			return nil
		case "":
			j.st.RelayID = c.relayID
			return j.saveState()
		}
		return fmt.Errorf("%w (%s): nothing was sent or received", ErrRelayChanged, j.relay)
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// finishJoin writes this device's join blob if the journal was joined but
// the blob is not in the log yet (a crash between the two), then forgets
// the invite secret. It is safe to call at any time.
func (j *Journal) finishJoin() error {
	return j.withLock(func() error {
		if j.st.JoinSecret == nil {
			return nil
		}
		me := j.signKey
		written := false
		for _, s := range j.order {
			if s.Local && s.Header.Kind == protocol.KindJoin && s.Header.Author == me {
				written = true
			}
		}
		if !written {
			keys, err := crypto.DeriveInvite([32]byte(j.st.JoinSecret))
			if err != nil {
				return err
			}
			self, err := json.Marshal(j.selfRecord(""))
			if err != nil {
				return err
			}
			blob, err := crypto.SealJoin(rand.Reader, keys, j.nextHeader(j.id, protocol.KindJoin), self)
			if err != nil {
				return err
			}
			if err := j.writeBlob(blob); err != nil {
				return err
			}
		}
		j.st.JoinSecret = nil
		return j.saveState()
	})
}

// Write seals an entry to every device of every member and stores it in
// the outbox. When Write returns nil the entry is durable on this device,
// whatever happens to the network or the process afterwards.
//
// Roster kinds (KindDevice, KindDeviceRemoved, KindLeave, KindInvite) have
// their own operations (LinkDevice, RemoveDevice, Leave, Invite), which
// also tell the relay; Write does not. Every client checks roster records
// against the author's identity, so Write cannot be used to speak for
// anyone else; tests use it to play a person's misbehaving client.
func (j *Journal) Write(p Payload) (Entry, error) {
	var e Entry
	err := j.withLock(func() error {
		var err error
		e, err = j.writeLocked(p, j.trust().recipientsFor(p.Kind))
		return err
	})
	return e, err
}

// WriteMany is Write for many entries at once, with one lock and one
// fsync: an import, or a benchmark that needs a long journal quickly. When
// it returns nil every entry is durable on this device; when it fails,
// none was saved. Roster kinds are refused: they have their own
// operations.
func (j *Journal) WriteMany(ps []Payload) ([]Entry, error) {
	for _, p := range ps {
		if rosterKinds[p.Kind] {
			return nil, fmt.Errorf("write many: %q records have their own operation", p.Kind)
		}
	}
	var out []Entry
	err := j.withLock(func() error {
		if err := j.st.writable(j.signKey); err != nil {
			return err
		}
		recipients := j.trust().recipients
		h := j.nextHeader(j.id, protocol.KindEntry)
		recs := make([][]byte, 0, len(ps))
		claims := j.ownClaims(h.Seq)
		for _, p := range ps {
			p.ToSince, claims = toSince(claims, h.Seq, recipients)
			blob, e, err := j.acct.sealPayload(p, h, recipients)
			if err != nil {
				return err
			}
			recs = append(recs, record(recWritten, blob))
			out = append(out, e)
			h.Seq, h.Prev = h.Seq+1, protocol.ChainID(blob)
		}
		if err := j.appendRecords(recs...); err != nil {
			return err
		}
		// Saved: a witness that cannot be written only means a repair
		// could not name these if the log were later lost.
		_ = j.noteUnsent(out...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// writeLocked seals p to recipients and stores it. Call with the lock held.
func (j *Journal) writeLocked(p Payload, recipients [][32]byte) (Entry, error) {
	if err := j.st.writable(j.signKey); err != nil {
		return Entry{}, err
	}
	h := j.nextHeader(j.id, protocol.KindEntry)
	p.ToSince, _ = toSince(j.ownClaims(h.Seq), h.Seq, recipients)
	blob, e, err := j.acct.sealPayload(p, h, recipients)
	if err != nil {
		return Entry{}, err
	}
	if err := j.writeBlob(blob); err != nil {
		return Entry{}, err
	}
	if rosterKinds[p.Kind] {
		return e, nil
	}
	// The entry is saved; a witness that cannot be written only means a
	// repair could not name it if the log were later lost.
	_ = j.noteUnsent(e)
	return e, nil
}

// sealPayload seals p under header h to recipients, and returns the blob
// and the entry as this device will show it.
func (a *Account) sealPayload(p Payload, h protocol.Header, recipients [][32]byte) ([]byte, Entry, error) {
	p.V = 1
	if p.Created.IsZero() {
		p.Created = time.Now().UTC()
	}
	plain, err := json.Marshal(p)
	if err != nil {
		return nil, Entry{}, err
	}
	defer clear(plain)
	if len(plain) > crypto.MaxPayload {
		return nil, Entry{}, ErrTooLong
	}
	blob, _, err := a.keys.SealEntry(rand.Reader, h, recipients, plain)
	if err != nil {
		return nil, Entry{}, err
	}
	s := protocol.ChainID(blob).String()
	return blob, Entry{ID: s, Short: s[:ShortIDLen], Kind: p.Kind, Author: a.Name, Mine: true, Created: p.Created, Text: p.Text, Feelings: p.Feelings, Intensity: p.Intensity, Ref: p.Ref}, nil
}

// ErrTooLong: the entry does not fit in one entry: its text and details
// come to more than [crypto.MaxPayload] once encoded. Nothing was saved.
var ErrTooLong = errors.New("this is more than one entry can hold")

// ErrNotYours: only an entry's author can revise or retract it.
var ErrNotYours = errors.New("only its author can change or retract an entry")

// ErrRetracted: a retracted entry cannot be revised or responded to.
var ErrRetracted = errors.New("that entry was retracted")

// Revise writes a new revision of the caller's entry whose id starts with
// prefix. The original and every revision stay in the history.
func (j *Journal) Revise(prefix string, p Payload) (Entry, *Entry, error) {
	t, err := j.ownTarget(prefix)
	if err != nil {
		return Entry{}, t, err
	}
	p.Kind, p.Ref = KindRevision, t.ID
	e, err := j.Write(p)
	return e, t, err
}

// Sending says how far one of this device's entries (with its revisions)
// has gone toward the partner.
type Sending int

const (
	// NotSent: neither it nor any revision was handed to the relay.
	// Retracted now, each goes out kept to this device alone
	// (exchange.push): nobody else can ever open them, and the partner
	// sees only that an entry was written and retracted, and when.
	NotSent Sending = iota + 1
	// MaybeSent: not acknowledged, but a push on this home handed it to
	// the relay and has not heard its ok (it is on its way now, or that
	// push was cut off): the relay may hold it whole.
	MaybeSent
	// Sent: the relay acknowledged it (or it came from another device).
	Sent
)

// RetractSending says what Retract would find of t, one of this device's
// entries as a Reader found it, if it ran now: how far it has gone
// (Sending). It is for asking first; what Retract returns is what counts,
// since a push may start or end in between, or a revision be written.
func (j *Journal) RetractSending(t *Entry) (Sending, error) {
	var how Sending
	err := j.withLock(func() error { how = j.sendingOf(t); return nil })
	return how, err
}

// refreshTarget finds target t again as the log holds it now, so that a
// revision another process wrote since t was found is named too (and a
// retraction another wrote meanwhile is found). Call with the lock held.
func (j *Journal) refreshTarget(t *Entry) (*Entry, error) {
	now, err := (&Reader{j: j, tl: j.timeline(j.trust())}).findLocked(t.ID)
	if err != nil {
		return t, err
	}
	if now.Retracted != nil {
		return now, ErrRetracted
	}
	return now, nil
}

// sendingOf is Retract's rule: how far target t and its revisions have
// gone. Call with the lock held.
func (j *Journal) sendingOf(t *Entry) Sending {
	// A window's ids are named in the sending file under this lock before
	// its puts go out (exchange.push): a push holding the sending lock
	// that has named none of these yet plans again after this retraction
	// and sends them kept. So the file alone tells, not the lock.
	how := NotSent
	unheard, known := j.handedUnheard()
	for _, id := range append([]string{t.ID}, t.Revisions...) {
		s := j.chainOfHex(id)
		switch {
		case s == nil || !s.Local || s.RelaySeq != 0:
			return Sent // sent, or not this device's to keep
		case !known || unheard[id]:
			how = MaybeSent // handed over by a push that never heard its ok
		}
	}
	return how
}

// Retract withdraws the caller's entry whose id starts with prefix: every
// client stops showing its words and shows that it was retracted, when.
//
// The target is returned as it stood when the retraction was written:
// its Sending says how far it had gone then (RetractSending), and Synced
// is false only when that was NotSent.
func (j *Journal) Retract(prefix string) (Entry, *Entry, error) {
	t, err := j.ownTarget(prefix)
	if err != nil {
		return Entry{}, t, err
	}
	var e Entry
	err = j.withLock(func() error {
		if t, err = j.refreshTarget(t); err != nil {
			return err
		}
		purges := append([]string{t.ID}, t.Revisions...)
		t.Sending = j.sendingOf(t)
		t.Synced = t.Sending != NotSent
		var err error
		e, err = j.writeLocked(Payload{Kind: KindRetraction, Ref: t.ID, Purges: purges}, j.trust().recipientsFor(KindRetraction))
		return err
	})
	return e, t, err
}

// find returns the readable entry whose id starts with prefix.
func (j *Journal) find(prefix string) (*Entry, error) {
	r, err := j.Reader()
	if err != nil {
		return nil, err
	}
	return r.Find(prefix)
}

func (j *Journal) ownTarget(prefix string) (*Entry, error) {
	t, err := j.find(prefix)
	if err != nil {
		return nil, err
	}
	switch {
	case !t.Mine:
		return t, ErrNotYours
	case t.Retracted != nil:
		return t, ErrRetracted
	case t.Kind == KindRevision || t.Kind == KindRetraction || t.Kind == KindTogetherAnswer || t.Kind == KindTogetherMark:
		return t, errors.New("this part of another entry cannot be changed on its own; change the entry it belongs to")
	}
	return t, nil
}

// ErrAlreadyAnswered: one answer per person per reveal-together prompt.
var ErrAlreadyAnswered = errors.New("you have already answered this")

// TogetherAnswer answers a reveal-together prompt. The answer is sealed
// to this person's own devices only, so the partner's client holds
// ciphertext it cannot open; a mark that everyone can read says "I have
// answered" and commits to the sealed answer's id. Each client releases
// its own answer (re-boxes its key for the partner's devices, see
// ensureGrants) only once it sees the partner's mark, so neither can read
// the other's answer before answering, whatever their client shows.
func (j *Journal) TogetherAnswer(prefix, text string) (Entry, *Entry, error) {
	t, err := j.find(prefix)
	if err != nil {
		return Entry{}, nil, err
	}
	if t.Kind != KindTogether {
		return Entry{}, t, ErrNotTogether
	}
	if t.State == "waiting-for-partner" || t.State == "revealing" || t.State == "revealed" {
		return Entry{}, t, ErrAlreadyAnswered
	}
	var ans Entry
	err = j.withLock(func() error {
		var err error
		ans, err = j.writeLocked(Payload{Kind: KindTogetherAnswer, Text: text, Ref: t.ID}, j.trust().own)
		if err != nil {
			return err
		}
		_, err = j.writeLocked(Payload{Kind: KindTogetherMark, Ref: t.ID, Held: ans.ID}, j.trust().recipients)
		if err != nil {
			return err
		}
		return j.ensureGrants() // released at once if the partner answered first
	})
	return ans, t, err
}

// Answer writes an answer to the question whose id starts with prefix.
func (j *Journal) Answer(prefix, text string) (Entry, *Entry, error) {
	return j.Respond(prefix, Payload{Kind: KindAnswer, Text: text})
}

// Respond writes p, an answer, follow-up, reply or acknowledgement, to the
// entry whose id starts with prefix, after checking it fits: only the
// partner answers a question; an entry that asked to be heard, not
// answered, takes an acknowledgement, not a reply; questions take answers
// and follow-ups, not replies; nobody acknowledges their own entry.
func (j *Journal) Respond(prefix string, p Payload) (Entry, *Entry, error) {
	if err := checkResponseKind(p.Kind); err != nil {
		return Entry{}, nil, err
	}
	t, err := j.find(prefix)
	if err != nil {
		return Entry{}, nil, err
	}
	if err := CheckResponse(*t, p.Kind); err != nil {
		return Entry{}, t, err
	}
	p.Ref = t.ID
	e, err := j.Write(p)
	return e, t, err
}

// CheckResponse reports whether a response of kind fits the entry t, with
// the error Respond would return: ErrRetracted (its author withdrew it),
// ErrNotAQuestion, ErrOwnQuestion,
// ErrReplyToQuestion, ErrListenOnly, ErrOwnEntry, ErrNotYourCommitment,
// ErrNotAnAgreement or ErrAgreementSettled. Check before asking for any
// text, so nobody writes a long answer only to be told it cannot be saved.
func CheckResponse(t Entry, kind string) error {
	if err := checkResponseKind(kind); err != nil {
		return err
	}
	if t.Retracted != nil {
		// Its author withdrew it: nothing more can be added to it.
		return ErrRetracted
	}
	switch kind {
	case KindAnswer, KindFollowup:
		if t.Kind != KindQuestion {
			return ErrNotAQuestion
		}
		if kind == KindAnswer && t.Mine {
			return ErrOwnQuestion
		}
	case KindReply:
		if t.Kind == KindQuestion {
			return ErrReplyToQuestion
		}
		if t.ListenOnly && !t.Mine {
			return ErrListenOnly
		}
	case KindAck:
		if t.Mine {
			return ErrOwnEntry
		}
	case KindCheckin:
		if t.Kind != KindCommit || !t.Mine {
			return ErrNotYourCommitment
		}
	case KindDecision:
		if t.Kind != KindAgree {
			return ErrNotAnAgreement
		}
		if t.Mine {
			return ErrOwnEntry
		}
		if t.State != "proposed" {
			return fmt.Errorf("%w: it is %s", ErrAgreementSettled, t.State)
		}
	}
	return nil
}

func checkResponseKind(kind string) error {
	if !responseKinds[kind] || kind == KindTogetherAnswer || kind == KindTogetherMark {
		return fmt.Errorf("%q is not a kind of response", kind)
	}
	return nil
}

// Members returns the journal's members, this person first.
func (j *Journal) Members() ([]Member, error) {
	var ms []Member
	err := j.withLock(func() error { ms = j.st.members(); return nil })
	return ms, err
}

// Partner returns the other member, or ErrNotPaired.
func (j *Journal) Partner() (*Member, error) {
	ms, err := j.Members()
	if err != nil {
		return nil, err
	}
	for i := range ms {
		if !ms[i].Self {
			return &ms[i], nil
		}
	}
	return nil, ErrNotPaired
}

// SafetyNumber returns the safety number of this person and the partner.
// While the partner has a pending new identity it is the number for the
// new one, and the member returned has Pending set.
func (j *Journal) SafetyNumber() (string, *Member, error) {
	p, err := j.Partner()
	if err != nil {
		return "", nil, err
	}
	if p.Pending != nil {
		return crypto.SafetyNumber(j.acct.Identity.Public, p.Pending.Identity), p, nil
	}
	return crypto.SafetyNumber(j.acct.Identity.Public, p.Identity), p, nil
}

// ConfirmVerified records that the user compared the safety number with
// the partner and it matched. If the partner has a pending new identity,
// this is what accepts it: the old identity's devices stay readable but
// are removed, and this device re-boxes its history for the new ones.
func (j *Journal) ConfirmVerified() error {
	return j.withLock(func() error {
		for i := range j.st.Members {
			m := &j.st.Members[i]
			if m.Self {
				continue
			}
			if p := m.Pending; p != nil {
				m.acceptIdentity(p, j.lastSeq)
			}
			m.Verified = true
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

// acceptIdentity makes p the member's identity. Its devices so far are
// removed, each after the last of its blobs held here (lastSeq).
func (m *Member) acceptIdentity(p *PendingIdentity, lastSeq func(device [32]byte) uint64) {
	now := time.Now().UTC()
	for _, c := range MemberDevices(*m) {
		if m.removed(c.Sign) != nil {
			continue
		}
		m.Removed = append(m.Removed, RemovedDevice{Sign: c.Sign[:], Last: lastSeq(c.Sign), At: now})
	}
	m.Previous = append(m.Previous, m.Identity)
	m.Identity, m.Name, m.JoinBlob = p.Identity, p.Name, p.JoinBlob
	m.Devices = append(m.Devices, p.Devices...)
	m.Pending = nil
	m.Left = nil
}

// lastSeq returns the highest seq of the blobs held here from the device
// with signing key author (0 if none): where a removal draws its line.
// Call with the lock held.
func (l *logIndex) lastSeq(author [32]byte) uint64 {
	var last uint64
	for _, s := range l.order {
		if s.Header.Author == author && s.Header.Seq > last {
			last = s.Header.Seq
		}
	}
	return last
}

// MemberDevices returns the certificates of m's devices that verify.
func MemberDevices(m Member) []*crypto.DeviceCert {
	var out []*crypto.DeviceCert
	for _, raw := range m.Devices {
		if c, err := crypto.ParseDeviceCert(raw); err == nil && m.certifies(c.Identity) {
			out = append(out, c)
		}
	}
	return out
}
