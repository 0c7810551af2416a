package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kintsugi-journal/kintsugi/client"
)

// The client scenario runs the real kintsugi command, built once into a
// temporary directory, as a child process on a home with a long journal,
// and reads each command's wall time, CPU time and peak RSS.
//
// Peak RSS comes from the kernel (ru_maxrss of the waited-for child), and
// Linux has a catch there: exec records the hiwater RSS of the address
// space it replaces, and Go starts children with clone(CLONE_VM), whose
// address space is the parent's. A child started straight from this
// process would report at least this process's own peak, which after
// writing 100k entries is hundreds of MiB. So each command is started by
// a small runner instead: this same executable with runnerEnv set, which
// has a fresh address space of a few MiB, starts the command, waits for it
// and writes its figures to file descriptor 3.
const runnerEnv = "KINTSUGI_BENCH_RUNNER"

// cmdRun is what the runner measured of one command.
type cmdRun struct {
	Wall    time.Duration `json:"wall"`
	CPU     time.Duration `json:"cpu"`     // user + system
	MaxRSS  int64         `json:"maxrss"`  // KiB (Linux ru_maxrss)
	Exit    int           `json:"exit"`    // the exit code; -1 if it did not exit normally
	Stderr  string        `json:"stderr"`  // the end of what it wrote to stderr, if it failed
	Failure string        `json:"failure"` // why the runner could not run it
}

// minClientEntries is the smallest journal the client scenario takes: it
// needs a few questions among the first entries for sam to answer.
const minClientEntries = 10

// stderrTail is how much of a failing command's stderr is kept.
const stderrTail = 4 << 10

// runRunner is the runner process: it runs args (the command and its
// arguments) with this process's standard output, and writes a cmdRun as
// JSON to file descriptor 3. It returns the runner's exit code.
func runRunner(args []string) int {
	out := os.NewFile(3, "result")
	if out == nil || len(args) == 0 {
		fmt.Fprintln(os.Stderr, "kintsugi-bench: runner: no command or no result descriptor")
		return 1
	}
	defer out.Close()
	var r cmdRun
	var stderr bytes.Buffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = &stderr
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, runnerEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	start := time.Now()
	err := cmd.Run()
	r.Wall = time.Since(start)
	var ee *exec.ExitError
	switch {
	case err == nil, errors.As(err, &ee):
		st := cmd.ProcessState
		r.CPU = st.UserTime() + st.SystemTime()
		if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
			r.MaxRSS = ru.Maxrss
		}
		r.Exit = st.ExitCode()
		if r.Exit != 0 {
			b := stderr.Bytes()
			r.Stderr = string(b[max(0, len(b)-stderrTail):])
		}
	default:
		r.Exit, r.Failure = -1, err.Error()
	}
	if err := json.NewEncoder(out).Encode(r); err != nil {
		return 1
	}
	return 0
}

// clientResult is the client scenario at one journal size.
type clientResult struct {
	Entries   int `json:"entries"`    // entries alex wrote
	Questions int `json:"questions"`  // of them, questions
	Answers   int `json:"answers"`    // sam's answers
	TextBytes int `json:"text_bytes"` // mean size of an entry's text
	Runs      int `json:"runs"`       // each figure is the median of this many runs
	// Commands are the figures of each command, in the order run.
	Commands []cmdResult `json:"commands"`
}

// cmdResult is the median figures of one command.
type cmdResult struct {
	Command   string  `json:"command"` // as typed after "kintsugi --home HOME"; "sync + log" is the two in a row
	WallMs    float64 `json:"wall_ms"`
	CPUMs     float64 `json:"cpu_ms"` // user + system
	PeakRSSKB int64   `json:"peak_rss_kib"`
	Target    string  `json:"target,omitempty"` // the target at this size, if it has one
}

// Command names in the report.
const (
	cmdSync      = "sync"
	cmdFirstSync = "sync + log"
)

// clientTarget returns the target for command at n entries, or "".
func clientTarget(command string, n int) string {
	quick := command == "log -n 10" || command == "show ID" || command == "status" || command == "questions"
	switch {
	case quick && n == 100000:
		return "<= 150 ms, <= 80 MiB"
	case quick && n == 10000:
		return "<= 100 ms"
	case command == cmdFirstSync && n == 10000:
		return "<= 300 ms"
	case command == cmdFirstSync && n == 100000:
		return "<= 3 s, <= 200 MiB"
	}
	return ""
}

