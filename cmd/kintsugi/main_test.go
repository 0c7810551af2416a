package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"kintsugi": func() {
			os.Exit(exitCode(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr), os.Stderr))
		},
	})
}

// TestScripts runs the CLI as a person would, from the scripts in
// testdata/script. Each script gets its own real relay on 127.0.0.1
// ($RELAY, data in $RELAY_DATA) and fast key derivation.
//
// Extra script commands:
//
//	relay stop|start          stop the script's relay, or start it again on the same port
//	extract REGEXP VAR        set VAR to the first group of REGEXP in the last stdout
//	nohave DIR TEXT           fail if any file under DIR contains TEXT
func TestScripts(t *testing.T) {
	var mu sync.Mutex
	relays := map[string]*servertest.Server{}
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			r := servertest.NewServer(t)
			mu.Lock()
			relays[e.WorkDir] = r
			mu.Unlock()
			e.Setenv("RELAY", r.URL())
			e.Setenv("RELAY_DATA", r.DataDir())
			e.Setenv("KINTSUGI_TEST_KDF", "fast")
			e.Setenv("XDG_DATA_HOME", filepath.Join(e.WorkDir, "xdg"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"relay": func(ts *testscript.TestScript, neg bool, args []string) {
				mu.Lock()
				r := relays[ts.Getenv("WORK")]
				mu.Unlock()
				if len(args) != 1 {
					ts.Fatalf("usage: relay stop|start")
				}
				switch args[0] {
				case "stop":
					r.Stop()
				case "start":
					r.Start()
				default:
					ts.Fatalf("usage: relay stop|start")
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
