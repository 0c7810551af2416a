// Package agent keeps an unlocked key file's file key in memory for a
// while, so commands need not ask for the passphrase every time, in the
// manner of ssh-agent.
//
// `kintsugi unlock` checks the passphrase, then starts a detached agent
// process ([Start] in the command, [RunChild] in the agent) that listens on
// a unix socket in the kintsugi home until it is locked ([Lock]), its time
// runs out, or its socket is removed. Commands ask it for the key ([Key])
// and fall back to the passphrase when there is no agent.
//
// # What the agent holds
//
// Only the key file's file key (see
// [github.com/kintsugi-journal/kintsugi/crypto.OpenKeyFileKey]): 32 bytes
// that open that one key file, in memory locked against swapping where the
// system allows and left out of core dumps. Never the passphrase, never the
// decrypted identity: a command reads the key file from disk and opens it
// with the key, so a re-sealed or replaced key file is never opened by an
// old session. The agent answers only processes of its own user (the
// socket is 0600 in the 0700 home, and every connection's peer uid is
// checked with SO_PEERCRED or its BSD equivalent); clients check the
// agent's uid the same way.
//
// # Files
//
//	HOME/agent.sock   the socket (0600), present while a session is unlocked
//	HOME/agent.lock   flock(2)'ed by the live agent: one agent per home
//
// # Wire format, version 1
//
// One request and one reply per connection. All integers are big-endian.
//
//	request: version (1 byte, 1) | op (1 byte)
//	reply:   version (1 byte, 1) | status (1 byte) | length (1 byte) | payload
//
//	op 'k'  key:    payload = file key (32 bytes)
//	op 's'  status: payload = expiry (8 bytes, unix milliseconds) | pid (4 bytes)
//	op 'l'  lock:   payload empty; the agent has removed its socket before it
//	                replies, then wipes the key and exits
//
//	status 0 ok, 1 unsupported version (the reply is still version 1),
//	       2 unknown op
//
// An expired agent, or one refusing another user, closes the connection
// without a reply. Handing the key from `kintsugi unlock` to the new agent
// process uses a pipe on the agent's fd 3, never argv or the environment:
//
//	version (1 byte, 1) | file key (32 bytes) | expiry (8 bytes, unix milliseconds)
//
// and the agent answers on fd 4 with one status byte (0 listening,
// 1 another agent holds the home, 2 failed) and, on failure, a message
// (no secrets), then closes it.
package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Version is the wire format version (see the package comment). History:
// 1, the first.
const Version = 1

// KeySize is the size of the key an agent holds.
const KeySize = 32

const (
	socketName = "agent.sock"
	lockName   = "agent.lock"

	opKey    = 'k'
	opStatus = 's'
	opLock   = 'l'

	statusOK         = 0
	statusBadVersion = 1
	statusBadOp      = 2

	// ioTimeout bounds every exchange with an agent, so a stuck agent
	// delays a command by at most this before it asks for the passphrase.
	ioTimeout = 3 * time.Second
)

// Errors callers branch on.
var (
	// ErrNotRunning: no agent answers in this home (none was started, it
	// was locked or expired, or its socket is stale).
	ErrNotRunning = errors.New("nothing is unlocked")
	// ErrRunning: another live agent already holds this home.
	ErrRunning = errors.New("another unlocked session is running for this home")
	// ErrOtherUser: the other end of the socket belongs to another user.
	ErrOtherUser = errors.New("the other end of the agent socket belongs to another user")
	// ErrProtocol: the agent answered something this version cannot read.
	ErrProtocol = errors.New("the unlocked session answered in a way this kintsugi does not understand")
	// ErrPathTooLong: the socket path does not fit in a unix socket address.
	ErrPathTooLong = errors.New("the kintsugi home's path is too long for an unlocked session's socket")
)

// SocketPath is where the agent for the home dir listens.
func SocketPath(dir string) string { return filepath.Join(dir, socketName) }

// maxSocketPath is the longest socket path every supported system accepts
// (sun_path is 104 bytes on the BSDs and macOS, 108 on Linux, with a NUL).
const maxSocketPath = 103

// Info is what an agent says about its session.
type Info struct {
	Expires time.Time
	PID     int
}

// Key asks the agent of home dir for its file key. It returns
// [ErrNotRunning] when no agent answers.
func Key(ctx context.Context, dir string) (*[KeySize]byte, error) {
	p, err := ask(ctx, dir, opKey)
	if err != nil {
		return nil, err
	}
	defer clear(p)
	if len(p) != KeySize {
		return nil, ErrProtocol
	}
	var k [KeySize]byte
	copy(k[:], p)
	return &k, nil
}

// Status asks the agent of home dir how long its session lasts.
func Status(ctx context.Context, dir string) (Info, error) {
	p, err := ask(ctx, dir, opStatus)
	if err != nil {
		return Info{}, err
	}
	if len(p) != 12 {
		return Info{}, ErrProtocol
	}
	return Info{
		Expires: time.UnixMilli(int64(binary.BigEndian.Uint64(p))),
		PID:     int(binary.BigEndian.Uint32(p[8:])),
	}, nil
}

// Lock tells the agent of home dir to wipe its key and exit. When it
// returns nil the socket is already gone. It returns [ErrNotRunning] when
// nothing was unlocked, and removes a stale socket left by an agent that
// died without cleaning up.
func Lock(ctx context.Context, dir string) error {
	_, err := ask(ctx, dir, opLock)
	if errors.Is(err, ErrNotRunning) {
		if _, serr := os.Lstat(SocketPath(dir)); serr == nil {
			removeStale(dir)
		}
	}
	return err
}

// ask sends one request and returns the reply's payload.
func ask(ctx context.Context, dir string, op byte) ([]byte, error) {
	c, err := dial(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline := time.Now().Add(ioTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	// Closed without a reply: expired, or not ours to ask.
	closed := func(err error) bool {
		return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	}
	if _, err := c.Write([]byte{Version, op}); closed(err) {
		return nil, ErrNotRunning
	} else if err != nil {
		return nil, fmt.Errorf("unlocked session: %w", err)
	}
	var h [3]byte
	if _, err := io.ReadFull(c, h[:]); closed(err) {
		return nil, ErrNotRunning
	} else if err != nil {
		return nil, fmt.Errorf("unlocked session: %w", err)
	}
	if h[0] != Version || h[1] != statusOK {
		return nil, ErrProtocol
	}
	p := make([]byte, h[2])
	if _, err := io.ReadFull(c, p); err != nil {
		clear(p)
		return nil, ErrProtocol
	}
	return p, nil
}

// dial connects to the agent socket of dir and checks that the agent runs
// as this user.
func dial(ctx context.Context, dir string) (*net.UnixConn, error) {
	path := SocketPath(dir)
	if len(path) > maxSocketPath {
		return nil, ErrPathTooLong
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, ErrNotRunning
		}
		return nil, fmt.Errorf("unlocked session: %w", err)
	}
	uc := c.(*net.UnixConn)
	if err := checkPeer(uc); err != nil {
		uc.Close()
		return nil, err
	}
	return uc, nil
}
