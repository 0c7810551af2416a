//go:build !linux

package client

import "unsafe"

// prefault is a hint that only Linux takes (see prefault_linux.go).
func prefault(unsafe.Pointer, uintptr) {}
