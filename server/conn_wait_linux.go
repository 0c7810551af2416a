package server

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
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
	// Read calls the function; when it says "not yet" the runtime parks
	// until the socket is readable and calls it again. Peeking first
	// (rather than waiting for a readiness event) catches data that
	// arrived earlier and is still unread, whose event the runtime has
	// already cleared. Once woken by an event, the data is there: no
	// second peek.
	parked := false
	_ = rc.Read(func(fd uintptr) bool {
		if parked {
			return true
		}
		parked = true
		return peek(fd)
	})
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

// unsentBytes returns how many bytes written to nc the peer has not yet
// acknowledged (the socket's send queue, SIOCOUTQ), or false where that
// cannot be asked.
func unsentBytes(nc net.Conn) (int64, bool) {
	if tc, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = tc.NetConn() // under TLS
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || ierr != nil {
		return 0, false
	}
	return int64(n), true
}

// rawConn returns nc's descriptor for writeOnce, or nil if it has none
// (a TLS connection, a pipe).
func rawConn(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// writeOnce writes a then b to rc with one non-blocking writev(2) and
// returns how many bytes the socket took: 0, with no error, when it had
// no room. It never waits for the socket to become writable.
func writeOnce(rc syscall.RawConn, a, b []byte) (int, error) {
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Writev(int(fd), [][]byte{a, b})
			if werr != unix.EINTR {
				break
			}
		}
		return true // done, written or not: never park here
	})
	if err != nil {
		return 0, err
	}
	if werr == unix.EAGAIN {
		return 0, nil
	}
	if werr != nil {
		return 0, werr
	}
	return n, nil
}
