package client

import "time"

// Commitments and their check-ins.
//
// A commitment is meant each day or each week ([Entry.Every]). Its author
// checks in on it with --kept or --missed, as often as they like; within
// one period the latest check-in stands, so an honest "missed" written
// after a "kept" on the same day is what the record shows (and so is a
// correction the other way). A retracted check-in stands for nothing.

// PeriodStart returns the start, in loc, of the period of a commitment
// made each every ("day" or "week") that t falls in: that day's midnight,
// or the midnight of that week's Monday.
func PeriodStart(every string, t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	if every == "week" {
		d = d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
	}
	return d
}

// CheckinRecord returns, for each period of commitment cm that has a
// check-in, the check-in that stands for it (the latest written in that
// period), keyed by the period's start in loc (PeriodStart). checkins are
// the entries that respond to cm, in any order; anything that is not one
// of its author's check-ins is left out.
func CheckinRecord(cm Entry, checkins []Entry, loc *time.Location) map[time.Time]Entry {
	out := map[time.Time]Entry{}
	for _, c := range checkins {
		if c.Kind != KindCheckin || c.Ref != cm.ID || c.Kept == nil || c.Retracted != nil || c.Author != cm.Author || c.Mine != cm.Mine {
			continue
		}
		p := PeriodStart(cm.Every, c.Created, loc)
		if was, ok := out[p]; !ok || !c.Created.Before(was.Created) {
			out[p] = c
		}
	}
	return out
}
