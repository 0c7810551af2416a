package main

import (
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
)

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
					return fail(err.Error(), "try a date like \"3 weeks ago\" or 2026-09-01")
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
			for _, s := range ss {
				e.printf("  %-12s %-14s │%s│\n", clean(s.Author), clean(s.Feeling), sparkline(s, now, weeks))
			}
			e.printf("\nChange is often slow; it shows over months more than days.\n")
			return nil
		},
	}
}
