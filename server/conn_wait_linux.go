package server

import (
	"net"
	"syscall"
)

// waitSocketReadable parks until nc has data to read (or an error, or its
// read deadline passes), without consuming any. It reports false if it
// cannot wait on nc (a TLS connection, say).
func waitSocketReadable(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	// Read calls peek; when it says "not yet" the runtime parks until the
	// socket is readable and calls it again. Peeking (rather than
	// trusting a readiness event) also catches data that arrived earlier
	// and is still unread.
	_ = rc.Read(peek)
	return true
}

// peek reports whether the socket has data (or an error, or end of
// stream) ready, without consuming it.
func peek(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err != syscall.EINTR {
			return err != syscall.EAGAIN
		}
	}
}
