package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/server"
)

func checkCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "read every stored blob and check that it is whole, while the relay runs or not",
		Description: `Reads every blob the relay keeps in its segment files (blobs/ in the
data directory) and checks it against its id, the SHA-256 the relay
stored with it. A blob that does not match, or that its segment no longer
holds, is damaged: check names it (journal and entry number, never its
contents) and exits with status 1. The relay never serves a damaged blob;
it logs it when asked for it. If a relay is running on the data directory
the check runs inside it, through its admin socket, while it keeps
serving; otherwise the directory is read directly (read-only, unless the
last relay on it was killed: then it is first repaired exactly as
starting the relay would).
Blobs stored by relays older than segment files are kept inside Badger,
which checksums them itself; they are counted, not read.`,
		OnUsageError: usageError("check"),
		Flags: []cli.Flag{
			dataFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			storeFlag(""),
		},
		Action: func(c *cli.Context) error {
			if err := notForPostgres(c, "check"); err != nil {
				return err
			}
			if c.NArg() > 0 {
				return &cliError{msg: fmt.Sprintf("check takes no arguments, got %q", c.Args().First()), hint: "pass the data directory with --data", code: exitUsage}
			}
			return check(c, stdout, c.String("data"), c.Bool("json"))
		},
	}
}

type checkResult struct {
	Data string `json:"data"`
	server.VerifyResult
	Online bool `json:"online"` // checked by a running relay
}

func check(c *cli.Context, stdout io.Writer, data string, asJSON bool) error {
	ctx := c.Context
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		return &cliError{msg: fmt.Sprintf("there is no relay data directory at %s", data), hint: "pass the relay's data directory with --data (or KINTSUGI_RELAY_DATA)", code: exitFailure, err: err}
	}
	res := checkResult{Data: data, Online: true}
	var err error
	res.VerifyResult, err = server.AdminVerify(ctx, data)
	if errors.Is(err, server.ErrNoAdmin) {
		res.Online = false
		res.VerifyResult, err = offlineCheck(c, data)
	}
	if err != nil {
		var ce *cliError
		if errors.As(err, &ce) {
			return err
		}
		if ctx.Err() != nil {
			return &cliError{msg: "the check was interrupted", code: exitFailure, err: err}
		}
		if errors.Is(err, fs.ErrPermission) {
			return &cliError{msg: fmt.Sprintf("the check failed: %v", err), hint: "run the check as the relay's user, or as root (sudo)", code: exitFailure, err: err}
		}
		return &cliError{msg: fmt.Sprintf("the check failed: %v", err), hint: "the relay's log may say more", code: exitFailure, err: err}
	}
	if res.Damaged == nil {
		res.Damaged = []server.BlobDamage{}
	}
	if asJSON {
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "checked %s blobs in segment files", humanize.Comma(int64(res.Checked+res.DamagedCount)))
		if res.Inline > 0 {
			fmt.Fprintf(stdout, " (and counted %s kept inside Badger by an older relay)", humanize.Comma(int64(res.Inline)))
		}
		fmt.Fprintln(stdout)
		for _, d := range res.Damaged {
			fmt.Fprintf(stdout, "damaged: journal %s, entry %d: %s\n", d.Journal, d.Seq, d.Problem)
		}
		if res.DamagedCount > len(res.Damaged) {
			fmt.Fprintf(stdout, "damaged: %s more not listed\n", humanize.Comma(int64(res.DamagedCount-len(res.Damaged))))
		}
		if res.DamagedCount == 0 {
			fmt.Fprintln(stdout, "every blob is whole")
		}
	}
	if res.DamagedCount > 0 {
		return &cliError{msg: fmt.Sprintf("%s stored blobs are damaged; the relay does not serve them", humanize.Comma(int64(res.DamagedCount))),
			hint: "the disk may be failing: restore the data directory from a backup taken before the damage (kintsugi-relay restore), onto a healthy disk",
			code: exitFailure}
	}
	return nil
}

func offlineCheck(c *cli.Context, data string) (server.VerifyResult, error) {
	store, err := server.OpenBadgerForBackup(data, nil)
	if err != nil {
		return server.VerifyResult{}, offlineOpenError(data, err, &cliError{msg: fmt.Sprintf("a relay is using %s but does not answer on its admin socket", data),
			hint: "a relay older than this command cannot check itself, and neither can one whose data directory's path is too long for a socket (its log says so at start): stop it and run the check again, it then reads the directory directly"})
	}
	res, err := store.VerifyBlobs(c.Context)
	if cerr := store.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return res, err
}
