package main

import (
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
)

// The scripts' bare `kintsugi ARGS` runs kintsugi inside the test process:
// runProgram (main.go) with the script's arguments, environment, working
// directory and an empty standard input, as `exec kintsugi ARGS` would run
// the program. Starting a Go program this size costs some 30-40 ms of CPU,
// and the scripts run some 850 commands; inside the process each costs
// only its own work.
//
// A program's environment, working directory and os.Args belong to the
// whole test process, so one kintsugi runs at a time (inProcess), and
// nothing else in the test binary may depend on them while scripts run:
// testscript and the harness use absolute paths (TestScripts gives an
// absolute Dir), the harness reads $CI before any script starts, and the
// variables testscript reads from the process (testscriptReads) no script
// changes. kintsugi itself keeps no state from one command to the next:
// its flags and streams live in the env of one run.
//
// What only a process shows stays `exec kintsugi`: a command in the
// background (`&`), one killed or sent a signal, one reading what `stdin`
// gives, and some exit statuses of the real binary (conventions.txtar).
// An unlocked session's agent is always a process: `kintsugi unlock`
// starts it from os.Executable, the test binary, which is kintsugi again
// under the name in os.Args[0] (TestMain).
var inProcess sync.Mutex

// testscriptReads are the variables testscript reads from the process to
// set up a script, perhaps while another script's kintsugi runs here with
// that script's environment: no script may change them.
var testscriptReads = []string{"PATH", "GORACE", "GOCOVERDIR"}

// background is how a script's `exec` line asks for the background.
var background = regexp.MustCompile(`^&([a-zA-Z_0-9]+&)?$`)

// runKintsugi runs kintsugi with args in the test process for the script
// ts, with its standard output and error going where the script's
// `stdout` and `stderr` commands read them, and returns the exit status
// the program would have.
func runKintsugi(ts *testscript.TestScript, args []string) int {
	if len(args) > 0 && background.MatchString(args[len(args)-1]) {
		ts.Fatalf("a kintsugi in the background is a program of its own: write exec kintsugi ... %s", args[len(args)-1])
	}
	if pending(ts, "stdin") || pending(ts, "ttyin") {
		ts.Fatalf("only a kintsugi program reads what stdin or ttyin gives: write exec kintsugi for this command")
	}
	for _, name := range testscriptReads {
		if ts.Getenv(name) != os.Getenv(name) {
			ts.Fatalf("a script that changes $%s runs kintsugi as a program: write exec kintsugi", name)
		}
	}
	env := scriptEnv(ts)
	dir := ts.MkAbs(".")
	// Standard input is a pipe with nothing in it, as exec gives a program.
	stdin, w, err := os.Pipe()
	ts.Check(err)
	w.Close()
	defer stdin.Close()
	// syncBuffer (errs_test.go): goroutines of one command may write at
	// once, as they may to a program's standard output.
	var stdout, stderr syncBuffer
	defer func() {
		io.WriteString(ts.Stdout(), stdout.String())
		io.WriteString(ts.Stderr(), stderr.String())
	}()

	inProcess.Lock()
	defer inProcess.Unlock()
	wasArgs := os.Args
	wasDir, err := os.Getwd()
	ts.Check(err)
	// The environment stays the last command's until the next one, or
	// until TestScripts restores the process's own (restoreEnviron): each
	// unset variable leaves a hole that Go's os package never reuses, and
	// unsetting and setting some 30 of them around each of 850 commands
	// made os.Environ, which kintsugi calls, a tenth of the scripts' CPU.
	setEnviron(append(env, "PWD="+dir))
	ts.Check(os.Chdir(dir))
	os.Args = append([]string{"kintsugi"}, args...)
	defer func() {
		os.Args = wasArgs
		if err := os.Chdir(wasDir); err != nil {
			panic(err) // every later script would run in the wrong place
		}
	}()
	return runProgram(os.Args, stdin, &stdout, &stderr)
}

// restoreEnviron returns a function that gives the process back the
// environment it has now, once in-process commands have changed it.
func restoreEnviron() func() {
	env := os.Environ()
	return func() {
		inProcess.Lock()
		defer inProcess.Unlock()
		setEnviron(env)
	}
}

// setEnviron makes env (NAME=VALUE lines) the whole of the process's
// environment. A variable that keeps its value is never touched, so that
// another goroutine reading it (testscript reads $PATH) never finds it
// unset for a moment.
func setEnviron(env []string) {
	want := map[string]string{}
	for _, kv := range env {
		if name, value, ok := strings.Cut(kv, "="); ok && name != "" {
			want[name] = value
		}
	}
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name != "" {
			if _, ok := want[name]; !ok {
				os.Unsetenv(name)
			}
		}
	}
	for name, value := range want {
		if old, ok := os.LookupEnv(name); !ok || old != value {
			os.Setenv(name, value)
		}
	}
}

// scriptEnv returns the environment `exec` would give a program in ts.
// testscript keeps it to itself (it offers Getenv by name only), so it is
// read from the script's state; if a new testscript keeps it elsewhere,
// every in-process command fails saying so, rather than running kintsugi
// in the wrong environment.
func scriptEnv(ts *testscript.TestScript) []string {
	v := reflect.ValueOf(ts).Elem().FieldByName("env")
	if !v.IsValid() || v.Kind() != reflect.Slice || v.Type().Elem().Kind() != reflect.String {
		ts.Fatalf("this testscript keeps a script's environment where runKintsugi cannot find it (TestScript.env []string)")
	}
	env := make([]string, v.Len())
	for i := range env {
		env[i] = v.Index(i).String()
	}
	return env
}

// pending reports whether the script's `stdin` or `ttyin` command (the
// field it sets) has given input to the next program. Only a real program
// (exec) takes that input and clears it.
func pending(ts *testscript.TestScript, field string) bool {
	v := reflect.ValueOf(ts).Elem().FieldByName(field)
	if !v.IsValid() || v.Kind() != reflect.String {
		ts.Fatalf("this testscript keeps what %s gives where runKintsugi cannot find it (TestScript.%s string)", field, field)
	}
	return v.String() != ""
}
