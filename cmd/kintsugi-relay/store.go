package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/pgstore"
)

// The relay's store: Badger in --data (the default), or PostgreSQL at
// --store.

const catStore = "PostgreSQL store (instead of --data):"

// storeFlag is the --store flag shared by serve, migrate, backup and
// restore.
func storeFlag(category string) *cli.StringFlag {
	return &cli.StringFlag{Name: "store", EnvVars: env("store"), Category: category,
		Usage: "keep the relay's data in PostgreSQL at this `URL` (postgres://user@host:5432/db?sslmode=verify-full) instead of a Badger directory; put the password in the environment variable or a pgpass file rather than on the command line"}
}

// storeFlags are serve's flags for the PostgreSQL store.
func storeFlags() []cli.Flag {
	return []cli.Flag{
		storeFlag(catStore),
		&cli.IntFlag{Name: "store-pool-size", Value: pgstore.DefaultMaxConns, EnvVars: env("store-pool-size"), Category: catStore,
			Usage: "connections the relay keeps open to PostgreSQL, at most (or pool_max_conns in the URL)"},
		&cli.DurationFlag{Name: "store-statement-timeout", Value: pgstore.DefaultStatementTimeout, EnvVars: env("store-statement-timeout"), Category: catStore,
			Usage: "longest one statement may run in PostgreSQL; a request that takes longer fails and the client retries (0: no limit)"},
		&cli.BoolFlag{Name: "migrate", EnvVars: env("migrate"), Category: catStore,
			Usage: "bring the database's schema up to this relay's version before serving (as 'kintsugi-relay migrate' does)"},
	}
}

// badgerOnlyFlags are serve's flags that only the Badger store uses.
var badgerOnlyFlags = []string{"data", "gc-interval", "gc-discard-ratio"}

// storeOptions is how serve opens its store.
type storeOptions struct {
	url              string // "": Badger in the data directory
	poolSize         int32
	statementTimeout time.Duration
	migrate          bool
	ignored          []string // Badger-only flags set with --store, for the log
}

// storeOptionsFrom reads serve's store flags.
func storeOptionsFrom(c *cli.Context) (storeOptions, error) {
	o := storeOptions{url: strings.TrimSpace(c.String("store")), migrate: c.Bool("migrate")}
	if o.url == "" {
		for _, name := range []string{"store-pool-size", "store-statement-timeout", "migrate"} {
			if c.IsSet(name) {
				return o, usageErr("--%s is for the PostgreSQL store, which --store chooses", name)
			}
		}
		return o, nil
	}
	if err := checkStoreURL(o.url); err != nil {
		return o, err
	}
	// Unset, the URL's pool_max_conns applies, or the default.
	if c.IsSet("store-pool-size") {
		n := c.Int("store-pool-size")
		if n < 1 || n > 10000 {
			return o, usageErr("--store-pool-size must be a whole number from 1 to 10000, not %d", n)
		}
		o.poolSize = int32(n)
	}
	switch d := c.Duration("store-statement-timeout"); {
	case d < 0:
		return o, usageErr("--store-statement-timeout must be a duration such as 30s, or 0 for no limit, not %s", d)
	case d == 0:
		o.statementTimeout = -1 // pgstore: no bound
	default:
		o.statementTimeout = d
	}
	// The packaged unit and image set KINTSUGI_RELAY_DATA, so a Badger
	// flag alongside --store is not an error; the log names it.
	for _, name := range badgerOnlyFlags {
		if c.IsSet(name) {
			o.ignored = append(o.ignored, "--"+name)
		}
	}
	return o, nil
}

// checkStoreURL checks that --store looks like a PostgreSQL URL.
func checkStoreURL(u string) error {
	if !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		return &cliError{msg: "--store takes a postgres:// URL", hint: "for example postgres://kintsugi@db.example.org:5432/kintsugi?sslmode=verify-full; without --store the relay keeps its data in a Badger directory (--data)", code: exitUsage}
	}
	return nil
}

// openedStore is the store serve opened.
type openedStore struct {
	server.Store
	badger *server.BadgerStore // nil for PostgreSQL
	where  string              // where the data is, for the start line
}

// openStore opens the store serve was asked for.
func openStore(ctx context.Context, opts *serveOptions, logger *slog.Logger) (*openedStore, error) {
	so := opts.store
	if so.url == "" {
		data := opts.data
		if err := os.MkdirAll(data, 0o700); err != nil {
			return nil, &cliError{msg: fmt.Sprintf("cannot create the data directory: %v", err), hint: "pick a writable --data directory", code: exitFailure, err: err}
		}
		st, err := server.OpenBadgerWith(data, server.BadgerConfig{Logger: logger, MemoryBudget: opts.memory.Budget})
		if err != nil {
			if errors.Is(err, server.ErrUnfinishedRestore) {
				return nil, interruptedRestore(data, err)
			}
			if server.IsLocked(err) {
				return nil, &cliError{msg: fmt.Sprintf("the data directory %s is locked", data), hint: "another kintsugi-relay is using it; stop that relay or pick another --data", code: exitFailure, err: err}
			}
			return nil, &cliError{msg: fmt.Sprintf("cannot open the relay's data in %s: %v", data, err), code: exitFailure, err: err}
		}
		return &openedStore{Store: st, badger: st, where: data}, nil
	}
	where := pgstore.Where(so.url)
	if len(so.ignored) > 0 {
		logger.Warn("these options are for the Badger store and are not used with --store", "options", strings.Join(so.ignored, " "))
	}
	st, err := pgstore.Open(ctx, so.url, pgstore.Config{MaxConns: so.poolSize, StatementTimeout: so.statementTimeout, Migrate: so.migrate, Logger: logger})
	if err != nil {
		return nil, pgError(err, where, so.migrate)
	}
	return &openedStore{Store: st, where: "PostgreSQL at " + where}, nil
}

