package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// A blob is what the relay stores: opaque bytes with a small clear header.
// Its id is SHA-256 of all its bytes, so uploads are idempotent and a blob
// cannot be moved to another id. The layouts are documented byte for byte in
// docs/protocol.md; the constants below are the single source of truth.
//
//	header (HeaderSize bytes, every kind)
//	  0  1   format version (BlobVersion)
//	  1  1   kind (KindEntry, KindGrant, KindJoin)
//	  2  16  journal id
//	 18  32  author device signing key (Ed25519 public key)
//	 50  8   author sequence number, big-endian, 1 for the device's first blob
//	 58  32  chain id of the author's previous blob (zero when seq is 1)
//
//	entry body
//	 90  24  payload nonce
//	114  1   recipient count n, 1..MaxRecipients
//	115  n × RecipientSize: key id (8) | nonce (24) | boxed key (80)
//	...      payload ciphertext (secretbox), the rest of the blob
//
//	grant body (content keys re-boxed for one recipient device)
//	 90  8   recipient key id
//	 98  2   item count n, big-endian, 1..MaxGrantItems
//	100  n × GrantItemSize: entry chain id (32) | nonce (24) | boxed key (80)
//	 ... 24  binding nonce
//	 ... 48  binding box: SHA-256 of every byte before the binding nonce
//
//	join body
//	 90  32  invite auth hash (which invite this join answers)
//	122  24  nonce
//	146      sealed member record (secretbox), the rest of the blob
const (
	BlobVersion   = 1
	HeaderSize    = 90
	KeyIDSize     = 8
	NonceSize     = 24
	BoxedKeySize  = 32 + 32 + 16 // content key, content hash, box overhead
	RecipientSize = KeyIDSize + NonceSize + BoxedKeySize
	GrantItemSize = 32 + NonceSize + BoxedKeySize
	// GrantBindingSize is the binding nonce and box that end a grant.
	GrantBindingSize = NonceSize + 32 + 16
	MaxRecipients    = 64
	MaxGrantItems    = 4096
	// SecretboxOverhead is the authenticator secretbox adds.
	SecretboxOverhead = 16
)

// Kind says what a blob holds.
type Kind byte

// Blob kinds.
const (
	KindEntry Kind = 1 // a journal entry sealed to its recipients
	KindGrant Kind = 2 // content keys of earlier entries re-boxed for new devices
	KindJoin  Kind = 3 // a new member's record, sealed under the invite key
)

