//go:build !linux

package server

import "net"

// waitSocketReadable returns at once where peeking is not implemented:
// the reader then waits inside ReadMessage.
func waitSocketReadable(net.Conn) {}
