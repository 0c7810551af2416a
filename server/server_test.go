package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kintsugi-journal/kintsugi/protocol"
	"github.com/kintsugi-journal/kintsugi/server"
	"github.com/kintsugi-journal/kintsugi/server/servertest"
)

// wantError fails unless the reply is an Error with code.
func wantError(t *testing.T, r servertest.Reply, code protocol.Code) *protocol.Error {
	t.Helper()
	e := r.Err
	if e == nil {
		t.Fatalf("got ok %+v, want error %s", r.OK, code)
	}
	if e.Code != code {
		t.Fatalf("got error %s (%q), want %s", e.Code, e.Message, code)
	}
	if e.Message == "" || strings.ToLower(e.Message[:1]) != e.Message[:1] {
		t.Errorf("error message %q should be a lowercase sentence", e.Message)
	}
	return e
}

// readError reads frames until a connection-level Error and returns it,
// then checks that the relay closes the connection.
func readClosingError(t *testing.T, c *servertest.Client) (*protocol.Error, error) {
	t.Helper()
	data := c.ReadFrame()
	var e protocol.Error
	if err := protocol.DecodeAs(data, &e); err != nil || e.Type != protocol.TypeError {
		t.Fatalf("want an error message, got %s", data)
	}
	_, err := c.Read()
	if err == nil {
		t.Fatalf("relay did not close the connection after %s", e.Code)
	}
	return &e, err
}

func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// sendOversize writes a frame over the relay's read limit and reads until
// the connection ends. The relay may close before the whole frame is
// written; either way the connection ends, with 1009 if the close frame
// gets through.
func sendOversize(t *testing.T, c *servertest.Client, frame []byte) {
	t.Helper()
	_ = c.WS.SetWriteDeadline(time.Now().Add(servertest.ReadTimeout))
	_ = c.WS.WriteMessage(websocket.TextMessage, frame)
	for {
		_, err := c.Read()
		if err == nil {
			continue
		}
		if code := closeCode(err); code != -1 && code != websocket.CloseMessageTooBig {
			t.Fatalf("closed with %v, want %d", err, websocket.CloseMessageTooBig)
		}
		return
	}
}

// setup starts a relay, connects a device speaking protocol version 1
// and creates a journal.
func setup(t *testing.T) (*servertest.Server, *servertest.Client, *servertest.Chain) {
	t.Helper()
	return setupVersion(t, protocol.Version1)
}

// setupVersion is setup with a device speaking protocol version v.
func setupVersion(t *testing.T, v int) (*servertest.Server, *servertest.Client, *servertest.Chain) {
	t.Helper()
	srv := servertest.NewServer(t)
	c := servertest.DialVersion(t, srv.WebSocketURL(), servertest.NewKey(t), v)
	j := servertest.NewJournalID()
	servertest.MustOK(t, c.Create(j))
	return srv, c, &servertest.Chain{Journal: j, Author: c.Device}
}

// forVersions runs f, in parallel subtests, once on each protocol
// version the relay speaks: what a connection does must not depend on
// how its messages are framed.
func forVersions(t *testing.T, f func(t *testing.T, v int)) {
	t.Helper()
	for _, v := range []int{protocol.Version1, protocol.Version} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			t.Parallel()
			f(t, v)
		})
	}
}

