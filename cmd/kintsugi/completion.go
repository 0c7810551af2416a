package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
)

// Shell completion. `kintsugi completion SHELL` prints a small script for
// bash, zsh or fish; each asks the hidden `kintsugi __complete -- WORDS`
// for what may come next, so all three complete the same commands,
// subcommands and options, taken from the command definitions.
//
// Entry ids are offered only where cheap and safe: when an unlocked
// session (`kintsugi unlock`) holds the key. Completion never asks for a
// passphrase; without a session it offers no ids. An id's description is
// its kind, author and date, never its words: a completion menu is easily
// seen over a shoulder. Where nothing is offered, the scripts fall back to
// file names.

// completeScripts are the scripts `kintsugi completion SHELL` prints.
var completeScripts = map[string]string{
	"bash": `# bash completion for kintsugi. Install with:
#   kintsugi completion bash > ~/.local/share/bash-completion/completions/kintsugi
_kintsugi() {
    local IFS=$'\n' line
    local -a out
    out=($(kintsugi __complete -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
    COMPREPLY=()
    for line in "${out[@]}"; do
        COMPREPLY+=("${line%%$'\t'*}")
    done
}
complete -o default -F _kintsugi kintsugi
`,
	"zsh": `#compdef kintsugi
# zsh completion for kintsugi. Install into a folder of $fpath:
#   mkdir -p ~/.zfunc && kintsugi completion zsh > ~/.zfunc/_kintsugi
# with fpath=(~/.zfunc $fpath) in ~/.zshrc before compinit, then start a
# new shell; or add to ~/.zshrc after compinit:
#   source <(kintsugi completion zsh)
_kintsugi() {
    local -a out cands
    local line
    out=("${(@f)$(kintsugi __complete -- "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    for line in $out; do
        [[ -z $line ]] && continue
        if [[ $line == *$'\t'* ]]; then
            cands+=("${${line%%$'\t'*}//:/\\:}:${line#*$'\t'}")
        else
            cands+=("${line//:/\\:}")
        fi
    done
    if (( ${#cands} )); then
        _describe -t kintsugi 'kintsugi' cands
    else
        _files
    fi
}
if [[ $funcstack[1] == _kintsugi ]]; then
    _kintsugi "$@"
else
    compdef _kintsugi kintsugi
fi
`,
	"fish": `# fish completion for kintsugi. Install with:
#   kintsugi completion fish > ~/.config/fish/completions/kintsugi.fish
function __kintsugi_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -l out (kintsugi __complete -- $words[2..-1] "$cur" 2>/dev/null)
    if test (count $out) -gt 0
        printf '%s\n' $out
    else
        __fish_complete_path "$cur"
    end
end
complete -c kintsugi -f -a '(__kintsugi_complete)'
`,
}

func cmdCompletion() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "Completes commands, subcommands and options, and entry ids while you are\n" +
			"unlocked (`kintsugi unlock`); it never asks for your passphrase. The script's\n" +
			"first lines say where to put it; README.md has the details.",
		Action: func(c *cli.Context) error {
			script, ok := completeScripts[c.Args().First()]
			if c.NArg() != 1 || !ok {
				return usageError("completion takes one shell: bash, zsh or fish", "for example `kintsugi completion bash`")
			}
			fmt.Fprint(c.App.Writer, script)
			return nil
		},
	}
}

// cmdComplete is the hidden `kintsugi __complete -- WORDS`: the scripts
// pass the words after "kintsugi", the last one being the word under the
// cursor (maybe empty), and it prints one candidate a line, with a tab and
// a description after it where there is one.
func cmdComplete(e *env, app *cli.App) *cli.Command {
	return &cli.Command{
		Name:   "__complete",
		Hidden: true,
		Action: func(c *cli.Context) error {
			for _, cand := range e.complete(app, c.Args().Slice()) {
				if cand.desc != "" {
					e.printf("%s\t%s\n", cand.value, oneLine(cand.desc))
				} else {
					e.printf("%s\n", cand.value)
				}
			}
			return nil
		},
	}
}

type candidate struct{ value, desc string }

