package client

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/gorilla/websocket"
)

// A connection that was made and then lost is said in plain words, not
// the socket's, and is still ErrUnreachable (sync later, exit 5).
func TestConnectionLostInPlainWords(t *testing.T) {
	reset := &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)}
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, c := range []struct {
		err  error
		want string
	}{
		{reset, "it closed without a word; the relay may have stopped or restarted, or the network dropped"},
		{&websocket.CloseError{Code: websocket.CloseAbnormalClosure, Text: io.ErrUnexpectedEOF.Error()}, "it closed without a word"},
		{&websocket.CloseError{Code: websocket.ClosePolicyViolation, Text: "too many requests"}, "the relay closed it: too many requests"},
		{&websocket.CloseError{Code: websocket.CloseAbnormalClosure}, "it closed without a word"},
		{io.ErrUnexpectedEOF, "it closed without a word"},
		{&websocket.CloseError{Code: websocket.CloseGoingAway, Text: "bye"}, "the relay is stopping or restarting"},
		{timeout, "the relay stopped answering"},
	} {
		got := connectionLost(c.err)
		if !errors.Is(got, ErrUnreachable) || !errors.Is(got, ErrConnectionLost) {
			t.Errorf("%v: %v is not ErrUnreachable and ErrConnectionLost", c.err, got)
		}
		msg := got.Error()
		if !strings.HasPrefix(msg, "the connection to the relay was lost (") || !strings.Contains(msg, c.want) {
			t.Errorf("%v:\n got  %q\n want %q", c.err, msg, c.want)
		}
		for _, jargon := range []string{"tcp", "1006", "websocket:", "peer", "EOF"} {
			if strings.Contains(msg, jargon) {
				t.Errorf("%v: %q says %q", c.err, msg, jargon)
			}
		}
	}
}