// blobsIn counts the blobs a frame pushes: one for a JSON blob message,
// each entry of a binary blobs frame (version 2).
func blobsIn(t *testing.T, binary bool, data []byte) int {
	t.Helper()
	if binary {
		blobs, err := protocol.DecodeBlobs(data, nil)
		if err != nil {
			t.Fatal(err)
		}
		return len(blobs)
	}
	if env, _ := protocol.Decode(data); env.Type == protocol.TypeBlob {
		return 1
	}
	return 0
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServer(t)
	resp, err := http.Get(srv.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServer(t)
	tests := []struct {
		name   string
		header http.Header
		sub    []string
		want   int
	}{
		{"no subprotocol", nil, nil, http.StatusBadRequest},
		{"other subprotocol", nil, []string{"kintsugi.v0"}, http.StatusBadRequest},
		{"foreign origin", http.Header{"Origin": {"https://evil.example"}}, []string{protocol.Subprotocol}, http.StatusForbidden},
		{"own origin, not listed", http.Header{"Origin": {srv.URL()}}, []string{protocol.Subprotocol}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := websocket.Dialer{Subprotocols: tt.sub, HandshakeTimeout: 10 * time.Second}
			ws, resp, err := d.Dial(srv.WebSocketURL(), tt.header)
			if ws != nil {
				ws.Close()
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServer(t)
	key := servertest.NewKey(t)
	pub := key.Public().(ed25519.PublicKey)
	other := servertest.NewKey(t)

	// A signature recorded on one connection, for the replay case.
	first := servertest.DialRaw(t, srv.WebSocketURL())
	recorded := ed25519.Sign(key, protocol.AuthMessage(first.Hello.RelayID, first.Hello.Challenge))
	if err := first.Authenticate(key); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		// msg builds the first message from the hello; nil means the
		// correct Auth.
		msg       func(h protocol.Hello) any
		wantCode  protocol.Code
		wantClose int
	}{
		{name: "success"},
		{
			name: "wrong signature",
			msg: func(h protocol.Hello) any {
				return &protocol.Auth{Type: protocol.TypeAuth, Version: h.Version, Device: pub,
					Signature: ed25519.Sign(other, protocol.AuthMessage(h.RelayID, h.Challenge))}
			},
			wantCode: protocol.CodeAuthFailed, wantClose: websocket.ClosePolicyViolation,
		},
		{
			name: "signature for another relay",
			msg: func(h protocol.Hello) any {
				return &protocol.Auth{Type: protocol.TypeAuth, Version: h.Version, Device: pub,
					Signature: ed25519.Sign(key, protocol.AuthMessage("another-relay", h.Challenge))}
			},
			wantCode: protocol.CodeAuthFailed, wantClose: websocket.ClosePolicyViolation,
		},
		{
			name: "replayed signature from another connection",
			msg: func(h protocol.Hello) any {
				return &protocol.Auth{Type: protocol.TypeAuth, Version: h.Version, Device: pub, Signature: recorded}
			},
			wantCode: protocol.CodeAuthFailed, wantClose: websocket.ClosePolicyViolation,
		},
		{
			name: "short device key",
			msg: func(h protocol.Hello) any {
				return &protocol.Auth{Type: protocol.TypeAuth, Version: h.Version, Device: pub[:31], Signature: make([]byte, 64)}
			},
			wantCode: protocol.CodeAuthFailed, wantClose: websocket.ClosePolicyViolation,
		},
		{
			name: "wrong version",
			msg: func(h protocol.Hello) any {
				return &protocol.Auth{Type: protocol.TypeAuth, Version: h.Version + 1, Device: pub,
					Signature: ed25519.Sign(key, protocol.AuthMessage(h.RelayID, h.Challenge))}
			},
			wantCode: protocol.CodeBadVersion, wantClose: websocket.ClosePolicyViolation,
		},
		{
			name: "request before auth",
			msg: func(protocol.Hello) any {
				return &protocol.Create{Type: protocol.TypeCreate, ID: 7, Journal: servertest.NewJournalID()}
			},
			wantCode: protocol.CodeAuthRequired, wantClose: websocket.ClosePolicyViolation,
		},
		{
			name:     "not json",
			msg:      func(protocol.Hello) any { return json("{nope") },
			wantCode: protocol.CodeMalformed, wantClose: websocket.CloseProtocolError,
		},
	}
	for _, v := range []int{protocol.Version1, protocol.Version} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("v%d/%s", v, tt.name), func(t *testing.T) {
				c := servertest.DialRawVersion(t, srv.WebSocketURL(), v)
				if c.Version != v || c.Hello.Version != v || len(c.Hello.Challenge) != protocol.ChallengeSize || c.Hello.RelayID != srv.Relay().RelayID() {
					t.Fatalf("bad hello %+v", c.Hello)
				}
				if bytes.Equal(c.Hello.Challenge, first.Hello.Challenge) {
					t.Fatal("challenge reused across connections")
				}
				if tt.msg == nil {
					if err := c.Authenticate(key); err != nil {
						t.Fatal(err)
					}
					servertest.MustOK(t, c.Create(servertest.NewJournalID()))
					return
				}
				if raw, ok := tt.msg(c.Hello).(json); ok {
					c.SendFrame([]byte(raw))
				} else {
					c.Send(tt.msg(c.Hello))
				}
				e, err := readClosingError(t, c)
				if e.Code != tt.wantCode {
					t.Fatalf("code %s (%q), want %s", e.Code, e.Message, tt.wantCode)
				}
				if got := closeCode(err); got != tt.wantClose {
					t.Fatalf("close %v, want code %d", err, tt.wantClose)
				}
			})
		}
	}
}

type json string