// complete returns what may replace the last of words.
func (e *env) complete(app *cli.App, words []string) []candidate {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, done := words[len(words)-1], words[:len(words)-1]
	flags, cmds := app.Flags, app.Commands
	var leaf *cli.Command
	var path []string
	home, journal := "", ""
	args, dashdash := 0, false
	var argWords []string
	for i := 0; i < len(done); i++ {
		w := done[i]
		switch {
		case dashdash || w == "-" || !strings.HasPrefix(w, "-"):
			if c := findCommand(cmds, w); c != nil && args == 0 && !c.Hidden {
				leaf, path = c, append(path, c.Name)
				flags, cmds = c.Flags, c.Subcommands
				continue
			}
			args++
			argWords = append(argWords, w)
		case w == "--":
			dashdash = true
		default:
			f := lookup(flags, w)
			if f == nil {
				f = lookup(app.Flags, w)
			}
			if f == nil {
				continue
			}
			value, hasValue := "", strings.Contains(w, "=")
			if hasValue {
				_, value, _ = strings.Cut(w, "=")
			} else if takesValue([]cli.Flag{f}, w) {
				if i+1 == len(done) {
					return nil // cur is this flag's value
				}
				i++
				value = done[i]
			}
			switch f.Names()[0] {
			case "home":
				home = value
			case "journal":
				journal = value
			}
		}
	}
	var out []candidate
	add := func(value, desc string) {
		if strings.HasPrefix(value, cur) {
			out = append(out, candidate{value, desc})
		}
	}
	if strings.HasPrefix(cur, "-") && !dashdash {
		seen := map[string]bool{}
		for _, fs := range [][]cli.Flag{flags, app.Flags, {cli.HelpFlag}} {
			for _, f := range fs {
				if seen[f.Names()[0]] || (len(path) > 0 && f.Names()[0] == "version") {
					continue
				}
				seen[f.Names()[0]] = true
				_, usage := flagHelp(f)
				for _, n := range f.Names() {
					add(dashed(n), usage)
				}
			}
		}
		return out
	}
	switch {
	case len(path) == 1 && path[0] == "help":
		// help takes a command path: complete it as if it were typed.
		cmds = app.Commands
		for _, w := range argWords {
			c := findCommand(cmds, w)
			if c == nil {
				return nil
			}
			cmds = c.Subcommands
		}
		for _, c := range cmds {
			if !c.Hidden {
				add(c.Name, c.Usage)
			}
		}
		return out
	case len(path) == 1 && path[0] == "completion" && args == 0:
		for _, sh := range []string{"bash", "zsh", "fish"} {
			add(sh, "")
		}
		return out
	}
	if args > 0 {
		return nil
	}
	if len(cmds) > 0 {
		for _, c := range cmds {
			if !c.Hidden {
				add(c.Name, c.Usage)
			}
		}
		return out
	}
	if leaf != nil && (leaf.ArgsUsage == "ID" || strings.HasPrefix(leaf.ArgsUsage, "ID ")) {
		return e.completeIDs(home, journal, strings.Join(path, " "), cur)
	}
	return nil
}

// idKinds narrows the ids offered for a command to the kinds it takes;
// commands not listed take any entry. It only orders a menu: the command
// itself says what fits.
var idKinds = map[string][]string{
	"answer":          {client.KindQuestion},
	"followup":        {client.KindQuestion},
	"checkin":         {client.KindCommit},
	"agree accept":    {client.KindAgree},
	"agree decline":   {client.KindAgree},
	"together answer": {client.KindTogether},
}

// completeIDs returns the ids of the newest entries of the journal in home
// that start with cur, if an unlocked session holds the key; nothing
// otherwise.
func (e *env) completeIDs(home, journal, path, cur string) []candidate {
	if home != "" {
		e.home = client.Home{Dir: home}
	}
	if journal != "" {
		e.journal = journal
	}
	if !e.home.Exists() {
		return nil
	}
	ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
	defer cancel()
	e.ctx = ctx
	a := e.unlockFromAgent()
	if a == nil {
		return nil // never ask for the passphrase here
	}
	j, err := a.Current(e.journal)
	if err != nil {
		return nil
	}
	defer j.Close()
	r, err := j.Reader()
	if err != nil {
		return nil
	}
	q := client.Query{Last: 100, NoText: true}
	if kinds := idKinds[path]; kinds != nil {
		q.Kinds = map[string]bool{}
		for _, k := range kinds {
			q.Kinds[k] = true
		}
	}
	list, err := r.Query(q)
	if err != nil {
		return nil
	}
	var out []candidate
	for _, en := range slices.Backward(list) {
		if !strings.HasPrefix(en.Short, cur) {
			continue
		}
		who := clean(en.Author)
		if en.Mine {
			who = "you"
		}
		out = append(out, candidate{en.Short, fmt.Sprintf("%s · %s · %s", kindWord(en.Kind), who, en.Created.Local().Format("2 Jan 2006"))})
	}
	return out
}

// oneLine keeps a description on its line.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\t", " ").Replace(s)
}
