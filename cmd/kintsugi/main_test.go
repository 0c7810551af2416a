package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/net/html"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// programs are the programs this test binary also is: run under one of
// these names (its os.Args[0]), it is that program and exits with its
// status. TestMain links each name to the test binary in a directory at the
// front of $PATH, so that a script's `exec kintsugi` runs the real program,
// in a process of its own.
//
// This is what testscript.Main does, less one thing: Main would also make
// each name a script command that only says "use exec", and the bare
// `kintsugi` command of the scripts is kintsugi run in the test process
// (runKintsugi).
var programs = map[string]func() int{
	"kintsugi": runMain,
	// The editor step of `kintsugi write` alone, for a test that
	// kills it (TestDraftLeftByAKilledWriteIsWiped).
	"kintsugi-edit": func() int {
		os.Setenv("KINTSUGI_TEST_PID", strconv.Itoa(os.Getpid()))
		_, err := editText("entry", "")
		return exitCode(err, os.Stderr)
	},
	// kintsugi as a program, as if standard input were a terminal,
	// so the editor opens (TestEditorInterruptKeepsDraft).
	"kintsugi-tty": func() int {
		stdinIsTerminal = func(io.Reader) bool { return true }
		return runMain()
	},
}

func TestMain(m *testing.M) {
	name := filepath.Base(os.Args[0])
	if program := programs[name]; program != nil {
		os.Args[0] = name
		os.Exit(program())
	}
	os.Exit(testWithPrograms(m))
}

