package main

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/internal/version"
	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// Defaults of the HTTP server in front of the relay.
const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultIdleTimeout       = 2 * time.Minute
	defaultMaxHeaderBytes    = 16 << 10
)

// serveOptions is everything "serve" was asked to do.
type serveOptions struct {
	listen, data    string
	logFormat       string
	logLevel        string
	tlsCert, tlsKey string // both or neither
	metricsListen   string // "" serves no metrics
	memory          server.MemoryPlan
	store           storeOptions

	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int

	relay server.Config // without Store and Logger
}

// Flag categories, for "serve --help".
const (
	catServe   = "Serving:"
	catTLS     = "TLS:"
	catObserve = "Logs and metrics:"
	catLimits  = "Limits (0 turns a limit off):"
	catTimes   = "Timeouts:"
)

// env names a flag's environment variable: KINTSUGI_RELAY_ and the flag's
// name in upper case with underscores.
func env(flag string) []string {
	return []string{"KINTSUGI_RELAY_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
}

// serveFlags are the flags of "serve". Every one can also be set through
// its environment variable (see env); a flag on the command line wins.
func serveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", EnvVars: env("listen"), Category: catServe, Usage: "`address` to listen on (host:port)"},
		&cli.StringFlag{Name: "data", Value: "./relay-data", EnvVars: env("data"), Category: catServe, Usage: "`directory` for the relay's data (the Badger store; see --store for PostgreSQL)"},
		&cli.StringSliceFlag{Name: "trusted-proxy", Value: cli.NewStringSlice("127.0.0.0/8", "::1/128"), EnvVars: env("trusted-proxy"), Category: catServe,
			Usage: "`CIDR` of a reverse proxy whose X-Forwarded-For names the client (repeat or separate with commas; \"none\" trusts no one)"},
		&cli.StringSliceFlag{Name: "allow-origin", EnvVars: env("allow-origin"), Category: catServe,
			Usage: "web `origin` (scheme://host[:port]) whose pages may connect; clients that send no Origin, like the kintsugi CLI, always may (\"*\" allows every origin)"},
		&cli.StringFlag{Name: "memory-budget", Value: fmt.Sprintf("%dMiB", server.DefaultMemoryBudget>>20), EnvVars: env("memory-budget"), Category: catServe,
			Usage: "`memory` the relay process should stay within (suffixes like MiB, GiB work): sizes the store's memtables (it keeps no block cache) and the Go runtime's memory limit; at least " + humanize.IBytes(server.MinMemoryBudget)},

		&cli.StringFlag{Name: "tls-cert", EnvVars: env("tls-cert"), Category: catTLS, Usage: "PEM certificate chain `file`: serve HTTPS and WSS directly (with --tls-key)"},
		&cli.StringFlag{Name: "tls-key", EnvVars: env("tls-key"), Category: catTLS, Usage: "PEM private key `file` for --tls-cert"},

		&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: env("log-format"), Category: catObserve, Usage: "log format: text or json"},
		&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: env("log-level"), Category: catObserve, Usage: "log level: debug, info, warn or error"},
		&cli.StringFlag{Name: "metrics-listen", EnvVars: env("metrics-listen"), Category: catObserve,
			Usage: "`address` (host:port) of a separate plain-HTTP listener for /metrics, /healthz and /readyz; keep it private (default: no metrics)"},

		&cli.StringFlag{Name: "max-blob-size", Value: fmt.Sprint(server.DefaultMaxBlobSize), EnvVars: env("max-blob-size"), Category: catLimits,
			Usage: "largest blob accepted, in `bytes` (suffixes like KiB, MiB work); at most 1 MiB"},
		&cli.Float64Flag{Name: "request-rate", Value: server.DefaultRequestRate, EnvVars: env("request-rate"), Category: catLimits, Usage: "requests per second one connection may send, sustained"},
		&cli.IntFlag{Name: "request-burst", Value: server.DefaultRequestBurst, EnvVars: env("request-burst"), Category: catLimits, Usage: "requests one connection may send at once"},
		&cli.Float64Flag{Name: "journal-put-rate", Value: server.DefaultJournalPutRate, EnvVars: env("journal-put-rate"), Category: catLimits, Usage: "new blobs per second one journal may take, sustained"},
		&cli.IntFlag{Name: "journal-put-burst", Value: server.DefaultJournalPutBurst, EnvVars: env("journal-put-burst"), Category: catLimits, Usage: "new blobs one journal may take at once"},
		&cli.StringFlag{Name: "journal-quota", Value: "1GiB", EnvVars: env("journal-quota"), Category: catLimits, Usage: "`bytes` of blobs one journal may hold (suffixes like MiB, GiB work)"},
		&cli.IntFlag{Name: "max-connections", Value: server.DefaultMaxConns, EnvVars: env("max-connections"), Category: catLimits, Usage: "WebSocket connections open at once, in total"},
		&cli.IntFlag{Name: "max-unauthenticated-connections", Value: server.DefaultMaxUnauthConns, EnvVars: env("max-unauthenticated-connections"), Category: catLimits,
			Usage: "connections open at once that have not logged in yet; past it (or past --max-connections) the oldest of them is closed to make room"},
		&cli.IntFlag{Name: "max-connections-per-address", Value: server.DefaultMaxConnsPerAddress, EnvVars: env("max-connections-per-address"), Category: catLimits,
			Usage: "connections open at once from one client address (IPv4 address or IPv6 /64; loopback is not limited)"},
		&cli.IntFlag{Name: "max-subscriptions", Value: server.DefaultMaxSubscriptions, EnvVars: env("max-subscriptions"), Category: catLimits, Usage: "journals one connection may subscribe to"},
		&cli.IntFlag{Name: "max-header-bytes", Value: defaultMaxHeaderBytes, EnvVars: env("max-header-bytes"), Category: catLimits, Usage: "largest HTTP request header, in bytes"},

		&cli.DurationFlag{Name: "auth-timeout", Value: server.DefaultAuthTimeout, EnvVars: env("auth-timeout"), Category: catTimes, Usage: "time from connecting to authenticating"},
		&cli.DurationFlag{Name: "ping-interval", Value: server.DefaultPingInterval, EnvVars: env("ping-interval"), Category: catTimes, Usage: "how often to ping each connection; one silent for twice this is closed"},
		&cli.DurationFlag{Name: "handshake-timeout", Value: server.DefaultHandshakeTimeout, EnvVars: env("handshake-timeout"), Category: catTimes, Usage: "time to write the WebSocket upgrade response"},
		&cli.DurationFlag{Name: "read-header-timeout", Value: defaultReadHeaderTimeout, EnvVars: env("read-header-timeout"), Category: catTimes, Usage: "time to read an HTTP request's header"},
		&cli.DurationFlag{Name: "idle-timeout", Value: defaultIdleTimeout, EnvVars: env("idle-timeout"), Category: catTimes, Usage: "how long an idle HTTP keep-alive connection stays open (WebSockets are kept alive by pings instead)"},
	}
}

