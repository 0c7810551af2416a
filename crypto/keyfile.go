package crypto

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/nacl/secretbox"
)

// KDFParams are the argon2id parameters of a key file.
type KDFParams struct {
	Time      uint32 `json:"time"`       // passes
	MemoryKiB uint32 `json:"memory_kib"` // memory in KiB
	Threads   uint8  `json:"threads"`
}

// DefaultKDF follows RFC 9106's second recommended option for argon2id
// (t=3, m=64 MiB, p=4): about half a second on a laptop, memory-hard enough
// that guessing a stolen key file's passphrase is slow.
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}

// Bounds on parameters read from a key file: a tampered file can neither
// weaken the derivation below the floor nor stall the unlock above the
// ceiling. The floor is low enough for tests ([TestingKDF]).
var (
	MinKDF = KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1}
	MaxKDF = KDFParams{Time: 16, MemoryKiB: 2 << 20, Threads: 16}
)

// TestingKDF is the cheapest allowed setting. Only tests and the
// throw-away homes of `kintsugi demo` use it.
var TestingKDF = MinKDF

// Check reports whether p lies within [MinKDF] and [MaxKDF].
func (p KDFParams) Check() error {
	if p.Time < MinKDF.Time || p.Time > MaxKDF.Time ||
		p.MemoryKiB < MinKDF.MemoryKiB || p.MemoryKiB > MaxKDF.MemoryKiB ||
		p.Threads < MinKDF.Threads || p.Threads > MaxKDF.Threads {
		return fmt.Errorf("%w: key derivation settings are out of bounds", ErrBadKeyFile)
	}
	return nil
}

// keyFile is the JSON layout of a key file.
type keyFile struct {
	Version int       `json:"version"` // 2; 1 for files written before the check
	KDF     string    `json:"kdf"`     // "argon2id"
	Params  KDFParams `json:"params"`
	Salt    []byte    `json:"salt"`  // 16 bytes
	Nonce   []byte    `json:"nonce"` // 24 bytes
	Box     []byte    `json:"box"`   // secretbox of the secret
	// Check is the SHA-256 of the file's other fields (see checksum), from
	// version 2 on. It is not a defence against tampering (anyone can
	// recompute it; the box is what authenticates): it tells a file damaged
	// by a disk or a copy apart from a wrong passphrase, which the box alone
	// cannot.
	Check []byte `json:"check,omitempty"`
}

// checksum is the SHA-256 of the compact JSON of kf without its check:
// {"version":…,"kdf":…,"params":{…},"salt":…,"nonce":…,"box":…}.
func (kf keyFile) checksum() []byte {
	kf.Check = nil
	b, _ := json.Marshal(kf) // a struct of plain fields always marshals
	sum := sha256.Sum256(b)
	return sum[:]
}

// keyFileVersion is the version SealKeyFile writes. Version 1 files (no
// check) stay readable; they become version 2 when the passphrase is next
// changed.
const keyFileVersion = 2

var (
	// ErrWrongPassphrase means the key file is intact but the passphrase
	// does not open it. For a version 1 file (no check), it may also mean
	// the file was damaged: the two cannot be told apart.
	ErrWrongPassphrase = errors.New("that passphrase does not unlock this key file")
	// ErrBadKeyFile means the file fails its own check: it is not a key
	// file this version can read, its layout or parameters are wrong, or
	// (version 2) its checksum does not match, so it was damaged.
	ErrBadKeyFile = errors.New("the key file does not pass its own check: it may be damaged")
)

// SealKeyFile encrypts secret under passphrase: argon2id(passphrase, salt)
// gives a secretbox key. It returns the file's bytes (JSON).
func SealKeyFile(rand io.Reader, passphrase, secret []byte, p KDFParams) ([]byte, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	if len(passphrase) == 0 {
		return nil, errors.New("the passphrase is empty")
	}
	kf := keyFile{Version: keyFileVersion, KDF: "argon2id", Params: p, Salt: make([]byte, 16), Nonce: make([]byte, 24)}
	if err := randomBytes(rand, kf.Salt); err != nil {
		return nil, err
	}
	if err := randomBytes(rand, kf.Nonce); err != nil {
		return nil, err
	}
	key := deriveKey(passphrase, kf.Salt, p)
	kf.Box = secretbox.Seal(nil, secret, (*[24]byte)(kf.Nonce), key)
	clear(key[:])
	kf.Check = kf.checksum()
	return json.MarshalIndent(kf, "", "  ")
}

// OpenKeyFile decrypts a key file. It returns [ErrBadKeyFile] for a file it
// cannot parse or whose parameters are out of bounds, and
// [ErrWrongPassphrase] when the passphrase does not open it.
func OpenKeyFile(data, passphrase []byte) ([]byte, error) {
	secret, key, err := OpenKeyFileKey(data, passphrase)
	if key != nil {
		clear(key[:])
	}
	return secret, err
}

// parseKeyFile checks a key file's layout and parameter bounds.
func parseKeyFile(data []byte) (*keyFile, error) {
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, ErrBadKeyFile
	}
	if kf.Version != 1 && kf.Version != 2 || kf.KDF != "argon2id" || len(kf.Salt) != 16 || len(kf.Nonce) != 24 || len(kf.Box) < secretbox.Overhead {
		return nil, ErrBadKeyFile
	}
	if kf.Version >= 2 && !Equal(kf.Check, kf.checksum()) {
		return nil, ErrBadKeyFile
	}
	if err := kf.Params.Check(); err != nil {
		return nil, err
	}
	return &kf, nil
}

func deriveKey(passphrase, salt []byte, p KDFParams) *[32]byte {
	var key [32]byte
	copy(key[:], argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, 32))
	return &key
}

// Seal encrypts b under a 32-byte local storage key with secretbox and a
// random nonce: nonce (24) || box. Use it for client state at rest.
func Seal(rand io.Reader, key *[32]byte, b []byte) ([]byte, error) {
	var nonce [24]byte
	if err := randomBytes(rand, nonce[:]); err != nil {
		return nil, err
	}
	return secretbox.Seal(nonce[:], b, &nonce, key), nil
}

// ErrCorrupt is returned by [Open] for data that does not authenticate.
var ErrCorrupt = errors.New("stored data does not authenticate: it was altered or belongs to another key")

// Open reverses [Seal].
func Open(key *[32]byte, b []byte) ([]byte, error) { return AppendOpen(nil, key, b) }

// AppendOpen is [Open] appending to dst, so a caller opening many sealed
// pieces can reuse one buffer.
func AppendOpen(dst []byte, key *[32]byte, b []byte) ([]byte, error) {
	if len(b) < 24+secretbox.Overhead {
		return nil, ErrCorrupt
	}
	out, ok := secretbox.Open(dst, b[24:], (*[24]byte)(b[:24]), key)
	if !ok {
		return nil, ErrCorrupt
	}
	return out, nil
}

// Equal compares two secrets in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
