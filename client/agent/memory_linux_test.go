package agent

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// TestHarden runs Harden in a child process (it changes the process for
// good) and checks that the child is no longer dumpable.
func TestHarden(t *testing.T) {
	if os.Getenv("KINTSUGI_TEST_HARDEN_CHILD") == "1" {
		Harden()
		d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		var lim unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_CORE, &lim)
		if err != nil || d != 0 || lim.Cur != 0 {
			fmt.Fprintf(os.Stderr, "dumpable %d (%v), core limit %d\n", d, err, lim.Cur)
			os.Exit(1)
		}
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHarden$")
	cmd.Env = append(os.Environ(), "KINTSUGI_TEST_HARDEN_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}
