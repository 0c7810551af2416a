package client

import "time"

// Due is what waits on this person in a journal, for a reminder: the
// partner's questions nobody has answered yet, and this person's own
// commitments with no check-in for the current day or week. A question
// answered with "I need time" does not wait: that honest answer is not
// nagged about.
type Due struct {
	Questions int `json:"questions"`
	Checkins  int `json:"checkins"`
}

// Due returns what waits on this person at now (days and weeks end in
// now's location). It reads no entry's text.
func (r *Reader) Due(now time.Time) (Due, error) {
	list, err := r.Query(Query{Kinds: map[string]bool{KindQuestion: true, KindCommit: true, KindCheckin: true}, NoText: true})
	if err != nil {
		return Due{}, err
	}
	checkins := map[string][]Entry{}
	for _, e := range list {
		if e.Kind == KindCheckin {
			checkins[e.Ref] = append(checkins[e.Ref], e)
		}
	}
	var d Due
	loc := now.Location()
	for _, e := range list {
		if e.Retracted != nil {
			continue
		}
		switch {
		case e.Kind == KindQuestion && !e.Mine && e.State == "open":
			d.Questions++
		case e.Kind == KindCommit && e.Mine:
			if _, ok := CheckinRecord(e, checkins[e.ID], loc)[PeriodStart(e.Every, now, loc)]; !ok {
				d.Checkins++
			}
		}
	}
	return d, nil
}
