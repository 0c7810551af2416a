package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/client"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// env is what every command shares: the streams and global flags.
type env struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	home           client.Home
	passFile       string
	passFrom       string // where the last passphrase came from: passFromFile, passFromEnv, or "" (typed)
	journal        string
	opened         []*client.Journal       // journals this command opened (see noteRepairs)
	repairsSaid    map[*client.Journal]int // repairs a watch said as they happened (see noteRepairs)
	journals       int                     // how many journals this home has, set by open
	drafts                                 // what was written in the editor, kept if the command fails (draft.go)
}

// defaultHome is $XDG_DATA_HOME/kintsugi, or ~/.local/share/kintsugi.
func defaultHome() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "kintsugi")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "kintsugi")
	}
	return ".kintsugi"
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	// A draft left in the clear by a kintsugi that was killed while its
	// editor ran is wiped first, whatever this command is.
	sweepStaleDrafts(stderr)
	var notFound error // an unknown subcommand (see finishApp)
	app := newApp(e, &notFound)
	err := app.RunContext(ctx, reorderArgs(app, args))
	e.noteRepairs()
	err = e.settleDraft(err)
	err = inHome(e.home, err)
	err = e.fromWhere(err)
	if notFound != nil {
		return notFound
	}
	return err
}

// newApp builds the command tree; finishApp (commands.go) adds what every
// command shares. An unknown subcommand's error goes to *notFound.
func newApp(e *env, notFound *error) *cli.App {
	app := &cli.App{
		Name:  "kintsugi",
		Usage: "an end-to-end encrypted shared journal for two partners",
		Description: "Kintsugi gives two partners a private place to write while they rebuild trust.\n" +
			"Everything is encrypted on this device; the relay only ever sees ciphertext.\n" +
			"Writing works offline; `kintsugi sync` sends and receives when you are ready.",
		Reader:          e.stdin,
		Writer:          e.stdout,
		ErrWriter:       e.stderr,
		HideHelpCommand: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "home", Usage: "where your keys and journal live", EnvVars: []string{"KINTSUGI_HOME"}, Value: defaultHome(), DefaultText: "$XDG_DATA_HOME/kintsugi, or ~/.local/share/kintsugi"},
			&cli.StringFlag{Name: "passphrase-file", Usage: "read the passphrase from this file instead of asking"},
			&cli.StringFlag{Name: "journal", Usage: "which journal to use (its id, the start of it, or its title), when you have more than one", EnvVars: []string{"KINTSUGI_JOURNAL"}},
		},
		Before: func(c *cli.Context) error {
			e.home = client.Home{Dir: c.String("home")}
			e.passFile = c.String("passphrase-file")
			e.journal = c.String("journal")
			return nil
		},
		ExitErrHandler: func(*cli.Context, error) {}, // errors are printed by main
		Commands: []*cli.Command{
			cmdInit(e),
			cmdPassphrase(e),
			cmdUnlock(e), cmdLock(e), cmdAgent(e),
			cmdBackup(e),
			cmdRestore(e),
			cmdJournal(e),
			cmdDevice(e),
			cmdVerify(e),
			cmdCompare(e),
			cmdWrite(e),
			cmdAsk(e),
			cmdAnswer(e),
			cmdFollowup(e),
			cmdReply(e),
			cmdAck(e),
			cmdQuestions(e),
			cmdCommit(e),
			cmdCheckin(e),
			cmdCommitments(e),
			cmdAgree(e),
			cmdAgreements(e),
			cmdTogether(e),
			cmdEdit(e),
			cmdDraft(e),
			cmdRetract(e),
			cmdPrompts(e),
			cmdFeelings(e),
			cmdExport(e),
			cmdReflect(e),
			cmdLog(e),
			cmdShow(e),
			cmdSync(e),
			cmdUI(e),
			cmdStatus(e),
			cmdRemind(e),
			cmdRepair(e),
			cmdDemo(e),
		},
	}
	limitArgs(app.Commands, "")
	finishApp(app, e, notFound)
	return app
}

// unlock opens the key file, with the unlocked session's key if there is
// one (see agent.go), else with the passphrase.
func (e *env) unlock() (*client.Account, error) {
	if !e.home.Exists() {
		return nil, client.ErrNoHome
	}
	if a := e.unlockFromAgent(); a != nil {
		e.acct = a
		return a, nil
	}
	p, err := e.passphrase(false)
	if err != nil {
		return nil, err
	}
	defer clear(p)
	a, err := client.Unlock(e.home, p)
	if err == nil {
		e.acct = a
	}
	return a, err
}

// open unlocks and opens the current journal.
func (e *env) open() (*client.Account, *client.Journal, error) {
	a, err := e.unlock()
	if err != nil {
		return nil, nil, err
	}
	j, err := a.Current(e.journal)
	if err != nil {
		return nil, nil, err
	}
	e.track(j)
	if ids, err := a.Journals(); err == nil {
		e.journals = len(ids)
	}
	return a, j, nil
}

// in returns " in " and the journal's name when this home has more than
// one journal, so a person always knows where something went; else "".
func (e *env) in(j *client.Journal) string {
	if e.journals < 2 {
		return ""
	}
	return " in " + journalName(j)
}

// track remembers a journal this command opened, so that what the client
// repaired in it is said at the end (noteRepairs).
func (e *env) track(j *client.Journal) {
	if j != nil {
		e.opened = append(e.opened, j)
	}
}

func (e *env) printf(format string, args ...any) { fmt.Fprintf(e.stdout, format, args...) }

// buffered gathers what a listing prints into large writes (a long log is
// thousands of lines), and returns the function that writes the rest out;
// defer it. Only for commands that neither ask nor wait while printing.
func (e *env) buffered() (flush func()) {
	out := e.stdout
	w := bufio.NewWriterSize(out, 64<<10)
	e.stdout = w
	return func() {
		w.Flush()
		e.stdout = out
	}
}

func (e *env) json(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdInit(e *env) *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "make your identity and keys on this device",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "the name your partner will see on your entries", Required: true},
			&cli.StringFlag{Name: "device", Usage: "a name for this device (default: the host name)"},
		},
		Action: func(c *cli.Context) error {
			if e.home.Exists() {
				return client.ErrHomeExists
			}
			p, err := e.passphrase(true)
			if err != nil {
				return err
			}
			defer clear(p)
			a, err := client.Init(e.home, strings.TrimSpace(c.String("name")), c.String("device"), p, kdf())
			if err != nil {
				return err
			}
			e.printf("Your identity is ready, %s.\n", a.Name)
			e.printf("Your keys are stored in %s, locked with your passphrase.\n", e.home.KeyPath())
			fmt.Fprint(e.stderr, shortPassphraseNote(p))
			e.printf("Next: `kintsugi journal create --relay URL`, or `kintsugi journal join CODE` if your partner sent you an invite.\n")
			return nil
		},
	}
}

