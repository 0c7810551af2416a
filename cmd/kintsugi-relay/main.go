// Command kintsugi-relay runs a Kintsugi relay: the server two partners'
// devices connect to in order to exchange their end-to-end encrypted
// journal. The relay stores only ciphertext.
//
//	kintsugi-relay serve --listen 127.0.0.1:8080 --data ./relay-data
//	kintsugi-relay serve --store postgres://kintsugi@db.example.org/kintsugi --migrate
//
// It stops cleanly on SIGINT or SIGTERM: it stops accepting connections,
// tells connected devices it is going away, lets requests in flight finish
// and closes its store, so every blob it acknowledged is on disk.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/internal/version"
	"github.com/kintsugi-journal/kintsugi/server"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the relay could not start or failed while running
	exitUsage   = 2 // bad command line
)

// shutdownTimeout bounds a clean stop.
const shutdownTimeout = 20 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args)
	stop()
	os.Exit(report(os.Stderr, err))
}

// run runs the command line args (args[0] is the program name) with
// standard output and error.
func run(ctx context.Context, args []string) error {
	return newApp(os.Stdout, os.Stderr).RunContext(ctx, args)
}

// cliError is an error with a message for the user, an optional hint and an
// exit code.
type cliError struct {
	msg  string // lowercase, no trailing period
	hint string // optional next step
	code int
	err  error // underlying error, if any
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }

// interruptedRestore is the error for a data directory that holds a
// restore that did not finish: serve, backup, check and copy refuse it,
// and restore into it only once it is empty.
func interruptedRestore(data string, err error) *cliError {
	return &cliError{msg: fmt.Sprintf("the data directory %s holds a restore that was interrupted", data),
		hint: fmt.Sprintf("empty it (rm -r %s/*) and run kintsugi-relay restore again", data), code: exitFailure, err: err}
}

// report prints err (if any) as "kintsugi-relay: <message>" plus a hint
// line, and returns the exit code.
func report(w io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	code, hint := exitFailure, ""
	var ce *cliError
	if errors.As(err, &ce) {
		code, hint = ce.code, ce.hint
	}
	fmt.Fprintf(w, "kintsugi-relay: %s\n", err)
	if hint != "" {
		fmt.Fprintf(w, "kintsugi-relay: hint: %s\n", hint)
	}
	return code
}

func newApp(stdout, stderr io.Writer) *cli.App {
	usage := func(c *cli.Context, err error, _ bool) error {
		msg := lowerFirst(err.Error())
		// The flag package's words, in ours: "serve has no option --bogus".
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
			cmd := "kintsugi-relay"
			if c.Command != nil && c.Command.Name != "" {
				cmd = c.Command.Name
			}
			msg = fmt.Sprintf("%s has no option --%s", cmd, strings.TrimLeft(name, "-"))
		}
		return &cliError{msg: msg, hint: "`kintsugi-relay serve --help` lists the options of serve", code: exitUsage, err: err}
	}
	return &cli.App{
		Name:            "kintsugi-relay",
		Usage:           "relay for Kintsugi, the end-to-end encrypted shared journal",
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		OnUsageError:    usage,
		ExitErrHandler:  func(*cli.Context, error) {}, // main reports errors
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "version", Usage: "print the version and the commit this relay was built from", DisableDefaultText: true},
		},
		Commands: []*cli.Command{{
			Name:         "serve",
			Usage:        "run the relay",
			OnUsageError: usage,
			Flags:        append(append(serveFlags(), opsFlags()...), storeFlags()...),
			Action: func(c *cli.Context) error {
				if c.NArg() > 0 {
					return &cliError{msg: fmt.Sprintf("serve takes no arguments, got %q", c.Args().First()), hint: "use --listen and --data", code: exitUsage}
				}
				opts, err := serveOptionsFrom(c)
				if err != nil {
					return err
				}
				logger, err := newLogger(stderr, opts.logFormat, opts.logLevel)
				if err != nil {
					return err
				}
				ops, err := opsFromFlags(c)
				if err != nil {
					return err
				}
				return serve(c.Context, stdout, logger, opts, ops)
			},
		}, migrateCommand(stdout), copyCommand(stdout), backupCommand(stdout, stderr), restoreCommand(stdout, stderr), checkCommand(stdout), healthCommand(stdout)},
		Action: func(c *cli.Context) error {
			if c.Bool("version") {
				fmt.Fprintf(stdout, "kintsugi-relay %s\n", version.Get())
				return nil
			}
			if c.NArg() > 0 {
				return &cliError{msg: fmt.Sprintf("there is no command %q", c.Args().First()), hint: "`kintsugi-relay --help` lists the commands; `kintsugi-relay serve` runs the relay", code: exitUsage}
			}
			return &cliError{msg: "no command given", hint: "`kintsugi-relay serve` runs the relay; `kintsugi-relay --help` lists the other commands", code: exitUsage}
		},
	}
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, &cliError{msg: fmt.Sprintf("unknown log level %q", level), hint: "use debug, info, warn or error", code: exitUsage}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, &cliError{msg: fmt.Sprintf("unknown log format %q", format), hint: "use text or json", code: exitUsage}
}

