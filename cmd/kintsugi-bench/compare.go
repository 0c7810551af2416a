package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
)

// --compare REV: the same benchmark on this build and on revision REV of
// the repository, A/B/A/B, each its own process, with ratios. On a shared
// machine the load moves figures by tens of percent from one minute to
// the next; runs that alternate share the load, so their ratio says more
// than two figures taken at different times.
//
// REV is checked out with `git worktree add --detach` into a temporary
// directory and its kintsugi-bench built there with the go tool; each of
// its runs starts in that directory, so what it builds (the kintsugi
// command, kintsugi-relay) comes from REV too. A figure a revision does
// not report (an older bench) is shown as "-".

// compareRounds is how many times each build runs (A/B, then again).
const compareRounds = 2

// runCompare builds rev, then runs this executable and rev's in turn,
// compareRounds times each, with args (this command line without
// --compare), and prints the figures side by side with their ratios.
func runCompare(rev string, args []string, stdout, progress io.Writer) error {
	top, err := gitOutput("", "rev-parse", "--show-toplevel")
	if err != nil {
		return &usageError{msg: "--compare needs to run inside the repository: " + err.Error(), hint: "run it from the kintsugi checkout, like the client scenario"}
	}
	commit, err := gitOutput(top, "rev-parse", "--verify", rev+"^{commit}")
	if err != nil {
		return &usageError{msg: fmt.Sprintf("--compare %s names no commit here", rev), hint: "give a commit, branch or tag, like --compare HEAD~3"}
	}
	tmp, err := os.MkdirTemp("", "kintsugi-bench-compare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	tree := filepath.Join(tmp, "tree")
	fmt.Fprintf(progress, "kintsugi-bench: compare: checking out %s (%.12s)\n", rev, commit)
	if _, err := gitOutput(top, "worktree", "add", "--detach", tree, commit); err != nil {
		return fmt.Errorf("check out %s: %w", rev, err)
	}
	defer func() { _, _ = gitOutput(top, "worktree", "remove", "--force", tree) }()
	other := filepath.Join(tmp, "kintsugi-bench-"+commit[:12])
	build := exec.Command("go", "build", "-o", other, "./cmd/kintsugi-bench")
	build.Dir, build.Stderr = tree, progress
	if err := build.Run(); err != nil {
		return fmt.Errorf("build kintsugi-bench at %s: %w", rev, err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	type side struct {
		name, exe, dir string
		runs           []map[string]any
	}
	sides := []*side{{name: "this build", exe: self, dir: wd}, {name: rev, exe: other, dir: tree}}
	args = append(slices.Clone(args), "--json")
	for round := range compareRounds {
		for _, s := range sides {
			fmt.Fprintf(progress, "kintsugi-bench: compare: round %d of %d, %s\n", round+1, compareRounds, s.name)
			var out bytes.Buffer
			cmd := exec.Command(s.exe, args...)
			cmd.Dir, cmd.Stdout, cmd.Stderr = s.dir, &out, progress
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s, round %d: %w", s.name, round+1, err)
			}
			var r map[string]any
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				return fmt.Errorf("%s, round %d: its report is not JSON: %w", s.name, round+1, err)
			}
			s.runs = append(s.runs, r)
		}
	}
	a, b := figuresOf(sides[0].runs), figuresOf(sides[1].runs)
	fmt.Fprintf(stdout, "kintsugi-bench: this build against %s (%.12s), %d runs each, alternating; load average at the start of each: %s\n",
		rev, commit, compareRounds, strings.Join(loads(sides[0].runs, sides[1].runs), ", "))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "figure\tthis build\t%s\tthis / %s\t\n", rev, rev)
	for _, f := range a.order {
		x, y := a.values[f], b.values[f]
		ratio := "-"
		if len(y) > 0 && mean(y) != 0 {
			ratio = fmt.Sprintf("%.2fx", mean(x)/mean(y))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", f, show(x), show(y), ratio)
	}
	for _, f := range b.order {
		if _, ok := a.values[f]; !ok {
			fmt.Fprintf(tw, "%s\t-\t%s\t-\t\n", f, show(b.values[f]))
		}
	}
	return tw.Flush()
}

// gitOutput runs git in dir ("" for the current directory) and returns
// its output, trimmed.
func gitOutput(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// figures are the comparable numbers of a build's runs, by name, in the
// order first seen.
type figures struct {
	order  []string
	values map[string][]float64
}

// figuresOf picks out the figures worth comparing from reports, read as
// plain JSON so that an older bench's report (fewer fields) still reads.
func figuresOf(reports []map[string]any) figures {
	f := figures{values: map[string][]float64{}}
	add := func(name string, v any) {
		x, ok := v.(float64)
		if !ok {
			return
		}
		if _, seen := f.values[name]; !seen {
			f.order = append(f.order, name)
		}
		f.values[name] = append(f.values[name], x)
	}
	list := func(r map[string]any, key string) []map[string]any {
		var out []map[string]any
		switch v := r[key].(type) {
		case []any:
			for _, o := range v {
				if m, ok := o.(map[string]any); ok {
					out = append(out, m)
				}
			}
		case map[string]any:
			out = append(out, v)
		}
		return out
	}
	// Builds from before --store (and before --nodes) name neither: they
	// measured Badger, on one relay.
	or := func(v any, def string) any {
		if v == nil {
			return def
		}
		return v
	}
	for _, r := range reports {
		for _, x := range list(r, "ingest") {
			name := fmt.Sprintf("ingest %v, %v writers, %v:", or(x["store"], "badger"), x["writers"], x["layout"])
			add(name+" blobs/s", x["blobs_per_second"])
			add(name+" ack p99 ms", x["ack_p99_ms"])
			add(name+" relay CPU µs/put", x["relay_cpu_per_put_us"])
		}
		for _, x := range list(r, "push") {
			name := fmt.Sprintf("push %v, %v relays, %v subscribers:", or(x["store"], "badger"), or(x["nodes"], "1"), x["subscribers"])
			add(name+" p50 ms", x["p50_ms"])
			add(name+" p99 ms", x["p99_ms"])
		}
		for _, x := range list(r, "idle") {
			add(fmt.Sprintf("idle %v connections: RSS bytes/conn", x["connections"]), x["rss_bytes_per_conn"])
		}
		for _, x := range list(r, "first_sync") {
			add("first sync: fetch ms", x["fetch_ms"])
			add("first sync: sync ms", x["sync_ms"])
			add("first sync: sync + read ms", x["fetch_decrypt_ms"])
		}
		for _, x := range list(r, "link") {
			add("link: device link ms", x["link_ms"])
			add("link: first sync + read ms", x["read_all_ms"])
			add("link: handover bytes", x["handover_bytes"])
		}
		for _, x := range list(r, "client") {
			for _, c := range list(x, "commands") {
				add(fmt.Sprintf("client %v entries, %v: wall ms", x["entries"], c["command"]), c["wall_ms"])
				add(fmt.Sprintf("client %v entries, %v: peak RSS KiB", x["entries"], c["command"]), c["peak_rss_kib"])
			}
		}
		for _, x := range list(r, "memory") {
			add("memory: peak RSS bytes", x["peak_rss_bytes"])
			add("memory: peak anonymous bytes", x["peak_anon_bytes"])
			add("memory: seconds", x["seconds"])
		}
		for _, x := range list(r, "listener") {
			add("listener: median ms", x["recover_p50_ms"])
		}
	}
	return f
}

// loads returns each run's load average at its start, in the order run.
func loads(a, b []map[string]any) []string {
	var out []string
	for i := range max(len(a), len(b)) {
		for _, runs := range [][]map[string]any{a, b} {
			if i < len(runs) {
				env, _ := runs[i]["env"].(map[string]any)
				out = append(out, fmt.Sprint(env["load_avg"]))
			}
		}
	}
	return out
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(max(len(xs), 1))
}

// show prints a figure's runs' mean, and the runs themselves.
func show(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.4g", x)
	}
	return fmt.Sprintf("%.4g (%s)", mean(xs), strings.Join(parts, ", "))
}
