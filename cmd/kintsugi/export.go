package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
)

func cmdExport(e *env) *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "a readable copy of chosen entries, to bring to a counsellor (markdown, json or html)",
		Description: "Export decrypts on this device; nothing goes through the relay. The file it\n" +
			"writes is NOT encrypted: keep it somewhere private and delete it when you are done.\n" +
			"Choose entries with the same filters as `kintsugi log`.",
		Flags: append(filterFlags(),
			&cli.StringFlag{Name: "format", Value: "markdown", Usage: "markdown, json or html"},
			&cli.StringFlag{Name: "out", Usage: "write to this file (created private, 0600) instead of standard output"},
		),
		Action: func(c *cli.Context) error {
			format := strings.ToLower(c.String("format"))
			if format == "md" {
				format = "markdown"
			}
			if format != "markdown" && format != "json" && format != "html" {
				return usageError(fmt.Sprintf("%q is not an export format", format), "use markdown, json or html")
			}
			f, err := newFilter(c, time.Now())
			if err != nil {
				return err
			}
			a, j, err := e.open()
			if err != nil {
				return err
			}
			defer j.Close()
			out, n, err := exportBytes(a.Name, j, f.query(), format)
			if err != nil {
				return err
			}
			buf := bytes.NewBuffer(out)
			said := fmt.Sprintf("Decrypted %s on this device for export; nothing went through the relay.\n", plural(n, "entry", "entries"))
			if out := c.String("out"); out != "" {
				fl, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return createError(out, err)
				}
				fmt.Fprint(e.stderr, said)
				if _, err := fl.Write(buf.Bytes()); err != nil {
					fl.Close()
					return err
				}
				if err := fl.Close(); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "Wrote %s. It is not encrypted: keep it private, and delete it when you no longer need it.\n", out)
				return nil
			}
			fmt.Fprint(e.stderr, said)
			_, err = e.stdout.Write(buf.Bytes())
			return err
		},
	}
}

// createError words why the export file out could not be made, naming
// the file once (err, an *fs.PathError, names it too). An existing file is
// never overwritten, as age and git refuse to: what it holds may be an
// earlier export someone still needs.
func createError(out string, err error) error {
	if errors.Is(err, fs.ErrExist) {
		return &userError{msg: fmt.Sprintf("%s already exists, so nothing was written", out),
			hint: "export never overwrites a file: give --out another name, or remove " + out + " first if you no longer need it", err: err}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &userError{msg: fmt.Sprintf("could not create %s: %v", out, err), hint: "choose another place or name with --out; nothing was written", err: err}
}

// exportBytes is the export of the entries q chooses from j, in format
// (markdown, json or html), made by the person named by, and how many
// entries it holds. kintsugi ui's export page uses it too.
func exportBytes(by string, j *client.Journal, q client.Query, format string) ([]byte, int, error) {
	r, err := j.Reader()
	if err != nil {
		return nil, 0, err
	}
	chosen, err := r.Query(q)
	if err != nil {
		return nil, 0, err
	}
	doc := exportDoc{Title: j.Title(), Exported: time.Now(), By: by, Partner: partnerName(j), Entries: []client.Entry{}, byID: r}
	for _, en := range chosen {
		if en.Kind != client.KindTogetherMark {
			doc.Entries = append(doc.Entries, en)
		}
	}
	var buf bytes.Buffer
	switch format {
	case "json":
		err = writeJSONExport(&buf, &doc)
	case "markdown":
		err = writeMarkdown(&buf, &doc)
	case "html":
		err = writeHTML(&buf, &doc)
	default:
		err = fmt.Errorf("%q is not an export format", format)
	}
	return buf.Bytes(), len(doc.Entries), err
}

type exportDoc struct {
	Title    string
	Exported time.Time
	By       string
	Partner  string
	Entries  []client.Entry
	byID     entries
}

func writeJSONExport(w io.Writer, d *exportDoc) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{
		"title": d.Title, "exported": d.Exported.UTC(), "exported_by": d.By, "partner": d.Partner,
		"note":    "decrypted on the exporting device; not encrypted",
		"entries": d.Entries,
	})
}

