package ui_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/client"
)

// BenchmarkTimeline serves the first page of the timeline of a journal of
// 10,000 entries (issue 14: "the timeline page (paged) is served in
// ≤ 150 ms"), through the whole server: the checks, the reader, the
// template. docs/performance.md has the figure.
//
//	go test ./ui -run '^$' -bench Timeline -benchtime 20x
func BenchmarkTimeline(b *testing.B) {
	a, j := journalFor(b, "alex")
	const n = 10_000
	ps := make([]client.Payload, n)
	seven := 7
	for i := range ps {
		ps[i] = client.Payload{Kind: client.KindEntry, Text: fmt.Sprintf("entry %d: %s", i, strings.Repeat("words of a day ", 20))}
		if i%3 == 0 {
			ps[i].Feelings, ps[i].Intensity = []string{"hope", "grief"}, &seven
		}
	}
	for k := 0; k < n; k += 1000 {
		if _, err := j.WriteMany(ps[k : k+1000]); err != nil {
			b.Fatal(err)
		}
	}
	h := start(b, a, j, nil)
	h.login()
	h.unlock()
	for _, tc := range []struct{ name, path string }{
		{"first-page", "/"},
		{"feeling-filter", "/?feeling=grief"},
		{"page-100", "/?page=100"},
	} {
		path := tc.path
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				resp, body := h.get(path)
				if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<article class="entry`) {
					b.Fatalf("%s: %s", path, resp.Status)
				}
			}
		})
	}
}
