package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseWhen reads a date as people write it: "today", "yesterday",
// "3 days ago", "2 weeks ago", "1 month ago", "last monday" (or just
// "monday"), an ISO date "2026-11-02", "2026-11-02 18:30", or RFC 3339.
// day reports whether it named a whole day (so --until can include it).
func parseWhen(s string, now time.Time) (t time.Time, day bool, err error) {
	s = strings.ToLower(strings.TrimSpace(s))
	loc := now.Location()
	midnight := func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc) }
	today := midnight(now)
	switch s {
	case "today":
		return today, true, nil
	case "yesterday":
		return today.AddDate(0, 0, -1), true, nil
	}
	if f := strings.Fields(s); len(f) == 3 && f[2] == "ago" {
		n, err := strconv.Atoi(f[0])
		if err == nil && n >= 0 && n <= 100000 {
			switch strings.TrimSuffix(f[1], "s") {
			case "day":
				return today.AddDate(0, 0, -n), true, nil
			case "week":
				return today.AddDate(0, 0, -7*n), true, nil
			case "month":
				return today.AddDate(0, -n, 0), true, nil
			case "year":
				return today.AddDate(-n, 0, 0), true, nil
			case "hour":
				return now.Add(-time.Duration(n) * time.Hour), false, nil
			}
		}
	}
	name := strings.TrimPrefix(s, "last ")
	for wd := time.Sunday; wd <= time.Saturday; wd++ {
		if name == strings.ToLower(wd.String()) {
			back := (int(today.Weekday()) - int(wd) + 7) % 7
			if back == 0 {
				back = 7 // "last monday" on a Monday means a week ago
			}
			return today.AddDate(0, 0, -back), true, nil
		}
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, true, nil
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04", s, loc); err == nil {
		return t, false, nil
	}
	if t, err := time.Parse(time.RFC3339, strings.ToUpper(s)); err == nil {
		return t, false, nil
	}
	return time.Time{}, false, fmt.Errorf("%q is not a date kintsugi understands", s)
}
