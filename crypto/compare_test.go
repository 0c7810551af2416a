package crypto

import "testing"

// The test vector in docs/protocol.md §17 ("Comparing what each partner
// holds"): an independent client must compute the same code.
func TestCompareCodeVector(t *testing.T) {
	t.Parallel()
	var journal [16]byte
	for i := range journal {
		journal[i] = byte(i)
	}
	a := ChainHead{Seq: 7}
	b := ChainHead{Seq: 300}
	for i := range 32 {
		a.Device[i], a.Chain[i] = 0xaa, byte(i)
		b.Device[i], b.Chain[i] = 0x11, 0xff-byte(i)
	}
	const want = "64381 08502 64250 39671"
	if got := CompareCode(journal, []ChainHead{a, b}); got != want {
		t.Errorf("code %q, want %q", got, want)
	}
	// The order the heads come in does not matter.
	if got := CompareCode(journal, []ChainHead{b, a}); got != want {
		t.Errorf("code for the heads the other way round %q, want %q", got, want)
	}
	// Any change to a head changes the code.
	b.Seq--
	if got := CompareCode(journal, []ChainHead{a, b}); got == want {
		t.Errorf("a different seq gives the same code")
	}
	if got := CompareCode(journal, []ChainHead{a}); got == want {
		t.Errorf("a head left out gives the same code")
	}
}
