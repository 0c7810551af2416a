package crypto

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// The worked values printed in docs/protocol.md (§10, §19) are what the
// code computes: a reader checking a client against them is not misled.
func TestProtocolDocValues(t *testing.T) {
	b, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	// The document wraps lines; compare with runs of white space as one.
	space := regexp.MustCompile(`\s+`)
	doc := space.ReplaceAllString(string(b), " ")
	has := func(what, want string) {
		t.Helper()
		if !strings.Contains(doc, space.ReplaceAllString(want, " ")) {
			t.Errorf("docs/protocol.md does not give %s as the code computes it:\n%s", what, want)
		}
	}
	seq := func(from, n int) []byte {
		out := make([]byte, n)
		for i := range out {
			out[i] = byte(from + i)
		}
		return out
	}
	fill := func(c byte, n int) []byte { return []byte(strings.Repeat(string([]byte{c}), n)) }

	has("the AuthMessage", hex.Dump(protocol.AuthMessage("3f9c2a7d51e04b8c9a6e1d2f7b3c4a58", seq(0xa0, 32))))

	journal := protocol.JournalID([]byte("kintsugi-journal"))
	for _, link := range []bool{false, true} {
		code := protocol.InviteCode{Relay: "https://relay.example.org", Journal: journal, Secret: [32]byte(seq(0x40, 32)), Link: link}
		derive := DeriveInvite
		if link {
			derive = DeriveLink
		}
		k, err := derive(code.Secret)
		if err != nil {
			t.Fatal(err)
		}
		has(fmt.Sprintf("the invite (link %v)", link), fmt.Sprintf("code %s token %x auth hash %x key %x", code.String(), k.Token, k.AuthHash, k.Key))
	}

	id := KeyID([32]byte(seq(9, 32)))
	has("the key id", fmt.Sprintf("Key id of the box key `09 0a … 28`: `%x`", id))

	author := ed25519.NewKeyFromSeed(fill(0x11, 32)).Public().(ed25519.PublicKey)
	h := protocol.Header{Kind: protocol.KindEntry, Journal: journal, Author: [32]byte(author), Seq: 2, Prev: sha256.Sum256([]byte("previous blob"))}
	hdr := h.Marshal(nil)
	has("the header example", hex.Dump(hdr))
	blob := func(slot byte) []byte {
		b := append(h.Marshal(nil), fill(1, 24)...)
		b = append(b, 1)
		b = append(b, fill(slot, 112)...)
		return append(b, fill(3, 32)...)
	}
	one, other := blob(2), blob(4)
	if protocol.ChainID(one) != protocol.ChainID(other) {
		t.Error("the slot changes the chain id")
	}
	has("the blob id and chain id", fmt.Sprintf("blob id %s chain id %s", protocol.IDOf(one), protocol.ChainID(one)))
	has("the blob id of the other copy", fmt.Sprintf("has blob id `%s` and the same chain id", protocol.IDOf(other)))

	group := func(n int) string { // 65532 → "65 532", 1024 → "1024", as the document spells numbers
		s := fmt.Sprint(n)
		for i := len(s) - 3; i > 0 && len(s) > 4; i -= 3 {
			s = s[:i] + " " + s[i:]
		}
		return s
	}
	var sizes []string
	for _, n := range []int{0, 252, 253, 508, 509, 65532, 65533, 100000, 524288} {
		sizes = append(sizes, group(n)+" → "+group(PaddedSize(n)))
	}
	has("the padded sizes", "Padded sizes: "+strings.Join(sizes, ", ")+".")

	has("the safety number", "`"+SafetyNumber(fill(1, 32), fill(2, 32))+"`")
}