// buildCommand builds the command cmd/<name> of this repository into dir
// and returns its path. It needs the go tool and must run inside the
// repository; scenario names the scenario that needs it, for errors.
func buildCommand(dir, name, scenario string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the %s scenario builds the %s command and needs the go tool, which is not on PATH", scenario, name)
	}
	out, err := exec.Command(goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("the %s scenario must run inside the kintsugi module (go env GOMOD found none): run it from the repository", scenario)
	}
	root := filepath.Dir(mod)
	if fi, err := os.Stat(filepath.Join(root, "cmd", name)); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("the module at %s has no cmd/%s: run the %s scenario from the kintsugi repository", root, name, scenario)
	}
	exe := filepath.Join(dir, name)
	build := exec.Command(goTool, "build", "-o", exe, "./cmd/"+name)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the %s command: %w\n%s", name, err, out)
	}
	return exe, nil
}

// clientBench runs the kintsugi command on homes of one benchmark run.
type clientBench struct {
	self string // this executable, started as the runner
	cli  string // the kintsugi command
	pass string // the homes' passphrase; never shown
}

// unlock starts an unlocked session on home (`kintsugi unlock`), so the
// commands measured take the key from the session's agent: argon2id is
// not in the figures, as a person who unlocked for a while would not pay
// it either. lock ends it.
func (b *clientBench) unlock(home string) error {
	_, err := b.run(home, nil, "unlock", "--for", "1h")
	return err
}

func (b *clientBench) lock(home string) { b.run(home, nil, "lock") }

// run runs the kintsugi command with args on home through the runner,
// with its standard output going to stdout (nil: discarded).
func (b *clientBench) run(home string, stdout io.Writer, args ...string) (cmdRun, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return cmdRun{}, err
	}
	defer pr.Close()
	cmd := exec.Command(b.self, append([]string{b.cli, "--home", home}, args...)...)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		// The home and the journal are given here; the key comes from
		// the session unlock started for the home (the passphrase is
		// there for unlock itself).
		if !strings.HasPrefix(name, "KINTSUGI_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, runnerEnv+"=1", "KINTSUGI_PASSPHRASE="+b.pass)
	cmd.Stdout = stdout
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{pw}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return cmdRun{}, err
	}
	pw.Close()
	data, readErr := io.ReadAll(pr)
	if err := cmd.Wait(); err != nil {
		return cmdRun{}, fmt.Errorf("the runner of %q failed: %w", strings.Join(args, " "), err)
	}
	if readErr != nil {
		return cmdRun{}, readErr
	}
	var r cmdRun
	if err := json.Unmarshal(data, &r); err != nil {
		return cmdRun{}, fmt.Errorf("the runner of %q said %q: %w", strings.Join(args, " "), data, err)
	}
	switch {
	case r.Failure != "":
		return r, fmt.Errorf("kintsugi %s: %s", strings.Join(args, " "), r.Failure)
	case r.Exit != 0:
		return r, fmt.Errorf("kintsugi %s exited %d: %s", strings.Join(args, " "), r.Exit, strings.TrimSpace(r.Stderr))
	}
	return r, nil
}

