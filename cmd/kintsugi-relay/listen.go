package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"

	"github.com/kintsugi-journal/kintsugi/server"
)

// listenOn opens a TCP listener for flag, with an error that says what to
// do when it cannot.
func listenOn(flag, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	ce := &cliError{msg: fmt.Sprintf("cannot listen on %s: %v", addr, rootCause(err)), code: exitFailure, err: err}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		ce.msg = fmt.Sprintf("address %s is already in use", addr)
		ce.hint = "another program is listening there; pick another " + flag + " address"
	case errors.Is(err, syscall.EACCES):
		ce.hint = "ports below 1024 need extra privileges; pick a higher port with " + flag
	default:
		ce.hint = flag + " takes host:port, for example 127.0.0.1:8080"
	}
	return nil, ce
}

// httpServer returns the http.Server for handler with the configured
// header and idle limits. (WebSocket connections leave the http.Server's
// deadlines behind at the upgrade; the relay bounds them itself.)
func (o *serveOptions) httpServer(ctx context.Context, handler http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: o.readHeaderTimeout,
		IdleTimeout:       o.idleTimeout,
		MaxHeaderBytes:    o.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}

// metricsServer is the optional private listener for /metrics.
type metricsServer struct {
	hs   *http.Server // nil when there is no metrics listener
	addr net.Addr
	done chan error
}

// startMetrics starts the metrics listener if --metrics-listen was given.
func startMetrics(ctx context.Context, logger *slog.Logger, opts *serveOptions, relay *server.Server) (*metricsServer, error) {
	m := &metricsServer{}
	if opts.metricsListen == "" {
		return m, nil
	}
	ln, err := listenOn("--metrics-listen", opts.metricsListen)
	if err != nil {
		return nil, err
	}
	m.hs = opts.httpServer(ctx, relay.MetricsHandler(), logger)
	m.done = make(chan error, 1)
	go func() { m.done <- m.hs.Serve(ln) }()
	m.addr = ln.Addr()
	return m, nil
}

// stop closes the metrics listener.
func (m *metricsServer) stop() {
	if m.hs == nil {
		return
	}
	_ = m.hs.Close()
	<-m.done
}
