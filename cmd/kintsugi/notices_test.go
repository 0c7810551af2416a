package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
)

// Every kind the client records has its own sentence: plain, with no
// trailing period (callers add one where a line needs it), and never the
// fallback for kinds this version does not know.
func TestEveryNoticeKindHasASentence(t *testing.T) {
	kinds := []client.NoticeKind{
		client.NoticeLegacy, client.NoticeRelayBadPurge, client.NoticeRelayBadItem,
		client.NoticeRelayForgedOwn, client.NoticeRestoreStrays, client.NoticeLateJoin,
		client.NoticeJoinUnopened, client.NoticeJoinInvalid, client.NoticeDeviceInvalid,
		client.NoticeDeviceCollides, client.NoticeThisDeviceRemoved, client.NoticePartnerLeft,
		client.NoticeIdentityChanged, client.NoticeRestorePending, client.NoticeRepairPending, client.NoticeRestoreOlder,
		client.NoticeRestoreForked, client.NoticeDeviceAdded, client.NoticeDeviceRemoved,
		client.NoticeMissingItems, client.NoticeForkedHistory, client.NoticeLostUnsent,
		client.NoticeRelayChanged,
	}
	unknown := sentence(client.Notice{Kind: "from-the-future"})
	for _, k := range kinds {
		for _, count := range []int{1, 3} {
			n := client.Notice{Kind: k, Who: "Sam", NewName: "Sam", Device: "desk", DeviceID: "ab12cd34", Count: count, Want: 5, Position: 7, Date: time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC), Text: "an older warning"}
			s := sentence(n)
			if s == "" || s == unknown || strings.HasSuffix(s, ".") {
				t.Errorf("%s (count %d): %q", k, count, s)
			}
		}
	}
}

// The counts read as people speak.
func TestNoticeSentences(t *testing.T) {
	for _, c := range []struct {
		n    client.Notice
		want string
	}{
		{client.Notice{Kind: client.NoticeRelayBadItem, Count: 1, Position: 2}, "the relay sent something that is not a valid entry for this journal (position 2); it was set aside"},
		{client.Notice{Kind: client.NoticeRelayBadItem, Count: 2, Position: 9}, "the relay sent 2 things that are not valid entries for this journal (the latest at position 9); they were set aside"},
		{client.Notice{Kind: client.NoticeMissingItems, Who: "Sam", Device: "desk", Count: 1}, `1 earlier item from Sam's device "desk" has not arrived yet`},
		{client.Notice{Kind: client.NoticeMissingItems, Count: 2}, "2 earlier items from an unknown device have not arrived yet"},
		{client.Notice{Kind: client.NoticeMissingItems, Who: "Sam", Device: "vm", Count: 1, DamagedHere: true}, "1 earlier item from Sam's device \"vm\" is not on this device now. Part of this journal's file here was damaged and set aside, and it may have been there; what the relay holds is safe there, and `kintsugi sync` fetches it again"},
		{client.Notice{Kind: client.NoticeForkedHistory, Who: "Alex", ThisDevice: true}, "this device has two different histories: it may have been copied or restored from a backup, or someone else may have its keys. If a backup of it was restored on another machine, keep writing on the one you mean to keep and stop using the other; if not, link a new device (`kintsugi device link`) and remove this one (`kintsugi device revoke`)"},
		{client.Notice{Kind: client.NoticeForkedHistory, Who: "Sam", Device: "vm"}, `Sam's device "vm" has two different histories: it may have been copied or restored from a backup, or someone else may have its keys. Most often Sam restored a backup on a new machine and still writes on the old one; ask them. If they did not, they can remove that device (` + "`kintsugi device revoke`)"},
		{client.Notice{Kind: client.NoticeDeviceAdded, Who: "Sam", DeviceID: "ab12cd34"}, "Sam added a device (unnamed, ab12cd34)"},
		{client.Notice{Kind: client.NoticeRestoreStrays, Count: 1}, "the relay sent 1 item that claims to come from this device and is not part of its history; set aside"},
		{client.Notice{Kind: client.NoticeIdentityChanged, Who: "Sam", NewName: "Sam"}, "Your partner's safety number has changed: Sam answered your invite with new keys. This is expected if Sam set kintsugi up again, for example after losing a phone, but it is also what someone pretending to be Sam would do. Nothing new is sent to the new keys until you compare the new safety number together, in person or on a call (`kintsugi verify`), and confirm it with `kintsugi verify --confirm`"},
		{client.Notice{Kind: client.NoticeIdentityChanged, Who: "Sam", NewName: "Jo"}, "Your partner's safety number has changed: someone giving the name Jo answered your invite for Sam, with new keys. This is expected if Sam set kintsugi up again, for example after losing a phone, but it is also what someone pretending to be Sam would do. Nothing new is sent to the new keys until you compare the new safety number together, in person or on a call (`kintsugi verify`), and confirm it with `kintsugi verify --confirm`"},
		{client.Notice{Kind: client.NoticeRelayChanged, Count: 1, Position: 5}, "the relay sent an entry that was changed on the way, or was not written by the device it names (position 5); it does not match what was sealed for this device, so it was set aside and is not shown. Nothing already here was changed. If it keeps happening, tell whoever runs the relay"},
		{client.Notice{Kind: client.NoticeLegacy, Text: "told\x1b[2J before"}, "told[2J before"},
		{client.Notice{Kind: client.NoticeRelayForgedOwn, Count: 1, Position: 4}, "the relay sent something claiming to come from this device that it never wrote (position 4); it was set aside. This usually means this device's keys are in use on two machines, as when a backup is restored on a second one while the first is still used. Two machines writing as one device split its history: keep using the one you mean to keep, and stop using the other. If no one restored a backup, tell whoever runs the relay"},
	} {
		if got := sentence(c.n); got != c.want {
			t.Errorf("%s:\n got  %q\n want %q", c.n.Kind, got, c.want)
		}
	}
}

