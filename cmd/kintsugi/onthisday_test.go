package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/client/clienttest"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// TestLogOnThisDay: `log --on-this-day` shows what was written on this
// day of the month in earlier months and years, under how long ago it
// was, and nothing from today or from other days.
func TestLogOnThisDay(t *testing.T) {
	now := time.Now()
	yearAgo := time.Date(now.Year()-1, now.Month(), now.Day(), 12, 0, 0, 0, time.Local)
	if yearAgo.Day() != now.Day() {
		t.Skip("today is 29 February, which last year did not have")
	}
	relay := servertest.NewServer(t)
	a := clienttest.NewAccount(t, "Alex")
	j, err := a.CreateJournal(clienttest.Context(t), relay.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		at   time.Time
		text string
	}{
		{yearAgo, "the first hard winter"},
		{yearAgo.AddDate(0, 0, -1), "a day that is not this one"},
		{now.AddDate(0, 0, -1), "only yesterday"},
		{now, "written today"},
	} {
		if _, err := j.Write(client.Payload{Kind: client.KindEntry, Text: w.text, Created: w.at.UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, []byte(clienttest.Passphrase), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"kintsugi", "--home", a.Home.Dir, "--passphrase-file", passFile, "log", "--on-this-day"}, strings.NewReader(""), &out, &errOut)
	if err != nil {
		t.Fatalf("log --on-this-day: %v\n%s", err, errOut.String())
	}
	got := out.String()
	if !strings.Contains(got, "── A year ago, "+yearAgo.Format("Mon 2 Jan 2006")) || !strings.Contains(got, "the first hard winter") {
		t.Errorf("log --on-this-day does not show last year's entry under its heading:\n%s", got)
	}
	for _, not := range []string{"not this one", "only yesterday", "written today"} {
		if strings.Contains(got, not) {
			t.Errorf("log --on-this-day shows %q:\n%s", not, got)
		}
	}
}

func TestAgoHeading(t *testing.T) {
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		then time.Time
		want string
	}{
		{time.Date(2026, 10, 2, 9, 0, 0, 0, time.UTC), "A month ago, Fri 2 Oct 2026"},
		{time.Date(2026, 8, 2, 9, 0, 0, 0, time.UTC), "3 months ago, Sun 2 Aug 2026"},
		{time.Date(2025, 11, 2, 9, 0, 0, 0, time.UTC), "A year ago, Sun 2 Nov 2025"},
		{time.Date(2024, 9, 2, 9, 0, 0, 0, time.UTC), "2 years and 2 months ago, Mon 2 Sep 2024"},
		{time.Date(2025, 10, 2, 9, 0, 0, 0, time.UTC), "1 year and 1 month ago, Thu 2 Oct 2025"},
	} {
		if got := agoHeading(c.then, now); got != c.want {
			t.Errorf("agoHeading(%s) = %q, want %q", c.then, got, c.want)
		}
	}
	for d, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 22: "22nd", 23: "23rd", 31: "31st"} {
		if got := ordinal(d); got != want {
			t.Errorf("ordinal(%d) = %q, want %q", d, got, want)
		}
	}
}
