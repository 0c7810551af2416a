package server

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// Badger's warnings reach the relay's log, marked component=badger: the
// store keeps the logger it was given (badger's WithLoggingLevel would
// put its own back in place).
func TestBadgerWarningsReachTheLog(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	s, err := OpenBadgerWith(t.TempDir(), BadgerConfig{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.db.Opts().Logger.Warningf("a warning from badger\n")
	s.db.Opts().Logger.Infof("chatter")
	if got := buf.String(); !strings.Contains(got, `level=WARN msg="a warning from badger" component=badger`) || strings.Contains(got, "chatter") {
		t.Fatalf("log: %q", got)
	}
}
