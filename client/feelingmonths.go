package client

import (
	"sort"
	"time"
)

// FeelingRow is one person's one feeling, month by month: a row of the
// feelings chart over months.
type FeelingRow struct {
	Author  string
	Mine    bool
	Feeling string
	// Months has one cell per calendar month, oldest first.
	Months []FeelingCell
}

// FeelingCell is what a person named of a feeling in one month.
type FeelingCell struct {
	Month time.Time // the first moment of the month
	Count int       // how many entries named it
	// Strongest is the highest intensity named with it, or nil when it
	// was named without one (or not at all).
	Strongest *int
}

// FeelingMonths arranges the feelings named in entries (from a [Query],
// which may leave out the text) into rows by person and feeling, with
// one cell for each of the months calendar months (in loc) that end with
// the one holding now. Entries outside those months are left out. Rows
// come by author, then feeling; a feeling named only outside the months
// has no row.
func FeelingMonths(entries []Entry, now time.Time, months int, loc *time.Location) []FeelingRow {
	if months < 1 {
		return nil
	}
	now = now.In(loc)
	last := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, loc)
	first := last.AddDate(0, -(months - 1), 0)
	index := map[[2]string]int{}
	var rows []FeelingRow
	for _, en := range entries {
		c := en.Created.In(loc)
		if c.Before(first) || !c.Before(last.AddDate(0, 1, 0)) {
			continue
		}
		m := (c.Year()-first.Year())*12 + int(c.Month()) - int(first.Month())
		for _, f := range en.Feelings {
			k := [2]string{en.Author, f}
			i, ok := index[k]
			if !ok {
				i = len(rows)
				index[k] = i
				row := FeelingRow{Author: en.Author, Mine: en.Mine, Feeling: f, Months: make([]FeelingCell, months)}
				for j := range row.Months {
					row.Months[j].Month = first.AddDate(0, j, 0)
				}
				rows = append(rows, row)
			}
			cell := &rows[i].Months[m]
			cell.Count++
			if en.Intensity != nil && (cell.Strongest == nil || *en.Intensity > *cell.Strongest) {
				n := *en.Intensity
				cell.Strongest = &n
			}
		}
	}
	sort.SliceStable(rows, func(a, b int) bool {
		if rows[a].Author != rows[b].Author {
			return rows[a].Author < rows[b].Author
		}
		return rows[a].Feeling < rows[b].Feeling
	})
	return rows
}
