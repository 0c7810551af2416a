package pgstore

// ListenerPID returns the process id of the store's listening session
// (changes.go), 0 while it has none.
func (s *Store) ListenerPID() uint32 { return s.feed.pid.Load() }
