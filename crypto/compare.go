package crypto

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// ChainHead is the newest item a client holds from one device: the
// device's signing key, the item's seq in that device's chain, and its
// chain id.
type ChainHead struct {
	Device [32]byte
	Seq    uint64
	Chain  [32]byte
}

// compareLabel starts the bytes [CompareCode] hashes.
const compareLabel = "kintsugi compare v1\x00"

// CompareCode returns the code two partners read to each other to check
// that they see the same journal: SHA-256 over the 20 bytes of
// "kintsugi compare v1" and a zero byte, the 16-byte journal id, the
// number of heads (4 bytes, big-endian), then each head sorted by device
// key (bytewise), as the device key (32 bytes), seq (8 bytes, big-endian)
// and chain id (32 bytes); the first 20 bytes of the hash become four
// groups of five digits (each 5-byte big-endian chunk mod 100000),
// separated by spaces. Heads must name distinct devices; the order given
// does not matter.
func CompareCode(journal [16]byte, heads []ChainHead) string {
	sorted := slices.Clone(heads)
	slices.SortFunc(sorted, func(a, b ChainHead) int { return bytes.Compare(a.Device[:], b.Device[:]) })
	h := sha256.New()
	h.Write([]byte(compareLabel))
	h.Write(journal[:])
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(sorted))))
	for _, c := range sorted {
		h.Write(c.Device[:])
		h.Write(binary.BigEndian.AppendUint64(nil, c.Seq))
		h.Write(c.Chain[:])
	}
	sum := h.Sum(nil)
	groups := make([]string, 0, 4)
	for i := 0; i < 20; i += 5 {
		var chunk [8]byte
		copy(chunk[3:], sum[i:i+5])
		groups = append(groups, fmt.Sprintf("%05d", binary.BigEndian.Uint64(chunk[:])%100000))
	}
	return strings.Join(groups, " ")
}
