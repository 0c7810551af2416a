package main

import (
	"os"
	"os/exec"
	"strings"
)

// runEditor runs editor (which may carry arguments, like "code -w") on path
// through the shell, attached to the terminal.
func runEditor(editor, path string) error {
	cmd := exec.Command("/bin/sh", "-c", editor+` "$1"`, "kintsugi-editor", path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The editor and its plugins have no business with the passphrase.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KINTSUGI_PASSPHRASE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd.Run()
}
