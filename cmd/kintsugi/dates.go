package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
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

// lengthWords are the words for units people write in a length of time,
// longest first, and the unit each stands for.
var lengthWords = []struct{ long, unit string }{
	{"minutes", "m"}, {"minute", "m"}, {"mins", "m"}, {"min", "m"},
	{"hours", "h"}, {"hour", "h"}, {"hrs", "h"}, {"hr", "h"},
	{"seconds", "s"}, {"second", "s"}, {"secs", "s"}, {"sec", "s"},
	{"weeks", "w"}, {"week", "w"}, {"days", "d"}, {"day", "d"},
}

// daysAndWeeks matches a number of days or weeks in a normalized length.
var daysAndWeeks = regexp.MustCompile(`([0-9]+(?:\.[0-9]+)?)([dw])`)

// parseLength reads a length of time as people write it: Go durations
// ("30m", "1h30m"), days and weeks ("3d", "1w"), and words ("45 minutes",
// "2 days", "1 hour 30 min"). bareNumber reports that s was a number
// alone, which says nothing of how long it means.
func parseLength(s string) (d time.Duration, bareNumber bool, err error) {
	t := strings.ToLower(strings.Join(strings.Fields(s), ""))
	for _, w := range lengthWords {
		t = strings.ReplaceAll(t, w.long, w.unit)
	}
	if _, err := strconv.ParseFloat(t, 64); err == nil {
		return 0, true, fmt.Errorf("%q has no unit", s)
	}
	// Days and weeks, which time.ParseDuration does not know, as hours.
	t = daysAndWeeks.ReplaceAllStringFunc(t, func(m string) string {
		n, _ := strconv.ParseFloat(m[:len(m)-1], 64)
		if m[len(m)-1] == 'w' {
			n *= 7
		}
		return strconv.FormatFloat(n*24, 'f', -1, 64) + "h"
	})
	d, err = time.ParseDuration(t)
	return d, false, err
}

// maxCodeLife is the longest an invite or device link code may work:
// what a relay accepts (its InviteMaxTTL, 7 days by default; see
// docs/protocol.md). Asking the relay for more would only be refused
// after the passphrase was typed.
const maxCodeLife = 7 * 24 * time.Hour

// expiresFlag is the --expires of `journal invite` and `device link`,
// whose codes work for def unless it says otherwise.
func expiresFlag(def time.Duration) cli.Flag {
	// "24h", not time.Duration's "24h0m0s".
	text := strings.TrimSuffix(strings.TrimSuffix(def.String(), "0s"), "0m")
	return &cli.StringFlag{Name: "expires", Usage: "how long the code works, like 2h, 3d or \"1 day\"; at most 7 days", Value: text}
}

// parseExpires reads --expires.
func parseExpires(s string) (time.Duration, error) {
	hint := "write how long the code works, like --expires 2h, --expires 3d or --expires \"1 day\"; the longest is 7 days"
	d, bare, err := parseLength(s)
	switch {
	case bare:
		return 0, usageError(fmt.Sprintf("--expires %s needs a unit", s), hint)
	case err != nil:
		return 0, usageError(fmt.Sprintf("--expires %q is not a length of time kintsugi understands", s), hint)
	case d < time.Minute:
		return 0, usageError(fmt.Sprintf("--expires %s is less than a minute, too short for a code to be used", s), hint)
	case d > maxCodeLife:
		return 0, usageError(fmt.Sprintf("--expires %s is longer than 7 days, the longest a code can work", s), "choose 7 days or less, like --expires 7d; when a code runs out, a fresh one is quick to make")
	}
	return d, nil
}
