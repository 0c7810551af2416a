package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/server"
)

// dataFlag is the --data flag shared by serve, backup and restore.
func dataFlag() cli.Flag {
	return &cli.StringFlag{Name: "data", Value: "./relay-data", EnvVars: []string{"KINTSUGI_RELAY_DATA"}, Usage: "the relay's data `directory`"}
}

func usageError(cmd string) cli.OnUsageErrorFunc {
	return func(_ *cli.Context, err error, _ bool) error {
		return &cliError{msg: lowerFirst(err.Error()), hint: fmt.Sprintf("run 'kintsugi-relay %s --help' for usage", cmd), code: exitUsage, err: err}
	}
}

func backupCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "write a backup of the relay's data to a file, while the relay runs or not",
		ArgsUsage: "FILE",
		Description: `Writes one consistent snapshot of the relay's data to FILE (or to
standard output if FILE is -). If a relay is running on the data directory,
the backup comes from it through its admin socket and the relay keeps
serving; otherwise the directory is read directly. Every write the relay
acknowledged before the backup began is in it. It is for the Badger store:
a relay on PostgreSQL (--store) is backed up with PostgreSQL's own tools.

FILE is written to a temporary name, synced, checked and only then
renamed, so it is complete or absent. An existing FILE is replaced only
with --force. Restore it with 'kintsugi-relay restore'.`,
		OnUsageError: usageError("backup"),
		Flags: []cli.Flag{
			dataFlag(),
			&cli.BoolFlag{Name: "force", Usage: "replace FILE if it exists"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			storeFlag(""),
		},
		Action: func(c *cli.Context) error {
			if err := notForPostgres(c, "backup"); err != nil {
				return err
			}
			if c.NArg() != 1 {
				return &cliError{msg: "backup takes one argument, the file to write", hint: "for example: kintsugi-relay backup --data /var/lib/kintsugi-relay relay.backup", code: exitUsage}
			}
			return backup(c, stdout, stderr, c.String("data"), c.Args().First(), c.Bool("force"), c.Bool("json"))
		},
	}
}

type backupResult struct {
	File    string    `json:"file"`
	Bytes   int64     `json:"bytes"`
	RelayID string    `json:"relay_id"`
	Created time.Time `json:"created"`
	Online  bool      `json:"online"` // taken from a running relay
	Seconds float64   `json:"seconds"`
}