// usageErr is a bad flag value.
func usageErr(format string, args ...any) error {
	return &cliError{msg: fmt.Sprintf(format, args...), hint: "run 'kintsugi-relay serve --help' for usage", code: exitUsage}
}

// serveOptionsFrom reads and checks the flags of "serve".
func serveOptionsFrom(c *cli.Context) (*serveOptions, error) {
	var err error
	o := &serveOptions{
		listen:            c.String("listen"),
		data:              c.String("data"),
		logFormat:         c.String("log-format"),
		logLevel:          c.String("log-level"),
		tlsCert:           c.String("tls-cert"),
		tlsKey:            c.String("tls-key"),
		metricsListen:     c.String("metrics-listen"),
		readHeaderTimeout: c.Duration("read-header-timeout"),
		idleTimeout:       c.Duration("idle-timeout"),
		maxHeaderBytes:    c.Int("max-header-bytes"),
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, usageErr("--tls-cert and --tls-key go together")
	}
	if o.memory, err = memoryPlan(c.String("memory-budget")); err != nil {
		return nil, err
	}
	if o.store, err = storeOptionsFrom(c); err != nil {
		return nil, err
	}
	cfg := &o.relay
	cfg.Version = relayVersion()

	blob, err := parseBytes("max-blob-size", c.String("max-blob-size"))
	if err != nil {
		return nil, err
	}
	if blob < protocol.HeaderSize || blob > protocol.MaxBlobSize {
		return nil, usageErr("--max-blob-size must be between %d bytes and 1 MiB, not %s", protocol.HeaderSize, c.String("max-blob-size"))
	}
	cfg.MaxBlobSize = int(blob)
	quota, err := parseBytes("journal-quota", c.String("journal-quota"))
	if err != nil {
		return nil, err
	}
	cfg.JournalQuota = offIfZero(quota)

	for _, f := range []struct {
		name string
		dst  *float64
	}{{"request-rate", &cfg.RequestRate}, {"journal-put-rate", &cfg.JournalPutRate}} {
		v := c.Float64(f.name)
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, usageErr("--%s must be a number of requests per second, 0 or more, not %v", f.name, v)
		}
		*f.dst = offIfZero(v)
	}
	for _, f := range []struct {
		name string
		dst  *int
		zero bool // 0 allowed (turns the limit off)
	}{
		{"request-burst", &cfg.RequestBurst, false},
		{"journal-put-burst", &cfg.JournalPutBurst, false},
		{"max-connections", &cfg.MaxConns, true},
		{"max-unauthenticated-connections", &cfg.MaxUnauthConns, true},
		{"max-connections-per-address", &cfg.MaxConnsPerAddress, true},
		{"max-subscriptions", &cfg.MaxSubscriptions, true},
	} {
		v := c.Int(f.name)
		if v < 0 || (v == 0 && !f.zero) {
			return nil, usageErr("--%s must be a whole number above 0, not %d", f.name, v)
		}
		*f.dst = offIfZero(v)
	}
	if o.maxHeaderBytes < 1024 {
		return nil, usageErr("--max-header-bytes must be at least 1024, not %d", o.maxHeaderBytes)
	}
	for _, f := range []struct {
		name string
		dst  *time.Duration
	}{
		{"auth-timeout", &cfg.AuthTimeout},
		{"ping-interval", &cfg.PingInterval},
		{"handshake-timeout", &cfg.HandshakeTimeout},
		{"read-header-timeout", nil},
		{"idle-timeout", nil},
	} {
		d := c.Duration(f.name)
		if d <= 0 {
			return nil, usageErr("--%s must be a positive duration such as 10s, not %s", f.name, d)
		}
		if f.dst != nil {
			*f.dst = d
		}
	}

	if cfg.TrustedProxies, err = parseTrustedProxies(c.StringSlice("trusted-proxy")); err != nil {
		return nil, err
	}
	for _, origin := range c.StringSlice("allow-origin") {
		if err := server.CheckOrigin(origin); err != nil {
			return nil, usageErr("--allow-origin: %v", err)
		}
		cfg.AllowedOrigins = append(cfg.AllowedOrigins, origin)
	}
	return o, nil
}

