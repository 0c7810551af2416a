package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// Before authenticating, a peer may send one small message: a large frame
// ends the connection instead of being buffered.
func TestLargeFrameBeforeAuth(t *testing.T) {
	srv := servertest.NewServer(t)
	c := servertest.DialRaw(t, srv.WebSocketURL())
	big := `{"type":"auth","version":1,"device":"` + strings.Repeat("A", 64<<10) + `"}`
	_ = c.WS.SetWriteDeadline(time.Now().Add(servertest.ReadTimeout))
	_ = c.WS.WriteMessage(websocket.TextMessage, []byte(big))
	for {
		_, err := c.Read()
		if err == nil {
			continue
		}
		if code := closeCode(err); code != -1 && code != websocket.CloseMessageTooBig {
			t.Fatalf("closed with %v, want %d", err, websocket.CloseMessageTooBig)
		}
		break
	}
	// And a normal device still gets in.
	servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
}
