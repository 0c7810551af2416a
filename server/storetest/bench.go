package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
)

// BenchAppendDurable measures durable appends of 1 KiB blobs to the
// store open returns (each Append returns only after a durable commit) by
// concurrent writers, either each on its own journal (spread) or eight to
// a journal (shared), as sub-benchmarks writers=N/layout. Appends made at
// the same time share one commit (group commit). The writer count is
// exact: b.SetParallelism is set so that RunParallel starts that many
// goroutines on GOMAXPROCS CPUs. Appends per second are 1e9 / ns/op.
// open gets a fresh, empty database for each sub-benchmark; the store is
// closed after it.
func BenchAppendDurable(b *testing.B, open func(b *testing.B) server.Store) {
	for _, writers := range []int{1, 8, 64} {
		for _, perJournal := range []int{1, 8} {
			if perJournal > writers {
				continue
			}
			layout := "spread"
			if perJournal > 1 {
				layout = "shared"
			}
			b.Run(fmt.Sprintf("writers=%d/%s", writers, layout), func(b *testing.B) {
				st := open(b)
				defer st.Close()
				benchAppend(b, st, writers, perJournal)
			})
		}
	}
}

func benchAppend(b *testing.B, st server.Store, writers, perJournal int) {
	ctx := context.Background()
	journals := make([]protocol.JournalID, (writers+perJournal-1)/perJournal)
	for i := range journals {
		rand.Read(journals[i][:])
		if err := st.CreateJournal(ctx, journals[i], [32]byte{1}); err != nil {
			b.Fatal(err)
		}
	}
	appendOne := func(j protocol.JournalID) {
		h := protocol.Header{Kind: protocol.KindJoin, Journal: j, Seq: 1}
		blob := h.Marshal(nil)
		blob = append(blob, make([]byte, 1024-len(blob))...)
		rand.Read(blob[protocol.HeaderSize:])
		if _, _, _, err := st.Append(ctx, j, blob); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(1024)
	if writers == 1 {
		for b.Loop() {
			appendOne(journals[0])
		}
		return
	}
	procs := runtime.GOMAXPROCS(0)
	if writers%procs != 0 {
		b.Fatalf("%d writers do not divide over %d CPUs; run with -cpu 1 or 2", writers, procs)
	}
	var next atomic.Uint64
	b.SetParallelism(writers / procs)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := next.Add(1) - 1
		j := journals[w/uint64(perJournal)%uint64(len(journals))]
		for pb.Next() {
			appendOne(j)
		}
	})
}