func backup(c *cli.Context, stdout, stderr io.Writer, data, target string, force, asJSON bool) (err error) {
	ctx := c.Context
	start := time.Now()
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		return &cliError{msg: fmt.Sprintf("there is no relay data directory at %s", data), hint: "pass the relay's data directory with --data (or KINTSUGI_RELAY_DATA)", code: exitFailure, err: err}
	}
	var out io.Writer = stdout
	var tmp *os.File
	if target != "-" {
		if _, err := os.Lstat(target); err == nil && !force {
			return &cliError{msg: fmt.Sprintf("%s already exists", target), hint: "pick a new file name, or pass --force to replace it", code: exitFailure}
		}
		tmp, err = os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".partial-*")
		if err != nil {
			return &cliError{msg: fmt.Sprintf("cannot write the backup next to %s: %v", target, rootPathError(err)), hint: "pick a file in a directory you can write to", code: exitFailure, err: err}
		}
		defer func() {
			if tmp != nil { // not renamed into place
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		out = tmp
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	prog := newProgress(stderr, "backup")
	cw := &countingWriter{w: bw, progress: prog.bytes}

	online := true
	info, err := server.AdminBackup(ctx, data, cw, nil)
	if errors.Is(err, server.ErrNoAdmin) {
		online = false
		info, err = offlineBackup(c, data, cw)
		// A relay that is starting holds the directory a moment before
		// its admin socket answers: give it a few seconds.
		var ce *cliError
		for waited := time.Duration(0); waited < startingGrace && errors.As(err, &ce) && server.IsLocked(ce.err) && ctx.Err() == nil; waited += 100 * time.Millisecond {
			time.Sleep(100 * time.Millisecond)
			if i2, err2 := server.AdminBackup(ctx, data, cw, nil); !errors.Is(err2, server.ErrNoAdmin) {
				info, err, online = i2, err2, true
			}
		}
	}
	if err != nil {
		var ce *cliError
		if errors.As(err, &ce) {
			return err
		}
		if ctx.Err() != nil {
			return &cliError{msg: "the backup was interrupted; no file was written", code: exitFailure, err: err}
		}
		if errors.Is(err, fs.ErrPermission) {
			return &cliError{msg: fmt.Sprintf("the backup failed: %v", err), hint: "run the backup as the relay's user, or as root (sudo)", code: exitFailure, err: err}
		}
		if errors.Is(err, server.ErrDamaged) {
			return &cliError{msg: fmt.Sprintf("the backup failed: %v", err), hint: "a backup refuses a damaged blob, and nothing was written: kintsugi-relay check lists every damaged one; a backup from before the damage, restored onto a healthy disk, brings them back", code: exitFailure, err: err}
		}
		return &cliError{msg: fmt.Sprintf("the backup failed: %v", err), hint: "nothing was written; the relay's log may say more", code: exitFailure, err: err}
	}
	if err := bw.Flush(); err != nil {
		return &cliError{msg: fmt.Sprintf("cannot write the backup: %v", rootPathError(err)), code: exitFailure, err: err}
	}
	res := backupResult{File: target, Bytes: info.Bytes, RelayID: info.RelayID, Created: info.Created, Online: online}
	if tmp != nil {
		if err := finishBackupFile(tmp, target, force); err != nil {
			return err
		}
		tmp = nil
	}
	res.Seconds = time.Since(start).Seconds()
	if target == "-" {
		stdout = stderr // the backup went to standard output
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	how := "from the running relay"
	if !online {
		how = "read directly; no relay was running"
	}
	where := target
	if target == "-" {
		where = "standard output"
	}
	fmt.Fprintf(stdout, "kintsugi-relay: backup of relay %s written to %s (%s, %s, %.1f s)\n", orNone(res.RelayID), where, humanBytes(res.Bytes), how, res.Seconds)
	return nil
}

// startingGrace is how long a backup waits for the admin socket of a
// relay that holds its data directory (one that is starting) before it
// says the relay does not answer. A variable so that the test of that
// message need not wait it out.
var startingGrace = 3 * time.Second

// offlineOpenError is the error for opening a stopped relay's data
// directory (server.OpenBadgerForBackup) that failed with err: locked,
// with its message and hint, when a relay holds it; an interrupted
// restore; no store there; or err itself.
func offlineOpenError(data string, err error, locked *cliError) error {
	switch {
	case server.IsLocked(err):
		locked.code, locked.err = exitFailure, err
		return locked
	case errors.Is(err, server.ErrUnfinishedRestore):
		return interruptedRestore(data, err)
	case !server.HasStore(data):
		return &cliError{msg: fmt.Sprintf("%s holds no relay data", data), hint: "pass the relay's data directory with --data (or KINTSUGI_RELAY_DATA)", code: exitFailure, err: err}
	}
	return err
}

// offlineBackup reads a data directory no relay is using.
func offlineBackup(c *cli.Context, data string, w io.Writer) (server.BackupInfo, error) {
	store, err := server.OpenBadgerForBackup(data, nil)
	if err != nil {
		return server.BackupInfo{}, offlineOpenError(data, err, &cliError{msg: fmt.Sprintf("a relay is using %s but does not answer on its admin socket", data),
			hint: "a relay older than this command has no admin socket, and neither has one whose data directory's path is too long for a socket (its log says so at start): stop the relay and run the backup again, it then reads the directory directly"})
	}
	info, err := store.Backup(c.Context, w)
	if cerr := store.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return info, err
}

// finishBackupFile syncs and checks the temporary file, then gives it its
// name: never over an existing file unless force.
func finishBackupFile(tmp *os.File, target string, force bool) error {
	fail := func(what string, err error) error {
		return &cliError{msg: fmt.Sprintf("cannot %s: %v", what, rootPathError(err)), hint: "nothing was written; check the disk", code: exitFailure, err: err}
	}
	if err := tmp.Sync(); err != nil {
		return fail("sync the backup", err)
	}
	fi, err := tmp.Stat()
	if err != nil {
		return fail("check the backup", err)
	}
	if _, err := server.VerifyBackup(tmp, fi.Size(), nil); err != nil {
		return &cliError{msg: fmt.Sprintf("the backup did not check out: %v", err), hint: "nothing was written; try again, and look at the relay's log", code: exitFailure, err: err}
	}
	if err := tmp.Close(); err != nil {
		return fail("close the backup", err)
	}
	if force {
		if err := os.Rename(tmp.Name(), target); err != nil {
			return fail("rename the backup into place", err)
		}
	} else {
		// A hard link fails if target appeared meanwhile; rename would
		// silently replace it.
		if err := os.Link(tmp.Name(), target); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return &cliError{msg: fmt.Sprintf("%s already exists", target), hint: "pick a new file name, or pass --force to replace it", code: exitFailure, err: err}
			}
			return fail("give the backup its name", err)
		}
		os.Remove(tmp.Name())
	}
	if err := syncDir(filepath.Dir(target)); err != nil {
		return fail("sync the backup's directory", err)
	}
	return nil
}

func restoreCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "restore the relay's data from a backup into an empty directory",
		ArgsUsage: "FILE",
		Description: `Checks the backup FILE completely, then restores it into the data
directory, which must be empty or not exist: a restore never overwrites
data. The restored relay keeps the relay id of the backup, so clients
accept it. Start it afterwards with 'kintsugi-relay serve --data DIR'.`,
		OnUsageError: usageError("restore"),
		Flags: []cli.Flag{
			dataFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			storeFlag(""),
		},
		Action: func(c *cli.Context) error {
			if err := notForPostgres(c, "restore"); err != nil {
				return err
			}
			if c.NArg() != 1 {
				return &cliError{msg: "restore takes one argument, the backup file", hint: "for example: kintsugi-relay restore --data /var/lib/kintsugi-relay relay.backup", code: exitUsage}
			}
			return restore(c, stdout, stderr, c.String("data"), c.Args().First(), c.Bool("json"))
		},
	}
}

type restoreResult struct {
	Data          string    `json:"data"`
	RelayID       string    `json:"relay_id"`
	Journals      int       `json:"journals"`
	Blobs         int       `json:"blobs"`
	BackupCreated time.Time `json:"backup_created"`
	BackupBytes   int64     `json:"backup_bytes"`
}

func restore(c *cli.Context, stdout, stderr io.Writer, data, file string, asJSON bool) error {
	f, err := os.Open(file)
	if err != nil {
		hint := "give the path of a file kintsugi-relay backup wrote"
		if errors.Is(err, fs.ErrPermission) {
			hint = "run the restore as a user who can read the backup file, or as root (sudo)"
		}
		return &cliError{msg: fmt.Sprintf("cannot open the backup: %v", rootPathError(err)), hint: hint, code: exitFailure, err: err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if ents, err := os.ReadDir(data); err == nil && len(ents) > 0 {
		if server.UnfinishedRestore(data) {
			return interruptedRestore(data, nil)
		}
		if relayAnswers(data) {
			return &cliError{msg: fmt.Sprintf("a relay is running on %s", data), hint: "a restore never overwrites data: restore into a new, empty directory, then point the relay at it", code: exitFailure}
		}
		return &cliError{msg: fmt.Sprintf("the data directory %s is not empty", data),
			hint: "a restore never overwrites data: restore into a new or empty directory, or stop the relay, move this directory aside (keep it until the restored relay works) and restore", code: exitFailure}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &cliError{msg: fmt.Sprintf("cannot use %s as the data directory: %v", data, rootPathError(err)), code: exitFailure, err: err}
	}
	prog := newProgress(stderr, "restore")
	res, err := server.RestoreBadger(c.Context, data, f, fi.Size(), server.RestoreOptions{Progress: prog.phase})
	if err != nil {
		switch {
		case errors.Is(err, server.ErrBadBackup):
			return &cliError{msg: fmt.Sprintf("%s is %v", file, err), hint: "nothing was restored; use another backup", code: exitFailure, err: err}
		case errors.Is(err, server.ErrNotEmpty):
			return &cliError{msg: fmt.Sprintf("the data directory %s is not empty", data), hint: "restore into a new or empty directory", code: exitFailure, err: err}
		case c.Context.Err() != nil:
			return &cliError{msg: "the restore was interrupted; nothing was left in the data directory", code: exitFailure, err: err}
		}
		return &cliError{msg: fmt.Sprintf("the restore failed: %v", err), hint: "nothing was left in the data directory", code: exitFailure, err: err}
	}
	out := restoreResult{Data: data, RelayID: res.RelayID, Journals: res.Journals, Blobs: res.Blobs, BackupCreated: res.Backup.Created, BackupBytes: res.Backup.Bytes}
	if asJSON {
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintf(stdout, "kintsugi-relay: restored relay %s into %s: %s, %s, as of %s\n",
		orNone(res.RelayID), data, count(res.Journals, "journal"), count(res.Blobs, "blob"), res.Backup.Created.Local().Format("2006-01-02 15:04:05 MST"))
	if os.Geteuid() == 0 {
		fmt.Fprintln(stdout, "kintsugi-relay: the restored files belong to root: give them to the relay's user before starting it (systemd's StateDirectory= does that on start)")
	}
	fmt.Fprintf(stdout, "kintsugi-relay: start it with: kintsugi-relay serve --data %s\n", data)
	return nil
}

// relayAnswers reports whether a relay answers on data's admin socket.
func relayAnswers(data string) bool {
	c, err := net.DialTimeout("unix", filepath.Join(data, server.AdminSocketName), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// countingWriter counts bytes and reports them.
type countingWriter struct {
	w        io.Writer
	n        int64
	progress func(int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.progress(c.n)
	return n, err
}

// progress prints a line to w at most every progressEvery once work has
// lasted that long, so a long backup or restore shows it is alive and a
// short one prints nothing extra.
type progress struct {
	w     io.Writer
	what  string
	mu    sync.Mutex
	start time.Time
	last  time.Time
}

const progressEvery = 2 * time.Second

func newProgress(w io.Writer, what string) *progress {
	now := time.Now()
	return &progress{w: w, what: what, start: now, last: now}
}

func (p *progress) due() bool {
	now := time.Now()
	if now.Sub(p.last) < progressEvery {
		return false
	}
	p.last = now
	return true
}

func (p *progress) bytes(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.due() {
		fmt.Fprintf(p.w, "kintsugi-relay: %s: %s so far\n", p.what, humanBytes(n))
	}
}

func (p *progress) phase(phase string, done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.due() || total <= 0 {
		return
	}
	verb := map[string]string{"verify": "checking the backup", "load": "loading"}[phase]
	fmt.Fprintf(p.w, "kintsugi-relay: %s: %s, %d%% of %s\n", p.what, verb, done*100/total, humanBytes(total))
}

// humanBytes says n bytes for people: "512 B", "1.5 MiB", "40 GiB".
func humanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

func orNone(id string) string {
	if id == "" {
		return "(no id yet)"
	}
	return id
}

// rootPathError strips *fs.PathError for a shorter message when the path
// is already in it.
func rootPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
