package client

// ReceiveBatch is how many blobs of history a sync records at a time.
const ReceiveBatch = receiveBatch

// PreopenedOf returns how many entries j opened from what preopen found.
func PreopenedOf(j *Journal) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.preUsed
}
