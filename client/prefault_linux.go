//go:build linux

package client

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// prefault asks the kernel to back n bytes at p with memory now, in one
// call, instead of one page fault per page as they are first
// written. Errors are ignored: it is only a hint.
func prefault(p unsafe.Pointer, n uintptr) {
	page := uintptr(unix.Getpagesize()) // not always 4 KiB (arm64, ppc64)
	start := (uintptr(p) + page - 1) &^ (page - 1)
	end := (uintptr(p) + n) &^ (page - 1)
	if end <= start {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(p, start-uintptr(p))), end-start)
	_ = unix.Madvise(b, unix.MADV_POPULATE_WRITE)
}