func TestCreate(t *testing.T) {
	t.Parallel()
	srv, c, ch := setup(t)
	wantError(t, c.Create(ch.Journal), protocol.CodeExists)
	// Another device cannot take the journal over either.
	d := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	wantError(t, d.Create(ch.Journal), protocol.CodeExists)
	wantError(t, d.Create(protocol.JournalID{}), protocol.CodeInvalid)
	servertest.MustOK(t, d.Create(servertest.NewJournalID()))
}

func TestPutRefusals(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, v int) {
		srv, c, ch := setupVersion(t, v)
		stranger := servertest.DialVersion(t, srv.WebSocketURL(), servertest.NewKey(t), v)
		otherJournal := servertest.NewJournalID()
		servertest.MustOK(t, c.Create(otherJournal))
		good := ch.Next("first")

		truncated := good[:protocol.HeaderSize+10]
		badVersion := bytes.Clone(good)
		badVersion[0] = 9
		badKind := bytes.Clone(good)
		badKind[1] = 77
		zeroSeq := servertest.JoinBlob(ch.Journal, c.Device, 0, protocol.BlobID{}, nil)
		strayPrev := servertest.JoinBlob(ch.Journal, c.Device, 1, protocol.BlobID{1}, nil)

		tests := []struct {
			name    string
			client  *servertest.Client
			journal protocol.JournalID
			blob    []byte
			code    protocol.Code
			msg     string // substring of the message
		}{
			{"non-member", stranger, ch.Journal, servertest.JoinBlob(ch.Journal, stranger.Device, 1, protocol.BlobID{}, nil), protocol.CodeNotMember, "not a member"},
			{"empty blob", c, ch.Journal, nil, protocol.CodeInvalid, "shorter than a header"},
			{"truncated join", c, ch.Journal, truncated, protocol.CodeInvalid, "not a join"},
			{"bad version", c, ch.Journal, badVersion, protocol.CodeInvalid, "version 9"},
			{"unknown kind", c, ch.Journal, badKind, protocol.CodeInvalid, "unknown kind"},
			{"sequence zero", c, ch.Journal, zeroSeq, protocol.CodeInvalid, "sequence number 0"},
			{"prev on first blob", c, ch.Journal, strayPrev, protocol.CodeInvalid, "previous-blob link"},
			{"header names another journal", c, otherJournal, good, protocol.CodeInvalid, "blob belongs to another journal"},
			// Store-free checks come first, so this is invalid, not not-member.
			{"author is another device", stranger, ch.Journal, good, protocol.CodeInvalid, "author"},
			{"zero journal", c, protocol.JournalID{}, good, protocol.CodeInvalid, "blob belongs to another journal"},
			{"over max blob size", c, ch.Journal, append(bytes.Clone(good), make([]byte, protocol.MaxBlobSize)...), protocol.CodeTooLarge, "at most"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := wantError(t, tt.client.Put(tt.journal, tt.blob), tt.code)
				if !strings.Contains(e.Message, tt.msg) {
					t.Errorf("message %q does not mention %q", e.Message, tt.msg)
				}
			})
		}

		// A member putting a blob whose header names another author.
		invite(t, c, ch.Journal, stranger)
		e := wantError(t, stranger.Put(ch.Journal, good), protocol.CodeInvalid)
		if !strings.Contains(e.Message, "author") {
			t.Errorf("message %q does not mention the author", e.Message)
		}

		// Every refusal left the connection open and nothing was stored.
		ok := servertest.MustOK(t, c.Put(ch.Journal, good))
		if ok.Seq != 1 || ok.Duplicate {
			t.Fatalf("first accepted put: %+v", ok)
		}
	})
}

// invite makes d a member of j through an invite from c.
func invite(t *testing.T, c *servertest.Client, j protocol.JournalID, d *servertest.Client) {
	t.Helper()
	var token [32]byte
	copy(token[:], servertest.NewKey(t).Seed())
	servertest.MustOK(t, c.Invite(j, token, time.Now().Add(time.Hour), []byte("sealed packet")))
	ok := servertest.MustOK(t, d.Redeem(token))
	if ok.Journal == nil || *ok.Journal != j {
		t.Fatalf("redeem answered journal %v, want %v", ok.Journal, j)
	}
}

