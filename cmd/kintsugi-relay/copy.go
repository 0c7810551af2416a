package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/pgstore"
)

// copy: a Badger data directory into an empty PostgreSQL database.

func copyCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "copy",
		Usage: "copy a stopped relay's Badger data directory into an empty PostgreSQL database",
		Description: `Copies everything the relay keeps in its data directory (--data) into
the PostgreSQL database at --store: the relay id, journals with their
members and removed devices, every journal's log at the same sequence
numbers (retracted entries stay purged), and pending invites. Relays
started on the database afterwards are the same relay to clients.

Stop the relay first: its directory is locked while it runs. The
database must hold no relay data yet; its schema is brought up to this
relay's version first. The copy is one transaction: if it fails or is
interrupted, the database is left as it was. The data directory is only
read; keep it until the relays on PostgreSQL serve.`,
		OnUsageError: usageError("copy"),
		Flags: []cli.Flag{
			dataFlag(),
			storeFlag(""),
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		Action: func(c *cli.Context) error {
			url, err := storeArg(c, "give the data directory with --data and the database with --store", "copy needs the database to copy into")
			if err != nil {
				return err
			}
			return copyToPostgres(c, stdout, c.String("data"), url, c.Bool("json"))
		},
	}
}

type copyResult struct {
	Data     string  `json:"data"`
	Database string  `json:"database"`
	RelayID  string  `json:"relay_id"`
	Journals int     `json:"journals"`
	Blobs    int     `json:"blobs"`
	Purged   int     `json:"purged"`
	Bytes    int64   `json:"bytes"`
	Members  int     `json:"members"`
	Removed  int     `json:"removed_devices"`
	Invites  int     `json:"invites"`
	Seconds  float64 `json:"seconds"`
}

func copyToPostgres(c *cli.Context, stdout io.Writer, data, url string, asJSON bool) error {
	ctx := c.Context
	start := time.Now()
	where := pgstore.Where(url)
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		return &cliError{msg: fmt.Sprintf("there is no relay data directory at %s", data), hint: "pass the relay's data directory with --data (or KINTSUGI_RELAY_DATA)", code: exitFailure, err: err}
	}
	src, err := server.OpenBadgerForBackup(data, nil)
	if err != nil {
		err = offlineOpenError(data, err, &cliError{msg: fmt.Sprintf("a relay is using %s", data), hint: "stop the relay first: the copy must see everything it stored, and nothing may change meanwhile"})
		var ce *cliError
		if errors.As(err, &ce) {
			return err
		}
		return &cliError{msg: fmt.Sprintf("cannot open the relay's data in %s: %v", data, err), code: exitFailure, err: err}
	}
	defer src.Close()
	if _, err := pgstore.Migrate(ctx, url); err != nil {
		return pgError(err, where, true)
	}
	res, err := pgstore.Import(ctx, url, func(sink server.ExportSink) error { return src.Export(ctx, sink) })
	switch {
	case errors.Is(err, pgstore.ErrNotEmpty):
		return &cliError{msg: fmt.Sprintf("%s already holds a relay's data; nothing was copied", where),
			hint: "copy into a new, empty database (createdb), which no relay has served from yet", code: exitFailure, err: err}
	case err != nil && ctx.Err() != nil:
		return &cliError{msg: "the copy was interrupted; nothing was copied", code: exitFailure, err: err}
	case err != nil:
		var se *pgstore.SchemaError
		if errors.As(err, &se) {
			return pgError(err, where, false)
		}
		return &cliError{msg: fmt.Sprintf("the copy failed: %v", err), hint: "nothing was copied: the database is as it was; the data directory was only read", code: exitFailure, err: err}
	}
	out := copyResult{Data: data, Database: where, RelayID: res.RelayID, Journals: res.Journals, Blobs: res.Blobs, Purged: res.Purged,
		Bytes: res.Bytes, Members: res.Members, Removed: res.Removed, Invites: res.Invites, Seconds: time.Since(start).Seconds()}
	if asJSON {
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintf(stdout, "kintsugi-relay: copied %s to %s: %s, %s (%s purged, %s), %s, %s, %s\n",
		data, where, count(res.Journals, "journal"), count(res.Blobs, "blob"), fmt.Sprint(res.Purged), humanBytes(res.Bytes),
		count(res.Members, "member device"), count(res.Removed, "removed device"), count(res.Invites, "pending invite"))
	if res.RelayID != "" {
		fmt.Fprintf(stdout, "kintsugi-relay: relay id %s: start the relays with --store and the same address, and clients go on as before\n", res.RelayID)
	}
	return nil
}

// count is n and its noun, plural when n is not 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
