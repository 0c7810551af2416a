package client

import (
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// TestDamageIsHealed damages one local file of a journal in each way a
// disk or a person can, then opens the journal as the next command would.
// Each case checks what the person is told (the Repair), that nothing
// else was lost (the partner's entries, this device's sent and unsent
// ones), and that sync works afterwards: the partner receives the unsent
// entry, nothing is missing, and writing works again.
// anyLost reports whether a repair named an entry it could not read back.
func anyLost(reps []Repair) bool {
	for _, r := range reps {
		if len(r.Lost) > 0 {
			return true
		}
	}
	return false
}

func TestDamageIsHealed(t *testing.T) {
	t.Parallel()
	type files struct {
		dir, log, state, index, witness string
		partnerAt                       int64 // where the partner's first entry's record starts in the log
	}
	flipMid := func(t *testing.T, j *Journal, f files) {
		// A byte in the ciphertext of the partner's first entry.
		b := must(os.ReadFile(f.log))
		b[f.partnerAt+5+8+200] ^= 0x40
		must0(os.WriteFile(f.log, b, 0o600))
	}
	wantLost := func(t *testing.T, reps []Repair, unsent Entry) {
		r := only(t, reps, RepairLog)
		if !r.Refetch || !r.Waits || r.Unknown || len(r.Lost) != 1 {
			t.Fatalf("repair %+v, want the unsent entry %s named as lost, and a refetch", r, unsent.Short)
		}
		if l := r.Lost[0]; l.ID != unsent.ID || l.Kind != KindEntry || l.Words != "alex: written offline" || !l.Created.Equal(unsent.Created) {
			t.Fatalf("lost item %+v, want the unsent entry %+v", l, unsent)
		}
	}
	cases := []struct {
		name       string
		checkpoint bool // save a checkpoint before the damage
		damage     func(t *testing.T, j *Journal, f files)
		// want checks the repairs reported when the journal is opened
		// after the damage (nil: none expected).
		want func(t *testing.T, reps []Repair, unsent Entry)
		// lostUnsent: the unsent entry cannot come back.
		lostUnsent bool
		// readFinds: opening reads nothing damaged; reading the entries
		// finds the damage and heals it.
		readFinds bool
	}{
		{
			name: "last byte of the log cut",
			damage: func(t *testing.T, j *Journal, f files) {
				fi := must(os.Stat(f.log))
				must0(os.Truncate(f.log, fi.Size()-1))
			},
			want: func(t *testing.T, reps []Repair, _ Entry) {
				r := only(t, reps, RepairLog)
				if r.Kept != 1 || len(r.Lost) != 0 || !strings.Contains(r.SetAside, "log.torn-") {
					t.Fatalf("repair %+v, want the cut record kept and the tail set aside", r)
				}
			},
		},
		{
			name:   "a byte flipped mid-log",
			damage: flipMid,
			want: func(t *testing.T, reps []Repair, _ Entry) {
				r := only(t, reps, RepairLog)
				if !r.Refetch || len(r.Lost) != 0 || !strings.Contains(r.SetAside, "log.damaged-") {
					t.Fatalf("repair %+v, want the partner's entry fetched again and nothing lost", r)
				}
			},
		},
		{
			name:       "a byte flipped mid-log under a checkpoint",
			checkpoint: true,
			damage:     flipMid,
			readFinds:  true,
		},
		{
			name: "state truncated",
			damage: func(t *testing.T, j *Journal, f files) {
				fi := must(os.Stat(f.state))
				must0(os.Truncate(f.state, fi.Size()-1))
			},
			want: wantState,
		},
		{
			name: "state replaced with garbage",
			damage: func(t *testing.T, j *Journal, f files) {
				must0(os.WriteFile(f.state, []byte("this is not a journal state"), 0o600))
			},
			want: wantState,
		},
		{
			name: "state deleted",
			damage: func(t *testing.T, j *Journal, f files) {
				must0(os.Remove(f.state))
			},
			want: func(t *testing.T, reps []Repair, _ Entry) {
				if r := only(t, reps, RepairState); r.SetAside != "" {
					t.Fatalf("repair %+v: nothing was there to set aside", r)
				}
			},
		},
		{
			name:       "log deleted",
			checkpoint: true,
			damage: func(t *testing.T, j *Journal, f files) {
				must0(os.Remove(f.log))
			},
			want:       wantLost,
			lostUnsent: true,
		},
		{
			name: "log deleted, no checkpoint",
			damage: func(t *testing.T, j *Journal, f files) {
				must0(os.Remove(f.log))
			},
			want:       wantLost,
			lostUnsent: true,
		},
		{
			name: "log and the unsent witness deleted, no checkpoint",
			damage: func(t *testing.T, j *Journal, f files) {
				must0(os.Remove(f.log))
				must0(os.Remove(f.witness))
			},
			want: func(t *testing.T, reps []Repair, _ Entry) {
				if r := only(t, reps, RepairLog); !r.Unknown || !r.Refetch || !r.Waits || len(r.Lost) != 0 {
					t.Fatalf("repair %+v, want it to say unsent items may be lost", r)
				}
			},
			lostUnsent: true,
		},
		{
			name: "log cut short mid-record",
			damage: func(t *testing.T, j *Journal, f files) {
				fi := must(os.Stat(f.log))
				must0(os.Truncate(f.log, fi.Size()-300))
			},
			want: func(t *testing.T, reps []Repair, unsent Entry) {
				r := only(t, reps, RepairLog)
				if len(r.Lost) != 1 || r.Lost[0].ID == "" || !strings.Contains(r.SetAside, "log.torn-") || !r.SetAsideEnd {
					t.Fatalf("repair %+v, want the cut entry named, and only the end set aside", r)
				}
			},
			lostUnsent: true,
		},
		{
			name:       "a checkpoint from another key",
			checkpoint: true,
			damage: func(t *testing.T, j *Journal, f files) {
				var other [32]byte
				rand.Read(other[:])
				key := must(crypto.NewBulkKey(&other, "kintsugi checkpoint v1"))
				piece := must(key.Seal(rand.Reader, nil, []byte("a piece from somewhere else")))
				b := append([]byte(checkpointMagic), binary.BigEndian.AppendUint32(nil, uint32(len(piece)))...)
				must0(os.WriteFile(f.index, append(b, piece...), 0o600))
			},
			want: func(t *testing.T, reps []Repair, _ Entry) {
				if r := only(t, reps, RepairIndex); !strings.Contains(r.SetAside, "index.damaged-") {
					t.Fatalf("repair %+v", r)
				}
			},
		},
		{
			// An upgrade: the checkpoint of an earlier version is rebuilt
			// from the log without a word.
			name:       "a checkpoint of an earlier format",
			checkpoint: true,
			damage: func(t *testing.T, j *Journal, f files) {
				b := must(os.ReadFile(f.index))
				must0(os.WriteFile(f.index, append([]byte("KSI1"), b[4:]...), 0o600))
			},
		},
		{
			name:       "a checkpoint older than the log",
			checkpoint: true,
			damage: func(t *testing.T, j *Journal, f files) {
				// The partner's entries and this device's unsent one are
				// written after the checkpoint; nothing is damaged.
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			relay := servertest.NewServer(t)
			ctx := testCtx(t)
			aj, sj := pairedOn(t, relay)
			mustWrite(t, aj, "alex: sent")
			syncOK(t, aj)
			if tc.checkpoint && tc.name != "a checkpoint older than the log" {
				mustWrite(t, sj, "sam: one")
				mustWrite(t, sj, "sam: two")
				syncOK(t, sj)
				syncOK(t, aj)
			}
			if tc.checkpoint {
				aj.withLock(func() error { aj.saveCheckpoint(true); return nil })
				if _, err := os.Stat(aj.checkpointPath()); err != nil {
					t.Fatal("no checkpoint was saved")
				}
			}
			if !tc.checkpoint || tc.name == "a checkpoint older than the log" {
				mustWrite(t, sj, "sam: one")
				mustWrite(t, sj, "sam: two")
				syncOK(t, sj)
				syncOK(t, aj)
			}
			unsent := mustWrite(t, aj, "alex: written offline")
			acct, id := aj.acct, aj.id
			if !tc.checkpoint {
				os.Remove(aj.checkpointPath())
			}
			f := files{dir: aj.dir, log: filepath.Join(aj.dir, "log"), state: aj.statePath(), index: aj.checkpointPath(), witness: aj.unsent.path, partnerAt: firstEntryAt(aj, sj)}
			aj.closeFiles()
			tc.damage(t, aj, f)

			j, err := acct.OpenJournal(id)
			if err != nil {
				t.Fatalf("open after the damage: %v", err)
			}
			defer j.Close()
			reps := j.Repairs()
			if tc.want != nil {
				tc.want(t, reps, unsent)
			} else if len(reps) != 0 {
				t.Fatalf("repairs %+v, want none", reps)
			}
			if !tc.lostUnsent {
				// Nothing else was lost, before any sync: the unsent
				// entry is here and still waits to be sent.
				if got := entryTexts(t, j); !slices.Contains(got, "alex: written offline") {
					t.Fatalf("after the repair this device reads %q", got)
				}
				if st := mustStatus(t, j); st.Outbox != 1 {
					t.Fatalf("outbox %d after the repair, want the unsent entry", st.Outbox)
				}
			}
			if tc.lostUnsent && anyLost(j.Repairs()) {
				// status goes on naming what was lost, after the note
				// of the repair went by: ids, and the first words.
				var named []LostItem
				for _, r := range j.Repairs() {
					named = append(named, r.Lost...)
				}
				var notice *Notice
				for _, n := range mustStatus(t, j).Notices {
					if n.Kind == NoticeLostUnsent {
						notice = &n
					}
				}
				if notice == nil {
					t.Fatal("status has no notice of the lost entry")
				}
				if len(notice.Lost) != len(named) {
					t.Fatalf("the notice names %d lost entries, the repair %d", len(notice.Lost), len(named))
				}
				for i := range named {
					if notice.Lost[i].ID != named[i].ID || notice.Lost[i].Words != named[i].Words || named[i].Words == "" {
						t.Fatalf("the notice names %+v, the repair %+v", notice.Lost[i], named[i])
					}
				}
			}
			if tc.readFinds {
				if r := only(t, j.Repairs(), RepairLog); !r.Refetch || len(r.Lost) != 0 || r.Waits {
					t.Fatalf("repair after reading %+v, want the partner's entry fetched again", r)
				}
			}
			if err := j.Verify(); err != nil {
				t.Fatalf("verify: %v", err)
			}
			// Sync works, and brings back everything the relay holds,
			// without calling what this device had already shown new.
			res, err := j.Sync(ctx)
			if err != nil {
				t.Fatalf("sync after the repair: %v", err)
			}
			if res.NewCount != 0 {
				t.Fatalf("the sync after the repair calls %d entries new (%+v); this device had them all before", res.NewCount, res.New)
			}
			want := []string{"alex: sent", "sam: one", "sam: two", "alex: written offline"}
			if tc.lostUnsent {
				want = want[:3]
			}
			if got := sortedTexts(t, j); !slices.Equal(got, sorted(want)) {
				t.Fatalf("after the repair and a sync this device reads %q, want %q", got, want)
			}
			if _, err := j.Write(Payload{Kind: KindEntry, Text: "alex: after the repair"}); err != nil {
				t.Fatalf("write after the repair and a sync: %v", err)
			}
			syncOK(t, j)
			syncOK(t, sj)
			if got := sortedTexts(t, sj); !slices.Equal(got, sorted(append(want, "alex: after the repair"))) {
				t.Fatalf("the partner reads %q", got)
			}
			for _, jj := range []*Journal{j, sj} {
				if st := mustStatus(t, jj); len(st.Missing) != 0 || st.Outbox != 0 || st.Unreadable != 0 {
					t.Fatalf("status after the repair: %+v", st)
				}
			}
		})
	}
}

func wantState(t *testing.T, reps []Repair, _ Entry) {
	t.Helper()
	if r := only(t, reps, RepairState); !strings.Contains(r.SetAside, "state.damaged-") {
		t.Fatalf("repair %+v, want the damaged state set aside", r)
	}
}

// only returns the one repair reported, checking its kind.
func only(t *testing.T, reps []Repair, kind string) Repair {
	t.Helper()
	if len(reps) != 1 || reps[0].Kind != kind {
		t.Fatalf("repairs %+v, want one of kind %q", reps, kind)
	}
	return reps[0]
}

func sortedTexts(t *testing.T, j *Journal) []string { return sorted(entryTexts(t, j)) }

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func must0(err error) {
	if err != nil {
		panic(err)
	}
}

// TestRefetchShowsOnlyWhatIsNew: after a repair fetches everything again,
// the sync still tells the person what the partner wrote since the last
// sync, and only that.
func TestRefetchShowsOnlyWhatIsNew(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	aj, sj := pairedOn(t, relay)
	mustWrite(t, sj, "sam: seen before")
	syncOK(t, sj)
	if res := syncOK(t, aj); res.NewCount != 1 {
		t.Fatalf("first sync: %d new, want 1", res.NewCount)
	}
	acct, id := aj.acct, aj.id
	log := filepath.Join(aj.dir, "log")
	aj.closeFiles()
	must0(os.Remove(log))
	mustWrite(t, sj, "sam: written since")
	syncOK(t, sj)
	j, err := acct.OpenJournal(id)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	res := syncOK(t, j)
	if res.NewCount != 1 || len(res.New) != 1 || res.New[0].Text != "sam: written since" {
		t.Fatalf("the sync after the repair shows %d new: %+v, want only what sam wrote since", res.NewCount, res.New)
	}
}

// TestNewJournalSyncedEmpty: a journal just created, synced again and
// again while the partner has not joined and nothing is written, has an
// empty log and no checkpoint. That is not damage: nothing is repaired
// and writing works.
func TestNewJournalSyncedEmpty(t *testing.T) {
	t.Parallel()
	relay := servertest.NewServer(t)
	ctx := testCtx(t)
	acct := testAccount(t, "alex")
	j, err := acct.CreateJournal(ctx, relay.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	id := j.id
	for range 3 {
		syncOK(t, j)
		j.Close()
		if j, err = acct.OpenJournal(id); err != nil {
			t.Fatal(err)
		}
		if reps := j.Repairs(); len(reps) != 0 {
			t.Fatalf("an empty new journal was repaired: %+v", reps)
		}
	}
	defer j.Close()
	if _, err := j.Write(Payload{Kind: KindEntry, Text: "the first words"}); err != nil {
		t.Fatalf("write in a new journal synced while empty: %v", err)
	}
}
