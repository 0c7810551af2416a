package server

import (
	"context"
	"sync"
	"sync/atomic"
)

// maintenance tracks a [BadgerStore]'s long-running work: backups and the
// background GC loop. Such work does not hold the store's operation lock
// (a backup of a large store can take minutes and must not stall Close's
// wait or the relay), so [BadgerStore.Close] first stops it here: it
// cancels the work's context and waits for it to return, and only then
// closes the database. The zero value is ready to use.
type maintenance struct {
	mu      sync.Mutex
	stopped bool               // set by shutdown; guarded by mu
	ctx     context.Context    // parent of every job's context; created lazily, guarded by mu
	cancel  context.CancelFunc // cancels ctx; guarded by mu
	jobs    sync.WaitGroup     // one per running job
	gc      bool               // the GC loop was started; guarded by mu

	// heavy is held by a backup and by a compaction, so the two never
	// run together.
	heavy sync.Mutex

	// purges counts purges since the last compaction that removes purged
	// bytes from the store's files (see compactPurged).
	purges atomic.Int64
}

// enter registers a job. The returned context is canceled when parent is
// done or the store closes; call done when the job has finished. It fails
// with ErrStoreClosed once the store is closing.
func (m *maintenance) enter(parent context.Context) (context.Context, func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil, nil, ErrStoreClosed
	}
	if m.ctx == nil {
		m.ctx, m.cancel = context.WithCancel(context.Background())
	}
	m.jobs.Add(1)
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(m.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
		m.jobs.Done()
	}, nil
}

// shutdown cancels every job, refuses new ones and waits for the running
// ones to return. It is safe to call more than once.
func (m *maintenance) shutdown() {
	m.mu.Lock()
	m.stopped = true
	if m.cancel != nil {
		m.cancel()
	}
	m.mu.Unlock()
	m.jobs.Wait()
}