// runClient measures the kintsugi command on journals of each size in
// sizes, runs times each.
func runClient(o *options, sizes []int, runs int) ([]clientResult, error) {
	say := func(format string, args ...any) { fmt.Fprintf(o.progress, "kintsugi-bench: "+format+"\n", args...) }
	work, err := os.MkdirTemp(o.dir, "client-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	say("client: building the kintsugi command")
	cli, err := buildCommand(work, "kintsugi", "client")
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b := &clientBench{self: self, cli: cli, pass: crand.Text()}
	var out []clientResult
	for _, n := range sizes {
		r, err := b.size(o, work, n, runs, say)
		if err != nil {
			return nil, fmt.Errorf("%d entries: %w", n, err)
		}
		out = append(out, *r)
	}
	return out, nil
}

// size measures the commands on a journal of n entries.
func (b *clientBench) size(o *options, parent string, n, runs int, say func(string, ...any)) (*clientResult, error) {
	relay, err := startRelay(o.dir, o.relayOptions())
	if err != nil {
		return nil, err
	}
	defer relay.stop()
	work, err := os.MkdirTemp(parent, fmt.Sprint("homes-", n, "-"))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	say("client: %d entries: writing them", n)
	res, snapshot, err := b.prepare(relay, work, n)
	if err != nil {
		return nil, err
	}
	res.Runs = runs

	// figures collects the runs of each command, by name, in order.
	var names []string
	runsOf := map[string][]cmdRun{}
	add := func(name string, r cmdRun) {
		if _, ok := runsOf[name]; !ok {
			names = append(names, name)
		}
		runsOf[name] = append(runsOf[name], r)
	}

	say("client: %d entries: first sync, %d runs", n, runs)
	synced := ""
	for i := range runs {
		home := filepath.Join(work, fmt.Sprint("sam-", i))
		if err := os.CopyFS(home, os.DirFS(snapshot)); err != nil {
			return nil, err
		}
		// A home is private (os.CopyFS makes directories 0755, which an
		// unlocked session refuses).
		if err := os.Chmod(home, 0o700); err != nil {
			return nil, err
		}
		if err := b.unlock(home); err != nil {
			return nil, err
		}
		defer b.lock(home)
		s, err := b.run(home, nil, "sync")
		if err != nil {
			return nil, err
		}
		l, err := b.run(home, nil, "log")
		if err != nil {
			return nil, err
		}
		add(cmdSync, s)
		add(cmdFirstSync, cmdRun{Wall: s.Wall + l.Wall, CPU: s.CPU + l.CPU, MaxRSS: max(s.MaxRSS, l.MaxRSS)})
		if synced == "" {
			synced = home
		} else if err := os.RemoveAll(home); err != nil {
			return nil, err
		}
	}

	var js bytes.Buffer
	if _, err := b.run(synced, &js, "log", "-n", "1", "--json"); err != nil {
		return nil, err
	}
	var last []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(js.Bytes(), &last); err != nil || len(last) != 1 || last[0].ID == "" {
		return nil, errors.New("log -n 1 --json did not give an entry's id")
	}
	say("client: %d entries: the other commands, %d runs each", n, runs)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"log -n 10", []string{"log", "-n", "10"}},
		{"show ID", []string{"show", last[0].ID}},
		{"status", []string{"status"}},
		{"questions", []string{"questions"}},
		{"log", []string{"log"}},
	} {
		for range runs {
			r, err := b.run(synced, nil, c.args...)
			if err != nil {
				return nil, err
			}
			add(c.name, r)
		}
	}
	for _, name := range names {
		rs := runsOf[name]
		var wall, cpu []time.Duration
		var rss []int64
		for _, r := range rs {
			wall, cpu, rss = append(wall, r.Wall), append(cpu, r.CPU), append(rss, r.MaxRSS)
		}
		res.Commands = append(res.Commands, cmdResult{
			Command:   name,
			WallMs:    ms(median(wall)),
			CPUMs:     ms(median(cpu)),
			PeakRSSKB: median(rss),
			Target:    clientTarget(name, n),
		})
	}
	return res, nil
}

// firstBatch is how many of the entries alex writes before sam's device
// syncs for the first time and answers some of the questions among them.
const firstBatch = 50

// writeBatch is how many entries go into one WriteMany.
const writeBatch = 1000

// samAnswers is how many questions sam answers.
const samAnswers = 3

