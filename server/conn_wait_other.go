//go:build !linux

package server

import "net"

// waitSocketReadable reports false where peeking is not implemented: the
// reader then waits inside ReadMessage.
func waitSocketReadable(net.Conn) bool { return false }

// unsentBytes reports false where the socket's send queue cannot be
// asked: progress is then the bytes written (see conn.progress).
func unsentBytes(net.Conn) (int64, bool) { return 0, false }
