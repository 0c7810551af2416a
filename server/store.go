package server

import (
	"context"
	"errors"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Store is the relay's durable state: journals, their members, pending
// invites and each journal's append-only log of blobs. A Store holds only
// what the relay is shown, which is ciphertext and clear headers; it never
// needs to look inside a blob.
//
// Every method takes a context first and must be safe for concurrent use.
// Errors that callers branch on are the protocol sentinels
// ([protocol.ErrExists], [protocol.ErrNotFound], [protocol.ErrInviteUnknown])
// and [ErrInviteExists]; anything else is an internal failure.
type Store interface {
	// RelayID returns the relay's id: random, generated on first use and
	// persisted, so it is stable across restarts. Devices sign it when they
	// authenticate.
	RelayID(ctx context.Context) (string, error)

	// CreateJournal creates journal j with device as its only member. It
	// returns protocol.ErrExists if j already exists.
	CreateJournal(ctx context.Context, j protocol.JournalID, device [32]byte) error

	// IsMember reports whether device is a member of j. A journal that does
	// not exist has no members.
	IsMember(ctx context.Context, j protocol.JournalID, device [32]byte) (bool, error)

	// AddMember makes device a member of j; adding a member twice is not an
	// error. It returns protocol.ErrNotFound if j does not exist.
	AddMember(ctx context.Context, j protocol.JournalID, device [32]byte) error

	// AddDevice makes device a member of j filed under the same person as
	// by, which must be a member. Adding a device already filed under that
	// person is not an error. It returns an error wrapping
	// protocol.ErrNotMember if by is not a member, and one wrapping
	// protocol.ErrInvalid if device belongs to another person or was
	// removed from j before.
	AddDevice(ctx context.Context, j protocol.JournalID, by, device [32]byte) error

	// RemoveDevice removes device, which must be filed under the same
	// person as by, from j, and remembers it so it cannot come back. It
	// returns an error wrapping protocol.ErrNotMember if by is not a
	// member, protocol.ErrNotFound if device is not a member, and
	// protocol.ErrInvalid if device is by itself or another person's.
	RemoveDevice(ctx context.Context, j protocol.JournalID, by, device [32]byte) error

	// Leave removes every device filed under the same person as device,
	// device included, from j, remembers them as removed, and returns
	// them. It returns an error wrapping protocol.ErrNotMember if device
	// is not a member.
	Leave(ctx context.Context, j protocol.JournalID, device [32]byte) ([][32]byte, error)

	// PutInvite stores a one-time invite to j under authHash, the SHA-256 of
	// the invite's auth token, valid until expires. packet is opaque. It
	// returns protocol.ErrNotFound if j does not exist and ErrInviteExists
	// if an invite with authHash is already stored.
	PutInvite(ctx context.Context, j protocol.JournalID, authHash [32]byte, expires time.Time, packet []byte) error

	// PutInviteAgain stores a partner invite like PutInvite, marked as
	// made again (protocol.Invite.Again): redeeming it is not held to the
	// two-person rule. Invites, invites made again and links share one
	// namespace of hashes.
	PutInviteAgain(ctx context.Context, j protocol.JournalID, authHash [32]byte, expires time.Time, packet []byte) error

	// PutLink stores a device link under authHash, like PutInvite, but
	// redeeming it adds no member. Invites and links share one namespace:
	// either returns ErrInviteExists if authHash is taken by the other.
	PutLink(ctx context.Context, j protocol.JournalID, authHash [32]byte, expires time.Time, packet []byte) error

	// RedeemInvite atomically finds the unused invite stored under authHash
	// that has not expired at now, uses it up, and adds device to its
	// journal (unless it is a link). It returns the journal and the
	// invite's packet. It returns
	// protocol.ErrInviteUnknown, and nothing else, whether the invite never
	// existed, has expired or was already used, so a caller learns nothing
	// from a wrong guess.
	//
	// maxPersons is the two-person rule (0: no limit): an ordinary partner
	// invite redeemed by a device that is not a member yet, into a journal
	// whose member devices are already filed under maxPersons people or
	// more, adds nobody, is used up all the same, and returns
	// protocol.ErrJournalFull. Links and invites made again are not held
	// to it.
	RedeemInvite(ctx context.Context, authHash [32]byte, device [32]byte, now time.Time, maxPersons int) (protocol.JournalID, []byte, error)

	// Append adds blob to the end of j's log and returns its sequence number
	// and id (SHA-256 of blob). Sequence numbers start at 1 and are
	// contiguous per journal. Append is idempotent by id: if j already holds
	// blob, it returns the original sequence number and dup true and stores
	// nothing. The blob is durable (synced to disk) before Append returns
	// without error. Append does not check membership or blob layout; the
	// caller does.
	Append(ctx context.Context, j protocol.JournalID, blob []byte) (seq uint64, id protocol.BlobID, dup bool, err error)

	// Read returns blobs of j with sequence numbers greater than after, in
	// sequence order, at most max of them. It may return fewer than max
	// (an implementation may cap a batch by bytes) but returns none only
	// when j holds nothing after after. The returned slices are owned by
	// the caller.
	Read(ctx context.Context, j protocol.JournalID, after uint64, max int) ([]StoredBlob, error)

	// Purge replaces the bytes of blob id in j with a purged record
	// (its header and the given chain id), keeping its sequence number. The
	// blob's author must be device: otherwise it returns an error wrapping
	// protocol.ErrInvalid. A blob j does not hold gives protocol.ErrNotFound.
	// Purging a purged blob succeeds and changes nothing. It returns the
	// blob's sequence number, and must be durable before it returns.
	Purge(ctx context.Context, j protocol.JournalID, id protocol.BlobID, device [32]byte, chain protocol.BlobID) (uint64, error)

	// LastSeq returns the sequence number of j's last blob, or 0 if it has
	// none (or does not exist).
	LastSeq(ctx context.Context, j protocol.JournalID) (uint64, error)

	// Close flushes and closes the store. It waits for operations in flight;
	// later calls fail.
	Close() error
}

// StoredBlob is one entry of a journal's log.
type StoredBlob struct {
	Seq  uint64
	Blob []byte // the blob, or for a purged one its purged record
	// Purged marks a blob whose author purged it; Blob is then the purged
	// record (protocol.PurgedRecordSize bytes).
	Purged bool
}

// ErrInviteExists is returned by [Store.PutInvite] when an invite with the
// same auth hash is already stored.
var ErrInviteExists = errors.New("an invite with that auth hash already exists")

// ErrStoreClosed is returned by a [Store] after Close.
var ErrStoreClosed = errors.New("the relay's store is closed")