func cmdJournal(e *env) *cli.Command {
	return &cli.Command{
		Name:  "journal",
		Usage: "create, share, join and list journals",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "start a new journal on a relay",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "relay", Usage: "the relay's address (https://, http://, wss:// or ws://)", Required: true, EnvVars: []string{"KINTSUGI_RELAY"}},
					&cli.StringFlag{Name: "title", Usage: "a title only the two of you will see"},
				},
				Action: func(c *cli.Context) error {
					// The address is checked before the passphrase is asked.
					if _, err := client.NormalizeRelayURL(c.String("relay")); err != nil {
						return usageError(lowerFirst(err.Error()), "give the address your relay's operator gave you, like --relay https://relay.example.org; nothing was done")
					}
					a, err := e.unlock()
					if err != nil {
						return err
					}
					j, err := a.CreateJournal(e.ctx, c.String("relay"), c.String("title"))
					if err != nil {
						return beforeAnything(err, "no journal was made on this device yet")
					}
					defer j.Close()
					e.follow(a, false)
					e.printf("Your journal is ready (id %s) on %s.\n", j.ID().String()[:8], j.Relay())
					e.sayCurrent(a, j)
					e.printf("When you are both ready, run `kintsugi journal invite` and give the code to your partner.\n")
					return nil
				},
			},
			{
				Name:  "invite",
				Usage: "make a one-time code for your partner to join (it is printed alone on the last line)",
				Flags: []cli.Flag{
					expiresFlag(client.DefaultInviteTTL),
					&cli.BoolFlag{Name: "again", Usage: "for your partner, who is already here but set kintsugi up again (new keys), for example after losing their devices"},
				},
				Action: func(c *cli.Context) error {
					ttl, err := parseExpires(c.String("expires"))
					if err != nil {
						return err
					}
					_, j, err := e.open()
					if err != nil {
						return err
					}
					defer j.Close()
					invite := j.Invite
					if c.Bool("again") {
						invite = j.InviteAgain
					}
					code, exp, err := invite(e.ctx, ttl)
					if p, _ := j.Partner(); errors.Is(err, client.ErrPartnerLeft) && p != nil && p.Left != nil {
						who := clean(p.Name)
						return fail(fmt.Sprintf("%s left this journal on %s; a journal is for the two of you, so it takes no one new", who, p.Left.Local().Format("2 January 2006")),
							fmt.Sprintf("if %s wants to come back, `kintsugi journal invite --again` makes a code for them. A new journal starts with `kintsugi journal create`", who))
					}
					if errors.Is(err, client.ErrBothHere) {
						return fail(lowerFirst(err.Error()), "if your partner set kintsugi up again with new keys, use `kintsugi journal invite --again`")
					}
					if err != nil {
						return err
					}
					fmt.Fprintf(e.stderr, "Give this code to your partner privately (in person is best). It works once, until %s.\n", exp.Local().Format("Mon 2 Jan 15:04"))
					fmt.Fprintf(e.stderr, "They run: kintsugi journal join CODE. After they join, run `kintsugi sync` and compare safety numbers with `kintsugi verify`.\n")
					e.printf("%s\n", code)
					return nil
				},
			},
			{
				Name:      "join",
				Usage:     "join your partner's journal with the code they gave you",
				ArgsUsage: "[CODE]",
				Description: "Without CODE, the code is read from standard input, which keeps it out of\n" +
					"your shell history and the process list.",
				Action: func(c *cli.Context) error {
					code := e.readCode(c, "invite code: ")
					if code == "" {
						return usageError("the invite code is missing", "run `kintsugi journal join CODE` with the code your partner gave you")
					}
					// Check the code before the passphrase and its wait.
					if err := client.CheckInviteCode(code); err != nil {
						return err
					}
					a, err := e.unlock()
					if err != nil {
						return err
					}
					j, err := a.Join(e.ctx, code)
					if err != nil {
						return e.alreadyJoined(a, code, err)
					}
					defer j.Close()
					p, _ := j.Partner()
					name := "your partner"
					if p != nil {
						name = p.Name
					}
					e.printf("You have joined %s's journal.\n", name)
					e.sayCurrent(a, j)
					e.follow(a, false)
					if res, err := j.Sync(e.ctx); err == nil && res.Received > 0 {
						e.printf("%s arrived. Anything written before you joined opens once %s syncs.\n", plural(res.Received, "item", "items"), name)
					}
					e.printf("Please compare safety numbers with %s, in person or on a call: `kintsugi verify`.\n", name)
					return nil
				},
			},
			cmdJournalUse(e),
			{
				Name:  "list",
				Usage: "list the journals on this device",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"}},
				Action: func(c *cli.Context) error {
					a, err := e.unlock()
					if err != nil {
						return err
					}
					ids, err := a.Journals()
					if err != nil {
						return err
					}
					cur, curErr := a.CurrentID("")
					type row struct {
						ID      string `json:"id"`
						Title   string `json:"title"`
						Relay   string `json:"relay"`
						Partner string `json:"partner"`
						Current bool   `json:"current"`
					}
					var rows []row
					var left []string // journals the partner left
					for _, id := range ids {
						j, err := a.OpenJournal(id)
						if err != nil {
							return err
						}
						e.track(j)
						r := row{ID: id.String(), Title: j.Title(), Relay: j.Relay()}
						if p, err := j.Partner(); err == nil {
							r.Partner = p.Name
							if p.Left != nil {
								left = append(left, id.String())
							}
						}
						r.Current = curErr == nil && cur == id
						j.Close()
						rows = append(rows, r)
					}
					if c.Bool("json") {
						if rows == nil {
							rows = []row{}
						}
						return e.json(rows)
					}
					if len(rows) == 0 {
						return client.ErrNoJournal
					}
					// Columns line up however long a title or a name is.
					titles, partners := make([]string, len(rows)), make([]string, len(rows))
					tw, pw := 0, 0
					for i, r := range rows {
						titles[i] = clean(r.Title)
						if titles[i] == "" {
							titles[i] = "(untitled)"
						}
						partners[i] = "with " + clean(r.Partner)
						switch {
						case r.Partner == "":
							partners[i] = "(waiting for your partner to join)"
						case slices.Contains(left, r.ID):
							partners[i] = "with " + clean(r.Partner) + " (who left)"
						}
						tw, pw = max(tw, displayWidth(titles[i])), max(pw, displayWidth(partners[i]))
					}
					for i, r := range rows {
						mark := " "
						if r.Current {
							mark = "*"
						}
						e.printf("%s %s  %s  %s  via %s\n", mark, r.ID[:8], padRight(titles[i], tw), padRight(partners[i], pw), r.Relay)
					}
					return nil
				},
			},
			{
				Name:  "members",
				Usage: "show who is in the journal, their devices, and the safety number",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"}},
				Action: func(c *cli.Context) error {
					_, j, err := e.open()
					if err != nil {
						return err
					}
					defer j.Close()
					return e.members(j, c.Bool("json"))
				},
			},
			cmdLeave(e),
		},
	}
}

