package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsUpToDate fails when docs/cli.md or docs/man/kintsugi.1 no longer
// match the command definitions.
func TestDocsUpToDate(t *testing.T) {
	md, man, err := cliDocs()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{md, man} {
		name := filepath.Join("docs", docFiles[i])
		got, err := os.ReadFile(filepath.Join("..", "..", name))
		if err != nil {
			t.Fatalf("%v; run `go generate ./cmd/kintsugi` to write it", err)
		}
		if string(got) != want {
			t.Errorf("%s is stale: the commands changed since it was written. Run `go generate ./cmd/kintsugi` and commit the result", name)
		}
	}
	// The generated docs carry what a reader needs most.
	for _, s := range []string{"## log", "### invite", "`kintsugi journal join [CODE]`", "**--home**", "# EXIT STATUS", "| 2 | the command line is wrong"} {
		if !strings.Contains(md, s) {
			t.Errorf("docs/cli.md lacks %q", s)
		}
	}
	if !strings.Contains(man, ".TH kintsugi 1") {
		t.Errorf("the man page has no title line for section 1")
	}
}