func TestPutSequenceAndDuplicates(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, v int) {
		_, c, ch := setupVersion(t, v)
		var blobs [][]byte
		for i := range 20 {
			b := ch.Next(fmt.Sprint("entry ", i))
			blobs = append(blobs, b)
			ok := servertest.MustOK(t, c.Put(ch.Journal, b))
			id := sha256.Sum256(b)
			if ok.Seq != uint64(i+1) || ok.Duplicate || !bytes.Equal(ok.BlobID, id[:]) {
				t.Fatalf("put %d: %+v", i, ok)
			}
		}
		for _, i := range []int{0, 7, 19} {
			ok := servertest.MustOK(t, c.Put(ch.Journal, blobs[i]))
			id := sha256.Sum256(blobs[i])
			if ok.Seq != uint64(i+1) || !ok.Duplicate || !bytes.Equal(ok.BlobID, id[:]) {
				t.Fatalf("duplicate put of %d: %+v", i, ok)
			}
		}
		ok := servertest.MustOK(t, c.Put(ch.Journal, ch.Next("after duplicates")))
		if ok.Seq != 21 {
			t.Fatalf("seq after duplicates = %d, want 21", ok.Seq)
		}
	})
}

func TestConcurrentPutsAreContiguous(t *testing.T) {
	t.Parallel()
	srv, owner, ch := setup(t)
	const writers, each = 4, 15
	clients := []*servertest.Client{owner}
	for range writers - 1 {
		d := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
		servertest.MustOK(t, addDevice(owner, ch.Journal, d.Device)) // a journal has two people, but any number of devices
		clients = append(clients, d)
	}
	// Clients are single-goroutine; give each its own goroutine and report
	// failures through a channel to the test goroutine.
	var mu sync.Mutex
	seqs := map[uint64]protocol.BlobID{}
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chain := servertest.Chain{Journal: ch.Journal, Author: c.Device}
			for i := range each {
				b := chain.Next(fmt.Sprint(i))
				id := c.NextID()
				data, _ := protocol.Marshal(&protocol.Put{Type: protocol.TypePut, ID: id, Journal: ch.Journal, Blob: b})
				if err := c.WS.WriteMessage(websocket.TextMessage, data); err != nil {
					errs <- err
					return
				}
				_, reply, err := c.WS.ReadMessage()
				if err != nil {
					errs <- err
					return
				}
				var ok protocol.OK
				if err := protocol.DecodeAs(reply, &ok); err != nil || ok.Type != protocol.TypeOK || ok.ID != id {
					errs <- fmt.Errorf("put reply %s", reply)
					return
				}
				mu.Lock()
				if _, dup := seqs[ok.Seq]; dup {
					errs <- fmt.Errorf("seq %d assigned twice", ok.Seq)
				}
				seqs[ok.Seq] = protocol.IDOf(b)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for s := uint64(1); s <= writers*each; s++ {
		if _, ok := seqs[s]; !ok {
			t.Fatalf("seq %d missing; got %d seqs", s, len(seqs))
		}
	}
	// A subscriber sees exactly that log.
	owner.Subscribe(ch.Journal, 0)
	for s := uint64(1); s <= writers*each; s++ {
		b := owner.NextBlob()
		if b.Seq != s || protocol.IDOf(b.Blob) != seqs[s] {
			t.Fatalf("blob %d: seq %d", s, b.Seq)
		}
	}
	if cu := owner.NextCaughtUp(); cu.Seq != writers*each {
		t.Fatalf("caught up at %d", cu.Seq)
	}
}

func TestSubscribe(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, v int) {
		srv, owner, ch := setupVersion(t, v)
		var blobs [][]byte
		for i := range 3 {
			b := ch.Next(fmt.Sprint("history ", i))
			blobs = append(blobs, b)
			servertest.MustOK(t, owner.Put(ch.Journal, b))
		}
		partner := servertest.DialVersion(t, srv.WebSocketURL(), servertest.NewKey(t), v)
		invite(t, owner, ch.Journal, partner)

		// Replay, then caught_up, then live.
		sub := servertest.DialVersion(t, srv.WebSocketURL(), owner.Key, v)
		servertest.MustOK(t, sub.Subscribe(ch.Journal, 0))
		for i, want := range blobs {
			b := sub.NextBlob()
			if b.Seq != uint64(i+1) || b.Journal != ch.Journal || !bytes.Equal(b.Blob, want) {
				t.Fatalf("replayed blob %d: seq %d", i, b.Seq)
			}
		}
		if cu := sub.NextCaughtUp(); cu.Seq != 3 || cu.Journal != ch.Journal {
			t.Fatalf("caught up %+v", cu)
		}
		pchain := servertest.Chain{Journal: ch.Journal, Author: partner.Device}
		live := pchain.Next("live")
		servertest.MustOK(t, partner.Put(ch.Journal, live))
		if b := sub.NextBlob(); b.Seq != 4 || !bytes.Equal(b.Blob, live) {
			t.Fatalf("live blob seq %d", b.Seq)
		}
		// A duplicate put pushes nothing; the next new blob is next.
		servertest.MustOK(t, partner.Put(ch.Journal, live))
		live2 := pchain.Next("live 2")
		servertest.MustOK(t, partner.Put(ch.Journal, live2))
		if b := sub.NextBlob(); b.Seq != 5 || !bytes.Equal(b.Blob, live2) {
			t.Fatalf("second live blob seq %d", b.Seq)
		}

		// The subscriber's own puts come back too, after their OK.
		own := ch.Next("own")
		servertest.MustOK(t, sub.Put(ch.Journal, own))
		if b := sub.NextBlob(); b.Seq != 6 || !bytes.Equal(b.Blob, own) {
			t.Fatalf("own blob seq %d", b.Seq)
		}

		// Same journal again on the same connection.
		wantError(t, sub.Subscribe(ch.Journal, 0), protocol.CodeInvalid)

		// Resume from a cursor; an empty remainder still gets caught_up.
		resume := servertest.DialVersion(t, srv.WebSocketURL(), partner.Key, v)
		servertest.MustOK(t, resume.Subscribe(ch.Journal, 4))
		for _, want := range []uint64{5, 6} {
			if b := resume.NextBlob(); b.Seq != want {
				t.Fatalf("resumed blob seq %d, want %d", b.Seq, want)
			}
		}
		if cu := resume.NextCaughtUp(); cu.Seq != 6 {
			t.Fatalf("resumed caught up at %d", cu.Seq)
		}
		atEnd := servertest.DialVersion(t, srv.WebSocketURL(), partner.Key, v)
		servertest.MustOK(t, atEnd.Subscribe(ch.Journal, 6))
		if cu := atEnd.NextCaughtUp(); cu.Seq != 6 {
			t.Fatalf("caught up at %d", cu.Seq)
		}

		// Refusals.
		wantError(t, atEnd.Subscribe(servertest.NewJournalID(), 0), protocol.CodeNotMember)
		stranger := servertest.DialVersion(t, srv.WebSocketURL(), servertest.NewKey(t), v)
		wantError(t, stranger.Subscribe(ch.Journal, 0), protocol.CodeNotMember)
		wantError(t, stranger.Subscribe(protocol.JournalID{}, 0), protocol.CodeInvalid)
		fresh := servertest.DialVersion(t, srv.WebSocketURL(), owner.Key, v)
		wantError(t, fresh.Subscribe(ch.Journal, 7), protocol.CodeInvalid)
	})
}