// headline is how an entry is introduced in the markdown and html
// exports: as log words it (entryHead), naming both partners, since
// whoever reads an export is neither of them.
func (d *exportDoc) headline(en client.Entry) string {
	head, _ := entryHead(en, d.byID, toReader)
	return head
}

func writeMarkdown(w io.Writer, d *exportDoc) error {
	title := d.Title
	if title == "" {
		title = "Our journal"
	}
	fmt.Fprintf(w, "# %s\n\n", mdEscape(clean(title)))
	fmt.Fprintf(w, "Exported by %s on %s: %s. Decrypted on %s's device; this file is not encrypted.\n\n",
		mdEscape(clean(d.By)), d.Exported.Local().Format("Monday 2 January 2006"), plural(len(d.Entries), "entry", "entries"), mdEscape(clean(d.By)))
	for _, en := range d.Entries {
		fmt.Fprintf(w, "## %s — %s\n\n", en.Created.Local().Format("Mon 2 Jan 2006, 15:04"), mdEscape(clean(d.headline(en))))
		if en.Text != "" {
			for _, line := range strings.Split(clean(en.Text), "\n") {
				fmt.Fprintf(w, "> %s\n", mdEscape(line))
			}
			fmt.Fprintln(w)
		}
		if len(en.Tags) > 0 {
			fmt.Fprintf(w, "Tags: %s\n\n", mdEscape(strings.Join(en.Tags, ", ")))
		}
	}
	return nil
}

// mdEscape keeps text from being read as markdown structure or HTML.
func mdEscape(s string) string {
	r := strings.NewReplacer("\\", "\\\\", "<", "&lt;", ">", "&gt;", "*", "\\*", "_", "\\_", "`", "\\`", "[", "\\[", "]", "\\]", "#", "\\#")
	return r.Replace(s)
}

// chart is the inline SVG feelings chart of the html export.
type chart struct {
	W, H   int
	Lines  []chartLine
	Ticks  []chartTick
	Empty  bool
	YTicks []chartTick
}

type chartLine struct {
	Label, Color string
	Points       string // "x,y x,y ..."
	Dots         []chartTick
}

type chartTick struct {
	X, Y   int
	Label  string
	Anchor string // SVG text-anchor
}

var palette = []string{"#b5651d", "#3b6ea5", "#6a994e", "#8e5572", "#c9a227", "#4d908e", "#a44a3f", "#577590"}

func makeChart(entries []client.Entry) chart {
	c := chart{W: 720, H: 240}
	const left, right, top, bottom = 40, 12, 12, 28
	var pts []client.Entry
	for _, en := range entries {
		if en.Intensity != nil && len(en.Feelings) > 0 {
			pts = append(pts, en)
		}
	}
	if len(pts) == 0 {
		c.Empty = true
		return c
	}
	t0, t1 := pts[0].Created, pts[len(pts)-1].Created
	span := t1.Sub(t0)
	if span <= 0 {
		span = time.Hour
	}
	x := func(t time.Time) int { return left + int(float64(c.W-left-right)*float64(t.Sub(t0))/float64(span)) }
	y := func(v int) int { return top + (c.H-top-bottom)*(10-v)/10 }
	for v := 0; v <= 10; v += 5 {
		c.YTicks = append(c.YTicks, chartTick{X: left - 6, Y: y(v), Label: fmt.Sprint(v), Anchor: "end"})
	}
	c.Ticks = []chartTick{{X: left, Y: c.H - 8, Label: t0.Local().Format("2 Jan"), Anchor: "start"}, {X: c.W - right, Y: c.H - 8, Label: t1.Local().Format("2 Jan"), Anchor: "end"}}
	for i, s := range series(pts) {
		l := chartLine{Label: s.Author + " · " + s.Feeling, Color: palette[i%len(palette)]}
		var b strings.Builder
		for _, p := range s.Points {
			px, py := x(p.Time), y(*p.Intensity)
			fmt.Fprintf(&b, "%d,%d ", px, py)
			l.Dots = append(l.Dots, chartTick{X: px, Y: py, Label: fmt.Sprintf("%s %d/10", p.Time.Local().Format("2 Jan"), *p.Intensity)})
		}
		l.Points = strings.TrimSpace(b.String())
		c.Lines = append(c.Lines, l)
	}
	return c
}