// pgError words an error of opening or migrating the database at where.
func pgError(err error, where string, migrating bool) error {
	var se *pgstore.SchemaError
	switch {
	case errors.As(err, &se) && se.Newer():
		return &cliError{msg: fmt.Sprintf("%s: %v", where, se),
			hint: "a newer kintsugi-relay has migrated this database; run that version (or a newer one) here too", code: exitFailure, err: err}
	case errors.As(err, &se):
		return &cliError{msg: fmt.Sprintf("%s: %v", where, se),
			hint: "run 'kintsugi-relay migrate --store URL' once (with this relay's URL), or start the relay with --migrate", code: exitFailure, err: err}
	case migrating && pgstore.NeedsPrivilege(err):
		return &cliError{msg: fmt.Sprintf("cannot migrate the database at %s: %v", where, err),
			hint: "the database user needs the right to create tables; nothing half-done is left (each migration is one transaction)", code: exitFailure, err: err}
	}
	return &cliError{msg: fmt.Sprintf("cannot use the database at %s: %v", where, err),
		hint: "check --store (or KINTSUGI_RELAY_STORE): host, port, database, user and password (PGPASSWORD or a pgpass file work too), sslmode", code: exitFailure, err: err}
}

func migrateCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "bring a PostgreSQL database's schema up to this relay's version",
		Description: `Applies the schema migrations this relay knows and the database lacks,
each in a transaction of its own, and says what it did. Relays that are
running may keep running: every migration so far only adds. Two migrates
at once take turns. A database whose schema is newer than this relay
knows is left alone. 'kintsugi-relay serve --migrate' does the same at
start.`,
		OnUsageError: usageError("migrate"),
		Flags: []cli.Flag{
			storeFlag(""),
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		Action: func(c *cli.Context) error {
			url, err := storeArg(c, "give the database with --store", "migrate needs the database")
			if err != nil {
				return err
			}
			where := pgstore.Where(url)
			res, err := pgstore.Migrate(c.Context, url)
			if err != nil {
				return pgError(err, where, true)
			}
			if c.Bool("json") {
				if res.Applied == nil {
					res.Applied = []string{}
				}
				return json.NewEncoder(stdout).Encode(struct {
					Database string   `json:"database"`
					From     int      `json:"from"`
					To       int      `json:"to"`
					Applied  []string `json:"applied"`
				}{where, res.From, res.To, res.Applied})
			}
			if len(res.Applied) == 0 {
				fmt.Fprintf(stdout, "kintsugi-relay: the schema of %s is at version %d, this relay's own; nothing to do\n", where, res.To)
				return nil
			}
			fmt.Fprintf(stdout, "kintsugi-relay: migrated %s from schema version %d to %d (%s)\n", where, res.From, res.To, strings.Join(res.Applied, ", "))
			return nil
		},
	}
}

// storeArg returns the --store URL of a command that takes no arguments
// and needs a database: usage says how to give the command what it
// needs, missing what to say when --store is not given.
func storeArg(c *cli.Context, usage, missing string) (string, error) {
	if c.NArg() > 0 {
		return "", &cliError{msg: fmt.Sprintf("%s takes no arguments, got %q", c.Command.Name, c.Args().First()), hint: usage, code: exitUsage}
	}
	url := strings.TrimSpace(c.String("store"))
	if url == "" {
		return "", &cliError{msg: missing, hint: "give its URL with --store (or KINTSUGI_RELAY_STORE)", code: exitUsage}
	}
	return url, checkStoreURL(url)
}

// notForPostgres refuses a Badger-only command when the relay's data is
// in PostgreSQL (--store, or KINTSUGI_RELAY_STORE).
func notForPostgres(c *cli.Context, cmd string) error {
	if strings.TrimSpace(c.String("store")) == "" {
		return nil
	}
	hint := "back up PostgreSQL with its own tools, pg_dump or continuous archiving"
	if cmd == "restore" {
		hint = "restore PostgreSQL with its own tools, pg_restore or point-in-time recovery; to move a relay's Badger directory into PostgreSQL, use kintsugi-relay copy"
	}
	return &cliError{msg: fmt.Sprintf("%s is for the Badger store; this relay's data is in PostgreSQL (--store or KINTSUGI_RELAY_STORE)", cmd),
		hint: hint + " (docs/operations.md, \"PostgreSQL\"); unset KINTSUGI_RELAY_STORE to use a Badger directory", code: exitUsage}
}
