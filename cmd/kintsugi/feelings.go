package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
)

// needsFeeling refuses an intensity given with no feeling to measure: an
// intensity says how strong a named feeling is (the feelings chart draws
// each feeling's), and alone it would be saved as a number nobody can
// read back ("You (5/10)"). An option that means nothing without another
// is refused before anything is written, rather than stored or dropped
// silently; entries that already carry one (from an earlier version or
// another client) are shown plainly (entryHead).
func needsFeeling(feelings []string) error {
	if len(feelings) > 0 {
		return nil
	}
	return usageError("--intensity says how strong a feeling is, and no feeling is named",
		"name it too, like --feeling grief --intensity 5, or leave --intensity out; nothing was saved")
}

// feelingSeries is one person's one feeling over time.
type feelingSeries struct {
	Author  string     `json:"author"`
	Feeling string     `json:"feeling"`
	Points  []feelingP `json:"points"`
}

type feelingP struct {
	Time      time.Time `json:"time"`
	Intensity *int      `json:"intensity"`
}

// series groups the feelings named in entries by author and feeling.
func series(entries []client.Entry) []feelingSeries {
	idx := map[[2]string]int{}
	var out []feelingSeries
	for _, en := range entries {
		for _, f := range en.Feelings {
			k := [2]string{en.Author, f}
			i, ok := idx[k]
			if !ok {
				i = len(out)
				idx[k] = i
				out = append(out, feelingSeries{Author: en.Author, Feeling: f})
			}
			out[i].Points = append(out[i].Points, feelingP{Time: en.Created, Intensity: en.Intensity})
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Author != out[b].Author {
			return out[a].Author < out[b].Author
		}
		return out[a].Feeling < out[b].Feeling
	})
	return out
}

var bars = []rune("▁▂▃▄▅▆▇█")

// sparkline draws one row: one cell per week, the last cell being the
// seven days up to now; a cell is the strongest intensity named that week
// (· when the feeling was named without an intensity, blank when not).
func sparkline(s feelingSeries, now time.Time, weeks int) string {
	cells := make([]rune, weeks)
	for i := range cells {
		cells[i] = ' '
	}
	best := make([]int, weeks)
	for i := range best {
		best[i] = -1
	}
	for _, p := range s.Points {
		w := weeks - 1 - int(now.Sub(p.Time).Hours()/(24*7))
		if w < 0 || w >= weeks {
			continue
		}
		if p.Intensity == nil {
			if best[w] < 0 {
				cells[w] = '·'
			}
			continue
		}
		if *p.Intensity > best[w] {
			best[w] = *p.Intensity
			cells[w] = bars[min(len(bars)-1, *p.Intensity*len(bars)/11)]
		}
	}
	return string(cells)
}

// chartRows draws the feelings chart, one row per series. The name
// columns are as wide as their widest name (in terminal columns), so a
// long feeling word does not push its row out of line.
func chartRows(ss []feelingSeries, now time.Time, weeks int) []string {
	wa, wf := 12, 14
	for _, s := range ss {
		wa, wf = max(wa, displayWidth(clean(s.Author))), max(wf, displayWidth(clean(s.Feeling)))
	}
	rows := make([]string, 0, len(ss))
	for _, s := range ss {
		rows = append(rows, fmt.Sprintf("  %s %s │%s│", padRight(clean(s.Author), wa), padRight(clean(s.Feeling), wf), sparkline(s, now, weeks)))
	}
	return rows
}

func cmdFeelings(e *env) *cli.Command {
	return &cli.Command{
		Name:  "feelings",
		Usage: "feelings and their intensity over time, week by week",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "since", Usage: "from this date on (default: 12 weeks ago)"},
			&cli.StringFlag{Name: "author", Usage: "me, partner, or a name"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"},
		},
		Action: func(c *cli.Context) error {
			now := time.Now()
			since := now.AddDate(0, 0, -7*12)
			if s := c.String("since"); s != "" {
				t, _, err := parseWhen(s, now)
				if err != nil {
					return usageError(err.Error(), "try a date like \"3 weeks ago\" or 2026-09-01")
				}
				since = t
			}
			_, j, err := e.open()
			if err != nil {
				return err
			}
			defer j.Close()
			r, err := j.Reader()
			if err != nil {
				return err
			}
			// The same selection log uses, by date and author; the chart
			// needs no text.
			f := &filter{since: since, author: strings.ToLower(strings.TrimSpace(c.String("author")))}
			q := f.query()
			q.NoText = true
			entries, err := r.Query(q)
			if err != nil {
				return err
			}
			ss := series(entries)
			if c.Bool("json") {
				if ss == nil {
					ss = []feelingSeries{}
				}
				return e.json(ss)
			}
			if len(ss) == 0 {
				e.printf("No feelings named since %s. `kintsugi write --feeling grief --intensity 6` names one, when you want to.\n", since.Local().Format("2 Jan 2006"))
				return nil
			}
			weeks := max(1, int(now.Sub(since).Hours()/(24*7)+0.999))
			e.printf("Week by week since %s (each mark is the strongest that week, ▁ gentle to █ overwhelming):\n\n", since.Local().Format("Mon 2 Jan"))
			for _, row := range chartRows(ss, now, weeks) {
				e.printf("%s\n", row)
			}
			e.printf("\nChange is often slow; it shows over months more than days.\n")
			return nil
		},
	}
}

// displayWidth is how many terminal columns s takes: one per rune, two
// for the wide characters of East Asian scripts and most emoji, none for
// combining marks.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || r == 0x200d || r == 0xfe0f:
		case r >= 0x1100 && r <= 0x115f, r >= 0x2e80 && r <= 0xa4cf, r >= 0xac00 && r <= 0xd7a3,
			r >= 0xf900 && r <= 0xfaff, r >= 0xfe30 && r <= 0xfe4f, r >= 0xff00 && r <= 0xff60,
			r >= 0xffe0 && r <= 0xffe6, r >= 0x1f300 && r <= 0x1faff, r >= 0x20000 && r <= 0x3fffd:
			n += 2
		default:
			n++
		}
	}
	return n
}

// padRight pads s with spaces to width columns (displayWidth).
func padRight(s string, width int) string {
	return s + strings.Repeat(" ", max(0, width-displayWidth(s)))
}

// likelyFeelings returns feelings with each word that is not one of
// feelingWords but one typo from one of them (a letter added, left out,
// changed, or two swapped; at least four letters; not a form of one,
// like "guilty") replaced by it, and whether it replaced any. One typo
// only: "lost" is two from "love", and a word of someone's own must not
// be taken for another.
func likelyFeelings(feelings []string) ([]string, bool) {
	out := make([]string, len(feelings))
	changed := false
	for i, f := range feelings {
		out[i] = f
		if len([]rune(f)) < 4 || slices.ContainsFunc(feelingWords, func(w string) bool { return strings.HasPrefix(f, w) }) {
			// Too short to tell, one of them, or a form of one
			// ("guilty", "loved", "hurts"): that is the person's word,
			// not a typo to correct.
			continue
		}
		for _, w := range feelingWords {
			if typos(f, w) == 1 {
				out[i], changed = w, true
				break
			}
		}
	}
	return out, changed
}

// typos is the edit distance between a and b in runes, counting a swap
// of two neighbours as one (optimal string alignment).
func typos(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// quoteList writes words as "a", "a" and "b", or "a", "b" and "c".
func quoteList(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = fmt.Sprintf("%q", clean(w))
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}
