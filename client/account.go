package client

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kintsugi-journal/kintsugi/crypto"
)

// Home is a client's data directory.
type Home struct {
	Dir string
}

// KeyPath is where the key file lives.
func (h Home) KeyPath() string { return filepath.Join(h.Dir, "identity.key") }

func (h Home) journalDir(id string) string { return filepath.Join(h.Dir, "journals", id) }

// Exists reports whether the home holds a key file.
func (h Home) Exists() bool {
	_, err := os.Stat(h.KeyPath())
	return err == nil
}

// secrets is what the key file protects.
type secrets struct {
	Version      int    `json:"version"`
	Name         string `json:"name"`
	IdentitySeed []byte `json:"identity_seed"`
	BoxPrivate   []byte `json:"box_private"`
	SignSeed     []byte `json:"sign_seed"`
	Cert         []byte `json:"cert"`
	StorageKey   []byte `json:"storage_key"`
}

// Account is an unlocked identity and device. It holds private keys in
// memory: keep it no longer than a command needs.
type Account struct {
	Home     Home
	Name     string
	Identity *crypto.Identity
	Device   *crypto.Device
	Cert     *crypto.DeviceCert

	storageKey [32]byte
	keys       *crypto.Keyring

	bulkOnce sync.Once
	bulk     *crypto.BulkKey // seals checkpoints; see checkpointKey
	bulkErr  error
}

// checkpointKey returns the key that seals the journals' checkpoints,
// derived from the storage key once.
func (a *Account) checkpointKey() (*crypto.BulkKey, error) {
	a.bulkOnce.Do(func() { a.bulk, a.bulkErr = crypto.NewBulkKey(&a.storageKey, "kintsugi checkpoint v1") })
	return a.bulk, a.bulkErr
}

// Errors callers branch on.
var (
	ErrNoHome     = errors.New("there is no kintsugi identity here yet")
	ErrHomeExists = errors.New("this home already has an identity")
	ErrNoJournal  = errors.New("no journal yet")
	// ErrJournalPrefix: --journal named no journal in this home.
	ErrJournalPrefix = errors.New("no such journal")
	// ErrJournalAmbiguous: --journal (or journal use) matched more than
	// one journal in this home.
	ErrJournalAmbiguous = errors.New("more than one journal matches")
	ErrNotFound         = errors.New("no entry with that id")
	ErrAmbiguous        = errors.New("more than one entry starts with that id")
	ErrNotPaired        = errors.New("your partner has not joined yet")
	ErrOwnQuestion      = errors.New("this is your own question")
	ErrNotAQuestion     = errors.New("that entry is not a question")
	// ErrListenOnly: the writer asked to be heard, not answered.
	ErrListenOnly      = errors.New("this entry asked to be heard, not answered")
	ErrReplyToQuestion = errors.New("that entry is a question")
	ErrOwnEntry        = errors.New("this is your own entry")
	// ErrNotYourCommitment: check-ins are for one's own commitments.
	ErrNotYourCommitment = errors.New("that is not one of your commitments")
	ErrNotAnAgreement    = errors.New("that entry is not an agreement")
	ErrAgreementSettled  = errors.New("that agreement has already been decided")
	ErrNotTogether       = errors.New("that entry is not a reveal-together question")
	// ErrNoSuchAuthor: a Query's Author names no one in the journal.
	ErrNoSuchAuthor = errors.New("no one in this journal has that name")
)

// Init creates a new identity and device in home, protected by passphrase.
// It refuses to overwrite an existing key file.
func Init(home Home, name, deviceName string, passphrase []byte, kdf crypto.KDFParams) (*Account, error) {
	if name == "" {
		return nil, errors.New("a name is needed so your partner knows the entries are yours")
	}
	if home.Exists() {
		return nil, ErrHomeExists
	}
	if err := os.MkdirAll(home.Dir, 0o700); err != nil {
		return nil, err
	}
	id, err := crypto.NewIdentity(rand.Reader)
	if err != nil {
		return nil, err
	}
	dev, err := crypto.NewDevice(rand.Reader)
	if err != nil {
		return nil, err
	}
	if deviceName == "" {
		deviceName, _ = os.Hostname()
	}
	deviceName = truncateUTF8(deviceName, 64)
	certRaw, err := crypto.NewDeviceCert(id, dev, deviceName, time.Now())
	if err != nil {
		return nil, err
	}
	s := secrets{
		Version:      1,
		Name:         name,
		IdentitySeed: id.Private.Seed(),
		BoxPrivate:   dev.BoxPrivate[:],
		SignSeed:     dev.SignPrivate.Seed(),
		Cert:         certRaw,
		StorageKey:   make([]byte, 32),
	}
	if _, err := rand.Read(s.StorageKey); err != nil {
		return nil, err
	}
	return createHome(home, &s, passphrase, kdf)
}

