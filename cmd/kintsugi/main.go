// Command kintsugi is a partner's client for Kintsugi, an end-to-end
// encrypted shared journal for two people rebuilding trust. It holds the
// keys; the relay it talks to only ever sees ciphertext.
//
// Run `kintsugi demo` to see the whole flow with two partners and a relay
// on this machine, or `kintsugi --help` for every command.
package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(runMain())
}

// runMain runs kintsugi as a program and returns its exit status.
func runMain() int {
	return runProgram(os.Args, os.Stdin, os.Stdout, os.Stderr)
}

// runProgram is runMain with the command line and the streams given. Ctrl-C
// (and SIGTERM, SIGHUP) cancels the command's context, so that it can say
// what it stopped and exit with exitInterrupted. The test scripts run
// kintsugi through it, most commands inside the test process
// (main_test.go).
func runProgram(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := run(ctx, args, stdin, stdout, stderr)
	stop()
	return exitCode(err, stderr)
}

// exitCode prints err for a person and returns the process exit status
// (exitStatus in errors.go says which).
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ue *userError
	if !errors.As(err, &ue) || !ue.silent {
		printError(stderr, "", err)
	}
	return exitStatus(err)
}
