package client

import "time"

// RecentPeriods returns the starts (in loc, PeriodStart) of the periods a
// commitment's record shows: the last 28 days, or the last 12 weeks, up
// to the one holding now, and none before the commitment was made;
// oldest first.
func RecentPeriods(cm Entry, now time.Time, loc *time.Location) []time.Time {
	start := func(t time.Time) time.Time { return PeriodStart(cm.Every, t, loc) }
	step, n := func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }, 28
	if cm.Every == "week" {
		step, n = func(t time.Time) time.Time { return t.AddDate(0, 0, 7) }, 12
	}
	first, last := start(cm.Created), start(now)
	from := last
	for i := 1; i < n && from.After(first); i++ {
		from = start(from.AddDate(0, 0, -1))
	}
	var out []time.Time
	for p := from; !p.After(last); p = step(p) {
		out = append(out, p)
	}
	return out
}