// createHome writes a new key file holding s, sealed under passphrase,
// and returns the account. It refuses to overwrite an existing key file.
func createHome(home Home, s *secrets, passphrase []byte, kdf crypto.KDFParams) (*Account, error) {
	if err := os.MkdirAll(home.Dir, 0o700); err != nil {
		return nil, err
	}
	file, err := sealSecrets(rand.Reader, s, passphrase, kdf)
	if err != nil {
		return nil, err
	}
	if err := writeKeyFile(home, file); err != nil {
		return nil, err
	}
	return accountFrom(home, s)
}

// sealSecrets seals s under passphrase as a key file's bytes, with salt
// and nonce from random (crypto/rand.Reader; fixed bytes only in the
// test vectors).
func sealSecrets(random io.Reader, s *secrets, passphrase []byte, kdf crypto.KDFParams) ([]byte, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	return crypto.SealKeyFile(random, passphrase, plain, kdf)
}

// writeKeyFile puts a sealed key file in place, never over an existing
// one (ErrHomeExists).
func writeKeyFile(home Home, file []byte) error {
	if err := writeFileAtomic(home.KeyPath(), file, true); errors.Is(err, fs.ErrExist) {
		return ErrHomeExists
	} else if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	return nil
}

// ChangePassphrase re-seals home's key file under a new passphrase (with
// fresh salt and kdf's cost), replacing it atomically: a crash leaves
// either the old file or the new one, never neither.
func ChangePassphrase(home Home, old, new []byte, kdf crypto.KDFParams) error {
	data, err := os.ReadFile(home.KeyPath())
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoHome
	}
	if err != nil {
		return err
	}
	plain, err := crypto.OpenKeyFile(data, old)
	if err != nil {
		return err
	}
	defer clear(plain)
	file, err := crypto.SealKeyFile(rand.Reader, new, plain, kdf)
	if err != nil {
		return err
	}
	return writeFileAtomic(home.KeyPath(), file, false)
}

// Unlock opens home's key file with passphrase.
func Unlock(home Home, passphrase []byte) (*Account, error) {
	data, err := os.ReadFile(home.KeyPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoHome
	}
	if err != nil {
		return nil, err
	}
	plain, err := crypto.OpenKeyFile(data, passphrase)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	return accountFromPlain(home, plain)
}

// accountFromPlain builds the account from a key file's decrypted content.
func accountFromPlain(home Home, plain []byte) (*Account, error) {
	var s secrets
	if err := json.Unmarshal(plain, &s); err != nil || s.Version != 1 {
		return nil, crypto.ErrBadKeyFile
	}
	return accountFrom(home, &s)
}

func accountFrom(home Home, s *secrets) (*Account, error) {
	id, err := crypto.IdentityFromSeed(s.IdentitySeed)
	if err != nil {
		return nil, err
	}
	dev, err := crypto.DeviceFromSeeds(s.BoxPrivate, s.SignSeed)
	if err != nil {
		return nil, err
	}
	cert, err := crypto.ParseDeviceCert(s.Cert)
	if err != nil {
		return nil, err
	}
	if !crypto.Equal(cert.Identity[:], id.Public) || cert.Box != dev.BoxPublic || cert.Sign != dev.SignKey() {
		return nil, fmt.Errorf("%w: the device certificate does not match the keys", crypto.ErrBadKeyFile)
	}
	if len(s.StorageKey) != 32 {
		return nil, crypto.ErrBadKeyFile
	}
	a := &Account{Home: home, Name: s.Name, Identity: id, Device: dev, Cert: cert, keys: crypto.NewKeyring(dev)}
	copy(a.storageKey[:], s.StorageKey)
	return a, nil
}

// IdentityKey returns the account's identity public key as an array.
func (a *Account) IdentityKey() [32]byte {
	var k [32]byte
	copy(k[:], a.Identity.Public)
	return k
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, fsyncs it, renames it into place and fsyncs the directory, so
// a crash leaves either the old or the new content. The file is 0600.
func writeFileAtomic(path string, data []byte, exclusive bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if exclusive {
		// Link fails if path exists, so two racing writers cannot both
		// succeed (a stat-then-rename check could let one overwrite).
		if err := os.Link(tmp, path); err != nil {
			return err
		}
	} else if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
