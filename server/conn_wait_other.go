//go:build !linux

package server

import "net"

// waitSocketReadable reports false where peeking is not implemented: the
// reader then waits inside ReadMessage.
func waitSocketReadable(net.Conn) bool { return false }