func cmdVerify(e *env) *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "show the safety number to compare with your partner; --confirm once it matches",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "confirm", Usage: "record that you compared it and it matched"}},
		Action: func(c *cli.Context) error {
			_, j, err := e.open()
			if err != nil {
				return err
			}
			defer j.Close()
			sn, p, err := j.SafetyNumber()
			if err != nil {
				return err
			}
			if p.Pending != nil {
				e.printf("%s answered your invite with new keys, so your safety number has changed.\n", clean(p.Pending.Name))
				e.printf("This is expected if %s set kintsugi up again. It is also what someone pretending to be them would do,\n", clean(p.Name))
				e.printf("so nothing new is sent to the new keys until you confirm. The new safety number is:\n\n    %s\n    %s\n\n", sn[:35], sn[36:])
				if !c.Bool("confirm") {
					e.printf("Compare it with %s in person or on a call. If every digit matches, run `kintsugi verify --confirm`.\n", clean(p.Name))
					return nil
				}
				if err := j.ConfirmVerified(); err != nil {
					return err
				}
				e.printf("Noted that the new safety number matches. Your entries will be shared with %s's new keys on the next sync.\n", clean(p.Pending.Name))
				return nil
			}
			e.printf("Safety number for you and %s:\n\n    %s\n    %s\n\n", clean(p.Name), sn[:35], sn[36:])
			if c.Bool("confirm") {
				if err := j.ConfirmVerified(); err != nil {
					return err
				}
				e.printf("Noted that your safety numbers match, on this device.\n")
				return nil
			}
			if p.Verified {
				e.printf("You and %s have already compared safety numbers.\n", clean(p.Name))
			} else {
				e.printf("Compare it with %s in person or on a call. If every digit matches, run `kintsugi verify --confirm`.\n", clean(p.Name))
				e.printf("If it does not match, please hold off writing anything private for now: someone else might be able to read it.\n")
				e.printf("Start a new journal together (`kintsugi journal create`) and compare again.\n")
			}
			return nil
		},
	}
}

// feelings the CLI suggests; any other word is accepted too.
var feelingWords = []string{"anger", "grief", "confusion", "shame", "guilt", "fear", "hope", "relief", "numbness", "love", "sadness", "loneliness", "anxiety", "hurt", "calm", "gratitude"}

func cmdWrite(e *env) *cli.Command {
	return &cli.Command{
		Name:      "write",
		Usage:     "write an entry (works offline; it is sent on the next sync)",
		ArgsUsage: "[TEXT]",
		Description: "Without TEXT, reads piped input or opens $VISUAL/$EDITOR.\n" +
			"Text typed after the command may be kept in your shell history; writing in the editor keeps it out.\n" +
			"Feelings you might name: " + strings.Join(feelingWords, ", ") + " (or any word of your own).",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "feeling", Aliases: []string{"f"}, Usage: "a feeling to name (repeat for several)"},
			&cli.IntFlag{Name: "intensity", Aliases: []string{"i"}, Usage: "how strong the feeling is, 0 to 10 (with --feeling)"},
			&cli.StringSliceFlag{Name: "tag", Aliases: []string{"t"}, Usage: "a tag to find it by later (repeat for several)"},
			&cli.BoolFlag{Name: "listen-only", Usage: "ask to be heard, not answered: your partner can acknowledge it but not reply"},
			draftFlag,
		},
		Action: func(c *cli.Context) error {
			e.draftID = c.String("draft")
			p := client.Payload{Kind: client.KindEntry}
			var err error
			if p.Feelings, err = feelingsArg(c.StringSlice("feeling")); err != nil {
				return err
			}
			if c.IsSet("intensity") {
				n := c.Int("intensity")
				if n < 0 || n > 10 {
					return usageError(fmt.Sprintf("intensity %d is outside 0 to 10", n), "0 is barely there, 10 is as strong as it gets")
				}
				if err := needsFeeling(p.Feelings); err != nil {
					return err
				}
				p.Intensity = &n
			}
			if p.Tags, err = tagsArg(c.StringSlice("tag")); err != nil {
				return err
			}
			p.ListenOnly = c.Bool("listen-only")
			return e.writeEntry(c, p, "entry")
		},
	}
}

// feelingsArg reads --feeling values as write and edit store them:
// lowercase, trimmed, one word or a short phrase each.
func feelingsArg(values []string) ([]string, error) {
	var out []string
	for _, f := range values {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" || len(f) > 40 {
			return nil, usageError(fmt.Sprintf("%q is not a feeling word kintsugi can store", f), "use a single word or short phrase, like --feeling grief")
		}
		out = append(out, f)
	}
	return out, nil
}

// tagsArg reads --tag values as write and edit store them: lowercase,
// one word each, without a leading #.
func tagsArg(values []string) ([]string, error) {
	var out []string
	for _, t := range values {
		t = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(t), "#"))
		if t == "" || len(t) > 40 || strings.ContainsAny(t, " \t\n") {
			return nil, usageError(fmt.Sprintf("%q is not a tag kintsugi can store", t), "use one word, like --tag sunday-talk")
		}
		out = append(out, t)
	}
	return out, nil
}

func cmdAsk(e *env) *cli.Command {
	return &cli.Command{
		Name:      "ask",
		Usage:     "ask your partner a hard question; it stays open until they answer",
		ArgsUsage: "[TEXT]",
		Flags:     []cli.Flag{draftFlag},
		Action: func(c *cli.Context) error {
			e.draftID = c.String("draft")
			return e.writeEntry(c, client.Payload{Kind: client.KindQuestion}, "question")
		},
	}
}

