package client

import (
	"testing"
	"time"
)

func TestCheckinRecordLatestStands(t *testing.T) {
	loc := time.FixedZone("here", 2*3600)
	day := time.Date(2026, 11, 4, 0, 0, 0, 0, loc) // a Wednesday
	yes, no := true, false
	cm := Entry{ID: "c0", Kind: KindCommit, Author: "Sam", Mine: true, Every: "day", Created: day.AddDate(0, 0, -3)}
	ci := func(id string, at time.Time, kept *bool) Entry {
		return Entry{ID: id, Kind: KindCheckin, Ref: cm.ID, Author: "Sam", Mine: true, Created: at, Kept: kept}
	}
	retracted := ci("r", day.Add(23*time.Hour), &yes)
	retracted.Retracted = &day
	checkins := []Entry{
		// Today: kept in the morning, then an honest missed in the evening.
		ci("a", day.Add(9*time.Hour), &yes),
		ci("b", day.Add(21*time.Hour), &no),
		retracted,
		// Yesterday: missed, then corrected to kept; given out of order.
		ci("d", day.Add(-2*time.Hour), &yes),
		ci("c", day.Add(-20*time.Hour), &no),
		// Not check-ins of this commitment: left out.
		{ID: "x", Kind: KindReply, Ref: cm.ID, Author: "Sam", Mine: true, Created: day.AddDate(0, 0, -2)},
		{ID: "y", Kind: KindCheckin, Ref: "other", Author: "Sam", Mine: true, Created: day.AddDate(0, 0, -2), Kept: &yes},
		{ID: "z", Kind: KindCheckin, Ref: cm.ID, Author: "Alex", Created: day.AddDate(0, 0, -2), Kept: &yes},
	}
	got := CheckinRecord(cm, checkins, loc)
	if len(got) != 2 {
		t.Fatalf("record has %d periods, want 2: %v", len(got), got)
	}
	if c := got[day]; c.ID != "b" {
		t.Errorf("today stands as %q, want the later missed check-in b", c.ID)
	}
	if c := got[day.AddDate(0, 0, -1)]; c.ID != "d" {
		t.Errorf("yesterday stands as %q, want the later kept check-in d", c.ID)
	}

	// Weekly: one period from Monday on; the latest of the week stands.
	cm.Every = "week"
	got = CheckinRecord(cm, checkins, loc)
	monday := day.AddDate(0, 0, -2)
	if len(got) != 1 || got[monday].ID != "b" {
		t.Errorf("weekly record = %v, want only the week of %s standing as b", got, monday)
	}
}

func TestPeriodStart(t *testing.T) {
	loc := time.FixedZone("here", -5*3600)
	at := time.Date(2026, 11, 8, 1, 30, 0, 0, time.UTC) // Sat 7 Nov 20:30 here
	if got, want := PeriodStart("day", at, loc), time.Date(2026, 11, 7, 0, 0, 0, 0, loc); !got.Equal(want) {
		t.Errorf("day start = %s, want %s", got, want)
	}
	if got, want := PeriodStart("week", at, loc), time.Date(2026, 11, 2, 0, 0, 0, 0, loc); !got.Equal(want) {
		t.Errorf("week start = %s, want %s", got, want)
	}
}
