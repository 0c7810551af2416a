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
// Two stores implement it: [BadgerStore], embedded in one relay process,
// and the PostgreSQL store (package server/pgstore), which several relay
// processes may share. The conformance suite in server/storetest checks
// every promise below for each of them, including, for a shared database,
// with two stores open on it at once. A store that several relays share
// also implements [ChangeFeed], so that what one relay stores reaches
// subscribers on the others.
//
// # What is the store's and what is the relay's
//
// A store keeps data and makes changes atomic; the relay's rules live
// above it, in this package, written once for every backend:
//
//   - Who may join, add or remove a device, and under which person each
//     device is filed (devices.go), including that a removed device cannot
//     come back and that a journal is for two people: the store only runs
//     the rule's function inside one transaction ([Store.UpdateMembers],
//     [Store.RedeemInvite]) and writes the changes it records in [Members].
//   - The sentences people read: stores return sentinel errors, never
//     text meant for a person.
//   - Who may purge a blob and what is left of it ([PurgedRecord]). This one
//     the store calls itself, inside its purge transaction, because the
//     author is read from the stored blob and the check and the rewrite
//     must be one atomic step; a store must not purge any other way.
//
// What stays the store's, because only it can keep it atomic: contiguous
// sequence numbers per journal, in commit order; idempotent append by blob
// id; an invite used at most once; the usage count of each journal.
//
// Every method takes a context first (except Close) and must be safe for
// concurrent use, also with other stores open on the same database, if
// the backend allows that. Errors that callers branch on are the protocol
// sentinels ([protocol.ErrExists], [protocol.ErrNotFound],
// [protocol.ErrInviteUnknown]), [ErrInviteExists] and [ErrStoreClosed],
// and whatever error a rule's function returned; anything else is an
// internal failure.
type Store interface {
	// RelayID returns the relay's id: random, generated on first use and
	// persisted, so it is stable across restarts (and the same for every
	// store on one database). Devices sign it when they authenticate.
	RelayID(ctx context.Context) (string, error)

	// CreateJournal creates journal j with device as its only member,
	// filed as a person of its own. It returns protocol.ErrExists if j
	// already exists.
	CreateJournal(ctx context.Context, j protocol.JournalID, device [32]byte) error

	// IsMember reports whether device is a member of j. A journal that does
	// not exist has no members.
	IsMember(ctx context.Context, j protocol.JournalID, device [32]byte) (bool, error)

	// UpdateMembers runs fn with j's members as one transaction sees them
	// and, if fn returns nil, writes the changes fn recorded in m, in the
	// same transaction. Changes to one journal's members (here and in
	// RedeemInvite) are serialized: none comes between fn's reading and
	// the write. If fn returns an error, nothing is written and
	// UpdateMembers returns that error. fn may be called more than once
	// (a store may retry a transaction); only the last call's changes
	// count. For a journal that does not exist, fn sees no members; if it
	// records changes, UpdateMembers returns protocol.ErrNotFound.
	UpdateMembers(ctx context.Context, j protocol.JournalID, fn func(m *Members) error) error

	// PutInvite stores inv, valid until inv.Expires, under inv.AuthHash,
	// the SHA-256 of the invite's auth token. Every kind of invite shares
	// one namespace of hashes. It returns protocol.ErrNotFound if the
	// journal does not exist and ErrInviteExists if the hash is taken.
	// Invites expired for a day or more may be forgotten.
	PutInvite(ctx context.Context, inv Invite) error

	// RedeemInvite atomically finds the invite stored under authHash that
	// has not expired at now, runs fn with it and its journal's members,
	// and, if fn returns nil, uses the invite up and writes the changes fn
	// recorded in m, in one transaction (serialized with other changes to
	// the journal's members, as for UpdateMembers). It returns the invite.
	// It returns protocol.ErrInviteUnknown, and nothing else, whether the
	// invite never existed, has expired or was already used, so a caller
	// learns nothing from a wrong guess. If fn returns an error, the invite
	// stays unused, nothing is written, and RedeemInvite returns the
	// error. fn may be called more than once; only the last call counts.
	// Of two redemptions of one invite at once, at most one succeeds.
	RedeemInvite(ctx context.Context, authHash [32]byte, now time.Time, fn func(inv Invite, m *Members) error) (Invite, error)

	// Append adds blob to the end of j's log and returns its sequence number
	// and id (SHA-256 of blob). Sequence numbers start at 1 and are
	// contiguous per journal, and a blob becomes readable only after every
	// blob before it in its journal. Append is idempotent by id: if j
	// already holds blob (or another append of it is committed first), it
	// returns the original sequence number and dup true and stores
	// nothing. The blob is durable before Append returns without error. It
	// returns protocol.ErrNotFound if j does not exist. Append does not
	// check membership or blob layout; the caller does.
	Append(ctx context.Context, j protocol.JournalID, blob []byte) (seq uint64, id protocol.BlobID, dup bool, err error)

	// StartAppend starts appending blob to j's log, like Append, and
	// returns without waiting for the commit, so that a connection can
	// read its next put meanwhile; appends started one after the other
	// are stored in that order. The caller must call Wait on the result,
	// which returns what Append would have; until then Close waits.
	StartAppend(ctx context.Context, j protocol.JournalID, blob []byte) *PendingAppend

	// Read returns blobs of j with sequence numbers greater than after, in
	// sequence order, at most max of them. It may return fewer than max
	// (an implementation may cap a batch by bytes) but returns none only
	// when j holds nothing after after. At each sequence number it returns
	// the bytes Append stored there (or, once purged, the purged record):
	// so the relay may hand a blob it has just appended to subscribers
	// without reading it back. A blob whose stored bytes are damaged
	// (ErrDamaged; named in the log) is returned with Damaged set and no
	// bytes, so that the blobs after it are still served. The returned
	// slices are owned by the caller.
	Read(ctx context.Context, j protocol.JournalID, after uint64, max int) ([]StoredBlob, error)

	// HasBlob reports whether j holds the blob with id (purged or not).
	HasBlob(ctx context.Context, j protocol.JournalID, id protocol.BlobID) (bool, error)

	// JournalUsage returns the bytes of blobs j's log holds (a purged blob
	// counts as its purged record, and a store may count one byte of its
	// own with it); 0 for a journal that does not exist.
	// It is asked on every put, for [Config.JournalQuota], so it should be
	// cheap. A store shared by several relays may answer from a cache
	// that lags what the others stored by a moment; the quota then
	// overshoots by at most that much.
	JournalUsage(ctx context.Context, j protocol.JournalID) (int64, error)

	// Purge replaces the bytes of blob id in j with the record
	// PurgedRecord(blob, device, chain) returns, keeping its sequence
	// number, and in the same transaction (the rule and the rewrite are
	// one step). If PurgedRecord refuses (device is not the author), Purge
	// returns its error, which wraps protocol.ErrInvalid, and changes
	// nothing. A blob j does not hold gives protocol.ErrNotFound. Purging
	// a purged blob succeeds and changes nothing. It returns the blob's
	// sequence number, and is durable before it returns.
	Purge(ctx context.Context, j protocol.JournalID, id protocol.BlobID, device [32]byte, chain protocol.BlobID) (uint64, error)

	// LastSeq returns the sequence number of j's last blob, or 0 if it has
	// none (or does not exist).
	LastSeq(ctx context.Context, j protocol.JournalID) (uint64, error)

	// Check reports whether the store can serve: nil if it answers a
	// small read within ctx, the reason otherwise. The relay's /readyz
	// asks it with a short timeout.
	Check(ctx context.Context) error

	// Close flushes and closes the store. It waits for operations in flight;
	// later calls fail with ErrStoreClosed.
	Close() error
}