func (e *env) writeEntry(c *cli.Context, p client.Payload, what string) error {
	_, j, err := e.open()
	if err != nil {
		return err
	}
	defer j.Close()
	if err := j.Writable(); err != nil {
		return err // before the editor opens: nothing written is thrown away
	}
	text, err := e.readText(c.Args().Slice(), what)
	if err != nil {
		return err
	}
	if text == "" {
		return usageError("there is no text to save", "write the text after the command, or pipe it in")
	}
	p.Text = text
	ent, err := j.Write(p)
	if err != nil {
		return err
	}
	e.printf("Saved your %s (%s)%s on this device. %s\n", what, ent.Short, e.in(j), e.whereItGoes(j))
	if fixed, ok := likelyFeelings(p.Feelings); ok {
		// Any word may name a feeling, but one a single typo from a
		// common one is most likely that one mistyped: it would stand
		// apart in the feelings chart. Saved as written; said once.
		args := ""
		for _, f := range fixed {
			args += " --feeling " + typedWord(f)
		}
		e.printf("You named %s; if you meant %s, `kintsugi edit %s%s` changes it.\n", quoteList(p.Feelings), quoteList(fixed), ent.Short, args)
	}
	return nil
}

// whereItGoes says truly what happens to what was just written: a
// partner who left no longer gets it; a `sync --watch` connected on this
// home sends it at once; otherwise the next sync does.
func (e *env) whereItGoes(j *client.Journal) string { return e.whereGoes(j, "it") }

// whereGoes is whereItGoes for what names the thing going: "it", or "the
// retraction" where "it" would be read as the entry it retracts.
func (e *env) whereGoes(j *client.Journal, what string) string {
	if p, err := j.Partner(); err == nil && p.Left != nil {
		return fmt.Sprintf("%s left the journal on %s, so it is for you alone; nothing new is sent to them.", clean(p.Name), p.Left.Local().Format("2 January 2006"))
	}
	if j.Watched() {
		return "The `kintsugi sync --watch` running on this device is sending " + what + " now."
	}
	return strings.ToUpper(what[:1]) + what[1:] + " will be sent on the next `kintsugi sync`."
}

// target opens the journal and finds the entry the first argument names;
// missing is the message when there is no argument. The caller closes the
// journal.
func (e *env) target(c *cli.Context, missing, hint string) (*client.Journal, *client.Reader, *client.Entry, error) {
	if c.NArg() < 1 {
		return nil, nil, nil, usageError(missing, hint)
	}
	_, j, err := e.open()
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := j.Reader()
	if err == nil {
		var t *client.Entry
		if t, err = r.Find(c.Args().First()); err == nil {
			return j, r, t, nil
		}
	}
	j.Close()
	return nil, nil, nil, err
}

// entries looks entries up by their full id, for printing what an entry
// responds to and what responds to it. A *client.Reader is one; so is an
// entryMap.
type entries interface {
	Get(id string) (client.Entry, bool)
}

// get returns the entry with id, or a zero Entry.
func get(byID entries, id string) client.Entry {
	en, _ := byID.Get(id)
	return en
}

// entryMap is entries held in a map.
type entryMap map[string]client.Entry

func (m entryMap) Get(id string) (client.Entry, bool) {
	en, ok := m[id]
	return en, ok
}

// entriesOf opens the journal and returns a reader of it and its entries
// of kind, oldest first. The caller closes the journal.
func (e *env) entriesOf(kind string) (*client.Journal, *client.Reader, []client.Entry, error) {
	_, j, err := e.open()
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := j.Reader()
	var list []client.Entry
	if err == nil {
		list, err = r.Query(client.Query{Kinds: map[string]bool{kind: true}, Hidden: true})
	}
	if err != nil {
		j.Close()
		return nil, nil, nil, err
	}
	return j, r, list, nil
}

// index returns a reader of the journal, for printing responses with what
// they respond to.
func (e *env) index(j *client.Journal) entries {
	r, err := j.Reader()
	if err != nil {
		return entryMap{}
	}
	return r
}

func partnerName(j *client.Journal) string {
	if p, err := j.Partner(); err == nil {
		return p.Name
	}
	return "your partner"
}

func cmdLog(e *env) *cli.Command {
	return &cli.Command{
		Name:  "log",
		Usage: "read the journal, oldest first, with filters",
		Description: "Dates can be written as today, yesterday, \"3 days ago\", \"2 weeks ago\",\n" +
			"\"last monday\", 2026-11-02 or \"2026-11-02 18:30\". --until includes the day it names.\n" +
			"--on-this-day shows what was written on today's day of the month in earlier months\n" +
			"and years (on the 2nd: 2 October, 2 September, ... 2 November last year), not today.",
		Flags: append(filterFlags(),
			&cli.IntFlag{Name: "n", Usage: "only the last N that match"},
			&cli.BoolFlag{Name: "on-this-day", Usage: "entries from this day of the month in earlier months and years"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"},
		),
		Action: func(c *cli.Context) error {
			defer e.buffered()()
			f, err := newFilter(c, time.Now())
			if err != nil {
				return err
			}
			if c.IsSet("n") && c.Int("n") < 1 {
				return usageError(fmt.Sprintf("-n needs 1 or more, not %d", c.Int("n")), "like `kintsugi log -n 10` for the last ten entries; without -n, log shows everything")
			}
			_, j, err := e.open()
			if err != nil {
				return err
			}
			defer j.Close()
			r, err := j.Reader()
			if err != nil {
				return err
			}
			// Revisions and retractions are shown through the entry they
			// change, unless asked for by kind.
			q := f.query()
			q.Hidden, q.Last = q.Kinds != nil, c.Int("n")
			now := time.Now()
			if c.Bool("on-this-day") {
				q.OnThisDay = now
			}
			list, err := r.Query(q)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return e.json(list)
			}
			if len(list) == 0 {
				switch {
				case r.Len() > 0 && c.Bool("on-this-day"):
					e.printf("Nothing yet from the %s of an earlier month. It fills in as the months go by.\n", ordinal(now.Day()))
				case r.Len() > 0:
					e.printf("Nothing matches those filters.\n")
				case j.Refetching():
					e.printf("Nothing is on this device yet: what the relay holds comes back with `kintsugi sync`.\n")
				default:
					e.printf("Nothing here yet. `kintsugi write` when you are ready; there is no hurry.\n")
				}
				e.notes(j, notesUnderLog, false)
				return nil
			}
			heading := ""
			for _, en := range list {
				text, ok := entryText(en, r)
				if !ok {
					continue // shown through another entry
				}
				if c.Bool("on-this-day") {
					if h := agoHeading(en.Created, now); h != heading {
						heading = h
						e.printf("── %s\n\n", h)
					}
				}
				e.printf("%s\n", text)
			}
			e.notes(j, notesUnderLog, true)
			return nil
		},
	}
}

