package client_test

import (
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
)

func TestFeelingMonths(t *testing.T) {
	t.Parallel()
	loc := time.FixedZone("here", 2*3600)
	at := func(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, loc) }
	n := func(i int) *int { return &i }
	entries := []client.Entry{
		{Author: "Sam", Feelings: []string{"grief"}, Intensity: n(8), Created: at(2026, 9, 30, 23)},             // before the months
		{Author: "Sam", Feelings: []string{"grief", "hope"}, Intensity: n(6), Created: at(2026, 10, 1, 0)},      // first month
		{Author: "Sam", Feelings: []string{"grief"}, Intensity: n(9), Created: at(2026, 10, 20, 12)},            // stronger, same month
		{Author: "Sam", Feelings: []string{"grief"}, Created: at(2026, 12, 6, 9)},                               // no intensity, this month
		{Author: "Alex", Mine: true, Feelings: []string{"fear"}, Intensity: n(3), Created: at(2026, 11, 15, 8)}, // middle month
		{Author: "Alex", Mine: true, Feelings: []string{"fear"}, Intensity: n(2), Created: at(2027, 1, 1, 0)},   // after now's month
		{Author: "Alex", Mine: true, Text: "no feelings named", Created: at(2026, 11, 2, 8)},
	}
	rows := client.FeelingMonths(entries, at(2026, 12, 6, 10), 3, loc)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3 (Alex fear, Sam grief, Sam hope): %+v", len(rows), rows)
	}
	want := []struct {
		author, feeling string
		counts          [3]int
		strongest       [3]int // -1: none
	}{
		{"Alex", "fear", [3]int{0, 1, 0}, [3]int{-1, 3, -1}},
		{"Sam", "grief", [3]int{2, 0, 1}, [3]int{9, -1, -1}},
		{"Sam", "hope", [3]int{1, 0, 0}, [3]int{6, -1, -1}},
	}
	for i, w := range want {
		r := rows[i]
		if r.Author != w.author || r.Feeling != w.feeling || len(r.Months) != 3 {
			t.Fatalf("row %d: %s %s with %d months, want %s %s", i, r.Author, r.Feeling, len(r.Months), w.author, w.feeling)
		}
		for m, c := range r.Months {
			if !c.Month.Equal(at(2026, time.Month(10+m), 1, 0)) {
				t.Errorf("row %d month %d starts %v", i, m, c.Month)
			}
			s := -1
			if c.Strongest != nil {
				s = *c.Strongest
			}
			if c.Count != w.counts[m] || s != w.strongest[m] {
				t.Errorf("%s %s month %d: count %d strongest %d, want %d and %d", w.author, w.feeling, m, c.Count, s, w.counts[m], w.strongest[m])
			}
		}
	}
	if rows[0].Mine != true || rows[1].Mine {
		t.Errorf("Mine is not carried over")
	}
	if client.FeelingMonths(entries, at(2026, 12, 6, 10), 0, loc) != nil {
		t.Errorf("no months should give no rows")
	}
}
