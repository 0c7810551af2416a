package client

// Adopting this device's own history after a restore.
//
// Normally only this device writes as this device and it keeps everything
// it writes, so a blob from the relay naming this device as its author that
// is not in the local log is set aside (sync.go, receive). A device
// restored from a backup (backup.go) starts with an empty log, so its own
// earlier blobs come back from the relay like that. While the journal is in
// restored mode (state.Restored) such blobs are recorded as pulled, and
// once the sync has caught up, adoptOwnChain decides which of them really
// are this device's history and adopts them (an 'O' record in the log):
// they become Local, so they count for this device's next seq and prev,
// their grants count as "written here" and their entries are re-boxed like
// any other own entry; they are not in the outbox, because the relay
// already has them (RelaySeq is set).
//
// What is adopted:
//
//   - Up to the head the backup recorded (its seq and chain id): the blob
//     with that chain id and every blob reached from it along prev links
//     (seq - 1 each step). The chain id is a hash, so these are exactly the
//     blobs the backup knew, whoever served them. A hole below the head
//     (a blob the relay dropped) stops the walk; `status` reports it as
//     missing, as it would for any device.
//   - After the head (written on the old machine after the backup was
//     made): step by step, the one blob with seq + 1 whose prev is the
//     current tip and that proves itself: an entry whose slot for this
//     device opens (only this device's key makes that slot), or a grant
//     whose binding box opens with the key this device shares with a
//     member's device (CheckSentGrant: the relay cannot make one). A
//     purged record, or a grant to a device not in the member list, is
//     taken only when a proven blob follows it. Joins are never adopted
//     past the head (a device joins once, before any backup of the
//     journal).
//
// If the relay does not hold the recorded head, its copy of this device's
// history is older than the backup: nothing is adopted, writing stays
// paused, and the problem is shown (NoticeRestoreOlder) and returned by Sync. If two
// proven blobs continue the chain at one step, two machines have written as
// this device (the old one is still in use): the same happens. Otherwise
// restored mode ends, and the next write continues the chain from the
// adopted tip instead of forking it.

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// restoreMark is kept in a restored journal's state until its own history
// has been recovered from the relay.
type restoreMark struct {
	// Seq and Head are this device's chain head when the backup was made
	// (Head is the chain id in hex; both zero if it had written nothing).
	Seq   uint64    `json:"seq"`
	Head  string    `json:"head,omitempty"`
	Since time.Time `json:"since"`
	// Problem is set when the last attempt could not finish: "older"
	// (the relay lacks the head) or "forked" (two continuations).
	Problem string `json:"problem,omitempty"`
	// RelayTop is, for "older", the last seq of this device's history the
	// relay served.
	RelayTop uint64 `json:"relay_top,omitempty"`
	// Warning is the sentence earlier versions stored in the state's
	// warnings for this restore; read only so migrateWarnings can drop it
	// (the restore is now shown as a condition: NoticeRestorePending).
	Warning string `json:"warning,omitempty"`
	// Reason is reasonRepair when a repair of the log (repair.go), not a
	// restore from a backup, put the journal in this mode.
	Reason string `json:"reason,omitempty"`
}

// Errors about a restored journal.
var (
	// ErrRestoring: a restored journal cannot be written to until a sync
	// has recovered this device's own history.
	ErrRestoring = errors.New("this device was restored from a backup and has not yet collected its own earlier entries from the relay, so it cannot write here yet (writing now would split your history in two)")
	// ErrRepairing: a journal whose log was repaired cannot be written to
	// until a sync has collected this device's own entries again.
	ErrRepairing = errors.New("this journal's file on this device was repaired and has not yet collected this device's earlier entries from the relay, so it cannot write here yet (writing now would split your history in two)")
	// ErrOwnHistoryOlder: the relay's copy of this device's history ends
	// before the head the backup recorded.
	ErrOwnHistoryOlder = errors.New("this device's history on the relay looks older than the backup")
	// ErrOwnHistoryForked: the relay holds two different continuations of
	// this device's history after the backup's head.
	ErrOwnHistoryForked = errors.New("the relay holds two different histories for this device since the backup was made")
)

