package client

// Identity backups.
//
// `kintsugi backup` seals, under a fresh recovery phrase (crypto.SealBackup),
// everything needed to bring THIS device back on a new machine: the identity
// seed and name, this device's box and signing keys and its certificate,
// the storage key, and for each journal the sealed state's essentials (id,
// relay address and pinned relay id, title, members with the partner's
// pinned identity and the verified mark, open invites) together with this
// device's own chain head at backup time (its seq and chain id) and the
// blobs still waiting in its outbox.
//
// Restoring recreates this same device rather than a new one: it is the
// device the relay lets in as a member and the one every entry was boxed
// to, so the whole history opens again without the partner doing anything.
// The price is that the old machine must no longer be used: two machines
// writing as one device would split its history (use device linking for a
// second machine instead).
//
// Entries are not in the backup: they are on the relay. A restored journal
// starts in "restored" mode (state.Restored) with an empty log; the first
// sync fetches the whole history and adopts this device's own chain from
// it (see adopt.go) before anything new may be written. The recorded head
// lets the client notice a relay whose copy of this device's history is
// older than the backup.
//
// Journals joined after a backup was made are not in it.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// backupContents is the JSON sealed inside a backup file.
type backupContents struct {
	Version int       `json:"version"` // 1
	Created time.Time `json:"created"`
	// The key file's secrets: the same fields, so this device is the same.
	Name         string `json:"name"`
	IdentitySeed []byte `json:"identity_seed"`
	BoxPrivate   []byte `json:"box_private"`
	SignSeed     []byte `json:"sign_seed"`
	Cert         []byte `json:"cert"`
	StorageKey   []byte `json:"storage_key"`
	// Current is the id of the journal commands acted on.
	Current  string          `json:"current,omitempty"`
	Journals []backupJournal `json:"journals"`
}

// backupJournal is one journal's essentials.
type backupJournal struct {
	ID      protocol.JournalID `json:"id"`
	Relay   string             `json:"relay"`
	RelayID string             `json:"relay_id,omitempty"`
	Title   string             `json:"title,omitempty"`
	Created time.Time          `json:"created"`
	Members []Member           `json:"members"`
	Invites []pendingInvite    `json:"invites,omitempty"`
	// OwnSeq and OwnHead are this device's chain head when the backup was
	// made (OwnHead is the chain id in hex; both zero if it wrote nothing).
	OwnSeq  uint64 `json:"own_seq"`
	OwnHead string `json:"own_head,omitempty"`
	// Outbox holds blobs this device wrote that the relay had not yet
	// acknowledged, so a restore sends them instead of losing them.
	Outbox [][]byte `json:"outbox,omitempty"`
	// Account marks the account journal, the record the person's devices
	// share (accountjournal.go); it is not listed as a journal.
	Account bool `json:"account,omitempty"`
}

// BackupJournal describes a journal in a backup.
type BackupJournal struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Partner string `json:"partner"` // empty while nobody has joined
	Relay   string `json:"relay"`
}

// BackupResult is what [Account.WriteBackup] made. Phrase is the secret
// that opens the file: show it to the person once, never log or store it.
type BackupResult struct {
	Path     string
	Phrase   string
	Journals []BackupJournal
}

// ErrBackupExists: the backup file's path is taken; nothing was written.
var ErrBackupExists = errors.New("there is already a file with that name, and a backup never replaces a file")

// WriteBackup writes an encrypted backup of this identity, this device and
// its journals to path (created 0600, atomically, never over an existing
// file) under a new recovery phrase, which it returns.
func (a *Account) WriteBackup(path string) (*BackupResult, error) {
	c := backupContents{
		Version:      1,
		Created:      time.Now().UTC().Truncate(time.Second),
		Name:         a.Name,
		IdentitySeed: a.Identity.Private.Seed(),
		BoxPrivate:   a.Device.BoxPrivate[:],
		SignSeed:     a.Device.SignPrivate.Seed(),
		Cert:         a.Cert.Raw,
		StorageKey:   a.storageKey[:],
	}
	if b, err := os.ReadFile(filepath.Join(a.Home.Dir, "current")); err == nil {
		c.Current = strings.TrimSpace(string(b))
	}
	ids, err := a.Journals()
	if err != nil {
		return nil, err
	}
	res := &BackupResult{Path: path}
	for _, id := range ids {
		j, err := a.OpenJournal(id)
		if err != nil {
			return nil, err
		}
		var bj backupJournal
		err = j.withLock(func() error {
			bj = j.backupLocked()
			return nil
		})
		j.Close()
		if err != nil {
			return nil, err
		}
		c.Journals = append(c.Journals, bj)
		res.Journals = append(res.Journals, bj.describe())
	}
	// The record this person's devices share goes along, so a restored
	// device keeps following them.
	switch aj, err := a.openAccountJournal(); {
	case err == nil:
		var bj backupJournal
		err = aj.withLock(func() error {
			bj = aj.backupLocked()
			return nil
		})
		aj.Close()
		if err != nil {
			return nil, err
		}
		bj.Account = true
		c.Journals = append(c.Journals, bj)
	case !errors.Is(err, ErrNoAccountJournal):
		return nil, err
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	secret, err := crypto.NewRecoverySecret(rand.Reader)
	if err != nil {
		return nil, err
	}
	defer clear(secret[:])
	file, err := crypto.SealBackup(rand.Reader, secret, plain)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, file, true); errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %s", ErrBackupExists, path)
	} else if err != nil {
		return nil, fmt.Errorf("write the backup: %w", err)
	}
	res.Phrase = secret.Phrase()
	return res, nil
}

