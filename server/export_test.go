package server

// HoldAppend makes p's Wait, once the append is durable (or has failed),
// call hold and return only after it does: the moment a relay has made a
// pipelined put durable but not yet answered it. For tests.
func HoldAppend(p *PendingAppend, hold func()) {
	if p.done == nil {
		return // the append did not start; Wait returns its error at once
	}
	done := p.done
	p.done = func() {
		hold()
		done()
	}
}

// DirectPushes returns how many pushed blobs s wrote from the goroutine
// that announced them rather than from a connection's writer. For tests.
func DirectPushes(s *Server) int64 { return s.directPushes.Load() }

// WritersRunning returns how many connection writer goroutines s runs
// now, and WritersStarted how many it has started. For tests.
func WritersRunning(s *Server) int64 { return s.writersRunning.Load() }
func WritersStarted(s *Server) int64 { return s.writersStarted.Load() }

// ReadBuffersLent returns how many of s's connections hold a read
// buffer. For tests.
func ReadBuffersLent(s *Server) int64 { return s.readBuffersLent.Load() }

// PumpsRunning returns how many subscription pumps s runs now. For tests.
func PumpsRunning(s *Server) int64 { return s.pumpsRunning.Load() }
