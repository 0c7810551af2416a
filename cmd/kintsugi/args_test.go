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
		{[]string{"k", "journal", "join", "CODE", "--help"}, []string{"k", "journal", "join", "--help", "CODE"}},
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
