package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The admin socket lets local tools reach a running relay, whose data
// directory Badger locks against every other process. It is a Unix socket
// named [AdminSocketName] inside the data directory, mode 0600 (and the
// directory is 0700); on Linux the relay also checks that the peer runs as
// the relay's own user or as root.
//
// Protocol: the client sends one request, a JSON object on one line of at
// most 4 KiB:
//
//	{"op":"backup"}
//	{"op":"verify"}
//
// The relay answers with frames, each a type byte, a uint32 big-endian
// payload length (at most 1 MiB) and the payload:
//
//	'D'  data: the next bytes of the result (for backup, the backup file)
//	'E'  error: a lowercase sentence; the last frame
//	'Z'  end: a JSON summary (for backup, the [BackupInfo]; for verify, the
//	     [VerifyResult]); the last frame
const AdminSocketName = "admin.sock"

const (
	adminMaxRequest = 4 << 10
	adminMaxFrame   = 1 << 20
	adminChunk      = 256 << 10

	frameData  = 'D'
	frameError = 'E'
	frameEnd   = 'Z'

	adminOpBackup = "backup"
	adminOpVerify = "verify"
)

// adminRequestTimeout bounds reading the request; adminWriteTimeout bounds
// each frame write, so a client that stops reading cannot hold a backup
// (and the store's maintenance lock) for long.
const (
	adminRequestTimeout = 10 * time.Second
	adminWriteTimeout   = time.Minute
)

// adminRequest is a decoded admin request.
type adminRequest struct {
	Op string `json:"op"`
}

// parseAdminRequest decodes one request line (without its newline).
func parseAdminRequest(line []byte) (adminRequest, error) {
	var r adminRequest
	if len(line) > adminMaxRequest {
		return r, fmt.Errorf("the request is over %d bytes", adminMaxRequest)
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return r, errors.New("the request is not a json object")
	}
	switch r.Op {
	case adminOpBackup, adminOpVerify:
		return r, nil
	case "":
		return r, errors.New("the request has no op")
	}
	return r, fmt.Errorf("%q is not an admin request this relay knows", truncate(r.Op, 32))
}

// writeFrame writes one frame.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > adminMaxFrame {
		return fmt.Errorf("admin frame of %d bytes", len(payload))
	}
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads one frame into buf (grown as needed) and returns its type
// and payload.
func readFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > adminMaxFrame {
		return 0, nil, fmt.Errorf("the relay sent a frame of %d bytes; the limit is %d", n, adminMaxFrame)
	}
	switch h[0] {
	case frameData, frameError, frameEnd:
	default:
		return 0, nil, fmt.Errorf("the relay sent a frame of unknown type %q", h[0])
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return h[0], buf, nil
}

// AdminServer serves a relay's admin socket. Create it with [ListenAdmin];
// stop it with Close.
type AdminServer struct {
	store *BadgerStore // static
	log   *slog.Logger // static
	path  string       // static
	ln    net.Listener // static

	ctx    context.Context    // canceled by Close
	cancel context.CancelFunc // static
	wg     sync.WaitGroup     // the accept loop and one per connection
	once   sync.Once
}

// ListenAdmin creates the admin socket in dataDir and serves it in the
// background. A socket file left by a relay that was killed is replaced; a
// socket some process still answers on is not. logger gets one line per
// request (never data); nil discards.
func ListenAdmin(dataDir string, store *BadgerStore, logger *slog.Logger) (*AdminServer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	path := filepath.Join(dataDir, AdminSocketName)
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("the admin socket's path %s is %d bytes, more than the %d a socket address holds; a data directory with a shorter path has one", path, len(path), maxSocketPath)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; move it away", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another process answers on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove the stale admin socket: %w", err)
		}
		// Only a relay that never shut down leaves its socket behind.
		logger.Warn("the last relay on this data directory did not shut down (it was killed, or the machine stopped); what it acknowledged was kept", "socket", path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	a := &AdminServer{store: store, log: logger.With("component", "admin"), path: path, ln: ln}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.wg.Add(1)
	go a.acceptLoop()
	return a, nil
}

// Path returns the socket's path.
func (a *AdminServer) Path() string { return a.path }

// Close stops accepting, cancels requests in flight (a backup in progress
// ends with an error frame) and waits for them. It removes the socket file.
func (a *AdminServer) Close() error {
	var err error
	a.once.Do(func() {
		a.cancel()
		err = a.ln.Close()
		a.wg.Wait()
	})
	return err
}

