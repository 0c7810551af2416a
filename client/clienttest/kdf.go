package clienttest

import (
	"testing"

	"github.com/kintsugi-journal/kintsugi/crypto"
)

// CheapKDFMemoryKiB is the argon2id memory that test binaries importing
// this package derive key-file keys with, in place of the protocol's floor
// of 8 MiB ([crypto.MinKDF]).
//
// Key derivation was most of the CPU time of the CLI's tests: its scripts
// run about 650 commands that each unlock a key file in a new process, and
// each paid 8 ms of hashing and 2,048 page faults for memory that process
// had never touched (the package went from 71 to 38 s of CPU). Only the
// derivation gets cheaper: key files are still sealed, checked and opened
// as usual, and the bounds themselves are tested by package crypto, whose
// tests keep the real floor.
//
// The init below lowers the floor and [crypto.TestingKDF] only in a binary
// built by `go test`, so a real kintsugi or relay that came to import this
// package would still refuse such key files.
const CheapKDFMemoryKiB = 64

func init() {
	if testing.Testing() {
		crypto.MinKDF.MemoryKiB = CheapKDFMemoryKiB
		crypto.TestingKDF = crypto.MinKDF
	}
}
