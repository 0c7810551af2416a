package client

import (
	"encoding/binary"
	"encoding/hex"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// blobIndex finds a stored blob by a 32-byte id: its blob id, or its chain
// id (the first blob seen with a chain id wins). It maps the id's first 8
// bytes to the blob's position in the log order, so a journal of 100k
// blobs is indexed in a map of small fixed-size values that the garbage
// collector never scans; the rare id whose first 8 bytes another id
// already has (only a crafted blob would) goes in a second, exact map.
type blobIndex struct {
	chain bool             // keyed by chain id; else by blob id
	first map[uint64]int32 // id prefix → Order of the blob
	more  map[protocol.BlobID]*stored
}

func newBlobIndex(chain bool, size int) blobIndex {
	return blobIndex{chain: chain, first: make(map[uint64]int32, size)}
}

func (x *blobIndex) idOf(s *stored) protocol.BlobID {
	if x.chain {
		return s.Chain
	}
	return s.ID
}

// parseChainID parses a blob or chain id written in hex, as entries name
// each other (Ref, Held, Purges) and the state names join blobs.
func parseChainID(s string) (protocol.BlobID, bool) {
	var c protocol.BlobID
	if len(s) != hex.EncodedLen(len(c)) {
		return c, false // an empty id would decode to zeros
	}
	if _, err := hex.Decode(c[:], []byte(s)); err != nil {
		return protocol.BlobID{}, false
	}
	return c, true
}

func idPrefix(id protocol.BlobID) uint64 { return binary.LittleEndian.Uint64(id[:8]) }

// get returns the blob indexed under id, or nil. order is the journal's
// log order, which the index points into.
func (x *blobIndex) get(order []*stored, id protocol.BlobID) *stored {
	i, ok := x.first[idPrefix(id)]
	if !ok {
		return nil
	}
	if s := order[i]; x.idOf(s) == id {
		return s
	}
	return x.more[id]
}

// add indexes s (whose Order is its position in order) unless a blob is
// already indexed under its id.
func (x *blobIndex) add(order []*stored, s *stored) {
	id := x.idOf(s)
	p := idPrefix(id)
	i, ok := x.first[p]
	switch {
	case !ok:
		x.first[p] = int32(s.Order)
	case x.idOf(order[i]) == id:
	default:
		if x.more == nil {
			x.more = make(map[protocol.BlobID]*stored)
		}
		if _, ok := x.more[id]; !ok {
			x.more[id] = s
		}
	}
}