// noteMissing says, after a sync, which items the journal knows exist
// but has not received, so a view never looks whole when it is not, and
// that this device's keys write on two machines until that is read.
func (e *env) noteMissing(j *client.Journal) { e.notes(j, notesAfterSync, true) }

// What notes says, after a sync or under a log.
const (
	notesAfterSync = iota
	notesUnderLog
)

// notes prints, from one status, the items still missing; after a sync
// (notesAfterSync), an unread notice that this device's keys write on two
// machines; and under a log (notesUnderLog), that entries from a
// partner's new keys are held back until the new safety number is
// confirmed, so a log that shows none of them says why. missing false
// leaves the missing items out (a log with nothing to show).
func (e *env) notes(j *client.Journal, where int, missing bool) {
	st, err := j.Status()
	if err != nil {
		return
	}
	if missing {
		for _, m := range st.Missing {
			e.printf("Note: %s.\n", sentence(m))
		}
	}
	switch where {
	case notesAfterSync:
		// Not only for status: whoever syncs should hear of it until
		// they have read it (a log would repeat it every time).
		for _, n := range unread(st.Notices) {
			if n.Kind == client.NoticeForkedHistory || n.Kind == client.NoticeRelayForgedOwn {
				e.printf("Note: %s. (`kintsugi status --ack %s` marks this read.)\n", sentence(n), n.ID)
			}
		}
	case notesUnderLog:
		for _, n := range st.Notices {
			if n.Kind == client.NoticeIdentityChanged {
				e.printf("Note: what comes from %s's new keys is not shown until you compare the new safety number together and confirm it (`kintsugi verify`).\n", clean(n.Who))
				break
			}
		}
	}
}

// filterFlags are the flags of log and export that choose entries.
func filterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "since", Usage: "from this date on"},
		&cli.StringFlag{Name: "until", Usage: "up to this date"},
		&cli.StringSliceFlag{Name: "kind", Usage: "entry, question, answer, reflection, ... (repeat for several)"},
		&cli.StringFlag{Name: "author", Usage: "me, partner, or a name"},
		&cli.StringSliceFlag{Name: "feeling", Usage: "entries naming this feeling (repeat: any of them)"},
		&cli.StringSliceFlag{Name: "tag", Usage: "entries with this tag (repeat: any of them)"},
		&cli.StringFlag{Name: "contains", Usage: "entries whose text contains this (any case)"},
	}
}

// filter selects entries for log and export: the flags, checked.
type filter struct {
	since, until time.Time // zero: unbounded; until is exclusive
	kinds        map[string]bool
	author       string // "", "me", "partner" or a lower-case name
	feelings     map[string]bool
	tags         map[string]bool
	contains     string
}

// query is the client query the filter asks for.
func (f *filter) query() client.Query {
	return client.Query{Since: f.since, Until: f.until, Kinds: f.kinds, Author: f.author, Feelings: f.feelings, Tags: f.tags, Contains: f.contains}
}

var knownKinds = []string{client.KindEntry, client.KindQuestion, client.KindAnswer, client.KindFollowup, client.KindReply, client.KindAck, client.KindCommit, client.KindCheckin, client.KindAgree, client.KindDecision, client.KindTogether, client.KindTogetherAnswer, client.KindTogetherMark, client.KindReflection, client.KindRevision, client.KindRetraction}

func newFilter(c *cli.Context, now time.Time) (*filter, error) {
	f := &filter{contains: strings.ToLower(c.String("contains"))}
	if s := c.String("since"); s != "" {
		t, _, err := parseWhen(s, now)
		if err != nil {
			return nil, usageError(err.Error(), "try a date like yesterday, \"3 days ago\", \"last monday\" or 2026-11-02")
		}
		f.since = t
	}
	if s := c.String("until"); s != "" {
		t, day, err := parseWhen(s, now)
		if err != nil {
			return nil, usageError(err.Error(), "try a date like yesterday, \"3 days ago\", \"last monday\" or 2026-11-02")
		}
		if day {
			t = t.AddDate(0, 0, 1)
		}
		f.until = t
	}
	if !f.since.IsZero() && !f.until.IsZero() && !f.since.Before(f.until) {
		return nil, usageError("--since is after --until, so nothing could match", "swap the two dates")
	}
	for _, k := range c.StringSlice("kind") {
		k = strings.ToLower(strings.TrimSpace(k))
		if !slices.Contains(knownKinds, k) {
			return nil, usageError(fmt.Sprintf("%q is not a kind of entry", k), "kinds are "+strings.Join(knownKinds, ", "))
		}
		if f.kinds == nil {
			f.kinds = map[string]bool{}
		}
		f.kinds[k] = true
	}
	f.author = strings.ToLower(strings.TrimSpace(c.String("author")))
	set := func(vals []string) map[string]bool {
		if len(vals) == 0 {
			return nil
		}
		m := map[string]bool{}
		for _, v := range vals {
			m[strings.ToLower(strings.TrimPrefix(strings.TrimSpace(v), "#"))] = true
		}
		return m
	}
	f.feelings, f.tags = set(c.StringSlice("feeling")), set(c.StringSlice("tag"))
	return f, nil
}

func cmdShow(e *env) *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "show one entry with its thread: answers, follow-ups, replies, acknowledgements",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "history", Usage: "also show every earlier version of an edited entry"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"},
		},
		Action: func(c *cli.Context) error {
			j, byID, en, err := e.target(c, "which entry? the id is missing", "`kintsugi log` lists entries with their ids")
			if err != nil {
				return err
			}
			defer j.Close()
			if c.Bool("json") {
				return e.json(en)
			}
			if p, ok := byID.Get(en.Ref); ok {
				owner := clean(p.Author) + "'s"
				if p.Mine {
					owner = "your"
				}
				e.printf("(in response to %s %s %s)\n", owner, kindWord(p.Kind), p.Short)
			}
			if !e.printEntry("", *en, byID) {
				// An item log shows through another one: say what it
				// is and where it is seen, rather than nothing.
				e.printf("%s\n", shownElsewhere(*en, byID))
			}
			if c.Bool("history") {
				if len(en.History) == 0 {
					e.printf("    (never edited)\n")
				}
				for i, v := range en.History {
					label := "original"
					if i > 0 {
						label = fmt.Sprintf("version %d", i+1)
					}
					e.printf("    ── %s, %s\n%s\n", label, v.Created.Local().Format("Mon 2 Jan 2006, 15:04"), indent(indent(clean(v.Text))))
				}
			}
			e.printThread(*en, byID, 1)
			return nil
		},
	}
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// clean removes control characters other than newline and tab from text
// that came from the other side, so an entry cannot drive the terminal.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}

