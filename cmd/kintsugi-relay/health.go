package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/urfave/cli/v2"
)

func healthCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "health",
		Usage:     "check that a relay answers its health probe (for container health checks)",
		ArgsUsage: "[URL]",
		Description: `Asks the relay's /healthz and exits 0 if it answers 200, 1 otherwise.
Without a URL it asks the relay this machine would start with --listen (or
KINTSUGI_RELAY_LISTEN), on 127.0.0.1 if that address listens on all
interfaces. A URL without a path gets /healthz.`,
		OnUsageError: usageError("health"),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", EnvVars: []string{"KINTSUGI_RELAY_LISTEN"}, Usage: "the relay's listen `address`, used when no URL is given"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "give up after this long"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return &cliError{msg: "health takes at most one argument, the relay's URL", hint: "for example: kintsugi-relay health http://127.0.0.1:8080", code: exitUsage}
			}
			u, err := healthURL(c.Args().First(), c.String("listen"))
			if err != nil {
				return err
			}
			return health(c.Context, stdout, u, c.Duration("timeout"))
		},
	}
}

// healthURL builds the probe URL from an argument or a listen address.
func healthURL(arg, listen string) (string, error) {
	if arg == "" {
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			return "", &cliError{msg: fmt.Sprintf("cannot tell the relay's address from %q", listen), hint: "give the relay's URL, for example http://127.0.0.1:8080", code: exitUsage}
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		arg = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(arg)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", &cliError{msg: fmt.Sprintf("%q is not an http:// or https:// URL", arg), hint: "for example: kintsugi-relay health http://127.0.0.1:8080", code: exitUsage}
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/healthz"
	}
	return u.String(), nil
}

func health(ctx context.Context, stdout io.Writer, u string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		hint := "is it running, and listening on that address?"
		var unknown x509.UnknownAuthorityError
		var hostname x509.HostnameError
		var invalid x509.CertificateInvalidError
		if errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) {
			hint = "it answered, but this machine does not trust its certificate for that name: use the name the certificate was issued for, or trust the authority that signed it"
		}
		return &cliError{msg: fmt.Sprintf("cannot reach the relay at %s: %v", u, rootCause(unwrapURLError(err))), hint: hint, code: exitFailure, err: err}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return &cliError{msg: fmt.Sprintf("the relay at %s is not healthy: %s", u, resp.Status), code: exitFailure}
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