func TestSubscribeEmptyJournal(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, v int) {
		srv, owner, ch := setupVersion(t, v)
		servertest.MustOK(t, owner.Subscribe(ch.Journal, 0))
		if cu := owner.NextCaughtUp(); cu.Seq != 0 {
			t.Fatalf("caught up at %d", cu.Seq)
		}
		other := servertest.DialVersion(t, srv.WebSocketURL(), owner.Key, v)
		b := ch.Next("x")
		servertest.MustOK(t, other.Put(ch.Journal, b))
		if got := owner.NextBlob(); got.Seq != 1 {
			t.Fatalf("seq %d", got.Seq)
		}
	})
}

// clock is a settable Config.Now.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestInvites(t *testing.T) {
	t.Parallel()
	var clk clock
	clk.Set(time.Now())
	srv := servertest.NewServerWithConfig(t, server.Config{Now: clk.Now, InviteMaxTTL: 48 * time.Hour})
	owner := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	j := servertest.NewJournalID()
	servertest.MustOK(t, owner.Create(j))
	partner := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	third := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	token := func(b byte) [32]byte { return [32]byte{0: b, 31: b} }
	packet := bytes.Repeat([]byte{0xa5}, 200)

	// Redeem works once.
	servertest.MustOK(t, owner.Invite(j, token(1), clk.Now().Add(time.Hour), packet))
	ok := servertest.MustOK(t, partner.Redeem(token(1)))
	if ok.Journal == nil || *ok.Journal != j || !bytes.Equal(ok.Packet, packet) {
		t.Fatalf("redeem reply %+v", ok)
	}
	pchain := servertest.Chain{Journal: j, Author: partner.Device}
	servertest.MustOK(t, partner.Put(j, pchain.Next("joined")))
	e := wantError(t, third.Redeem(token(1)), protocol.CodeInviteUnknown)
	wantError(t, partner.Redeem(token(1)), protocol.CodeInviteUnknown)
	// Unknown, used and expired all get the same answer.
	unknown := wantError(t, third.Redeem(token(2)), protocol.CodeInviteUnknown)
	if unknown.Message != e.Message {
		t.Errorf("unknown invite says %q, used invite says %q", unknown.Message, e.Message)
	}

	// Expired.
	servertest.MustOK(t, owner.Invite(j, token(3), clk.Now().Add(time.Hour), packet))
	clk.Advance(time.Hour)
	expired := wantError(t, third.Redeem(token(3)), protocol.CodeInviteUnknown)
	if expired.Message != e.Message {
		t.Errorf("expired invite says %q, used invite says %q", expired.Message, e.Message)
	}
	wantError(t, third.Put(j, servertest.JoinBlob(j, third.Device, 1, protocol.BlobID{}, nil)), protocol.CodeNotMember)

	// Invite refusals.
	now := clk.Now()
	tests := []struct {
		name    string
		c       *servertest.Client
		j       protocol.JournalID
		token   [32]byte
		expires time.Time
		packet  []byte
		code    protocol.Code
	}{
		{"non-member", third, j, token(4), now.Add(time.Hour), packet, protocol.CodeNotMember},
		{"unknown journal", owner, servertest.NewJournalID(), token(4), now.Add(time.Hour), packet, protocol.CodeNotMember},
		{"expiry in the past", owner, j, token(4), now.Add(-time.Second), packet, protocol.CodeInvalid},
		{"expiry now", owner, j, token(4), now, packet, protocol.CodeInvalid},
		{"expiry past max ttl", owner, j, token(4), now.Add(49 * time.Hour), packet, protocol.CodeInvalid},
		{"empty packet", owner, j, token(4), now.Add(time.Hour), nil, protocol.CodeInvalid},
		{"packet too large", owner, j, token(4), now.Add(time.Hour), make([]byte, protocol.MaxInvitePacket+1), protocol.CodeTooLarge},
		{"same token twice", owner, j, token(3), now.Add(time.Hour), packet, protocol.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, tt.c.Invite(tt.j, tt.token, tt.expires, tt.packet), tt.code)
		})
	}
	servertest.MustOK(t, owner.Invite(j, token(4), now.Add(48*time.Hour), packet))

	// Malformed lengths.
	id := third.NextID()
	third.Send(&protocol.Redeem{Type: protocol.TypeRedeem, ID: id, Token: []byte("short")})
	wantError(t, third.Reply(id), protocol.CodeInvalid)
	id = owner.NextID()
	owner.Send(&protocol.Invite{Type: protocol.TypeInvite, ID: id, Journal: j, AuthHash: []byte{1, 2}, Expires: now.Add(time.Hour).Unix(), Packet: packet})
	wantError(t, owner.Reply(id), protocol.CodeInvalid)
}