// err is the error a sync reports while the restore cannot finish.
func (r *restoreMark) err() error {
	switch r.Problem {
	case "older":
		return fmt.Errorf("%w: the backup knows %d items from this device, and the relay has only %d. Nothing was changed, and writing here waits so your history is not split in two", ErrOwnHistoryOlder, r.Seq, r.RelayTop)
	case "forked":
		return fmt.Errorf("%w. Nothing was changed, and writing here waits so your history is not split further", ErrOwnHistoryForked)
	}
	return nil
}

// restoreErr returns the problem that keeps a restored journal from
// finishing, if any. Call with the lock held.
func (st *state) restoreErr() error {
	if st.Restored == nil {
		return nil
	}
	return st.Restored.err()
}

// Restoring reports whether the journal is still recovering this device's
// own history after a restore.
func (j *Journal) Restoring() bool {
	var r bool
	_ = j.withLock(func() error { r = j.st.Restored != nil; return nil })
	return r
}

// adopt marks a pulled blob as this device's own. Call while indexing
// the log.
func (l *logIndex) adopt(id protocol.BlobID) {
	s := l.blob(id)
	if s == nil || s.Header.Author != l.signKey {
		return
	}
	s.Local = true
	l.adoptions++ // an adopted entry may lack a recipient (see ensureGrants)
	if s.Header.Seq > l.ownSeq {
		l.ownSeq, l.ownLast = s.Header.Seq, s.Chain
	}
}

// ownChain indexes the blobs naming this device as author.
type ownChain struct {
	byChain map[protocol.BlobID][]*stored         // every copy, by chain id
	after   map[protocol.BlobID][]protocol.BlobID // prev → chain ids naming it
}

// adoptOwnChain runs after a sync has caught up, in restored mode: it
// adopts this device's history (see the top of this file) and ends
// restored mode, or records why it cannot. Call with the lock held.
func (j *Journal) adoptOwnChain() error {
	r := j.st.Restored
	if r == nil {
		return nil
	}
	me := j.signKey
	oc := ownChain{byChain: make(map[protocol.BlobID][]*stored), after: make(map[protocol.BlobID][]protocol.BlobID)}
	for _, s := range j.order {
		if s.Header.Author != me {
			continue
		}
		if len(oc.byChain[s.Chain]) == 0 {
			oc.after[s.Header.Prev] = append(oc.after[s.Header.Prev], s.Chain)
		}
		oc.byChain[s.Chain] = append(oc.byChain[s.Chain], s)
	}
	var path []*stored
	var tip *stored
	if r.Seq > 0 {
		var head protocol.BlobID
		hexHead, _ := hex.DecodeString(r.Head)
		copy(head[:], hexHead)
		copies := oc.byChain[head]
		if len(copies) == 0 || copies[0].Header.Seq != r.Seq {
			served, _ := j.forwardOwn(nil, &oc, j.trust())
			top := uint64(0)
			if len(served) > 0 {
				top = served[len(served)-1].Header.Seq
			}
			return j.restoreProblem("older", top)
		}
		tip = j.pickCopy(copies)
		path = append(path, tip)
		for cur := tip; cur.Header.Seq > 1; {
			prev := oc.byChain[cur.Header.Prev]
			if len(prev) == 0 || prev[0].Header.Seq != cur.Header.Seq-1 {
				break // a hole: status reports it as missing
			}
			cur = j.pickCopy(prev)
			path = append(path, cur)
		}
	}
	more, forked := j.forwardOwn(tip, &oc, j.trust())
	if forked {
		return j.restoreProblem("forked", 0)
	}
	path = append(path, more...)
	var recs [][]byte
	adopted := make(map[protocol.BlobID]bool)
	for _, s := range path {
		adopted[s.Chain] = true
		if !s.Local {
			recs = append(recs, record(recAdopted, s.ID[:]))
		}
	}
	if len(recs) > 0 {
		if err := j.appendRecords(recs...); err != nil {
			return err
		}
	}
	if n := len(oc.byChain) - len(adopted); n > 0 {
		j.st.raise(Notice{Kind: NoticeRestoreStrays, Count: n}, 0)
	}
	// Claims about slots start again after the adopted chain: this home
	// vouches only for what it writes itself (tosince.go).
	j.st.ClaimsFrom = j.ownSeq + 1
	j.st.Restored = nil
	return j.saveState()
}