func cmdSync(e *env) *cli.Command {
	return &cli.Command{
		Name:  "sync",
		Usage: "send what you wrote and receive what your partner wrote",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "stay connected and show entries as they arrive (Ctrl-C to stop)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts (one object per line with --watch)"},
		},
		Action: func(c *cli.Context) error {
			a, j, err := e.open()
			if err != nil {
				return err
			}
			defer j.Close()
			// What the person did on their other devices first: a journal
			// joined there is then here to sync.
			followed := e.follow(a, c.Bool("json"))
			if c.Bool("watch") {
				err := e.watch(j, c.Bool("json"))
				if err == nil && e.ctx.Err() != nil {
					// Ctrl-C is how a watch ends; it says so, and exits
					// as a stopped program does (130), for scripts.
					if !c.Bool("json") {
						fmt.Fprintf(e.stderr, "Stopped watching. What you write from now on goes with the next `kintsugi sync`.\n")
					}
					return &userError{silent: true, err: context.Canceled}
				}
				return err
			}
			res, err := j.Sync(e.ctx)
			if err != nil && e.ctx.Err() != nil {
				// Ctrl-C: not a failure to reach the relay. An entry leaves
				// the outbox only once the relay acknowledges it, and what
				// was not received yet comes again on the next sync, so
				// stopping loses nothing.
				return &userError{msg: "sync stopped before it finished", hint: "nothing was lost: what you wrote stays on this device until the relay has it, and the next `kintsugi sync` carries on from here", err: context.Canceled}
			}
			if err != nil {
				return err
			}
			if c.Bool("json") {
				if res.New == nil {
					res.New = []client.Entry{}
				}
				out := map[string]any{"pushed": res.Pushed, "received": res.Received, "joined": res.Joined, "notices": sentences(res.Notices), "roster_changes": orEmpty(res.Notices), "new": res.New, "new_count": res.NewCount}
				if followed != nil {
					out["from_your_devices"] = map[string]any{"journals_added": orEmpty(followed.Added), "journals_left": orEmpty(followed.Left), "verified": orEmpty(followed.Verified)}
				}
				return e.json(out)
			}
			for _, n := range res.Joined {
				e.printf("%s has joined the journal. Compare safety numbers together: `kintsugi verify`.\n", clean(n))
			}
			for _, n := range res.Notices {
				e.printf("%s.\n", sentence(n))
			}
			if e.journals > 1 {
				e.printf("%s: sent %d, received %d.\n", journalName(j), res.Pushed, res.Received)
			} else {
				e.printf("Sent %d, received %d.\n", res.Pushed, res.Received)
			}
			defer e.noteMissing(j)
			e.printNew(j, res.New, res.NewCount, true)
			return nil
		},
	}
}

// followEvery is how often a running watch follows the person's other
// devices while it stays connected (tests shorten it).
var followEvery = 10 * time.Minute

func (e *env) watch(j *client.Journal, asJSON bool) error {
	fmt.Fprintf(e.stderr, "Staying connected to %s%s. Press Ctrl-C to stop.\n", j.Relay(), e.in(j))
	enc := json.NewEncoder(e.stdout)
	// A relay that is down fails every retry: say so once, calmly, and
	// then that it is back. connected: a connection has been up before;
	// down: the last attempt failed and that was said.
	var connected, down bool
	// What the person did on their other devices is followed when the
	// watch starts (by sync), each time it connects again, and every
	// followEvery while it stays connected. out keeps what that prints
	// apart from what the watch prints.
	var out sync.Mutex
	followNow := func() {
		if e.acct == nil || !e.acct.HasAccountJournal() {
			return
		}
		if res := e.follow(e.acct, asJSON); asJSON && res != nil && len(res.Added)+len(res.Left)+len(res.Verified) > 0 {
			enc.Encode(map[string]any{"time": time.Now().UTC(), "event": "from_your_devices", "journals_added": orEmpty(res.Added), "journals_left": orEmpty(res.Left), "verified": orEmpty(res.Verified)})
		}
	}
	stopFollowing := make(chan struct{})
	var following sync.WaitGroup
	defer func() {
		close(stopFollowing)
		following.Wait() // nothing is printed after the watch returns
	}()
	every := followEvery
	following.Add(1)
	go func() {
		defer following.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				out.Lock()
				followNow()
				out.Unlock()
			case <-stopFollowing:
				return
			case <-e.ctx.Done():
				return
			}
		}
	}()
	var reconnected bool
	return j.Watch(e.ctx, func(ev client.Event) {
		out.Lock()
		defer out.Unlock()
		if ev.Connected {
			if reconnected {
				followNow()
			}
			reconnected = true
		}
		if len(ev.Repairs) > 0 {
			if asJSON {
				enc.Encode(map[string]any{"time": time.Now().UTC(), "event": "repaired", "repairs": withoutWords(ev.Repairs)})
			} else {
				for _, r := range ev.Repairs {
					e.noteRepair(r, true)
				}
			}
			if e.repairsSaid == nil {
				e.repairsSaid = make(map[*client.Journal]int)
			}
			e.repairsSaid[j] += len(ev.Repairs)
			return
		}
		if asJSON {
			m := map[string]any{"time": time.Now().UTC()}
			switch {
			case ev.Disconnected != nil:
				m["event"], m["error"], m["retry_in_seconds"] = "disconnected", ev.Disconnected.Error(), ev.RetryIn.Seconds()
			case ev.Connected:
				m["event"] = "connected"
				if ev.Refetched {
					m["refetched"] = true
				}
			case ev.Pushed > 0:
				m["event"], m["pushed"] = "pushed", ev.Pushed
			default:
				m["event"], m["new"], m["new_count"], m["joined"] = "received", ev.New, ev.NewCount, ev.Joined
				m["notices"], m["roster_changes"] = sentences(ev.Notices), orEmpty(ev.Notices)
			}
			enc.Encode(m)
			return
		}
		switch {
		case ev.Connected && ev.Refetched:
			fmt.Fprintf(e.stderr, "kintsugi: note: what was set aside has been fetched again from the relay. Connected and up to date.\n")
			connected, down = true, false
		case ev.Disconnected != nil && !down:
			down = true
			msg, _ := describe(ev.Disconnected)
			what := "cannot reach the relay yet"
			if connected {
				what = "lost the connection to the relay"
			}
			// "could not reach the relay at URL: why" reads as "cannot
			// reach the relay yet at URL: why", not the same words twice.
			var relayErr *protocol.RelayError
			if errors.As(ev.Disconnected, &relayErr) && relayErr.Code == protocol.CodeInternal {
				// The relay answered, but its storage did not: the
				// connection was fine.
				what = "the relay could not store what was sent just now (" + msg + ")"
			} else if errors.Is(ev.Disconnected, client.ErrConnectionLost) {
				what = msg // "the connection to the relay was lost (why)"
			} else if detail, ok := strings.CutPrefix(msg, "could not reach the relay"); ok {
				what += detail
			} else if errors.Is(ev.Disconnected, protocol.ErrShuttingDown) {
				what += ": it is stopping or restarting"
			} else {
				what += " (" + msg + ")"
			}
			fmt.Fprintf(e.stderr, "kintsugi: %s. Trying again every few seconds; what you write is safe here.\n", what)
		case ev.Connected:
			if down && connected {
				fmt.Fprintf(e.stderr, "Connected again and up to date.\n")
			} else {
				fmt.Fprintf(e.stderr, "Connected and up to date.\n")
			}
			connected, down = true, false
		case ev.Pushed > 0:
			fmt.Fprintf(e.stderr, "Sent %d.\n", ev.Pushed)
		}
		for _, n := range ev.Joined {
			e.printf("%s has joined the journal. Compare safety numbers together: `kintsugi verify`.\n", clean(n))
		}
		for _, n := range ev.Notices {
			e.printf("%s.\n", sentence(n))
		}
		e.printNew(j, ev.New, ev.NewCount, false)
	})
}

