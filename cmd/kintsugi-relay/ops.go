package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kintsugi-journal/kintsugi/server"
)

// opsConfig is serve's configuration for storage maintenance and the admin
// socket.
type opsConfig struct {
	gcInterval     time.Duration // 0: no GC
	gcDiscardRatio float64
}

// opsFlags are serve's flags for opsConfig.
func opsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "gc-interval", Value: server.DefaultGCInterval, EnvVars: []string{"KINTSUGI_RELAY_GC_INTERVAL"},
			Usage: "how often to reclaim disk space (value-log GC, and compaction after purges); 0 turns it off"},
		&cli.Float64Flag{Name: "gc-discard-ratio", Value: server.DefaultGCDiscardRatio, EnvVars: []string{"KINTSUGI_RELAY_GC_DISCARD_RATIO"},
			Usage: "rewrite a value-log file once this share of it is garbage (between 0 and 1)"},
	}
}

func opsFromFlags(c *cli.Context) (opsConfig, error) {
	cfg := opsConfig{gcInterval: c.Duration("gc-interval"), gcDiscardRatio: c.Float64("gc-discard-ratio")}
	if cfg.gcInterval < 0 {
		return cfg, &cliError{msg: fmt.Sprintf("--gc-interval %s is negative", cfg.gcInterval), hint: "use a duration like 10m, or 0 to turn gc off", code: exitUsage}
	}
	if cfg.gcDiscardRatio <= 0 || cfg.gcDiscardRatio >= 1 {
		return cfg, &cliError{msg: fmt.Sprintf("--gc-discard-ratio %v is not between 0 and 1", cfg.gcDiscardRatio), hint: "0.5 is a good value", code: exitUsage}
	}
	return cfg, nil
}

// startOps starts storage GC and the admin socket for a relay serving
// store from dataDir. The returned stop closes the admin socket (ending a
// backup in flight); closing the store stops GC.
func startOps(cfg opsConfig, store *server.BadgerStore, dataDir string, logger *slog.Logger) (stop func(), err error) {
	if cfg.gcInterval > 0 {
		if err := store.StartGC(server.GCConfig{Interval: cfg.gcInterval, DiscardRatio: cfg.gcDiscardRatio, Logger: logger}); err != nil {
			return nil, err
		}
	} else {
		logger.Info("storage gc is off (--gc-interval 0): purged entries stay on disk")
	}
	admin, err := server.ListenAdmin(dataDir, store, logger)
	if err != nil {
		// The relay serves without it; only online backups need it.
		logger.Warn("no admin socket: 'kintsugi-relay backup' will not work while this relay runs", "err", err)
		return func() {}, nil
	}
	logger.Debug("admin socket ready", "path", admin.Path())
	return func() { admin.Close() }, nil
}
