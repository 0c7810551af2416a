package crypto_test

import (
	"crypto/rand"
	"fmt"

	"github.com/kintsugi-journal/kintsugi/crypto"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// Sealing an entry from one device to two, and opening it on the other.
func ExampleSealEntry() {
	alex, _ := crypto.NewDevice(rand.Reader)
	sam, _ := crypto.NewDevice(rand.Reader)

	h := protocol.Header{Kind: protocol.KindEntry, Author: alex.SignKey(), Seq: 1}
	rand.Read(h.Journal[:])
	blob, _, err := crypto.SealEntry(rand.Reader, alex, h, [][32]byte{alex.BoxPublic, sam.BoxPublic}, []byte("I am still here."))
	if err != nil {
		panic(err)
	}

	// Sam knows Alex's box key from Alex's device certificate.
	text, err := crypto.NewKeyring(sam).OpenEntry(blob, h.Journal, alex.BoxPublic)
	fmt.Printf("%s (%v)\n", text, err)

	// Anyone else gets one opaque error.
	eve, _ := crypto.NewDevice(rand.Reader)
	_, err = crypto.NewKeyring(eve).OpenEntry(blob, h.Journal, alex.BoxPublic)
	fmt.Println(err)
	// Output:
	// I am still here. (<nil>)
	// this entry could not be opened
}
