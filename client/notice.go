package client

// Notices: what the client tells the person, as kinds and data.
//
// The library never writes sentences for the person: it records a [Notice]
// (a kind from the list below, who it is about, how many times, since
// when) and cmd/kintsugi words it. Notices come in four groups:
//
//   - Stored notices: problems noticed while syncing, kept in the sealed
//     journal state until the person marks them read
//     ([Journal.Acknowledge]). They are deduplicated by [Notice.ID] (the
//     kind, and who it is about): a repeat adds to Count instead of adding
//     a line. A read notice stays in the state, so the same occurrence seen
//     again (the same relay position, re-derived on the next sync) stays
//     read, and a new occurrence shows again as new.
//   - Conditions: derived afresh from the journal each time, shown while
//     they hold, gone when they stop holding. They cannot be marked read
//     (Acknowledge returns [ErrNoticeHolds]): a partner's new identity
//     waiting to be verified, a restore that has not finished.
//   - Roster changes, in [SyncResult.Notices] and [Event.Notices]: said
//     once, when they arrive.
//   - Gaps, in [Status.Missing]: items the hash chains say exist but have
//     not arrived, and devices with two histories; derived each time.
//
// The kinds are append-only: a kind is never renamed or given a new
// meaning, because scripts read them (`kintsugi status --json`,
// docs/cli-json.md).

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NoticeKind says what a [Notice] is about. The list is append-only.
type NoticeKind string

// Stored notices, kept until marked read.
const (
	// NoticeLegacy carries, in Text, a warning recorded as a sentence by
	// an earlier version of kintsugi, so nothing a person was told
	// disappears on upgrade.
	NoticeLegacy NoticeKind = "legacy"
	// NoticeRelayBadPurge: the relay sent a malformed purged record; it
	// was set aside. Position is the latest.
	NoticeRelayBadPurge NoticeKind = "relay-bad-purge"
	// NoticeRelayBadItem: the relay sent something that is not a valid
	// item for this journal; it was set aside. Position is the latest.
	NoticeRelayBadItem NoticeKind = "relay-bad-item"
	// NoticeRelayForgedOwn: the relay sent something claiming to come
	// from this device that it never wrote; it was set aside. Position is
	// the latest.
	NoticeRelayForgedOwn NoticeKind = "relay-forged-own"
	// NoticeRelayReplayed: the relay sent, at a new position, an item it
	// had already sent at another: an honest relay stores each item once
	// (puts are deduplicated), so its history contradicts itself. Nothing
	// is shown twice or changed. Position is the latest.
	NoticeRelayReplayed NoticeKind = "relay-replayed"
	// NoticeRestoreStrays: when a restore finished, Count items claiming
	// to come from this device were not part of its history; set aside.
	NoticeRestoreStrays NoticeKind = "restore-strays"
	// NoticeLateJoin: an invite code was used after the partner had
	// joined; it was refused.
	NoticeLateJoin NoticeKind = "late-join"
	// NoticeJoinUnopened: someone answered an invite with details that
	// did not open; they were not added.
	NoticeJoinUnopened NoticeKind = "join-unopened"
	// NoticeJoinInvalid: someone answered an invite with details that
	// did not check out; they were not added.
	NoticeJoinInvalid NoticeKind = "join-invalid"
	// NoticeDeviceInvalid: a new device from Who did not check out, so
	// nothing is sent to it.
	NoticeDeviceInvalid NoticeKind = "device-invalid"
	// NoticeDeviceCollides: a new device from Who uses keys another
	// device already has, so nothing is sent to it.
	NoticeDeviceCollides NoticeKind = "device-collides"
	// NoticeThisDeviceRemoved: another of this person's devices removed
	// this one; it keeps what it has and receives nothing new.
	NoticeThisDeviceRemoved NoticeKind = "this-device-removed"
	// NoticePartnerLeft: Who left the journal on Date. Also a roster
	// change.
	NoticePartnerLeft NoticeKind = "partner-left"
	// NoticeLostUnsent: on Date, Count entries written on this device and
	// not yet sent could not be read back after its file was damaged
	// (repair.go; the repair's report named them). Position is the
	// repair's time in Unix seconds (one more than the last one's, for a
	// second repair in the same second), so each repair counts.
	NoticeLostUnsent NoticeKind = "lost-unsent"
	// NoticeRelayChanged: the relay sent Count entries that carry a slot
	// for this device but do not authenticate, or lack the slot a later
	// entry of their author says they carried (to_since): they were
	// changed on the way (a body moved under another header, a changed
	// byte, an altered or stripped slot), or were sealed by someone other
	// than the device they name.
	// They are set aside and never shown; Status.Changed counts those in
	// the journal. Position is the latest.
	NoticeRelayChanged NoticeKind = "relay-changed"
)