// testWithPrograms runs the tests with the programs on $PATH.
func testWithPrograms(m *testing.M) int {
	self, err := os.Executable()
	if err != nil {
		log.Fatalf("find the test binary: %v", err)
	}
	bin, err := os.MkdirTemp("", "kintsugi-test-programs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(bin)
	for name := range programs {
		if err := os.Symlink(self, filepath.Join(bin, name)); err != nil {
			log.Fatal(err)
		}
	}
	os.Setenv("PATH", bin+string(filepath.ListSeparator)+os.Getenv("PATH"))
	return m.Run()
}

// TestScripts runs the CLI as a person would, from the scripts in
// testdata/script. Each script gets its own real relay on 127.0.0.1
// ($RELAY, data in $RELAY_DATA) and fast key derivation. The relay is real
// but can be told to lie (relay withhold ID) or be honest again.
//
// `kintsugi ARGS` runs kintsugi as a person would type it, inside the test
// process (inprocess_test.go says how and why); `exec kintsugi ARGS` runs
// it as a program of its own, for what only a program shows: a command in
// the background, a signal, what `stdin` gives it, the real binary's exit
// status.
//
// Extra script commands:
//
//	kintsugi ARGS...          run kintsugi in the test process, as exec would run the program
//	relay stop|start          stop the script's relay, or start it again on the same port
//	relay withhold ID         the relay stops serving the entry whose id starts with ID
//	relay release ID          the relay serves that entry again, after everything else
//	relay strip ID HOME       the relay serves the entry whose id starts with ID without
//	                          the recipient slot of HOME's device (unlocked with
//	                          $KINTSUGI_PASSPHRASE), as a relay that strips it would
//	relay honest              the relay serves everything as stored, and keeps the two-person rule
//	relay old                 the relay admits every invite, as relays before the two-person rule did
//	exits N [exec] PROG ARGS... run PROG (kintsugi in the test process; with exec, or
//	                          any other PROG, as a program), and fail unless its
//	                          exit status is N
//	extract REGEXP VAR        set VAR to the first group of REGEXP in the last stdout
//	nohave DIR TEXT           fail if any file under DIR contains TEXT
//	watching HOME             wait (up to 30s) until a `sync --watch` on HOME's one
//	                          journal is connected (it holds its watching lock)
//	agents N|kill             wait (up to 30s) until exactly N of the script's
//	                          agents are alive, or kill them all
//	htmlcheck FILE N          FILE parses as HTML, loads nothing from outside
//	                          (no script, no link, no external src or href),
//	                          draws an SVG chart, and has N entries
func TestScripts(t *testing.T) {
	// In-process commands take over the process's environment while the
	// scripts run (runKintsugi): read it first, and give it back after.
	inCI := os.Getenv("CI") == "true"
	t.Cleanup(restoreEnviron())
	var mu sync.Mutex
	relays := map[string]*servertest.Server{}
	liars := map[string]*servertest.Liar{}
	testscript.Run(t, testscript.Params{
		// Absolute: a kintsugi run in this process changes its working
		// directory while it runs (runKintsugi).
		Dir:                 testdataScripts(t),
		RequireExplicitExec: true,
		// [shell:NAME]: the shell is installed. Locally a missing one skips
		// what needs it; in CI (CI=true) it is an error, since .ci/run
		// installs bash, zsh and fish.
		Condition: func(cond string) (bool, error) {
			name, ok := strings.CutPrefix(cond, "shell:")
			if !ok {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			if _, err := exec.LookPath(name); err != nil {
				if inCI {
					return false, fmt.Errorf("%s is not installed, and CI needs it (apt-get install -y %s)", name, name)
				}
				return false, nil
			}
			return true, nil
		},
		Setup: func(e *testscript.Env) error {
			r, liar := servertest.NewLyingServer(t)
			mu.Lock()
			relays[e.WorkDir], liars[e.WorkDir] = r, liar
			mu.Unlock()
			e.Setenv("RELAY", r.URL())
			e.Setenv("RELAY_DATA", r.DataDir())
			e.Setenv("KINTSUGI_TEST_KDF", "fast")
			e.Setenv("XDG_DATA_HOME", filepath.Join(e.WorkDir, "xdg"))
			e.Setenv("KINTSUGI_TEST_AGENT_PIDS", filepath.Join(e.WorkDir, ".agents"))
			// No unlocked session outlives its script.
			e.Defer(func() { killAgents(e.WorkDir) })
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"kintsugi": func(ts *testscript.TestScript, neg bool, args []string) {
				status := runKintsugi(ts, args)
				if status != 0 {
					ts.Logf("[exit status %d]", status)
				}
				if neg && status == 0 {
					ts.Fatalf("unexpected command success")
				}
				if !neg && status != 0 {
					ts.Fatalf("unexpected command failure")
				}
			},
			"relay": func(ts *testscript.TestScript, neg bool, args []string) {
				mu.Lock()
				r, liar := relays[ts.Getenv("WORK")], liars[ts.Getenv("WORK")]
				mu.Unlock()
				const usage = "usage: relay stop|start|honest|old|withhold ID|release ID|strip ID HOME|replay-shared HOME"
				if len(args) == 0 {
					ts.Fatalf(usage)
				}
				switch args[0] {
				case "stop":
					r.Stop()
				case "start":
					r.Start()
				case "honest":
					liar.Honest()
					liar.AdmitAnyone(false)
				case "old":
					liar.AdmitAnyone(true)
				case "withhold", "release":
					// withhold: serve everything but the entry whose id
					// starts with args[1], as a relay that drops it would.
					// release: serve it after everything else, as a relay
					// that held it back would.
					if len(args) != 2 {
						ts.Fatalf(usage)
					}
					m := func(b server.StoredBlob) bool {
						return !b.Purged && strings.HasPrefix(protocol.ChainID(b.Blob).String(), args[1])
					}
					if args[0] == "withhold" {
						liar.Serve(servertest.Drop(m))
					} else {
						liar.Serve(servertest.Later(m))
					}
				case "replay-shared":
					// Serve every item of the record HOME's devices share
					// twice, as a relay replaying it would.
					if len(args) != 2 {
						ts.Fatalf(usage)
					}
					a, err := client.Unlock(client.Home{Dir: ts.MkAbs(args[1])}, []byte(ts.Getenv("KINTSUGI_PASSPHRASE")))
					ts.Check(err)
					own, err := a.AccountJournalID()
					ts.Check(err)
					liar.Serve(servertest.In(own, servertest.Twice(func(server.StoredBlob) bool { return true })))
				case "strip":
					if len(args) != 3 {
						ts.Fatalf(usage)
					}
					a, err := client.Unlock(client.Home{Dir: ts.MkAbs(args[2])}, []byte(ts.Getenv("KINTSUGI_PASSPHRASE")))
					ts.Check(err)
					liar.Serve(servertest.Strip(crypto.KeyID(a.Device.BoxPublic), servertest.ChainPrefix(args[1])))
				default:
					ts.Fatalf(usage)
				}
			},
			"agents": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: agents N|kill")
				}
				work := ts.Getenv("WORK")
				if args[0] == "kill" {
					killAgents(work)
					return
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				deadline := time.Now().Add(30 * time.Second)
				for {
					live := liveAgents(work)
					if len(live) == want {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("%d agents alive (pids %v), want %d", len(live), live, want)
					}
					time.Sleep(50 * time.Millisecond)
				}
			},
			"damage": func(ts *testscript.TestScript, neg bool, args []string) {
				// damage log-end|log|log-junk|state|states|unsent-end
				// HOME: cut the last byte of the home's one journal log,
				// delete that log, append the start of a record a writer
				// began and never finished, overwrite the journal's state
				// with garbage, or its state and the earlier copy too, or
				// cut the last byte of its list of entries not yet sent.
				const usage = "usage: damage log-end|log|log-junk|state|states|unsent-end HOME"
				if len(args) != 2 {
					ts.Fatalf(usage)
				}
				dirs, err := filepath.Glob(filepath.Join(ts.MkAbs(args[1]), "journals", "*"))
				ts.Check(err)
				if len(dirs) != 1 {
					ts.Fatalf("%d journals in %s, want 1", len(dirs), args[1])
				}
				log, state := filepath.Join(dirs[0], "log"), filepath.Join(dirs[0], "state")
				switch args[0] {
				case "log-end":
					fi, err := os.Stat(log)
					ts.Check(err)
					ts.Check(os.Truncate(log, fi.Size()-1))
				case "log":
					ts.Check(os.Remove(log))
				case "log-junk":
					f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
					ts.Check(err)
					_, err = f.Write([]byte{'W', 0, 0, 2, 0, 1, 2, 3})
					ts.Check(errors.Join(err, f.Close()))
				case "unsent-end":
					unsent := filepath.Join(dirs[0], "unsent")
					fi, err := os.Stat(unsent)
					ts.Check(err)
					ts.Check(os.Truncate(unsent, fi.Size()-1))
				case "state":
					ts.Check(os.WriteFile(state, []byte("not a state"), 0o600))
				case "states":
					ts.Check(os.WriteFile(state, []byte("not a state"), 0o600))
					ts.Check(os.WriteFile(state+".prev", []byte("not a state either"), 0o600))
				default:
					ts.Fatalf(usage)
				}
			},
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				const usage = "usage: exits N [exec] PROG ARGS..."
				if len(args) < 2 || neg {
					ts.Fatalf(usage)
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				prog, args := args[1], args[2:]
				got := 0
				if prog == "kintsugi" {
					got = runKintsugi(ts, args)
				} else {
					if prog == "exec" {
						if len(args) == 0 {
							ts.Fatalf(usage)
						}
						prog, args = args[0], args[1:]
					}
					if err := ts.Exec(prog, args...); err != nil {
						var ee *exec.ExitError
						if !errors.As(err, &ee) {
							ts.Fatalf("%s: %v", prog, err)
						}
						got = ee.ExitCode()
					}
				}
				if got != want {
					ts.Fatalf("%s exited with %d, want %d", prog, got, want)
				}
			},
			"watching": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: watching HOME")
				}
				path := filepath.Join(ts.MkAbs(args[0]), "journals", "*", "watching")
				deadline := time.Now().Add(30 * time.Second)
				for {
					files, err := filepath.Glob(path)
					ts.Check(err)
					if len(files) == 1 {
						f, err := os.Open(files[0])
						ts.Check(err)
						err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
						f.Close() // drops the lock if it was taken
						if errors.Is(err, syscall.EWOULDBLOCK) {
							return
						}
					}
					if time.Now().After(deadline) {
						ts.Fatalf("no watcher connected on %s", args[0])
					}
					time.Sleep(20 * time.Millisecond)
				}
			},
			"extract": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: extract REGEXP VAR")
				}
				m := regexp.MustCompile(args[0]).FindStringSubmatch(ts.ReadFile("stdout"))
				if len(m) < 2 {
					ts.Fatalf("no match for %q in stdout", args[0])
				}
				ts.Setenv(args[1], m[1])
			},
			"htmlcheck": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: htmlcheck FILE N")
				}
				doc, err := html.Parse(strings.NewReader(ts.ReadFile(args[0])))
				ts.Check(err)
				articles, polylines := 0, 0
				for n := range doc.Descendants() {
					if n.Type != html.ElementNode {
						continue
					}
					switch n.Data {
					case "script", "link", "iframe", "img", "object", "embed":
						ts.Fatalf("export contains <%s>", n.Data)
					case "article":
						articles++
					case "polyline":
						polylines++
					}
					for _, a := range n.Attr {
						v := strings.ToLower(strings.TrimSpace(a.Val))
						if (a.Key == "src" || a.Key == "href") && (strings.Contains(v, "//") || strings.HasPrefix(v, "data:")) {
							ts.Fatalf("export loads %s=%q", a.Key, a.Val)
						}
						if strings.HasPrefix(a.Key, "on") {
							ts.Fatalf("export has an event handler %s", a.Key)
						}
					}
				}
				if polylines == 0 {
					ts.Fatalf("export draws no feelings chart")
				}
				if fmt.Sprint(articles) != args[1] {
					ts.Fatalf("export has %d entries, want %s", articles, args[1])
				}
			},
			"nohave": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: nohave DIR TEXT")
				}
				n := 0
				err := filepath.Walk(ts.MkAbs(args[0]), func(path string, fi os.FileInfo, err error) error {
					if err != nil || fi.IsDir() {
						return err
					}
					b, err := os.ReadFile(path)
					if err != nil {
						return err
					}
					n++
					if strings.Contains(string(b), args[1]) {
						ts.Fatalf("%s contains %q", path, args[1])
					}
					return nil
				})
				ts.Check(err)
				if n == 0 {
					ts.Fatalf("%s holds no files", args[0])
				}
			},
		},
	})
}

