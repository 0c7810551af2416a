package client

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// unread returns the notices a status shows (not marked read).
func unread(st Status) []Notice {
	var out []Notice
	for _, n := range st.Notices {
		if !n.Acknowledged {
			out = append(out, n)
		}
	}
	return out
}

func unreadKind(st Status, kind NoticeKind) bool {
	return slices.ContainsFunc(unread(st), func(n Notice) bool { return n.Kind == kind })
}

func mustStatus(t *testing.T, j *Journal) Status {
	t.Helper()
	st, err := j.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// badItem is a blob the relay sends that is not a valid item for the
// journal: set aside with a NoticeRelayBadItem.
func badItem(j *Journal, seq uint64) *protocol.Blob {
	return &protocol.Blob{Journal: j.id, Seq: seq, Blob: []byte("not an item")}
}

func receiveOK(t *testing.T, j *Journal, blobs ...*protocol.Blob) {
	t.Helper()
	if _, err := j.receive(blobs...); err != nil {
		t.Fatal(err)
	}
}

// A problem that repeats is one notice, counted; the same occurrence seen
// again (re-derived on the next sync) is not counted twice.
func TestNoticesDeduplicate(t *testing.T) {
	t.Parallel()
	aj, _ := pairedJournals(t)
	receiveOK(t, aj, badItem(aj, 100), badItem(aj, 101))
	receiveOK(t, aj, badItem(aj, 105))
	got := unread(mustStatus(t, aj))
	if len(got) != 1 || got[0].Kind != NoticeRelayBadItem || got[0].ID != "relay-bad-item" || got[0].Count != 3 || got[0].Position != 105 || got[0].Since.IsZero() {
		t.Fatalf("three bad items: %+v", got)
	}
	err := aj.withLock(func() error {
		for _, at := range []uint64{7, 7, 3, 0} {
			aj.st.raise(Notice{Kind: NoticeDeviceInvalid, Who: "sam"}, at)
		}
		aj.st.raise(Notice{Kind: NoticeDeviceInvalid, Who: "robin"}, 8)
		return aj.saveState()
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range unread(mustStatus(t, aj)) {
		ids = append(ids, n.ID)
		if n.Kind == NoticeDeviceInvalid && n.Count != 1 {
			t.Fatalf("one occurrence counted %d times: %+v", n.Count, n)
		}
	}
	if want := []string{"relay-bad-item", "device-invalid:sam", "device-invalid:robin"}; !slices.Equal(ids, want) {
		t.Fatalf("notices %q, want %q", ids, want)
	}
}

// Two repairs that lose entries are two occurrences, even within the same
// second: the second loss is counted and named, not taken for the first.
func TestLostUnsentTwiceInASecond(t *testing.T) {
	t.Parallel()
	var st state
	st.noteLost([]LostItem{{Words: "first"}})
	st.noteLost([]LostItem{{Words: "second"}, {Words: "third"}})
	if len(st.Notices) != 1 {
		t.Fatalf("%d notices, want 1: %+v", len(st.Notices), st.Notices)
	}
	n := st.Notices[0]
	var words []string
	for _, l := range n.Lost {
		words = append(words, l.Words)
	}
	if n.Count != 3 || !slices.Equal(words, []string{"first", "second", "third"}) {
		t.Fatalf("count %d, lost %q; want 3 and all three", n.Count, words)
	}
}

// A notice marked read stops showing, stays read across opens and for the
// same occurrence, and shows again as new when the problem happens again.
func TestAcknowledge(t *testing.T) {
	t.Parallel()
	aj, _ := pairedJournals(t)
	receiveOK(t, aj, badItem(aj, 100), badItem(aj, 101))
	if err := aj.Acknowledge("no-such-notice"); !errors.Is(err, ErrNoSuchNotice) {
		t.Fatalf("acknowledging nothing: %v", err)
	}
	if err := aj.Acknowledge("relay-bad-item"); err != nil {
		t.Fatal(err)
	}
	st := mustStatus(t, aj)
	if len(unread(st)) != 0 || len(st.Notices) != 1 || !st.Notices[0].Acknowledged {
		t.Fatalf("after acknowledging: %+v", st.Notices)
	}
	again, err := aj.acct.OpenJournal(aj.id)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if st := mustStatus(t, again); len(unread(st)) != 0 || len(st.Notices) != 1 {
		t.Fatalf("reopened: %+v", st.Notices)
	}
	// Acknowledging what is already read changes nothing and is no error.
	if n, err := again.AcknowledgeAll(); err != nil || n != 0 {
		t.Fatalf("acknowledge all again: %d, %v", n, err)
	}
	receiveOK(t, again, badItem(again, 102))
	got := unread(mustStatus(t, again))
	if len(got) != 1 || got[0].Count != 1 || got[0].Position != 102 {
		t.Fatalf("a new occurrence after reading: %+v", got)
	}
	if n, err := again.AcknowledgeAll(); err != nil || n != 1 {
		t.Fatalf("acknowledge all: %d, %v", n, err)
	}
	if got := unread(mustStatus(t, again)); len(got) != 0 {
		t.Fatalf("after acknowledging all: %+v", got)
	}
}

// A condition shows while it holds and cannot be marked read.
func TestConditionsCannotBeAcknowledged(t *testing.T) {
	t.Parallel()
	aj, _ := pairedJournals(t)
	err := aj.withLock(func() error {
		aj.st.Restored = &restoreMark{Problem: "older", Seq: 9, RelayTop: 4}
		return aj.saveState()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := aj.Acknowledge(string(NoticeRestoreOlder)); !errors.Is(err, ErrNoticeHolds) {
		t.Fatalf("acknowledging a condition: %v", err)
	}
	if _, err := aj.AcknowledgeAll(); err != nil {
		t.Fatal(err)
	}
	got := unread(mustStatus(t, aj))
	if len(got) != 1 || got[0].Kind != NoticeRestoreOlder || !got[0].Holds || got[0].Count != 4 || got[0].Want != 9 {
		t.Fatalf("the restore problem: %+v", got)
	}
	err = aj.withLock(func() error {
		aj.st.Restored = nil
		return aj.saveState()
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := unread(mustStatus(t, aj)); len(got) != 0 {
		t.Fatalf("once it no longer holds: %+v", got)
	}
}

// Sentences earlier versions stored as warnings survive an upgrade as
// legacy notices, except those now shown as conditions.
func TestOldWarningsMigrate(t *testing.T) {
	t.Parallel()
	aj, _ := pairedJournals(t)
	const old = "a new device from sam did not check out, so nothing is sent to it"
	const restoring = "this device was restored from a backup on 1 Jan 2026 and has not yet collected its own earlier entries from the relay"
	var raw map[string]any
	err := aj.withLock(func() error {
		b, err := json.Marshal(aj.st)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		// The state as an earlier version wrote it.
		raw["warnings"] = []string{old, restoring, old}
		raw["restored"] = map[string]any{"seq": 0, "since": "2026-01-01T00:00:00Z", "warning": restoring}
		b, err = json.Marshal(raw)
		if err != nil {
			return err
		}
		var st state
		if err := json.Unmarshal(b, &st); err != nil {
			return err
		}
		aj.st = st
		if err := aj.saveState(); err != nil {
			return err
		}
		return aj.loadState()
	})
	if err != nil {
		t.Fatal(err)
	}
	st := mustStatus(t, aj)
	var kinds []NoticeKind
	for _, n := range unread(st) {
		kinds = append(kinds, n.Kind)
		if n.Kind == NoticeLegacy && (n.Text != old || n.Count != 1 || n.ID == "") {
			t.Fatalf("legacy notice: %+v", n)
		}
	}
	if want := []NoticeKind{NoticeRestorePending, NoticeLegacy}; !slices.Equal(kinds, want) {
		t.Fatalf("after migrating: %q, want %q", kinds, want)
	}
	if aj.st.Warnings != nil || aj.st.Restored.Warning != "" {
		t.Fatalf("old fields kept: %q, %q", aj.st.Warnings, aj.st.Restored.Warning)
	}
	legacy := unread(st)[1].ID
	if err := aj.Acknowledge(legacy); err != nil {
		t.Fatal(err)
	}
}
