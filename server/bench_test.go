package server

import (
	"context"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// BenchmarkJournalUsage measures the quota check's read of a journal's
// usage count, which every put to a relay with a quota makes, for a
// journal that has been appended to since the store opened.
func BenchmarkJournalUsage(b *testing.B) {
	st, err := OpenBadger(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	j := protocol.JournalID{1}
	if err := st.CreateJournal(ctx, j, [32]byte{1}); err != nil {
		b.Fatal(err)
	}
	h := protocol.Header{Kind: protocol.KindJoin, Journal: j, Seq: 1}
	if _, _, _, err := st.Append(ctx, j, h.Marshal(nil)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := st.JournalUsage(ctx, j); err != nil {
			b.Fatal(err)
		}
	}
}