func TestConcurrentRedeemHasOneWinner(t *testing.T) {
	t.Parallel()
	srv, owner, ch := setup(t)
	tok := [32]byte{9}
	servertest.MustOK(t, owner.Invite(ch.Journal, tok, time.Now().Add(time.Hour), []byte("p")))
	const n = 6
	var clients []*servertest.Client
	for range n {
		clients = append(clients, servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t)))
	}
	codes := make(chan string, n)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data, _ := protocol.Marshal(&protocol.Redeem{Type: protocol.TypeRedeem, ID: 1, Token: tok[:]})
			if err := c.WS.WriteMessage(websocket.TextMessage, data); err != nil {
				codes <- err.Error()
				return
			}
			_, reply, err := c.WS.ReadMessage()
			if err != nil {
				codes <- err.Error()
				return
			}
			env, _ := protocol.Decode(reply)
			if env.Type == protocol.TypeOK {
				codes <- "ok"
				return
			}
			var e protocol.Error
			_ = protocol.DecodeAs(reply, &e)
			codes <- string(e.Code)
		}()
	}
	wg.Wait()
	close(codes)
	count := map[string]int{}
	for c := range codes {
		count[c]++
	}
	if count["ok"] != 1 || count[string(protocol.CodeInviteUnknown)] != n-1 {
		t.Fatalf("redeem outcomes %v", count)
	}
}