// Conditions, shown while they hold; they cannot be marked read.
const (
	// NoticeIdentityChanged: the partner Who answered an invite with new
	// keys (as NewName), waiting since Since to be verified together.
	NoticeIdentityChanged NoticeKind = "identity-changed"
	// NoticeRestorePending: this device was restored from a backup made
	// on Date and has not yet collected its own earlier items; writing
	// waits for a sync.
	NoticeRestorePending NoticeKind = "restore-pending"
	// NoticeRepairPending: this journal's log on this device was repaired
	// on Date (repair.go) and has not yet collected this device's own
	// earlier items from the relay; writing waits for a sync.
	NoticeRepairPending NoticeKind = "repair-pending"
	// NoticeRestoreOlder: the backup knows Want items from this device and
	// the relay has only Count; writing waits (see [ErrOwnHistoryOlder]).
	NoticeRestoreOlder NoticeKind = "restore-older"
	// NoticeRestoreForked: the relay holds two histories for this device
	// since the backup; writing waits (see [ErrOwnHistoryForked]).
	NoticeRestoreForked NoticeKind = "restore-forked"
)

// Roster changes, in SyncResult and Event.
const (
	// NoticeDeviceAdded: Who added a device (Device, DeviceID).
	NoticeDeviceAdded NoticeKind = "device-added"
	// NoticeDeviceRemoved: Who removed a device (DeviceID); nothing new is
	// sent to it.
	NoticeDeviceRemoved NoticeKind = "device-removed"
)

// Gaps, in Status.Missing.
const (
	// NoticeMissingItems: Count earlier items from a device (Who, Device,
	// ThisDevice; Who empty for a device not in the roster) have not
	// arrived.
	// DamagedHere says they may be among what damage to this device's
	// files set aside, to be fetched again.
	NoticeMissingItems NoticeKind = "missing-items"
	// NoticeForkedHistory: a device (as for NoticeMissingItems) has two
	// different histories.
	NoticeForkedHistory NoticeKind = "forked-history"
)

