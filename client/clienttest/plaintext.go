package clienttest

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// AssertNoPlaintext fails the test if any file under dir contains one of
// needles, or its first 12 bytes (a partial leak). It fails too when dir
// holds no files, since then it checked nothing.
func AssertNoPlaintext(t testing.TB, dir string, needles []string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			for _, s := range []string{n, n[:min(len(n), 12)]} {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("%s contains plaintext %q", path, s)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("%s holds no files: the scan checked nothing", dir)
	}
}
