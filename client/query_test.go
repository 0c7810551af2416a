package client_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// writeAt writes an entry as if written at when.
func writeAt(t *testing.T, j *client.Journal, when time.Time, text string) {
	t.Helper()
	if _, err := j.Write(client.Payload{Kind: client.KindEntry, Text: text, Created: when.UTC()}); err != nil {
		t.Fatal(err)
	}
}

func queryTexts(t *testing.T, j *client.Journal, q client.Query) []string {
	t.Helper()
	r, err := j.Reader()
	if err != nil {
		t.Fatal(err)
	}
	list, err := r.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list {
		out = append(out, e.Text)
	}
	return out
}

// "On this day": the same day of the month in earlier months and years,
// in the day's own time zone, and nothing from that day itself.
func TestQueryOnThisDay(t *testing.T) {
	relay := servertest.NewServer(t)
	a := newAccount(t, "Alex")
	j, err := a.CreateJournal(ctxFor(t), relay.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	loc := time.FixedZone("here", -7*3600)
	today := time.Date(2026, 11, 2, 15, 0, 0, 0, loc)
	writeAt(t, j, time.Date(2024, 11, 2, 23, 30, 0, 0, loc), "two years ago, late")
	writeAt(t, j, time.Date(2025, 11, 2, 8, 0, 0, 0, loc), "a year ago")
	writeAt(t, j, time.Date(2026, 3, 2, 12, 0, 0, 0, loc), "march")
	writeAt(t, j, time.Date(2026, 10, 2, 0, 0, 0, 0, loc), "a month ago, at midnight")
	writeAt(t, j, time.Date(2026, 10, 3, 0, 0, 0, 0, loc), "the day after")
	writeAt(t, j, time.Date(2026, 10, 1, 23, 59, 0, 0, loc), "the day before")
	// 2 Nov 03:00 UTC is still 1 Nov here.
	writeAt(t, j, time.Date(2026, 11, 2, 3, 0, 0, 0, time.UTC), "the evening before, here")
	writeAt(t, j, time.Date(2026, 11, 2, 9, 0, 0, 0, loc), "this morning")

	got := queryTexts(t, j, client.Query{OnThisDay: today})
	want := []string{"two years ago, late", "a year ago", "march", "a month ago, at midnight"}
	if !slices.Equal(got, want) {
		t.Errorf("on this day = %q, want %q", got, want)
	}
	got = queryTexts(t, j, client.Query{OnThisDay: today, Since: time.Date(2026, 1, 1, 0, 0, 0, 0, loc), Last: 1})
	if want := []string{"a month ago, at midnight"}; !slices.Equal(got, want) {
		t.Errorf("on this day since January, last 1 = %q, want %q", got, want)
	}
	// The 31st: months without one have nothing.
	if got := queryTexts(t, j, client.Query{OnThisDay: time.Date(2026, 12, 31, 9, 0, 0, 0, loc)}); len(got) != 0 {
		t.Errorf("on the 31st = %q, want nothing", got)
	}
}

// An author nobody in the journal goes by is an error, not an empty list.
func TestQueryUnknownAuthor(t *testing.T) {
	relay := servertest.NewServer(t)
	a := newAccount(t, "Alex")
	j, err := a.CreateJournal(ctxFor(t), relay.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	write(t, j, "hello")
	r, err := j.Reader()
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"", "me", "partner", "alex", "ALEX"} {
		if _, err := r.Query(client.Query{Author: who}); err != nil {
			t.Errorf("author %q: %v", who, err)
		}
	}
	if _, err := r.Query(client.Query{Author: "bob"}); !errors.Is(err, client.ErrNoSuchAuthor) {
		t.Errorf("author bob: got %v, want ErrNoSuchAuthor", err)
	}
}
