package main

import (
	"testing"
	"time"
)

func TestParseWhen(t *testing.T) {
	loc := time.FixedZone("here", 3600)
	now := time.Date(2026, 11, 25, 15, 30, 0, 0, loc) // a Wednesday
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, loc) }
	cases := []struct {
		in     string
		want   time.Time
		wholeD bool
	}{
		{"today", day(2026, 11, 25), true},
		{"Yesterday", day(2026, 11, 24), true},
		{"3 days ago", day(2026, 11, 22), true},
		{"1 day ago", day(2026, 11, 24), true},
		{"2 weeks ago", day(2026, 11, 11), true},
		{"1 month ago", day(2026, 10, 25), true},
		{"last monday", day(2026, 11, 23), true},
		{"monday", day(2026, 11, 23), true},
		{"last wednesday", day(2026, 11, 18), true},
		{"2026-11-02", day(2026, 11, 2), true},
		{"2026-11-02 18:30", time.Date(2026, 11, 2, 18, 30, 0, 0, loc), false},
		{"2026-11-02T18:30:00Z", time.Date(2026, 11, 2, 18, 30, 0, 0, time.UTC), false},
		{"5 hours ago", now.Add(-5 * time.Hour), false},
	}
	for _, c := range cases {
		got, d, err := parseWhen(c.in, now)
		if err != nil || !got.Equal(c.want) || d != c.wholeD {
			t.Errorf("parseWhen(%q) = %v, %v, %v; want %v, %v", c.in, got, d, err, c.want, c.wholeD)
		}
	}
	for _, bad := range []string{"", "soon", "last blursday", "-3 days ago", "2026-13-01", "three days ago"} {
		if _, _, err := parseWhen(bad, now); err == nil {
			t.Errorf("parseWhen(%q) accepted", bad)
		}
	}
}

func TestSparkline(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	i := func(n int) *int { return &n }
	s := feelingSeries{Points: []feelingP{
		{Time: now.Add(-time.Hour), Intensity: i(10)},    // this week: last cell
		{Time: now.AddDate(0, 0, -8), Intensity: i(0)},   // last week
		{Time: now.AddDate(0, 0, -9), Intensity: i(5)},   // last week, stronger
		{Time: now.AddDate(0, 0, -15), Intensity: nil},   // two weeks ago, no intensity
		{Time: now.AddDate(0, 0, -100), Intensity: i(7)}, // outside the window
	}}
	if got, want := sparkline(s, now, 4), " ·▄█"; got != want {
		t.Fatalf("sparkline = %q, want %q", got, want)
	}
}

// --expires takes lengths as people write them, days included, up to the
// 7 days a relay accepts, and says what is wrong with any other.
func TestParseExpires(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"2h":         2 * time.Hour,
		"30m":        30 * time.Minute,
		"3d":         72 * time.Hour,
		"1 day":      24 * time.Hour,
		"7 days":     7 * 24 * time.Hour,
		"1w":         7 * 24 * time.Hour,
		"1.5d":       36 * time.Hour,
		"1d12h":      36 * time.Hour,
		"2 hours":    2 * time.Hour,
		"90 seconds": 90 * time.Second,
	} {
		got, err := parseExpires(in)
		if err != nil || got != want {
			t.Errorf("parseExpires(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"30d":  "--expires 30d is longer than 7 days, the longest a code can work",
		"8d":   "--expires 8d is longer than 7 days, the longest a code can work",
		"30":   "--expires 30 needs a unit",
		"soon": `--expires "soon" is not a length of time kintsugi understands`,
		"-5m":  "--expires -5m is less than a minute, too short for a code to be used",
		"0s":   "--expires 0s is less than a minute, too short for a code to be used",
	} {
		_, err := parseExpires(in)
		if got, _ := describe(err); err == nil || got != msg || exitStatus(err) != exitUsage {
			t.Errorf("parseExpires(%q): %v (exit %d); want %q", in, err, exitStatus(err), msg)
		}
	}
}