func (k Kind) String() string {
	switch k {
	case KindEntry:
		return "entry"
	case KindGrant:
		return "grant"
	case KindJoin:
		return "join"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// BlobID is a 32-byte id: SHA-256 of a blob's bytes (its blob id, what the
// relay deduplicates by), or a blob's chain id ([ChainID]).
type BlobID [32]byte

// IDOf returns the blob id of blob: SHA-256 of all its bytes.
func IDOf(blob []byte) BlobID { return sha256.Sum256(blob) }

// ChainID returns the id by which a blob is known to clients: what the
// next blob's Prev names, what grants and answers refer to, and the id the
// CLI prints. For an entry it is SHA-256 over the header, the payload nonce
// and the ciphertext, which is exactly the content hash boxed to every
// recipient; it leaves out the recipient table, so a relay that alters
// other devices' slots produces a different blob id but the same chain id,
// and cannot make one entry look like two. Grants and joins authenticate
// every byte, so their chain id is their blob id. blob must have parsed.
func ChainID(blob []byte) BlobID {
	if len(blob) > HeaderSize && Kind(blob[1]) == KindEntry {
		if e, err := ParseEntry(blob); err == nil {
			return e.ContentHash()
		}
	}
	return IDOf(blob)
}

// String returns the id in lowercase hex.
func (id BlobID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is all zeros.
func (id BlobID) IsZero() bool { return id == BlobID{} }

// Header is the clear header at the start of every blob.
type Header struct {
	Kind    Kind
	Journal JournalID
	Author  [32]byte // device signing public key
	Seq     uint64
	Prev    BlobID
}

// Marshal appends the header's HeaderSize bytes to b.
func (h *Header) Marshal(b []byte) []byte {
	b = append(b, BlobVersion, byte(h.Kind))
	b = append(b, h.Journal[:]...)
	b = append(b, h.Author[:]...)
	b = binary.BigEndian.AppendUint64(b, h.Seq)
	b = append(b, h.Prev[:]...)
	return b
}

// ErrBadBlob is wrapped by every blob parsing error.
var ErrBadBlob = errors.New("malformed blob")

func badBlob(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadBlob, fmt.Sprintf(format, args...))
}

// ParseHeader checks a blob's version, kind, size and header fields, and
// returns the header. It does not look inside the body beyond its length.
func ParseHeader(blob []byte) (Header, error) {
	var h Header
	if len(blob) < HeaderSize {
		return h, badBlob("%d bytes is shorter than a header", len(blob))
	}
	if len(blob) > MaxBlobSize {
		return h, badBlob("%d bytes is over the %d-byte limit", len(blob), MaxBlobSize)
	}
	if blob[0] != BlobVersion {
		return h, badBlob("format version %d is not supported", blob[0])
	}
	h = headerFields(blob)
	if h.Seq == 0 {
		return h, badBlob("sequence number 0")
	}
	if (h.Seq == 1) != h.Prev.IsZero() {
		return h, badBlob("previous-blob link does not match sequence %d", h.Seq)
	}
	var err error
	switch h.Kind {
	case KindEntry:
		_, err = ParseEntry(blob)
	case KindGrant:
		_, err = ParseGrant(blob)
	case KindJoin:
		_, err = ParseJoin(blob)
	default:
		err = badBlob("unknown kind %d", blob[1])
	}
	return h, err
}

// ParsePurged parses a purged record (see [Purge]): a blob header and the
// chain id its author gave. It checks the header like [ParseHeader] but
// there is no body to check.
func ParsePurged(rec []byte) (Header, BlobID, error) {
	var chain BlobID
	if len(rec) != PurgedRecordSize || rec[0] != BlobVersion {
		return Header{}, chain, badBlob("not a purged record")
	}
	h := headerFields(rec)
	if h.Seq == 0 || (h.Seq == 1) != h.Prev.IsZero() {
		return Header{}, chain, badBlob("purged record has a bad sequence link")
	}
	copy(chain[:], rec[HeaderSize:])
	return h, chain, nil
}

// Recipient is one slot of an entry's recipient table: the content key and
// content hash boxed from the author's device to one recipient device.
type Recipient struct {
	KeyID [KeyIDSize]byte // first 8 bytes of SHA-256 of the recipient's box key
	Nonce [NonceSize]byte
	Boxed []byte // BoxedKeySize bytes
}

// Entry is a parsed entry blob. Its slices alias the blob.
type Entry struct {
	Header     Header
	HeaderRaw  []byte // the HeaderSize header bytes
	Nonce      [NonceSize]byte
	Recipients []Recipient
	Ciphertext []byte

	hash *BlobID // ContentHash, once computed
}

// ParseEntry parses an entry blob's layout without opening anything.
func ParseEntry(blob []byte) (*Entry, error) {
	if len(blob) < HeaderSize+NonceSize+1 || Kind(blob[1]) != KindEntry {
		return nil, badBlob("not an entry")
	}
	e := &Entry{HeaderRaw: blob[:HeaderSize]}
	e.Header = headerFields(blob)
	p := blob[HeaderSize:]
	copy(e.Nonce[:], p[:NonceSize])
	n := int(p[NonceSize])
	p = p[NonceSize+1:]
	if n < 1 || n > MaxRecipients {
		return nil, badBlob("%d recipients is outside 1..%d", n, MaxRecipients)
	}
	if len(p) < n*RecipientSize+SecretboxOverhead {
		return nil, badBlob("entry is truncated")
	}
	e.Recipients = make([]Recipient, n)
	for i := range e.Recipients {
		r := &e.Recipients[i]
		copy(r.KeyID[:], p[:KeyIDSize])
		copy(r.Nonce[:], p[KeyIDSize:KeyIDSize+NonceSize])
		r.Boxed = p[KeyIDSize+NonceSize : RecipientSize]
		p = p[RecipientSize:]
	}
	e.Ciphertext = p
	return e, nil
}

// ContentHash is SHA-256 of the header, the payload nonce and the
// ciphertext: the entry's chain id, and the hash boxed with its content key.
//
// It is computed once per parsed Entry: the fields must not be changed
// after it is first called.
func (e *Entry) ContentHash() BlobID {
	if e.hash != nil {
		return *e.hash
	}
	h := sha256.New()
	h.Write(e.HeaderRaw)
	h.Write(e.Nonce[:])
	h.Write(e.Ciphertext)
	var sum BlobID
	h.Sum(sum[:0])
	e.hash = &sum
	return sum
}

// KeepSlots returns entry blob with every recipient slot removed except
// those whose key id is kid, and the recipient count lowered to match:
// the same entry (its chain id leaves out the recipient table, [ChainID])
// that only the device with key id kid can open. It is a pure function of
// its inputs, so making it again (a resend after a crash, or to find its
// blob id) gives the same bytes. It fails if blob is not an entry or has
// no slot with kid (a count of zero does not parse).
func KeepSlots(blob []byte, kid [KeyIDSize]byte) ([]byte, error) {
	e, err := ParseEntry(blob)
	if err != nil {
		return nil, err
	}
	n := 0
	for i := range e.Recipients {
		if e.Recipients[i].KeyID == kid {
			n++
		}
	}
	if n == 0 {
		return nil, badBlob("entry has no slot to keep")
	}
	slots := blob[HeaderSize+NonceSize+1:]
	out := make([]byte, 0, HeaderSize+NonceSize+1+n*RecipientSize+len(e.Ciphertext))
	out = append(out, blob[:HeaderSize+NonceSize]...)
	out = append(out, byte(n))
	for i := range e.Recipients {
		if e.Recipients[i].KeyID == kid {
			out = append(out, slots[i*RecipientSize:(i+1)*RecipientSize]...)
		}
	}
	return append(out, e.Ciphertext...), nil
}

// GrantItem is one re-boxed content key in a grant.
type GrantItem struct {
	Entry BlobID // the entry's chain id
	Nonce [NonceSize]byte
	Boxed []byte // BoxedKeySize bytes
}

// Grant is a parsed grant blob.
type Grant struct {
	Header    Header
	KeyID     [KeyIDSize]byte // the recipient device's key id
	Items     []GrantItem
	Bound     []byte // the bytes the binding box covers
	BindNonce [NonceSize]byte
	BindBox   []byte // 48 bytes
}

// ParseGrant parses a grant blob's layout.
func ParseGrant(blob []byte) (*Grant, error) {
	if len(blob) < HeaderSize+KeyIDSize+2+GrantBindingSize || Kind(blob[1]) != KindGrant {
		return nil, badBlob("not a grant")
	}
	g := &Grant{Header: headerFields(blob)}
	copy(g.KeyID[:], blob[HeaderSize:])
	n := int(binary.BigEndian.Uint16(blob[HeaderSize+KeyIDSize:]))
	if n < 1 || n > MaxGrantItems {
		return nil, badBlob("%d grant items is outside 1..%d", n, MaxGrantItems)
	}
	want := HeaderSize + KeyIDSize + 2 + n*GrantItemSize + GrantBindingSize
	if len(blob) != want {
		return nil, badBlob("grant is %d bytes, want %d", len(blob), want)
	}
	p := blob[HeaderSize+KeyIDSize+2:]
	g.Items = make([]GrantItem, n)
	for i := range g.Items {
		it := &g.Items[i]
		copy(it.Entry[:], p[:32])
		copy(it.Nonce[:], p[32:32+NonceSize])
		it.Boxed = p[32+NonceSize : GrantItemSize]
		p = p[GrantItemSize:]
	}
	g.Bound = blob[:len(blob)-GrantBindingSize]
	copy(g.BindNonce[:], p[:NonceSize])
	g.BindBox = p[NonceSize:]
	return g, nil
}

// Join is a parsed join blob.
type Join struct {
	Header     Header
	HeaderRaw  []byte
	InviteHash [32]byte
	Nonce      [NonceSize]byte
	Sealed     []byte
}

// ParseJoin parses a join blob's layout.
func ParseJoin(blob []byte) (*Join, error) {
	if len(blob) < HeaderSize+32+NonceSize+SecretboxOverhead || Kind(blob[1]) != KindJoin {
		return nil, badBlob("not a join")
	}
	j := &Join{Header: headerFields(blob), HeaderRaw: blob[:HeaderSize]}
	copy(j.InviteHash[:], blob[HeaderSize:HeaderSize+32])
	copy(j.Nonce[:], blob[HeaderSize+32:HeaderSize+32+NonceSize])
	j.Sealed = blob[HeaderSize+32+NonceSize:]
	return j, nil
}

// HeaderAuthor returns the author field of what may be a damaged blob,
// without checking anything else; ok is false if blob is shorter than a
// header. Only for telling whose a damaged local copy may have been.
func HeaderAuthor(blob []byte) (author [32]byte, ok bool) {
	if len(blob) < HeaderSize {
		return author, false
	}
	return headerFields(blob).Author, true
}

func headerFields(blob []byte) Header {
	var h Header
	h.Kind = Kind(blob[1])
	copy(h.Journal[:], blob[2:18])
	copy(h.Author[:], blob[18:50])
	h.Seq = binary.BigEndian.Uint64(blob[50:58])
	copy(h.Prev[:], blob[58:90])
	return h
}