// status --json keeps the sentences under their old names next to the
// typed notices.
func TestStatusJSONShape(t *testing.T) {
	st := client.Status{
		Notices: []client.Notice{{Kind: client.NoticeLateJoin, ID: "late-join", Count: 1}, {Kind: client.NoticeJoinInvalid, ID: "join-invalid", Count: 1, Acknowledged: true}},
		Missing: []client.Notice{{Kind: client.NoticeMissingItems, ID: "missing-items:ab12cd34", Who: "Sam", Count: 2}},
	}
	b, err := json.Marshal(statusJSON{Status: st, Warnings: sentences(unread(st.Notices)), Missing: sentences(st.Missing)})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Notices  []map[string]any `json:"notices"`
		Gaps     []map[string]any `json:"gaps"`
		Warnings []string         `json:"warnings"`
		Missing  []string         `json:"missing"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Notices) != 2 || got.Notices[1]["acknowledged"] != true || got.Notices[0]["kind"] != "late-join" {
		t.Fatalf("notices: %v", got.Notices)
	}
	if len(got.Gaps) != 1 || got.Gaps[0]["kind"] != "missing-items" || got.Gaps[0]["who"] != "Sam" || got.Gaps[0]["count"] != 2.0 {
		t.Fatalf("gaps: %v", got.Gaps)
	}
	if len(got.Warnings) != 1 || !strings.HasPrefix(got.Warnings[0], "an invite code was used") {
		t.Fatalf("warnings: %q", got.Warnings)
	}
	if len(got.Missing) != 1 || got.Missing[0] != "2 earlier items from Sam's device have not arrived yet" {
		t.Fatalf("missing: %q", got.Missing)
	}
}

// TestLostLine: an entry a repair could not read back is named by kind,
// time and id, and by its first words only when they may be shown.
func TestLostLine(t *testing.T) {
	l := client.LostItem{ID: "0123456789abcdef", Kind: client.KindAnswer, Created: time.Date(2026, 11, 3, 18, 30, 0, 0, time.Local), Words: "I was with them"}
	if got, want := lostLine(l, true), `an answer written Tue 3 Nov 2026, 18:30 that began "I was with them" (01234567)`; got != want {
		t.Fatalf("lostLine = %q, want %q", got, want)
	}
	if got := lostLine(l, false); strings.Contains(got, "I was with them") {
		t.Fatalf("lostLine without words = %q", got)
	}
	if got, want := lostLine(client.LostItem{ID: "fedcba9876543210"}, true), "an entry (fedcba98)"; got != want {
		t.Fatalf("lostLine of an unknown entry = %q, want %q", got, want)
	}
}

// TestLostUnsentSentence: the apology comes right after the loss, and the
// lost entries are named after it, never with their first words (this
// sentence may go to a service's log); when the client names only the
// newest of many, the sentence says so.
func TestLostUnsentSentence(t *testing.T) {
	item := func(id string) client.LostItem {
		return client.LostItem{ID: id, Kind: client.KindAnswer, Created: time.Date(2026, 11, 3, 18, 30, 0, 0, time.Local), Words: "I was with them"}
	}
	date := time.Date(2026, 11, 4, 9, 0, 0, 0, time.Local)
	for _, c := range []struct {
		n    client.Notice
		want string
	}{
		{client.Notice{Kind: client.NoticeLostUnsent, Count: 1, Date: date, Lost: []client.LostItem{item("0123456789abcdef")}},
			"on 4 November 2026, an entry you wrote on this device had not been sent yet and could not be read back after a file on this device was damaged; we are sorry. What was sent before is safe on the relay. If you want to write it again, it was an answer written Tue 3 Nov 2026, 18:30 (01234567)"},
		{client.Notice{Kind: client.NoticeLostUnsent, Count: 2, Date: date, Lost: []client.LostItem{item("0123456789abcdef"), item("fedcba9876543210")}},
			"; we are sorry. What was sent before is safe on the relay. If you want to write them again, they were: an answer written Tue 3 Nov 2026, 18:30 (01234567); an answer written Tue 3 Nov 2026, 18:30 (fedcba98)"},
		{client.Notice{Kind: client.NoticeLostUnsent, Count: 70, Date: date, Lost: []client.LostItem{item("0123456789abcdef"), item("fedcba9876543210")}},
			"70 entries you wrote on this device had not been sent yet"},
		{client.Notice{Kind: client.NoticeLostUnsent, Count: 70, Date: date, Lost: []client.LostItem{item("0123456789abcdef"), item("fedcba9876543210")}},
			"If you want to write them again, the newest 2 of them were: an answer written"},
		{client.Notice{Kind: client.NoticeLostUnsent, Count: 3, Date: date},
			"3 entries you wrote on this device had not been sent yet and could not be read back after a file on this device was damaged; we are sorry. What was sent before is safe on the relay"},
	} {
		s := sentence(c.n)
		if !strings.Contains(s, c.want) || strings.Contains(s, "I was with them") || strings.HasSuffix(s, ".") {
			t.Errorf("sentence = %q, want it to contain %q, without the first words or a final period", s, c.want)
		}
	}
}

// A watch's JSON lines carry no words of a lost entry, and leave the
// repairs they were made from as they were.
func TestWithoutWords(t *testing.T) {
	reps := []client.Repair{{Lost: []client.LostItem{{ID: "ab12cd34", Words: "I still think about that night"}}}}
	out := withoutWords(reps)
	if out[0].Lost[0].Words != "" || out[0].Lost[0].ID != "ab12cd34" {
		t.Errorf("withoutWords: %+v", out[0].Lost)
	}
	if reps[0].Lost[0].Words == "" {
		t.Error("withoutWords changed the repairs it was given")
	}
}
