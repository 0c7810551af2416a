package servertest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/internal/wire"
	"github.com/kintsugi-journal/kintsugi/protocol"
)

// DialRawWith is [DialRaw] with a dialer and request headers of the
// test's choosing (TLS settings, Origin, X-Forwarded-For). If d's
// Subprotocols are empty, the client offers protocol version 1 only. The
// connection is closed when the test ends.
func DialRawWith(t testing.TB, d *websocket.Dialer, wsURL string, h http.Header) *Client {
	t.Helper()
	return dialRaw(t, d, wsURL, h, protocol.Version1)
}

// DialRawVersion is [DialRaw] offering the protocol versions up to
// version, newest first. The relay picks one: [Client.Version].
func DialRawVersion(t testing.TB, wsURL string, version int) *Client {
	t.Helper()
	return dialRaw(t, &websocket.Dialer{}, wsURL, nil, version)
}

// DialVersion is [Dial] offering the protocol versions up to version.
func DialVersion(t testing.TB, wsURL string, key ed25519.PrivateKey, version int) *Client {
	t.Helper()
	c := DialRawVersion(t, wsURL, version)
	if err := c.Authenticate(key); err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return c
}

// SmallReceiveBuffer is the receive buffer, in bytes, of a client from
// [DialSmallBuffer].
const SmallReceiveBuffer = 64 << 10

// DialSmallBuffer is [DialVersion] for a client whose socket receive buffer
// is fixed at [SmallReceiveBuffer] (the kernel doubles it for its own
// bookkeeping) where loopback's may grow to 32 MiB here: TCP does not grow
// a buffer set before connecting. A subscriber that reads slowly or not at
// all then holds up the relay after a megabyte or two (that buffer and
// what the relay's send buffer took), so a test of slow readers needs
// that much data, not tens of megabytes. (The relay runs on Linux only,
// as its segment log does.)
func DialSmallBuffer(t testing.TB, wsURL string, key ed25519.PrivateKey, version int) *Client {
	t.Helper()
	nd := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, SmallReceiveBuffer)
		})
		return errors.Join(err, serr)
	}}
	c := dialRaw(t, &websocket.Dialer{NetDialContext: nd.DialContext}, wsURL, nil, version)
	if err := c.Authenticate(key); err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return c
}

func dialRaw(t testing.TB, d *websocket.Dialer, wsURL string, h http.Header, version int) *Client {
	t.Helper()
	wd := wire.Dialer{WebSocket: d, Header: h, MaxVersion: version, ReadLimit: 2 * protocol.MaxMessageSize, Timeout: ReadTimeout}
	conn, resp, err := wd.Dial(context.Background(), wsURL)
	if err != nil {
		t.Fatalf("dial %s: %v", wsURL, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("dial %s: status %s", wsURL, resp.Status)
	}
	c := &Client{t: t, conn: conn, WS: conn.WS, Version: conn.Version}
	t.Cleanup(func() { conn.WS.Close() })
	if err := conn.ReadHello(); err != nil {
		t.Fatalf("first message is not a hello: %v", err)
	}
	c.Hello = conn.Hello
	return c
}

// Refused tries to open a WebSocket to wsURL with headers h, offering
// subprotocols (by default protocol.Subprotocol), and expects the relay
// to refuse the upgrade. It returns the HTTP response (with its body read
// into body); the test fails if the upgrade succeeds.
func Refused(t testing.TB, wsURL string, h http.Header, subprotocols ...string) (resp *http.Response, body string) {
	t.Helper()
	if len(subprotocols) == 0 {
		subprotocols = []string{protocol.Subprotocol}
	}
	d := websocket.Dialer{Subprotocols: subprotocols, HandshakeTimeout: ReadTimeout}
	ws, resp, err := d.Dial(wsURL, h)
	if err == nil {
		ws.Close()
		t.Fatalf("dial %s: the relay accepted the connection", wsURL)
	}
	if resp == nil {
		t.Fatalf("dial %s: no HTTP response: %v", wsURL, err)
	}
	// On a refused handshake gorilla keeps up to 1 KiB of the body.
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
