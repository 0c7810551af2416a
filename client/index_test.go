package client

import (
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// TestBlobIndexPrefixCollision: ids that share their first 8 bytes (which
// only crafted blobs would) are still told apart, and the first blob seen
// with an id keeps it.
func TestBlobIndexPrefixCollision(t *testing.T) {
	t.Parallel()
	id := func(last byte) protocol.BlobID {
		var b protocol.BlobID
		copy(b[:8], "samepref")
		b[31] = last
		return b
	}
	var order []*stored
	x := newBlobIndex(true, 0)
	add := func(chain protocol.BlobID) *stored {
		s := &stored{ID: id(byte(100 + len(order))), Chain: chain, Order: len(order)}
		order = append(order, s)
		x.add(order, s)
		return s
	}
	a := add(id(1))
	b := add(id(2))
	add(id(1)) // a second blob with a's chain: a stays
	c := add(id(3))
	for _, tc := range []struct {
		id   protocol.BlobID
		want *stored
	}{{id(1), a}, {id(2), b}, {id(3), c}, {id(4), nil}, {protocol.BlobID{1}, nil}} {
		if got := x.get(order, tc.id); got != tc.want {
			t.Errorf("get(%x…%x) = %v, want %v", tc.id[:8], tc.id[31], got, tc.want)
		}
	}
	byID := newBlobIndex(false, 0)
	for _, s := range order {
		byID.add(order, s)
	}
	for _, s := range order {
		if got := byID.get(order, s.ID); got != s {
			t.Errorf("by blob id %x: got %v, want %v", s.ID[31], got, s)
		}
	}
}