// backupLocked collects the journal's essentials. Call with the lock held.
func (j *Journal) backupLocked() backupJournal {
	now := time.Now()
	bj := backupJournal{
		ID: j.st.ID, Relay: j.st.Relay, RelayID: j.st.RelayID, Title: j.st.Title,
		Created: j.st.Created, Members: j.st.Members, OwnSeq: j.ownSeq,
	}
	if j.ownSeq > 0 {
		bj.OwnHead = j.ownLast.String()
	}
	// A journal restored earlier that has not caught up yet still owes
	// its recorded head: keep it, so a restore of this backup checks it.
	if r := j.st.Restored; r != nil && r.Seq > bj.OwnSeq {
		bj.OwnSeq, bj.OwnHead = r.Seq, r.Head
	}
	for _, inv := range j.st.Invites {
		if inv.Expires.After(now) {
			bj.Invites = append(bj.Invites, inv)
		}
	}
	for _, s := range j.outbox() {
		bj.Outbox = append(bj.Outbox, j.raw(s))
	}
	return bj
}

func (bj *backupJournal) describe() BackupJournal {
	d := BackupJournal{ID: bj.ID.String(), Title: bj.Title, Relay: bj.Relay}
	for _, m := range bj.Members {
		if !m.Self {
			d.Partner = m.Name
		}
	}
	return d
}

// maxBackupSize bounds how much of a file restore reads: the keys and
// states are small; outbox blobs are at most protocol.MaxBlobSize each.
const maxBackupSize = 256 << 20