// memoryPlan reads --memory-budget.
func memoryPlan(s string) (server.MemoryPlan, error) {
	budget, err := parseBytes("memory-budget", s)
	if err != nil {
		return server.MemoryPlan{}, err
	}
	if budget < server.MinMemoryBudget {
		return server.MemoryPlan{}, &cliError{
			msg:  fmt.Sprintf("--memory-budget must be at least %s, not %s", humanize.IBytes(server.MinMemoryBudget), s),
			hint: "storing large entries takes the relay's store about that much; give the relay a machine with at least twice its budget",
			code: exitUsage,
		}
	}
	return server.PlanMemory(budget)
}

// offIfZero maps a flag's 0 ("no limit") to the Config's -1.
func offIfZero[T int | int64 | float64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// parseBytes reads a size: a whole number of bytes, or one with a unit
// (KiB, MiB, GiB, or KB, MB, GB).
func parseBytes(flag, s string) (int64, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil || n > math.MaxInt64 {
		return 0, usageErr("--%s takes a size in bytes such as 1048576 or 512MiB, not %q", flag, s)
	}
	return int64(n), nil
}

// parseTrustedProxies reads --trusted-proxy: CIDRs or single addresses,
// or "none".
func parseTrustedProxies(list []string) ([]netip.Prefix, error) {
	out := []netip.Prefix{} // non-nil: the list given, even if empty
	for _, s := range list {
		s = strings.TrimSpace(s)
		switch {
		case s == "" || strings.EqualFold(s, "none"):
			continue
		case strings.Contains(s, "/"):
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, usageErr("--trusted-proxy takes CIDRs such as 10.0.0.0/8 or addresses such as 10.0.0.5, not %q", s)
			}
			out = append(out, p.Masked())
		default:
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, usageErr("--trusted-proxy takes CIDRs such as 10.0.0.0/8 or addresses such as 10.0.0.5, not %q", s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out, nil
}

// relayVersion is the module version the binary was built from (or set
// with -ldflags, see internal/version), as the info document reports it.
func relayVersion() string {
	if v := version.Get().Version; v != version.Devel {
		return v
	}
	return "devel"
}
