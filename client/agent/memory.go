package agent

import (
	"os"

	"golang.org/x/sys/unix"
)

// Secret is key material in a memory mapping of its own: locked against
// swapping where the system allows (mlock is best effort: RLIMIT_MEMLOCK
// may refuse it), left out of core dumps on Linux (MADV_DONTDUMP), and
// zeroed and unmapped by Wipe. When no mapping can be made it falls back
// to ordinary memory, which Wipe still zeroes.
type Secret struct {
	b      []byte // the key: the start of mapped, or ordinary memory
	mapped []byte // the whole mapping, or nil
}

// NewSecret returns an n-byte zeroed Secret.
func NewSecret(n int) *Secret {
	page := os.Getpagesize()
	size := (n + page - 1) / page * page
	m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return &Secret{b: make([]byte, n)}
	}
	unix.Mlock(m)
	dontDump(m)
	return &Secret{b: m[:n:n], mapped: m}
}

// Bytes returns the key's memory; nil after Wipe.
func (s *Secret) Bytes() []byte { return s.b }

// Wipe zeroes the key and releases its memory. It is idempotent.
func (s *Secret) Wipe() {
	clear(s.b)
	if s.mapped != nil {
		clear(s.mapped)
		unix.Munlock(s.mapped)
		unix.Munmap(s.mapped)
	}
	s.b, s.mapped = nil, nil
}

// Harden makes this process keep its memory to itself, as far as the
// system allows without privileges: no core dumps (RLIMIT_CORE 0) and, on
// Linux, not dumpable (PR_SET_DUMPABLE 0), which also stops processes of
// the same user from attaching a debugger or reading /proc/PID/mem.
// Errors are ignored: this is defence in depth, not the boundary.
func Harden() {
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	harden()
}