// testdataScripts returns the absolute path of testdata/script.
func testdataScripts(t *testing.T) string {
	dir, err := filepath.Abs(filepath.Join("testdata", "script"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// liveAgents returns the pids of the agents started under the script
// directory work that are still alive. Agents record their pids there
// (KINTSUGI_TEST_AGENT_PIDS); a pid counts only while its command line is
// still that of an agent with a home under work, so a reused pid is never
// mistaken for one.
func liveAgents(work string) []int {
	names, _ := os.ReadDir(filepath.Join(work, ".agents"))
	var live []int
	for _, n := range names {
		pid, err := strconv.Atoi(n.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue // gone (or a zombie's empty cmdline below)
		}
		args := strings.Split(string(cmdline), "\x00")
		if slices.Contains(args, agentCommand) && slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, work+string(filepath.Separator)) }) {
			live = append(live, pid)
		}
	}
	return live
}

// killAgents kills the script's live agents and waits (bounded) until
// they are gone.
func killAgents(work string) {
	pids := liveAgents(work)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(10 * time.Second); slices.ContainsFunc(pids, exiting) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

// exiting reports whether the process pid, killed, has yet to finish
// exiting. Its command line reads empty once its memory is freed, and
// liveAgents no longer counts it; but it holds its files, and so the
// agent's lock, until each of its threads is a zombie (state Z) or gone.
func exiting(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue // that thread is gone
		}
		i := strings.LastIndexByte(string(b), ')') // the state follows the command name
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'Z' && b[i+2] != 'X') {
			return true
		}
	}
	return false
}
