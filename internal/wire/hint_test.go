package wire

import "testing"

// While a history streams, a short frame after each store read does not
// shrink the buffer below the full frame that follows it; a live push, far
// smaller, does at once.
func TestNextHint(t *testing.T) {
	const full, short, push = 256 << 10, 150 << 10, 1500
	hint := nextHint(512, full)
	if hint < full {
		t.Fatalf("after a full frame: %d", hint)
	}
	if hint = nextHint(hint, short); hint < full {
		t.Fatalf("after a short history frame the hint is %d, under a full frame's %d", hint, full)
	}
	if hint = nextHint(hint, full); hint < full {
		t.Fatalf("after the next full frame: %d", hint)
	}
	if hint = nextHint(hint, push); hint > 2*push {
		t.Fatalf("after a live push of %d bytes the hint is still %d", push, hint)
	}
}
