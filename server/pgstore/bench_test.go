package pgstore_test

import (
	"context"
	"testing"

	"github.com/kintsugi-journal/kintsugi/internal/pgtest"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/pgstore"
	"github.com/kintsugi-journal/kintsugi/server/storetest"
)

// BenchmarkAppendDurable is server's benchmark of the same name
// (storetest.BenchAppendDurable) on PostgreSQL, through one store: one
// relay.
func BenchmarkAppendDurable(b *testing.B) {
	storetest.BenchAppendDurable(b, func(b *testing.B) server.Store {
		db := pgtest.NewDatabase(b)
		cfg := testConfig
		cfg.Migrate = true
		st, err := pgstore.Open(context.Background(), db, cfg)
		if err != nil {
			b.Fatal(err)
		}
		return st
	})
}