// Notice is something the person should know, as a kind and data; the
// CLI words it. Only the fields its kind names are set.
type Notice struct {
	Kind NoticeKind `json:"kind"`
	// ID identifies the notice for deduplication and for Acknowledge: the
	// kind, then ":" and who it is about if anyone.
	ID string `json:"id"`
	// Who is the person it is about, by name.
	Who string `json:"who,omitempty"`
	// NewName is the name a partner's new identity gives
	// (NoticeIdentityChanged).
	NewName string `json:"new_name,omitempty"`
	// Device, DeviceID and ThisDevice say which device it is about: its
	// name (empty if unnamed), its id (see DeviceID), and whether it is
	// this one.
	Device     string `json:"device,omitempty"`
	DeviceID   string `json:"device_id,omitempty"`
	ThisDevice bool   `json:"this_device,omitempty"`
	// Count is how many times it happened, or how many items it concerns,
	// since it was last marked read.
	Count int `json:"count"`
	// Want is, for NoticeRestoreOlder, how many items the backup knows.
	Want int `json:"want,omitempty"`
	// Since is when it was first noticed (since it was last marked read);
	// zero when unknown (NoticeLegacy).
	Since time.Time `json:"since,omitzero"`
	// Position is the relay position of the latest occurrence, if it has
	// one. A stored notice counts an occurrence at or below it once.
	Position uint64 `json:"position,omitempty"`
	// Date is the day it concerns: when the partner left, when the backup
	// was made.
	Date time.Time `json:"date,omitzero"`
	// Text is the sentence an earlier version recorded (NoticeLegacy).
	Text string `json:"text,omitempty"`
	// Lost names, for NoticeLostUnsent, the entries that could not be
	// read back (the newest last, at most maxLostNamed), so the person can
	// still learn which words to write again after the first note of it
	// went by. Their first words stay in the sealed state, like the
	// witness they came from.
	Lost []LostItem `json:"lost,omitempty"`
	// DamagedHere is set, on NoticeMissingItems, while part of this
	// journal's log on this device that was damaged and set aside has not
	// been fetched again from the relay: the items may have arrived and
	// been lost here, and the next sync fetches them again.
	DamagedHere bool `json:"damaged_here,omitempty"`
	// Acknowledged is set once the person marked it read.
	Acknowledged bool `json:"acknowledged"`
	// Holds is set on conditions: they show while they hold and cannot
	// be marked read.
	Holds bool `json:"holds,omitempty"`
}

// Errors of Acknowledge.
var (
	// ErrNoSuchNotice: no notice has that id or kind.
	ErrNoSuchNotice = errors.New("there is no notice with that id")
	// ErrNoticeHolds: the notice is a condition that still holds; it goes
	// away by itself once it no longer does.
	ErrNoticeHolds = errors.New("that notice still holds, so it cannot be marked read yet")
)

// maxLostNamed bounds the entries a NoticeLostUnsent names; its Count
// still counts them all.
const maxLostNamed = 64

func noticeID(kind NoticeKind, who string) string {
	if who == "" {
		return string(kind)
	}
	return string(kind) + ":" + who
}

// raise records a stored notice, deduplicated by its ID. at is the relay
// position of this occurrence (0 if it has none): an occurrence at or
// below the recorded position, or any repeat without a position, is one
// already counted. n.Count is how much to add (1 if zero). A new
// occurrence of a notice marked read shows again as new. It reports
// whether the state changed. Call with the lock held.
func (st *state) raise(n Notice, at uint64) bool {
	n.ID = noticeID(n.Kind, n.Who)
	n.Position = at
	if n.Count == 0 {
		n.Count = 1
	}
	now := time.Now().UTC()
	for i := range st.Notices {
		old := &st.Notices[i]
		if old.ID != n.ID {
			continue
		}
		if at == 0 || at <= old.Position {
			return false
		}
		count, since, lost := old.Count+n.Count, old.Since, append(old.Lost, n.Lost...)
		if old.Acknowledged {
			count, since, lost = n.Count, now, n.Lost
		}
		*old = n
		old.Count, old.Since, old.Lost = count, since, lost[max(0, len(lost)-maxLostNamed):]
		return true
	}
	n.Since = now
	st.Notices = append(st.Notices, n)
	return true
}

// identityNotice returns the notice of new keys answering an invite for
// the partner, waiting to be confirmed, or nil. Call with the lock held.
func (st *state) identityNotice() *Notice {
	if p := st.partner(); p != nil && p.Pending != nil {
		return &Notice{Kind: NoticeIdentityChanged, Who: p.Name, NewName: p.Pending.Name, Count: 1, Since: p.Pending.Since}
	}
	return nil
}

