package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestChartRowsAligned: every row's chart starts in the same terminal
// column, however long a name or feeling word is, in any script.
func TestChartRowsAligned(t *testing.T) {
	now := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	six := 6
	pt := []feelingP{{Time: now.Add(-time.Hour), Intensity: &six}}
	ss := []feelingSeries{
		{Author: "Alex", Feeling: "grief", Points: pt},
		{Author: "Alex", Feeling: "overwhelmed-and-exhausted-by-it-all", Points: pt},
		{Author: "Sam", Feeling: "hope", Points: pt},
		{Author: "Sam", Feeling: "悲しみと疲れと混乱と寂しさ", Points: pt},
		{Author: "Émilie-Françoise", Feeling: "café", Points: pt},
	}
	rows := chartRows(ss, now, 4)
	if len(rows) != len(ss) {
		t.Fatalf("%d rows, want %d", len(rows), len(ss))
	}
	want := -1
	for _, r := range rows {
		col := displayWidth(r[:strings.Index(r, "│")])
		if want < 0 {
			want = col
		}
		if col != want {
			t.Errorf("chart starts at column %d in %q, want %d like the first row\n%s", col, r, want, strings.Join(rows, "\n"))
		}
	}
}

func TestDisplayWidth(t *testing.T) {
	for s, want := range map[string]int{"grief": 5, "café": 4, "cafe\u0301": 4, "悲しみ": 6, "": 0} {
		if got := displayWidth(s); got != want {
			t.Errorf("displayWidth(%q) = %d, want %d", s, got, want)
		}
	}
}

// A feeling one typo from a common one is most likely that one; a word of
// someone's own, or one two typos away ("lost", "love"), is left alone.
func TestLikelyFeelings(t *testing.T) {
	for _, c := range []struct {
		in, want []string
		changed  bool
	}{
		{[]string{"grif"}, []string{"grief"}, true},
		{[]string{"greif", "anger"}, []string{"grief", "anger"}, true},
		{[]string{"anxeity"}, []string{"anxiety"}, true},
		{[]string{"saddness"}, []string{"sadness"}, true},
		{[]string{"lost"}, []string{"lost"}, false},
		{[]string{"betrayed", "sad"}, []string{"betrayed", "sad"}, false},
		{[]string{"grief", "hope"}, []string{"grief", "hope"}, false},
		// Forms of a listed feeling are the person's own words.
		{[]string{"guilty", "loved", "hurts", "fears", "shamed"}, []string{"guilty", "loved", "hurts", "fears", "shamed"}, false},
	} {
		got, changed := likelyFeelings(c.in)
		if !slices.Equal(got, c.want) || changed != c.changed {
			t.Errorf("likelyFeelings(%q) = %q, %v; want %q, %v", c.in, got, changed, c.want, c.changed)
		}
	}
}

// A word goes into a command to paste as it would be typed, so that a
// feeling of two words, or one with a quote or a $, stays one argument
// and nothing in it is expanded.
func TestTypedWord(t *testing.T) {
	for in, want := range map[string]string{
		"grief": "grief", "left-out": "left-out", "left out": "'left out'",
		"it's": `'it'\''s'`, "$50": "'$50'", "": "''",
	} {
		if got := typedWord(in); got != want {
			t.Errorf("typedWord(%q) = %s, want %s", in, got, want)
		}
	}
}
