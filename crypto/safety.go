package crypto

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"strings"
)

// safetyIterations follows Signal's numeric fingerprints.
const safetyIterations = 5200

// SafetyNumber returns the 60-digit safety number of two identity keys, in
// the manner of Signal's numeric fingerprints: for each key, SHA-512 over
// version (0x0000) || key || "kintsugi", then 5200 rounds of
// SHA-512(previous || key); the first 30 bytes become six 5-digit groups
// (each 5-byte big-endian chunk mod 100000). The two 30-digit halves are
// ordered so both partners see the same number, and it is returned in twelve
// groups of five digits separated by spaces.
func SafetyNumber(a, b []byte) string {
	fa, fb := fingerprint(a), fingerprint(b)
	if fa > fb {
		fa, fb = fb, fa
	}
	all := fa + fb
	groups := make([]string, 0, 12)
	for i := 0; i < len(all); i += 5 {
		groups = append(groups, all[i:i+5])
	}
	return strings.Join(groups, " ")
}

func fingerprint(key []byte) string {
	h := sha512.New()
	h.Write([]byte{0, 0})
	h.Write(key)
	h.Write([]byte("kintsugi"))
	sum := h.Sum(nil)
	for range safetyIterations {
		h.Reset()
		h.Write(sum)
		h.Write(key)
		sum = h.Sum(sum[:0])
	}
	var out bytes.Buffer
	for i := 0; i < 30; i += 5 {
		var chunk [8]byte
		copy(chunk[3:], sum[i:i+5])
		fmt.Fprintf(&out, "%05d", binary.BigEndian.Uint64(chunk[:])%100000)
	}
	return out.String()
}