func (a *AdminServer) acceptLoop() {
	defer a.wg.Done()
	for {
		c, err := a.ln.Accept()
		if err != nil {
			if a.ctx.Err() == nil {
				a.log.Error("admin socket stopped accepting", "err", err)
			}
			return
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer c.Close()
			a.serveConn(c)
		}()
	}
}

func (a *AdminServer) serveConn(c net.Conn) {
	stop := context.AfterFunc(a.ctx, func() { c.Close() })
	defer stop()
	if uid, ok := peerAllowed(c); !ok {
		a.log.Warn("admin connection refused: wrong user", "uid", uid)
		a.fail(c, "only the relay's own user or root may use the admin socket")
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(adminRequestTimeout))
	br := bufio.NewReaderSize(io.LimitReader(c, adminMaxRequest+1), adminMaxRequest+1)
	line, err := br.ReadSlice('\n')
	if err != nil {
		a.fail(c, "send one request line, ending in a newline, within 10 seconds")
		return
	}
	req, err := parseAdminRequest(bytes.TrimSpace(line))
	if err != nil {
		a.fail(c, err.Error())
		return
	}
	switch req.Op {
	case adminOpBackup:
		a.backup(c)
	case adminOpVerify:
		a.verify(c)
	}
}

func (a *AdminServer) verify(c net.Conn) {
	start := time.Now()
	a.log.Info("blob check started")
	res, err := a.store.VerifyBlobs(a.ctx)
	if err != nil {
		msg := "the check failed: " + err.Error()
		if a.ctx.Err() != nil || errors.Is(err, ErrStoreClosed) {
			msg = "the relay is shutting down; run the check again once it is back"
		}
		a.log.Warn("blob check failed", "err", err)
		a.fail(c, msg)
		return
	}
	summary, _ := json.Marshal(res)
	_ = c.SetWriteDeadline(time.Now().Add(adminWriteTimeout))
	_ = writeFrame(c, frameEnd, summary)
	a.log.Info("blob check done", "blobs", res.Blobs, "damaged", res.DamagedCount, "duration", time.Since(start).Round(time.Millisecond))
}

// relaySays is the error for an error frame whose words are p. The words
// cross the socket as text, so a damaged blob the relay met (ErrDamaged)
// is recognised by them and wrapped again, for callers to test with
// errors.Is, without saying so a second time.
func relaySays(p []byte) error {
	e := &relayError{msg: truncate(string(bytes.ToValidUTF8(p, nil)), 300)}
	if strings.Contains(e.msg, ErrDamaged.Error()) {
		e.err = ErrDamaged
	}
	return e
}

// relayError is an error frame's words (relaySays); err, if not nil, is
// the error they name.
type relayError struct {
	msg string
	err error
}

func (e *relayError) Error() string { return "the relay says: " + e.msg }
func (e *relayError) Unwrap() error { return e.err }

func (a *AdminServer) fail(c net.Conn, msg string) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_ = writeFrame(c, frameError, []byte(msg))
}

func (a *AdminServer) backup(c net.Conn) {
	start := time.Now()
	a.log.Info("backup started")
	fw := &frameWriter{c: c}
	bw := bufio.NewWriterSize(fw, adminChunk)
	info, err := a.store.Backup(a.ctx, bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		msg := "the backup failed: " + err.Error()
		switch {
		case a.ctx.Err() != nil || errors.Is(err, ErrStoreClosed):
			msg = "the relay is shutting down; run the backup again once it is back"
		case fw.err != nil:
			msg = "" // the client is gone
		}
		a.log.Warn("backup failed", "err", err, "bytes", fw.n)
		if msg != "" {
			a.fail(c, msg)
		}
		return
	}
	summary, _ := json.Marshal(info)
	_ = c.SetWriteDeadline(time.Now().Add(adminWriteTimeout))
	if err := writeFrame(c, frameEnd, summary); err != nil {
		a.log.Warn("backup failed", "err", err, "bytes", fw.n)
		return
	}
	a.log.Info("backup sent", "bytes", info.Bytes, "duration", time.Since(start).Round(time.Millisecond))
}

// frameWriter sends what is written to it as data frames.
type frameWriter struct {
	c   net.Conn
	n   int64
	err error
}

