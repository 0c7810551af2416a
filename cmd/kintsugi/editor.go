package main

import (
	"os"
	"os/exec"
)

// runEditor runs editor (which may carry arguments, like "code -w") on path
// through the shell, attached to the terminal.
func runEditor(editor, path string) error {
	cmd := exec.Command("/bin/sh", "-c", editor+` "$1"`, "kintsugi-editor", path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = childEnv()
	return cmd.Run()
}
