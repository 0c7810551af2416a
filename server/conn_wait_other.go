//go:build !linux

package server

import (
	"errors"
	"net"
	"syscall"
)

// waitSocketReadable reports false where peeking is not implemented: the
// reader then waits inside ReadMessage.
func waitSocketReadable(net.Conn) bool { return false }

// unsentBytes reports false where the socket's send queue cannot be
// asked: progress is then the bytes written (see conn.progress).
func unsentBytes(net.Conn) (int64, bool) { return 0, false }

// rawConn returns nil where writeOnce is not implemented: pushes are then
// always queued for the writer.
func rawConn(net.Conn) syscall.RawConn { return nil }

// writeOnce is never called where rawConn returns nil.
func writeOnce(syscall.RawConn, []byte, []byte) (int, error) {
	return 0, errors.New("not implemented")
}
