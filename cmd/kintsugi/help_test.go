package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestFlagPlaceholders checks every flag of every command: urfave/cli
// shows the first `quoted` word of a flag's Usage as the placeholder for
// its value, so that word must be one (ID, FILE), and only on a flag that
// takes a value. A command named in backticks first would read
// "--draft kintsugi draft".
func TestFlagPlaceholders(t *testing.T) {
	var notFound error
	app := newApp(&env{}, &notFound)
	word := regexp.MustCompile(`^[A-Z][A-Z0-9_|-]*$`)
	checked := 0
	check := func(path string, flags []cli.Flag) {
		for _, f := range flags {
			checked++
			placeholder, _ := flagHelp(f)
			if placeholder == "" {
				continue
			}
			takes := false
			if df, ok := f.(cli.DocGenerationFlag); ok {
				takes = df.TakesValue()
			}
			if !word.MatchString(placeholder) || !takes {
				t.Errorf("%s --%s shows %q as the placeholder of its value; quote only a placeholder like `ID`, and commands after it", path, f.Names()[0], placeholder)
			}
		}
	}
	check("kintsugi", app.Flags)
	eachCommand(app.Commands, []string{"kintsugi"}, func(path []string, c *cli.Command) {
		check(strings.Join(path, " "), c.Flags)
	})
	if checked < 50 {
		t.Fatalf("only %d flags checked", checked)
	}

	// And as a person sees it.
	for cmd, want := range map[string]string{"write": "--draft ID ", "ask": "--draft ID ", "reflect": "--prompt ID "} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"kintsugi", "help", cmd}, strings.NewReader(""), &out, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("kintsugi help %s lacks %q:\n%s", cmd, want, out.String())
		}
	}
}