// conditions returns the notices that hold now. Call with the lock held.
func (st *state) conditions() []Notice {
	var out []Notice
	if n := st.identityNotice(); n != nil {
		out = append(out, *n)
	}
	if r := st.Restored; r != nil {
		n := Notice{Kind: NoticeRestorePending, Count: 1, Date: r.Since, Since: r.Since}
		if r.Reason == reasonRepair {
			n.Kind = NoticeRepairPending
		}
		switch r.Problem {
		case "older":
			n.Kind, n.Count, n.Want = NoticeRestoreOlder, int(r.RelayTop), int(r.Seq)
		case "forked":
			n.Kind = NoticeRestoreForked
		}
		out = append(out, n)
	}
	for i := range out {
		out[i].ID, out[i].Holds = noticeID(out[i].Kind, out[i].Who), true
	}
	return out
}

// notices returns the conditions that hold, then the stored notices
// (marked read or not). Call with the lock held.
func (st *state) notices() []Notice {
	return append(st.conditions(), st.Notices...)
}

// Notices returns the notices that hold or are stored, read or not.
func (j *Journal) Notices() ([]Notice, error) {
	var out []Notice
	err := j.withLock(func() error { out = j.st.notices(); return nil })
	return out, err
}

// Acknowledge marks notices read so status stops showing them. Each
// argument is a notice's ID or a kind (every notice of that kind). It
// returns ErrNoSuchNotice for an argument matching nothing, and
// ErrNoticeHolds for a condition that still holds; nothing is changed
// then.
func (j *Journal) Acknowledge(ids ...string) error {
	return j.withLock(func() error {
		for _, id := range ids {
			for _, c := range j.st.conditions() {
				if c.ID == id || string(c.Kind) == id {
					return fmt.Errorf("%w (%s)", ErrNoticeHolds, id)
				}
			}
			found := false
			for _, n := range j.st.Notices {
				found = found || n.ID == id || string(n.Kind) == id
			}
			if !found {
				return fmt.Errorf("%w: %q", ErrNoSuchNotice, id)
			}
		}
		changed := false
		for i := range j.st.Notices {
			n := &j.st.Notices[i]
			for _, id := range ids {
				if (n.ID == id || string(n.Kind) == id) && !n.Acknowledged {
					n.Acknowledged, changed = true, true
				}
			}
		}
		if !changed {
			return nil
		}
		return j.saveState()
	})
}

// AcknowledgeAll marks every stored notice read and returns how many were
// unread. Conditions that hold are left showing.
func (j *Journal) AcknowledgeAll() (int, error) {
	n := 0
	err := j.withLock(func() error {
		for i := range j.st.Notices {
			if !j.st.Notices[i].Acknowledged {
				j.st.Notices[i].Acknowledged = true
				n++
			}
		}
		if n == 0 {
			return nil
		}
		return j.saveState()
	})
	return n, err
}

// legacyIdentityChangedPrefix started the sentence earlier versions stored
// while a partner's new identity waited to be confirmed; that is now a
// condition (NoticeIdentityChanged), derived from the member's Pending.
const legacyIdentityChangedPrefix = "Your partner's safety number has changed: "

// migrateWarnings turns the sentences earlier versions stored in
// Warnings into notices: the ones now derived as conditions (a restore's
// pending warning, a partner's new identity) are dropped, since the
// condition shows while it holds; every other one becomes a NoticeLegacy
// carrying its text.
func (st *state) migrateWarnings() {
	for _, w := range st.Warnings {
		if st.Restored != nil && w == st.Restored.Warning {
			continue
		}
		if strings.HasPrefix(w, legacyIdentityChangedPrefix) && st.pendingIdentity() {
			continue
		}
		sum := sha256.Sum256([]byte(w))
		id := noticeID(NoticeLegacy, hex.EncodeToString(sum[:4]))
		dup := false
		for _, n := range st.Notices {
			dup = dup || n.ID == id
		}
		if !dup {
			st.Notices = append(st.Notices, Notice{Kind: NoticeLegacy, ID: id, Count: 1, Text: w})
		}
	}
	st.Warnings = nil
	if st.Restored != nil {
		st.Restored.Warning = ""
	}
}

func (st *state) pendingIdentity() bool {
	for _, m := range st.Members {
		if !m.Self && m.Pending != nil {
			return true
		}
	}
	return false
}