func (f *frameWriter) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), adminMaxFrame)]
		_ = f.c.SetWriteDeadline(time.Now().Add(adminWriteTimeout))
		if f.err = writeFrame(f.c, frameData, chunk); f.err != nil {
			return written, f.err
		}
		written += len(chunk)
		f.n += int64(len(chunk))
		p = p[len(chunk):]
	}
	return written, nil
}

// maxSocketPath is the longest path a Unix socket address holds (107
// bytes on Linux, with room for the final NUL).
const maxSocketPath = len(syscall.RawSockaddrUnix{}.Path) - 1

// ErrNoAdmin means no relay answers on the data directory's admin socket:
// the relay is not running (the socket is missing or stale).
var ErrNoAdmin = errors.New("no relay answers on the admin socket")

// AdminVerify asks the relay running on dataDir to check every blob it
// keeps in a segment ([BadgerStore.VerifyBlobs]). It returns
// [ErrNoAdmin] if no relay answers.
func AdminVerify(ctx context.Context, dataDir string) (VerifyResult, error) {
	var res VerifyResult
	c, err := dialAdmin(ctx, dataDir)
	if err != nil {
		return res, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := c.Write([]byte(`{"op":"verify"}` + "\n")); err != nil {
		return res, fmt.Errorf("send the request: %w", err)
	}
	typ, p, err := readFrame(bufio.NewReader(c), nil)
	switch {
	case err != nil && ctx.Err() != nil:
		return res, ctx.Err()
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return res, errors.New("the relay closed the connection before the check was complete (see its log)")
	case err != nil:
		return res, err
	case typ == frameError:
		return res, relaySays(p)
	case typ != frameEnd:
		return res, errors.New("the relay answered the check with data it should not send")
	}
	if err := json.Unmarshal(p, &res); err != nil {
		return res, fmt.Errorf("the relay sent an unreadable summary: %v", err)
	}
	return res, nil
}

// dialAdmin connects to the admin socket of the relay on dataDir.
func dialAdmin(ctx context.Context, dataDir string) (net.Conn, error) {
	path := filepath.Join(dataDir, AdminSocketName)
	if len(path) > maxSocketPath {
		// No relay can listen there (ListenAdmin refuses it), and
		// dialing it fails with a bare EINVAL.
		return nil, fmt.Errorf("%w (%s is too long a path for a socket)", ErrNoAdmin, path)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (%s)", ErrNoAdmin, path)
		}
		return nil, fmt.Errorf("connect to the relay's admin socket: %w", err)
	}
	return c, nil
}

// AdminBackup asks the relay running on dataDir for a backup and writes
// the backup file to w. progress, if not nil, is called with the bytes
// written so far. It returns [ErrNoAdmin] if no relay answers.
func AdminBackup(ctx context.Context, dataDir string, w io.Writer, progress func(int64)) (BackupInfo, error) {
	var info BackupInfo
	c, err := dialAdmin(ctx, dataDir)
	if err != nil {
		return info, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := c.Write([]byte(`{"op":"backup"}` + "\n")); err != nil {
		return info, fmt.Errorf("send the request: %w", err)
	}
	info, err = readBackupResponse(bufio.NewReaderSize(c, adminChunk), w, progress)
	if err != nil && ctx.Err() != nil {
		return info, ctx.Err()
	}
	return info, err
}

// readBackupResponse reads the relay's frames answering a backup request,
// writing the data to w, until the end or error frame.
func readBackupResponse(r io.Reader, w io.Writer, progress func(int64)) (BackupInfo, error) {
	var info BackupInfo
	var buf []byte
	var n int64
	for {
		typ, p, err := readFrame(r, buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return info, errors.New("the relay closed the connection before the backup was complete (see its log)")
			}
			return info, err
		}
		buf = p[:0]
		switch typ {
		case frameData:
			if _, err := w.Write(p); err != nil {
				return info, err
			}
			n += int64(len(p))
			if progress != nil {
				progress(n)
			}
		case frameError:
			return info, relaySays(p)
		case frameEnd:
			if err := json.Unmarshal(p, &info); err != nil {
				return info, fmt.Errorf("the relay sent an unreadable summary: %v", err)
			}
			if info.Bytes != n {
				return info, fmt.Errorf("the relay sent %d bytes but says the backup is %d", n, info.Bytes)
			}
			return info, nil
		}
	}
}