// printNew prints the newest entries that arrived from the partner, under
// a heading if asked; when more arrived than a sync carries, it says how
// many and how to read them.
func (e *env) printNew(j *client.Journal, fresh []client.Entry, count int, heading bool) {
	if len(fresh) == 0 {
		return
	}
	// Only what shows: an entry shown through another one (a sealed
	// answer's mark once the answer itself is here) adds no line, and no
	// blank line either.
	byID := e.index(j)
	var texts []string
	for _, en := range fresh {
		if s, ok := entryText(en, byID); ok {
			texts = append(texts, s)
		}
	}
	if len(texts) == 0 {
		return
	}
	who := clean(partnerName(j))
	switch {
	case count > len(fresh):
		e.printf("%s new from %s. The newest %d:\n\n", plural(count, "entry", "entries"), who, len(fresh))
	case heading:
		e.printf("New from %s:\n\n", who)
	}
	for _, s := range texts {
		e.printf("%s\n", s)
	}
	if count > len(fresh) {
		e.printf("The rest are in the timeline whenever you want them: `kintsugi log -n %d`.\n", count)
	}
}

func cmdStatus(e *env) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "who you are, which journal, the relay, what is waiting to be sent",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"},
			&cli.StringSliceFlag{Name: "ack", Usage: "mark notices read so status stops showing them: all, or a notice's id or kind from --json (repeat for several)"},
		},
		Action: func(c *cli.Context) error {
			a, err := e.unlock()
			if err != nil {
				return err
			}
			j, err := a.Current(e.journal)
			e.track(j)
			if errors.Is(err, client.ErrNoJournal) && !c.Bool("json") {
				e.printf("You are %s. No journal yet.\n", clean(a.Name))
				_, hint := describe(err)
				e.printf("Next: %s.\n", hint)
				return nil
			}
			if err != nil {
				return err
			}
			defer j.Close()
			if ids := c.StringSlice("ack"); len(ids) > 0 {
				if err := e.acknowledge(j, ids, c.Bool("json")); err != nil {
					return err
				}
			}
			st, err := j.Status()
			if err != nil {
				return err
			}
			// The record this person's devices share, when there is one:
			// what a relay did to it is said here too.
			own, ownErr := a.AccountStatus()
			hasOwn := ownErr == nil
			if c.Bool("json") {
				out := map[string]any{"name": a.Name, "identity": fmt.Sprintf("%x", a.Identity.Public), "home": e.home.Dir, "journal": statusJSON{
					Status: st, Warnings: sentences(unread(st.Notices)), Missing: sentences(st.Missing),
				}}
				if hasOwn {
					out["your_devices"] = statusJSON{Status: own, Warnings: sentences(unread(own.Notices)), Missing: sentences(own.Missing)}
				}
				return e.json(out)
			}
			title := st.Title
			if title == "" {
				title = "(untitled)"
			}
			e.printf("You:        %s\n", clean(a.Name))
			e.printf("Journal:    %s (%s)\n", clean(title), st.Journal[:8])
			e.printf("Relay:      %s\n", st.Relay)
			// Why nothing can be written here, if so: said once, and
			// nothing below asks for what cannot happen.
			werr := j.Writable()
			left, removed := errors.Is(werr, client.ErrLeft), errors.Is(werr, client.ErrNotServed)
			switch {
			case left:
				msg, _ := describe(werr)
				e.printf("Partner:    %s\n", partnerOrNone(st.Partner))
				e.printf("Writing:    %s\n", msg)
			case removed:
				e.printf("Partner:    %s\n", partnerOrNone(st.Partner))
				e.printf("Writing:    this device was removed from the journal, so nothing more goes out from it; what is here stays readable\n")
			case st.Partner == "":
				e.printf("Partner:    not joined yet\n")
			case st.PartnerLeft != nil:
				e.printf("Partner:    %s left the journal on %s; nothing new is sent to them\n", clean(st.Partner), st.PartnerLeft.Local().Format("2 January 2006"))
			case st.Verified:
				e.printf("Partner:    %s (safety number verified)\n", clean(st.Partner))
			default:
				e.printf("Partner:    %s (safety number not compared yet: `kintsugi verify`)\n", clean(st.Partner))
			}
			e.printf("Entries:    %d readable here\n", st.Entries)
			if st.Outbox > 0 && (left || removed) {
				e.printf("To send:    %d that cannot go now\n", st.Outbox)
			} else if st.Outbox > 0 && j.Watched() {
				e.printf("To send:    %d, now, by the `kintsugi sync --watch` running on this device\n", st.Outbox)
			} else if st.Outbox > 0 {
				e.printf("To send:    %d, on the next sync\n", st.Outbox)
			} else {
				e.printf("To send:    nothing\n")
			}
			if st.LastSync != nil {
				e.printf("Last sync:  %s\n", st.LastSync.Local().Format("Mon 2 Jan 15:04"))
			} else {
				e.printf("Last sync:  not yet\n")
			}
			e.sessionLine()
			for _, h := range st.PartnerDevices {
				if h.Seq == 0 {
					e.printf("Heard from: %s: nothing yet\n", headDevice(h))
					continue
				}
				e.printf("Heard from: %s, last an item written %s\n", headDevice(h), h.Written.Local().Format("Mon 2 Jan 15:04"))
			}
			if len(st.PartnerDevices) > 0 {
				e.printf("            To check that you and your partner see the same journal: `kintsugi compare`\n")
			}
			if st.Held > 0 {
				e.printf("Together:   %s has answered %s; it opens whenever you answer too, if and when you are ready (`kintsugi together`)\n", clean(st.Partner), plural(st.Held, "reveal-together question", "reveal-together questions"))
			}
			if st.Strangers > 0 {
				e.printf("Note:       %s came from a device that is not part of this journal, or from a removed one; %s set aside and not shown, and nothing here changed. If this keeps happening, tell whoever runs the relay\n", plural(st.Strangers, "item", "items"), map[bool]string{true: "it was", false: "they were"}[st.Strangers == 1])
			}
			if st.Unreadable > 0 {
				e.printf("Note:       %s cannot be read on this device yet; they usually open after your partner syncs. Any that stay closed were not written for this device, or reached it without this device's key\n", plural(st.Unreadable, "item", "items"))
			}
			for _, m := range st.Missing {
				e.printf("Note:       %s\n", sentence(m))
			}
			readable := false
			for _, n := range unread(st.Notices) {
				e.printf("Warning:    %s\n", sentence(n))
				readable = readable || !n.Holds
			}
			if hasOwn {
				// Said apart, so nobody takes it for the journal with
				// their partner.
				for _, m := range own.Missing {
					e.printf("Your devices: in the record they share, %s\n", lowerFirst(sentence(m)))
				}
				for _, n := range unread(own.Notices) {
					e.printf("Your devices: in the record they share, %s\n", lowerFirst(sentence(n)))
					readable = readable || !n.Holds
				}
			}
			if readable {
				e.printf("            These stay until you mark them read: `kintsugi status --ack all`. If something happens again, it shows again.\n")
			}
			return nil
		},
	}
}

