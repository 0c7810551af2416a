package server_test

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs four tests at a time, not GOMAXPROCS (two on a small
// machine), unless -parallel says otherwise or the race detector is on:
// most of these tests wait on fsync, loopback round trips, a slow
// reader's pace or a timeout, so on two cores four overlap well (about
// 18 s down to 15 here). Under -race, where every test takes several
// times the CPU, four at once starved TestSlowButSteadyReaderKeepsUp's
// reader past its relay's send timeout (1 run in 4 here).
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set && !raceDetector {
		flag.Set("test.parallel", "4")
	}
	os.Exit(m.Run())
}
