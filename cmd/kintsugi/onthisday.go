package main

import (
	"fmt"
	"time"
)

// "On this day" (`log --on-this-day`): entries written on the same day of
// the month as today, in earlier months and years, grouped under how long
// ago they were. client.Query.OnThisDay holds the rule.

// monthsBefore returns how many calendar months then is before now.
func monthsBefore(then, now time.Time) int {
	then = then.In(now.Location())
	return (now.Year()-then.Year())*12 + int(now.Month()) - int(then.Month())
}

// agoHeading names a day n months before now ("A month ago", "3 months
// ago", "A year ago", "2 years and 4 months ago"), with its date.
func agoHeading(then, now time.Time) string {
	n := monthsBefore(then, now)
	y, m := n/12, n%12
	var ago string
	switch {
	case y == 0:
		ago = plural(m, "month", "months")
	case m == 0:
		ago = plural(y, "year", "years")
	default:
		ago = plural(y, "year", "years") + " and " + plural(m, "month", "months")
	}
	if n == 1 || n == 12 {
		ago = "A " + ago[2:] // "A month", "A year"
	}
	return fmt.Sprintf("%s ago, %s", ago, then.In(now.Location()).Format("Mon 2 Jan 2006"))
}

// ordinal returns "1st", "2nd", "3rd", "4th", ... "31st".
func ordinal(d int) string {
	suffix := "th"
	if d%100 < 11 || d%100 > 13 {
		switch d % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return fmt.Sprintf("%d%s", d, suffix)
}
