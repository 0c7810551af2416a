package ui

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
)

// The feelings chart over months: for each person and feeling, a row of
// months, each cell the strongest intensity named that month, as
// `kintsugi feelings` marks the strongest each week. It is an HTML table
// (cells shaded by class, so the policy needs no inline style), so it reads
// without JavaScript and with a screen reader.

// chartMonths are the lengths the page offers; the first is the default.
var chartMonths = []int{12, 6, 24}

// chartHead names a month: "Jan", and its year under it.
type chartHead struct{ Month, Year string }

// chartRow is a row of the chart as the template shows it.
type chartRow struct {
	Author, Feeling string
	Mine            bool
	Cells           []chartCell
}

type chartCell struct {
	Text  string // the strongest intensity, "·" when named without one, "" when not named
	Class string // lvl-0 … lvl-10, lvl-named, lvl-none
	Title string // what the cell means, in words
}

// feelings shows the chart.
func (s *Server) feelings(w http.ResponseWriter, r *http.Request) {
	o, release := s.journal(r)
	if o == nil {
		http.Redirect(w, r, "/unlock", http.StatusSeeOther)
		return
	}
	defer release()
	months := chartMonths[0]
	if n, err := strconv.Atoi(r.URL.Query().Get("months")); err == nil {
		for _, m := range chartMonths {
			if n == m {
				months = n
			}
		}
	}
	now := s.cfg.Now()
	loc := time.Local
	start := time.Date(now.In(loc).Year(), now.In(loc).Month(), 1, 0, 0, 0, 0, loc).AddDate(0, -(months - 1), 0)
	rd, err := o.j.Reader()
	if err != nil {
		s.failed(w, r, err)
		return
	}
	entries, err := rd.Query(client.Query{Since: start, NoText: true})
	if err != nil {
		s.failed(w, r, err)
		return
	}
	p := &page{Title: "Feelings", Wide: true, Journal: o.j.Title(), ChartMonths: months, ChartChoices: chartMonths}
	for m := range months {
		t := start.AddDate(0, m, 0)
		p.ChartHeads = append(p.ChartHeads, chartHead{Month: t.Format("Jan"), Year: t.Format("2006")})
	}
	for _, row := range client.FeelingMonths(entries, now, months, loc) {
		cr := chartRow{Author: row.Author, Feeling: row.Feeling, Mine: row.Mine}
		if row.Mine {
			cr.Author = "You"
		}
		for _, c := range row.Months {
			cell := chartCell{Class: "lvl-none", Title: "not named in " + c.Month.Format("January")}
			switch {
			case c.Count == 0:
			case c.Strongest == nil:
				cell.Text, cell.Class = "·", "lvl-named"
				cell.Title = fmt.Sprintf("named %s in %s, without an intensity", times(c.Count), c.Month.Format("January"))
			default:
				cell.Text, cell.Class = strconv.Itoa(*c.Strongest), fmt.Sprintf("lvl-%d", *c.Strongest)
				cell.Title = fmt.Sprintf("named %s in %s; the strongest %d of 10", times(c.Count), c.Month.Format("January"), *c.Strongest)
			}
			cr.Cells = append(cr.Cells, cell)
		}
		p.Chart = append(p.Chart, cr)
	}
	s.render(w, r, http.StatusOK, "feelings", p)
}

// times says "once", "twice", "3 times".
func times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return fmt.Sprintf("%d times", n)
}
