package client

import "github.com/kintsugi-journal/kintsugi/protocol"

// ReceiveBatch is how many blobs of history a sync records at a time.
const ReceiveBatch = receiveBatch

// PreopenedOf returns how many entries j opened from what preopen found.
func PreopenedOf(j *Journal) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.preUsed
}

// receive records blobs as an exchange with the relay receives them.
func (j *Journal) receive(blobs ...*protocol.Blob) (int, error) {
	return (&exchange{j: j}).receive(blobs...)
}

// HeldBytes returns the bytes j holds of the blob with chain id id (hex),
// as received or written, or nil.
func HeldBytes(j *Journal, id string) []byte {
	var raw []byte
	_ = j.withLock(func() error {
		if s := j.chainOfHex(id); s != nil {
			raw = j.raw(s)
		}
		return nil
	})
	return raw
}
