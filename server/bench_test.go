package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// BenchmarkAppendDurable measures durable appends of ~1 KiB blobs to the
// badger store (each Append returns only after a synced commit), with
// writers spread over 64 journals. Run with -cpu to vary parallelism;
// b.SetParallelism sets the writers per CPU.
func BenchmarkAppendDurable(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			st, err := OpenBadger(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			journals := make([]protocol.JournalID, 64)
			for i := range journals {
				rand.Read(journals[i][:])
				if err := st.CreateJournal(ctx, journals[i], [32]byte{1}); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Uint64
			b.SetParallelism(max(1, writers/2))
			b.SetBytes(1024)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := next.Add(1)
				j := journals[w%uint64(len(journals))]
				for pb.Next() {
					h := protocol.Header{Kind: protocol.KindJoin, Journal: j, Seq: 1}
					blob := h.Marshal(nil)
					blob = append(blob, make([]byte, 1024-len(blob))...)
					rand.Read(blob[protocol.HeaderSize:])
					if _, _, _, err := st.Append(ctx, j, blob); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