// restoreProblem records why restored mode cannot end yet; status shows
// it while it holds (state.conditions). Call with the lock held.
func (j *Journal) restoreProblem(problem string, relayTop uint64) error {
	r := j.st.Restored
	r.Problem, r.RelayTop = problem, relayTop
	return j.saveState()
}

// forwardOwn follows this device's chain forward from tip (nil: from the
// start), one blob at a time. At each step it takes the one proven blob
// with the next seq whose prev is the tip; with none, the one tentative
// blob (a purged record, or a grant to a device not in the member list),
// kept only if a proven blob follows it. forked reports two proven blobs
// at one step.
func (m *openIndex) forwardOwn(tip *stored, oc *ownChain, t *trust) (path []*stored, forked bool) {
	var prev protocol.BlobID
	var seq uint64
	if tip != nil {
		prev, seq = tip.Chain, tip.Header.Seq
	}
	var tentative []*stored // not yet followed by a proven blob
	for {
		var proven, maybe []*stored
		for _, c := range oc.after[prev] {
			s, ok := m.provenOwn(oc.byChain[c], seq+1, t)
			switch {
			case s == nil:
			case ok:
				proven = append(proven, s)
			default:
				maybe = append(maybe, s)
			}
		}
		var s *stored
		switch {
		case len(proven) > 1:
			return path, true
		case len(proven) == 1:
			s = proven[0]
			path = append(path, tentative...)
			path = append(path, s)
			tentative = nil
		case len(maybe) == 1:
			s = maybe[0]
			tentative = append(tentative, s)
		default:
			return path, false // the tip, or blobs nothing here can tell apart
		}
		prev, seq = s.Chain, s.Header.Seq
	}
}

// provenOwn returns the copy among copies (one chain id) that is this
// device's blob with sequence number seq, and whether it proves it: an
// entry whose own slot opens or a grant this device sent to a member's
// device proves it; a purged record or another well-formed grant is
// returned unproven; anything else is nil.
func (m *openIndex) provenOwn(copies []*stored, seq uint64, t *trust) (*stored, bool) {
	var maybe *stored
	for _, s := range copies {
		if s.Header.Seq != seq {
			continue
		}
		switch {
		case s.Local:
			return s, true
		case s.Purged:
			maybe = s
		case s.Header.Kind == protocol.KindEntry:
			if m.opensOwn(s) {
				return s, true
			}
		case s.Header.Kind == protocol.KindGrant:
			g, err := protocol.ParseGrant(m.store.raw(s))
			if err != nil {
				continue
			}
			for _, box := range t.recipients {
				if m.keys.CheckSentGrant(g, box) == nil {
					return s, true
				}
			}
			maybe = s
		}
	}
	return maybe, false
}

// opensOwn reports whether this device's slot in entry s opens.
func (m *openIndex) opensOwn(s *stored) bool {
	e, err := protocol.ParseEntry(m.store.raw(s))
	if err != nil {
		return false
	}
	_, err = m.keys.EntryKey(e, m.ownBox)
	return err == nil
}

// pickCopy chooses which copy of one chain id to adopt: one already
// Local, else an entry whose own slot opens, else the first seen.
func (m *openIndex) pickCopy(copies []*stored) *stored {
	for _, s := range copies {
		if s.Local {
			return s
		}
	}
	for _, s := range copies {
		if s.Header.Kind == protocol.KindEntry && !s.Purged && m.opensOwn(s) {
			return s
		}
	}
	return copies[0]
}