// StoredBlob is one entry of a journal's log.
type StoredBlob struct {
	Seq  uint64
	Blob []byte // the blob, or for a purged one its purged record
	// Purged marks a blob whose author purged it; Blob is then the purged
	// record (protocol.PurgedRecordSize bytes).
	Purged bool
	// Damaged marks a blob whose stored bytes are damaged (ErrDamaged):
	// Blob is nil. The relay serves nothing at its place; clients name it
	// as not arrived once a later blob of its author comes.
	Damaged bool
}

// InviteKind tells the kinds of invite apart.
type InviteKind uint8

// The kinds of invite. A store keeps the kind and gives it back; what each
// kind allows is the relay's rule (see [Redeem]).
const (
	// InvitePartner is a partner invite: redeeming it adds a person to the
	// journal, held to the two-person rule.
	InvitePartner InviteKind = iota
	// InviteAgain is a partner invite made again (protocol.Invite.Again):
	// not held to the two-person rule.
	InviteAgain
	// InviteLink is a device link: redeeming it adds no member (the
	// linking device adds the new one itself).
	InviteLink
)

func (k InviteKind) String() string {
	switch k {
	case InvitePartner:
		return "invite"
	case InviteAgain:
		return "invite made again"
	case InviteLink:
		return "link"
	}
	return "unknown invite kind"
}

// Invite is a one-time invite as a store keeps it.
type Invite struct {
	Journal  protocol.JournalID
	AuthHash [32]byte // SHA-256 of the invite's auth token
	Kind     InviteKind
	Expires  time.Time // valid while now is before it (second precision)
	Packet   []byte    // opaque
}

// ErrInviteExists is returned by [Store.PutInvite] when an invite with the
// same auth hash is already stored.
var ErrInviteExists = errors.New("an invite with that auth hash already exists")

// ErrStoreClosed is returned by a [Store] after Close.
var ErrStoreClosed = errors.New("the relay's store is closed")