// prepare makes alex's and sam's homes under work, with a journal of n
// entries by alex on relay, and returns the path of a copy of sam's home
// from before the most of them were written.
//
// Sam's device answers a few questions, so its home is copied after it
// has synced once, seen the first entries and answered: a copy of a home
// cannot receive what the device wrote after the copy (the client sets
// aside anything "from this device" that it never wrote), so sam's
// answers must be in the copy. The first sync measured then fetches all
// but the first few entries.
func (b *clientBench) prepare(relay *relayProc, work string, n int) (*clientResult, string, error) {
	ctx := context.Background()
	pass := []byte(b.pass)
	alex, sam, err := benchAccounts(work, pass)
	if err != nil {
		return nil, "", err
	}
	aj, err := alex.CreateJournal(ctx, relay.httpURL(), "")
	if err != nil {
		return nil, "", err
	}
	defer aj.Close()
	code, _, err := aj.Invite(ctx, 0)
	if err != nil {
		return nil, "", err
	}
	sj, err := sam.Join(ctx, code)
	if err != nil {
		return nil, "", err
	}
	defer sj.Close()
	if _, err := aj.Sync(ctx); err != nil { // takes in sam's join
		return nil, "", err
	}

	res := &clientResult{Entries: n}
	gen := newTextGen(uint64(n))
	text := 0
	write := func(count int) error {
		for count > 0 {
			ps := make([]client.Payload, min(count, writeBatch))
			for i := range ps {
				ps[i] = gen.payload()
				text += len(ps[i].Text)
				if ps[i].Kind == client.KindQuestion {
					res.Questions++
				}
			}
			if _, err := aj.WriteMany(ps); err != nil {
				return err
			}
			count -= len(ps)
		}
		return nil
	}
	first := min(n, firstBatch)
	if err := write(first); err != nil {
		return nil, "", err
	}
	if _, err := aj.Sync(ctx); err != nil {
		return nil, "", err
	}
	if _, err := sj.Sync(ctx); err != nil {
		return nil, "", err
	}
	es, err := sj.Entries()
	if err != nil {
		return nil, "", err
	}
	for _, e := range es {
		if e.Kind != client.KindQuestion || res.Answers == samAnswers {
			continue
		}
		if _, _, err := sj.Answer(e.ID, gen.sentences(300)); err != nil {
			return nil, "", err
		}
		res.Answers++
	}
	if _, err := sj.Sync(ctx); err != nil { // sends the answers
		return nil, "", err
	}
	snapshot := filepath.Join(work, "sam-snapshot")
	if err := os.CopyFS(snapshot, os.DirFS(sam.Home.Dir)); err != nil {
		return nil, "", err
	}
	if err := write(n - first); err != nil {
		return nil, "", err
	}
	if _, err := aj.Sync(ctx); err != nil { // sends them, and takes in the answers
		return nil, "", err
	}
	res.TextBytes = text / max(1, n)
	return res, snapshot, nil
}

// textGen makes the entries of a benchmark journal: mostly entries with
// feelings and an intensity, one in ten a question, each about 1 KiB of
// words, from a fixed seed.
type textGen struct {
	rnd *rand.Rand
	i   int
}

func newTextGen(seed uint64) *textGen {
	return &textGen{rnd: rand.New(rand.NewPCG(seed, 0x6b696e7473756769))}
}

var (
	benchWords = strings.Fields(`the a we you I it and but so because when after before again still
		talked listened felt heard tired hopeful careful honest quiet angry calm slowly
		today yesterday morning evening week dinner walk phone message trust promise
		kitchen weekend therapist session boundary apology patience time space together
		understand remember forgive noticed wanted needed tried waited said asked meant`)
	benchFeelings = []string{"hurt", "hopeful", "anxious", "calm", "angry", "grateful", "sad", "relieved", "lonely", "close"}
)

// sentences returns about size bytes of words.
func (g *textGen) sentences(size int) string {
	var sb strings.Builder
	for sb.Len() < size {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(benchWords[g.rnd.IntN(len(benchWords))])
		if g.rnd.IntN(12) == 0 {
			sb.WriteByte('.')
		}
	}
	return sb.String()
}

// payload returns the next entry: its text is 900 to 1,100 bytes.
func (g *textGen) payload() client.Payload {
	g.i++
	text := g.sentences(900 + g.rnd.IntN(200))
	if g.i%10 == 3 {
		return client.Payload{Kind: client.KindQuestion, Text: text}
	}
	intensity := g.rnd.IntN(11)
	feelings := []string{benchFeelings[g.rnd.IntN(len(benchFeelings))]}
	if g.rnd.IntN(3) == 0 {
		feelings = append(feelings, benchFeelings[g.rnd.IntN(len(benchFeelings))])
	}
	return client.Payload{Kind: client.KindEntry, Text: text, Feelings: slices.Compact(feelings), Intensity: &intensity}
}
