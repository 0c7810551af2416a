package server_test

import (
	"testing"

	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/storetest"
)

// TestBadgerConformance runs the Store conformance suite against
// BadgerStore. A Badger directory is held by one store at a time, so the
// cases with two stores on one database are skipped.
func TestBadgerConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, storetest.Backend{
		Name: "Badger",
		Open: func(t *testing.T, dir string) server.Store {
			s, err := server.OpenBadger(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	})
}

// BenchmarkAppendDurable measures durable appends to the Badger store
// (storetest.BenchAppendDurable says how).
func BenchmarkAppendDurable(b *testing.B) {
	storetest.BenchAppendDurable(b, func(b *testing.B) server.Store {
		st, err := server.OpenBadger(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		return st
	})
}