var htmlPage = template.Must(template.New("export").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Title}}</title>
<style>
body { font: 16px/1.55 Georgia, "Times New Roman", serif; color: #2b2b2b; background: #fbf8f3; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-weight: normal; border-bottom: 2px solid #c9a227; padding-bottom: .3rem; }
.note { color: #666; font-size: .9rem; }
article { background: #fff; border-left: 3px solid #c9a227; margin: 1.2rem 0; padding: .6rem 1rem; }
article header { font-size: .85rem; color: #555; }
article p { white-space: pre-wrap; margin: .4rem 0 0; }
.tags { font-size: .8rem; color: #777; }
svg text { font: 11px sans-serif; fill: #555; }
.legend span { display: inline-block; margin-right: 1rem; font-size: .85rem; }
.legend i { display: inline-block; width: .8rem; height: .8rem; margin-right: .3rem; vertical-align: middle; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="note">Exported by {{.By}} on {{.Date}}: {{.Count}}. Decrypted on {{.By}}'s device for a counselling session; this page is not encrypted. It loads nothing from the internet.</p>
<section id="feelings">
<h2>Feelings over time</h2>
{{if .Chart.Empty}}<p class="note">No feelings with an intensity in these entries.</p>{{else}}
<svg xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {{.Chart.W}} {{.Chart.H}}" role="img" aria-label="Feelings and their intensity over time">
{{range .Chart.YTicks}}<text x="{{.X}}" y="{{.Y}}" text-anchor="{{.Anchor}}">{{.Label}}</text>
{{end}}{{range .Chart.Ticks}}<text x="{{.X}}" y="{{.Y}}" text-anchor="{{.Anchor}}">{{.Label}}</text>
{{end}}{{range .Chart.Lines}}<polyline fill="none" stroke="{{.Color}}" stroke-width="2" points="{{.Points}}"><title>{{.Label}}</title></polyline>
{{$c := .Color}}{{range .Dots}}<circle cx="{{.X}}" cy="{{.Y}}" r="3" fill="{{$c}}"><title>{{.Label}}</title></circle>{{end}}
{{end}}</svg>
<p class="legend">{{range .Chart.Lines}}<span><i style="background: {{.Color}}"></i>{{.Label}}</span>{{end}}</p>
{{end}}
</section>
<section id="entries">
<h2>Entries</h2>
{{range .Entries}}<article>
<header>{{.When}} — {{.Head}}</header>
{{if .Text}}<p>{{.Text}}</p>{{end}}
{{if .Tags}}<div class="tags">{{.Tags}}</div>{{end}}
</article>
{{end}}</section>
</body>
</html>
`))

func writeHTML(w io.Writer, d *exportDoc) error {
	type row struct{ When, Head, Text, Tags string }
	var rows []row
	for _, en := range d.Entries {
		rows = append(rows, row{
			When: en.Created.Local().Format("Mon 2 Jan 2006, 15:04"),
			Head: clean(d.headline(en)),
			Text: clean(en.Text),
			Tags: strings.Join(en.Tags, ", "),
		})
	}
	title := d.Title
	if title == "" {
		title = "Our journal"
	}
	return htmlPage.Execute(w, map[string]any{
		"Title": clean(title), "By": clean(d.By), "Date": d.Exported.Local().Format("Monday 2 January 2006"),
		"Count": plural(len(d.Entries), "entry", "entries"), "Chart": makeChart(d.Entries), "Entries": rows,
	})
}
