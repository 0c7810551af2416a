package main

import (
	"context"
	"io"
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestReorderArgs(t *testing.T) {
	// Build the real app to reorder against its real flags.
	var app = appForTest()
	cases := []struct{ in, want []string }{
		{[]string{"k", "ack", "abcd", "--note", "I am here"}, []string{"k", "ack", "--note", "I am here", "abcd"}},
		{[]string{"k", "--home", "/h", "answer", "abcd", "--need-time"}, []string{"k", "--home", "/h", "answer", "--need-time", "abcd"}},
		{[]string{"k", "write", "hello", "--feeling", "grief", "-i", "3", "world"}, []string{"k", "write", "--feeling", "grief", "-i", "3", "hello", "world"}},
		// Help after positionals asks for the command's help: they go.
		{[]string{"k", "journal", "join", "CODE", "--help"}, []string{"k", "journal", "join", "--help"}},
		{[]string{"k", "show", "abcd", "-h"}, []string{"k", "show", "-h"}},
		// A mistyped option after the text goes with the flags, to be
		// refused; words that do not look like an option stay text.
		{[]string{"k", "write", "hear me", "--listen-onyl"}, []string{"k", "write", "--listen-onyl", "hear me"}},
		{[]string{"k", "write", "hear me", "-listen"}, []string{"k", "write", "-listen", "hear me"}},
		{[]string{"k", "write", "hear me", "-5", "- sorry"}, []string{"k", "write", "hear me", "-5", "- sorry"}},
		// A flag that needs a value ends the line without one: it must
		// not take the text as its value.
		{[]string{"k", "write", "hear me", "--feeling"}, []string{"k", "write", "--feeling"}},
		{[]string{"k", "write", "--", "--not-a-flag"}, []string{"k", "write", "--", "--not-a-flag"}},
		{[]string{"k", "write", "-5 degrees and falling"}, []string{"k", "write", "-5 degrees and falling"}},
		{[]string{"k", "log", "--since=yesterday", "--json"}, []string{"k", "log", "--since=yesterday", "--json"}},
		// Global flags after the command mean what they mean before it;
		// given in both places, the later one wins.
		{[]string{"k", "log", "--home", "/h", "-n", "3"}, []string{"k", "--home", "/h", "log", "-n", "3"}},
		{[]string{"k", "--home", "/a", "ack", "abcd", "--home=/b", "--note", "x"}, []string{"k", "--home", "/a", "--home=/b", "ack", "--note", "x", "abcd"}},
		{[]string{"k", "journal", "--journal", "ab12", "invite", "--passphrase-file", "p"}, []string{"k", "--journal", "ab12", "--passphrase-file", "p", "journal", "invite"}},
		{[]string{"k", "write", "hi", "--", "--home", "/h"}, []string{"k", "write", "hi", "--", "--home", "/h"}},
		{[]string{"k", "log", "--version"}, []string{"k", "log", "--version"}},
	}
	for _, c := range cases {
		if got := reorderArgs(app, c.in); !slices.Equal(got, c.want) {
			t.Errorf("reorderArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func appForTest() *cli.App {
	return newApp(&env{ctx: context.Background(), stdout: io.Discard, stderr: io.Discard}, new(error))
}

func TestLooksLikeOption(t *testing.T) {
	for a, want := range map[string]bool{
		"--listen-onyl": true, "-listen": true, "-n": true, "--since=yesterday": true, "--x2": true,
		"-": false, "--": false, "-5": false, "-5 degrees": false, "- I'm sorry": false, "--two words": false,
		"---x": false, "--=x": false, "words": false, "-x_y": false,
	} {
		if got := looksLikeOption(a); got != want {
			t.Errorf("looksLikeOption(%q) = %v, want %v", a, got, want)
		}
	}
}