func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	srv, c, ch := setup(t)

	// Unknown type and undecodable bodies are answered; the connection stays.
	c.SendFrame([]byte(`{"type":"teleport","id":41}`))
	wantError(t, c.Reply(41), protocol.CodeMalformed)
	c.SendFrame([]byte(`{"type":"put","id":42,"journal":"zz","blob":"AAAA"}`))
	wantError(t, c.Reply(42), protocol.CodeMalformed)
	c.SendFrame([]byte(`{"type":"put","id":43,"journal":"` + ch.Journal.String() + `","blob":"!!!"}`))
	wantError(t, c.Reply(43), protocol.CodeMalformed)
	c.SendFrame([]byte(`{"type":"auth","id":44}`))
	wantError(t, c.Reply(44), protocol.CodeInvalid)
	c.SendFrame([]byte(`{"type":"hello","id":45}`))
	wantError(t, c.Reply(45), protocol.CodeMalformed)
	servertest.MustOK(t, c.Put(ch.Journal, ch.Next("still fine")))

	// Frames that cannot be tied to a request end the connection.
	for name, frame := range map[string]string{
		"not json": `{"type":`,
		"no type":  `{"id":3}`,
		"no id":    `{"type":"create","journal":"` + servertest.NewJournalID().String() + `"}`,
		"id zero":  `{"type":"teleport","id":0}`,
	} {
		t.Run(name, func(t *testing.T) {
			d := servertest.Dial(t, srv.WebSocketURL(), c.Key)
			d.SendFrame([]byte(frame))
			e, err := readClosingError(t, d)
			if e.Code != protocol.CodeMalformed || e.ID != 0 || closeCode(err) != websocket.CloseProtocolError {
				t.Fatalf("got %+v, %v", e, err)
			}
		})
	}
	t.Run("binary frame", func(t *testing.T) {
		d := servertest.Dial(t, srv.WebSocketURL(), c.Key)
		if err := d.WS.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"create","id":1}`)); err != nil {
			t.Fatal(err)
		}
		e, err := readClosingError(t, d)
		if e.Code != protocol.CodeMalformed || closeCode(err) != websocket.CloseUnsupportedData {
			t.Fatalf("got %+v, %v", e, err)
		}
	})
}

func TestOversizeMessage(t *testing.T) {
	t.Parallel()
	srv, c, ch := setup(t)
	big := make([]byte, protocol.MaxMessageSize+1)
	copy(big, `{"type":"put","id":1,"blob":"`)
	for i := 30; i < len(big); i++ {
		big[i] = 'A'
	}
	sendOversize(t, c, big)
	// Everyone else is still served.
	d := servertest.Dial(t, srv.WebSocketURL(), c.Key)
	servertest.MustOK(t, d.Put(ch.Journal, ch.Next("after the big one")))
}

func TestSmallerMaxBlobSize(t *testing.T) {
	t.Parallel()
	srv := servertest.NewServerWithConfig(t, server.Config{MaxBlobSize: 1000})
	c := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	j := servertest.NewJournalID()
	servertest.MustOK(t, c.Create(j))
	ch := servertest.Chain{Journal: j, Author: c.Device}
	wantError(t, c.Put(j, ch.Next(strings.Repeat("x", 1000))), protocol.CodeTooLarge)
	ch = servertest.Chain{Journal: j, Author: c.Device}
	servertest.MustOK(t, c.Put(j, ch.Next(strings.Repeat("x", 100))))
}

func TestDurableAcrossRestart(t *testing.T) {
	t.Parallel()
	srv, c, ch := setup(t)
	partner := servertest.Dial(t, srv.WebSocketURL(), servertest.NewKey(t))
	invite(t, c, ch.Journal, partner)
	relayID := srv.Relay().RelayID()
	var blobs [][]byte
	for i := range 25 {
		b := ch.Next(fmt.Sprint("kept ", i))
		blobs = append(blobs, b)
		if ok := servertest.MustOK(t, c.Put(ch.Journal, b)); ok.Seq != uint64(i+1) {
			t.Fatalf("seq %d", ok.Seq)
		}
	}
	var tok [32]byte
	tok[0] = 42
	servertest.MustOK(t, c.Invite(ch.Journal, tok, time.Now().Add(time.Hour), []byte("kept packet")))

	srv.Restart()
	if srv.Relay().RelayID() != relayID {
		t.Fatalf("relay id changed across restart: %s → %s", relayID, srv.Relay().RelayID())
	}
	// The old connection was closed by the restart.
	if e, _ := readClosingError(t, c); e.Code != protocol.CodeShuttingDown {
		t.Fatalf("old connection got %s", e.Code)
	}

	p := servertest.Dial(t, srv.WebSocketURL(), partner.Key)
	servertest.MustOK(t, p.Subscribe(ch.Journal, 0))
	for i, want := range blobs {
		if b := p.NextBlob(); b.Seq != uint64(i+1) || !bytes.Equal(b.Blob, want) {
			t.Fatalf("blob %d after restart: seq %d", i, b.Seq)
		}
	}
	if cu := p.NextCaughtUp(); cu.Seq != 25 {
		t.Fatalf("caught up at %d", cu.Seq)
	}
	// Dedup and sequence state survived too, and so did the invite.
	c2 := servertest.Dial(t, srv.WebSocketURL(), c.Key)
	if ok := servertest.MustOK(t, c2.Put(ch.Journal, blobs[3])); ok.Seq != 4 || !ok.Duplicate {
		t.Fatalf("duplicate after restart: %+v", ok)
	}
	if ok := servertest.MustOK(t, c2.Put(ch.Journal, ch.Next("after restart"))); ok.Seq != 26 {
		t.Fatalf("seq after restart %d", ok.Seq)
	}
	if ok := servertest.MustOK(t, p.Redeem(tok)); string(ok.Packet) != "kept packet" {
		t.Fatalf("packet %q", ok.Packet)
	}
}

func TestCloseSendsShuttingDown(t *testing.T) {
	t.Parallel()
	srv, c, ch := setup(t)
	servertest.MustOK(t, c.Subscribe(ch.Journal, 0))
	c.NextCaughtUp()
	raw := servertest.DialRaw(t, srv.WebSocketURL()) // not yet authenticated

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Relay().Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Relay().Close(ctx); err != nil {
		t.Fatalf("second close: %v", err)
	}
	for _, cl := range []*servertest.Client{c, raw} {
		e, err := readClosingError(t, cl)
		if e.Code != protocol.CodeShuttingDown || closeCode(err) != websocket.CloseGoingAway {
			t.Fatalf("got %+v, %v", e, err)
		}
	}
	resp, err := http.Get(srv.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("healthz after close: %d", resp.StatusCode)
	}
}

// A client that stops reading is disconnected and holds up nobody else.
func TestSlowSubscriberIsDropped(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes tens of megabytes")
	}
	forVersions(t, func(t *testing.T, v int) {
		srv := servertest.NewServerWithConfig(t, server.Config{SendQueue: 2, SendTimeout: 100 * time.Millisecond})
		writer := servertest.DialVersion(t, srv.WebSocketURL(), servertest.NewKey(t), v)
		j := servertest.NewJournalID()
		servertest.MustOK(t, writer.Create(j))
		slow := servertest.DialVersion(t, srv.WebSocketURL(), writer.Key, v)
		servertest.MustOK(t, slow.Subscribe(j, 0))
		slow.NextCaughtUp()
		// slow now reads nothing while writer fills the journal with far more
		// than loopback socket buffers hold: more than the largest send and
		// receive buffers TCP may grow to here together (tcp_wmem and
		// tcp_rmem allow 4 and 32 MiB; with 24 blobs the kernel took them
		// all now and then, and the relay had no reason to drop slow).
		// Every put must still succeed.
		ch := servertest.Chain{Journal: j, Author: writer.Device}
		const n = 48
		pad := strings.Repeat("x", protocol.MaxBlobSize-protocol.HeaderSize-100)
		for i := range n {
			servertest.MustOK(t, writer.Put(j, ch.Next(fmt.Sprint(i, pad))))
		}
		live := servertest.DialVersion(t, srv.WebSocketURL(), writer.Key, v)
		servertest.MustOK(t, live.Subscribe(j, n-1))
		if b := live.NextBlob(); b.Seq != n {
			t.Fatalf("seq %d", b.Seq)
		}
		// The slow client gets what fitted in the buffers, then the end.
		got := 0
		for {
			binary, data, err := slow.ReadMessage()
			if err != nil {
				// 1006 means the socket dropped before the close frame could
				// get through the full buffers.
				if code := closeCode(err); code != -1 && code != websocket.ClosePolicyViolation && code != websocket.CloseAbnormalClosure {
					t.Fatalf("closed with %v", err)
				}
				break
			}
			got += blobsIn(t, binary, data)
		}
		if got >= n {
			t.Fatalf("slow client received all %d blobs; it should have been dropped", got)
		}
		t.Logf("slow client received %d of %d blobs before the relay dropped it", got, n)
	})
}