// partnerOrNone names the partner for status, or says none joined.
func partnerOrNone(name string) string {
	if name == "" {
		return "not joined yet"
	}
	return clean(name)
}

// statusJSON is the journal part of `status --json`: client.Status (with
// its typed "notices" and "gaps"), and the sentences status prints, under
// the names earlier versions used.
type statusJSON struct {
	client.Status
	// Warnings words the notices status shows (those not marked read).
	Warnings []string `json:"warnings"`
	// Missing words the gaps.
	Missing []string `json:"missing"`
}

// acknowledge marks notices read (ids: "all", or ids and kinds) and says
// so, unless the output is JSON.
func (e *env) acknowledge(j *client.Journal, ids []string, asJSON bool) error {
	n := 0
	if slices.Contains(ids, "all") {
		var err error
		if n, err = j.AcknowledgeAll(); err != nil {
			return err
		}
		own, err := e.acct.AcknowledgeAccountNotices()
		if err != nil {
			return err
		}
		n += own
	} else {
		before, err := j.Notices()
		if err != nil {
			return err
		}
		if err := j.Acknowledge(ids...); err != nil {
			return err
		}
		after, err := j.Notices()
		if err != nil {
			return err
		}
		n = len(unread(before)) - len(unread(after))
	}
	if asJSON {
		return nil
	}
	if n == 0 {
		e.printf("Nothing new to mark read.\n\n")
		return nil
	}
	e.printf("Marked %s read. If the same thing happens again, status shows it again.\n\n", plural(n, "notice", "notices"))
	return nil
}

// orEmpty returns ns, or an empty list for JSON instead of null.
func orEmpty[T any](ns []T) []T {
	if ns == nil {
		return []T{}
	}
	return ns
}

func (e *env) members(j *client.Journal, asJSON bool) error {
	ms, err := j.Members()
	if err != nil {
		return err
	}
	sn, _, snErr := j.SafetyNumber()
	type dev struct {
		Name    string `json:"name"`
		Key     string `json:"signing_key"`
		Created string `json:"created"`
		Removed bool   `json:"removed"`
	}
	type person struct {
		Name     string     `json:"name"`
		You      bool       `json:"you"`
		Identity string     `json:"identity"`
		Verified bool       `json:"verified"`
		Left     *time.Time `json:"left,omitempty"`
		Devices  []dev      `json:"devices"`
	}
	var people []person
	for _, m := range ms {
		p := person{Name: m.Name, You: m.Self, Identity: fmt.Sprintf("%x", m.Identity), Verified: m.Verified, Left: m.Left, Devices: []dev{}}
		for _, d := range client.MemberDevices(m) {
			p.Devices = append(p.Devices, dev{Name: d.Name, Key: fmt.Sprintf("%x", d.Sign), Created: d.Created.Format(time.RFC3339), Removed: client.IsRemoved(m, d.Sign)})
		}
		people = append(people, p)
	}
	if asJSON {
		out := map[string]any{"members": people}
		if snErr == nil {
			out["safety_number"] = sn
		}
		return e.json(out)
	}
	for _, p := range people {
		label := clean(p.Name)
		if p.You {
			label += " (you)"
		} else if p.Verified {
			label += " (safety number matches)"
		} else {
			label += " (safety number not compared yet)"
		}
		if p.Left != nil {
			label += ", left on " + p.Left.Local().Format("2 Jan 2006")
		}
		e.printf("%s\n", label)
		for _, d := range p.Devices {
			note := ""
			if d.Removed {
				note = "  (removed)"
			}
			e.printf("    device %q  key %s…%s\n", clean(d.Name), d.Key[:16], note)
		}
	}
	if snErr == nil {
		e.printf("\nSafety number:\n    %s\n    %s\n", sn[:35], sn[36:])
	} else {
		e.printf("\nYour partner has not joined yet.\n")
	}
	return nil
}

// shortOf returns the short form of a full id.
func shortOf(id string) string {
	if len(id) > client.ShortIDLen {
		return id[:client.ShortIDLen]
	}
	return id
}

// kindWord names a kind of entry in a sentence.
func kindWord(kind string) string {
	switch kind {
	case client.KindTogether:
		return "reveal-together question"
	case client.KindTogetherAnswer:
		return "answer"
	case client.KindCheckin:
		return "check-in"
	case client.KindFollowup:
		return "follow-up"
	}
	return kind
}

// plural returns "1 entry", "2 entries".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