// serve runs the relay until ctx is done, then stops it cleanly.
func serve(ctx context.Context, stdout io.Writer, logger *slog.Logger, opts *serveOptions, ops opsConfig) (err error) {
	listen, data := opts.listen, opts.data
	var certs *certReloader
	if opts.tlsCert != "" {
		if certs, err = newCertReloader(opts.tlsCert, opts.tlsKey, logger); err != nil {
			return &cliError{msg: fmt.Sprintf("cannot load the TLS certificate: %v", err), hint: "--tls-cert takes a PEM certificate chain and --tls-key its PEM private key, both readable by the relay", code: exitFailure, err: err}
		}
	}
	// The address first: a start that fails because the port is taken
	// leaves no new store behind in a data directory it would create.
	ln, err := listenOn("--listen", listen)
	if err != nil {
		return err
	}
	serving := false
	defer func() {
		if !serving {
			ln.Close()
		}
	}()
	store, err := openStore(ctx, opts, logger)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing the relay's data: %w", cerr)
		}
	}()
	goLimit := setMemoryLimit(opts.memory)
	if store.badger != nil {
		stopOps, err := startOps(ops, store.badger, data, logger)
		if err != nil {
			return err
		}
		defer stopOps() // before the store closes
	}
	cfg := opts.relay
	cfg.Store, cfg.Logger = store.Store, logger
	relay, err := server.New(cfg)
	if err != nil {
		return fmt.Errorf("cannot start the relay: %w", err)
	}
	hs := opts.httpServer(ctx, relay, logger)
	scheme := "http"
	if certs != nil {
		hs.TLSConfig = certs.tlsConfig()
		scheme = "https"
	}
	metrics, err := startMetrics(ctx, logger, opts, relay)
	if err != nil {
		return err
	}
	defer metrics.stop() // after the relay has drained: /readyz says so meanwhile
	fmt.Fprintf(stdout, "kintsugi-relay: listening on %s://%s (data in %s)\n", scheme, ln.Addr(), store.where)
	logger.Info("relay started", "addr", ln.Addr().String(), "tls", certs != nil, "relay_id", relay.RelayID(), "store", store.where,
		"memory_budget", humanize.IBytes(uint64(opts.memory.Budget)), "go_memory_limit", goLimit)
	if metrics.hs != nil {
		fmt.Fprintf(stdout, "kintsugi-relay: metrics on http://%s/metrics\n", metrics.addr)
		logger.Info("metrics listener started", "addr", metrics.addr.String())
	}

	serveErr := make(chan error, 1)
	serving = true // Serve closes ln
	go func() {
		if certs != nil {
			serveErr <- hs.ServeTLS(ln, "", "")
			return
		}
		serveErr <- hs.Serve(ln)
	}()
	select {
	case <-ctx.Done():
		logger.Info("stopping")
	case err := <-serveErr:
		// Serve returned without Shutdown: the listener failed.
		cctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		_ = relay.Close(cctx)
		return fmt.Errorf("the relay stopped serving: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Stop accepting; then close WebSockets (hijacked, so Shutdown does not
	// wait for them) and wait for requests in flight; then the store closes
	// (deferred above).
	shutErr := hs.Shutdown(sctx)
	closeErr := relay.Close(sctx)
	<-serveErr
	if err := errors.Join(shutErr, closeErr); err != nil {
		return fmt.Errorf("the relay did not stop cleanly: %w", err)
	}
	fmt.Fprintln(stdout, "kintsugi-relay: stopped")
	return nil
}

// setMemoryLimit sets the Go runtime's soft memory limit the plan suggests,
// unless the GOMEMLIMIT environment variable set one, which wins. It
// returns the limit in force, for the log.
func setMemoryLimit(plan server.MemoryPlan) string {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		return "GOMEMLIMIT=" + v
	}
	debug.SetMemoryLimit(plan.GoMemoryLimit)
	return humanize.IBytes(uint64(plan.GoMemoryLimit))
}

// rootCause strips net.OpError wrappers for a shorter message.
func rootCause(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