// ReadBackupFile reads a backup file and checks that it looks like one
// this version can open, before anyone is asked for a phrase.
func ReadBackupFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", crypto.ErrNotBackup, path)
	}
	if fi.Size() > maxBackupSize {
		return nil, fmt.Errorf("%w: %s is larger than any backup", crypto.ErrNotBackup, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := crypto.CheckBackupHeader(data); err != nil {
		return nil, err
	}
	return data, nil
}

// Backup is an opened backup. It holds private keys in memory: call
// [Backup.Close] when done with it.
type Backup struct {
	c backupContents
}

// OpenBackup opens a backup file's bytes with the recovery secret and
// checks what is inside. Errors: those of [crypto.OpenBackup], or
// [ErrBadBackup] for contents this version does not understand.
func OpenBackup(file []byte, secret *crypto.RecoverySecret) (*Backup, error) {
	plain, err := crypto.OpenBackup(secret, file)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	var c backupContents
	if err := json.Unmarshal(plain, &c); err != nil || c.Version != 1 {
		return nil, ErrBadBackup
	}
	if _, err := accountFrom(Home{}, c.secrets()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	for _, bj := range c.Journals {
		if err := bj.check(); err != nil {
			return nil, fmt.Errorf("%w: journal %s: %v", ErrBadBackup, bj.ID, err)
		}
	}
	return &Backup{c: c}, nil
}

// ErrBadBackup: the backup opened but holds something this version cannot
// use.
var ErrBadBackup = errors.New("the backup opened, but what is inside is not something this version of kintsugi can restore")

func (bj *backupJournal) check() error {
	if _, err := NormalizeRelayURL(bj.Relay); err != nil {
		return err
	}
	if bj.OwnSeq > 0 {
		if h, err := hex.DecodeString(bj.OwnHead); err != nil || len(h) != 32 {
			return errors.New("bad chain head")
		}
	}
	self := 0
	for _, m := range bj.Members {
		if m.Self {
			self++
		}
	}
	if self != 1 {
		return errors.New("bad member list")
	}
	return nil
}

func (c *backupContents) secrets() *secrets {
	return &secrets{Version: 1, Name: c.Name, IdentitySeed: c.IdentitySeed, BoxPrivate: c.BoxPrivate, SignSeed: c.SignSeed, Cert: c.Cert, StorageKey: c.StorageKey}
}

// Name is the name in the backup.
func (b *Backup) Name() string { return b.c.Name }

// Created is when the backup was made.
func (b *Backup) Created() time.Time { return b.c.Created }

// Journals lists the journals in the backup.
func (b *Backup) Journals() []BackupJournal {
	var out []BackupJournal
	for i := range b.c.Journals {
		if !b.c.Journals[i].Account {
			out = append(out, b.c.Journals[i].describe())
		}
	}
	return out
}

// Close forgets the private keys the backup held.
func (b *Backup) Close() {
	clear(b.c.IdentitySeed)
	clear(b.c.BoxPrivate)
	clear(b.c.SignSeed)
	clear(b.c.StorageKey)
}

// ErrHomeHasJournal: restore found one of the backup's journals already
// in the home, not left there by an interrupted restore.
var ErrHomeHasJournal = errors.New("this home already holds one of the journals in the backup")

// Restore recreates the backup's identity, device and journals in home,
// which must not have an identity yet, with the key file locked by
// passphrase. Each journal starts in restored mode: it cannot be written
// to until a sync has recovered this device's own history from the relay.
// Journal states are written first and the key file last, so an
// interrupted restore leaves no identity and can simply be run again.
func (b *Backup) Restore(home Home, passphrase []byte, kdf crypto.KDFParams) (*Account, error) {
	if home.Exists() {
		return nil, ErrHomeExists
	}
	if len(passphrase) == 0 {
		return nil, errors.New("the passphrase is empty")
	}
	sec := b.c.secrets()
	keyFile, err := sealSecrets(rand.Reader, sec, passphrase, kdf)
	if err != nil {
		return nil, err
	}
	a, err := accountFrom(home, sec)
	if err != nil {
		return nil, err
	}
	// Check every journal before writing anything.
	for _, bj := range b.c.Journals {
		if err := a.checkRestorable(bj.dir(a.Home), bj.ID); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(home.Dir, 0o700); err != nil {
		return nil, err
	}
	since := time.Now().UTC().Truncate(time.Second)
	for _, bj := range b.c.Journals {
		if err := a.restoreJournal(bj, since); err != nil {
			return nil, fmt.Errorf("restore journal %s: %w", bj.ID, err)
		}
	}
	if id, err := protocol.ParseJournalID(b.c.Current); err == nil {
		if err := a.SetCurrent(id); err != nil {
			return nil, err
		}
	}
	if err := writeKeyFile(home, keyFile); err != nil {
		return nil, err
	}
	return a, nil
}

// checkRestorable refuses a journal directory that holds a journal,
// unless it is what an interrupted restore of the same identity left
// (its state opens with this storage key and is still in restored mode:
// nothing can have been written there).
func (a *Account) checkRestorable(dir string, id protocol.JournalID) error {
	b, err := os.ReadFile(filepath.Join(dir, "state"))
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, "log")); err == nil {
			return fmt.Errorf("%w (%s, with no state)", ErrHomeHasJournal, dir)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if plain, err := crypto.Open(&a.storageKey, b); err == nil {
		var st state
		err := json.Unmarshal(plain, &st)
		clear(plain)
		if err == nil && st.ID == id && st.Restored != nil {
			return nil
		}
	}
	return fmt.Errorf("%w (%s)", ErrHomeHasJournal, dir)
}

// dir is where the journal lives in home.
func (bj *backupJournal) dir(home Home) string {
	if bj.Account {
		return home.accountDir(bj.ID.String())
	}
	return home.journalDir(bj.ID.String())
}

func (a *Account) restoreJournal(bj backupJournal, since time.Time) error {
	dir := bj.dir(a.Home)
	// What an interrupted restore left (checked by checkRestorable).
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	st := state{
		Version: 1, ID: bj.ID, Relay: bj.Relay, RelayID: bj.RelayID, Title: bj.Title, Created: bj.Created,
		Members: bj.Members, Invites: bj.Invites, Account: bj.Account,
		Restored: &restoreMark{Seq: bj.OwnSeq, Head: bj.OwnHead, Since: since},
	}
	me := a.Device.SignKey()
	var recs [][]byte
	for _, blob := range bj.Outbox {
		h, err := protocol.ParseHeader(blob)
		if err != nil || h.Author != me || h.Journal != bj.ID {
			return fmt.Errorf("%w: an unsent item in it is not this device's", ErrBadBackup)
		}
		recs = append(recs, record(recWritten, blob))
	}
	j, err := a.openJournalDir(dir)
	if err != nil {
		return err
	}
	defer j.Close()
	j.id, j.relay = st.ID, st.Relay
	return j.withLock(func() error {
		j.st = st
		if err := j.saveState(); err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		return j.appendRecords(recs...)
	})
}
