package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// startWait is how long a new agent waits for an exiting one to
	// release the home's lock.
	startWait = 5 * time.Second
	// startTimeout bounds how long Start waits for the agent to listen.
	startTimeout = 20 * time.Second

	readyOK      = 0
	readyRunning = 1
	readyFailed  = 2
)

// Start runs exe with args and env as a detached agent process: a new
// session with no terminal, its standard streams on /dev/null and its
// working directory /. The command must call [RunChild]. Start hands it
// key and expires over a pipe (see the package comment), waits until it
// listens, and returns its pid. If the agent does not come up, Start kills
// it, so none is left behind.
func Start(exe string, args, env []string, key *[KeySize]byte, expires time.Time) (int, error) {
	keyR, keyW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer keyW.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		keyR.Close()
		return 0, err
	}
	defer readyR.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		keyR.Close()
		readyW.Close()
		return 0, err
	}
	cmd := &exec.Cmd{
		Path: exe, Args: args, Env: env, Dir: "/",
		Stdin: null, Stdout: null, Stderr: null,
		ExtraFiles:  []*os.File{keyR, readyW}, // fd 3 and fd 4
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	// Descriptors this process inherited without close-on-exec (a pipe
	// from a shell or a test runner) must not live on in the agent.
	closeOnExec()
	err = cmd.Start()
	keyR.Close()
	readyW.Close()
	null.Close()
	if err != nil {
		return 0, fmt.Errorf("start the unlocked session: %w", err)
	}
	var msg [1 + KeySize + 8]byte
	msg[0] = Version
	copy(msg[1:], key[:])
	binary.BigEndian.PutUint64(msg[1+KeySize:], uint64(expires.UnixMilli()))
	_, werr := keyW.Write(msg[:])
	clear(msg[:])
	keyW.Close()
	readyR.SetReadDeadline(time.Now().Add(startTimeout))
	b, rerr := io.ReadAll(io.LimitReader(readyR, 1024))
	if werr == nil && len(b) > 0 && b[0] == readyOK {
		pid := cmd.Process.Pid
		cmd.Process.Release()
		return pid, nil
	}
	cmd.Process.Kill()
	cmd.Wait()
	switch {
	case len(b) > 0 && b[0] == readyRunning:
		return 0, ErrRunning
	case len(b) > 1:
		return 0, errors.New(string(b[1:]))
	case werr != nil:
		return 0, fmt.Errorf("the unlocked session did not start: %w", werr)
	case rerr != nil:
		return 0, fmt.Errorf("the unlocked session did not start: %w", rerr)
	}
	return 0, errors.New("the unlocked session did not start")
}

// RunChild is the agent process's side of [Start]: it reads the key from
// fd 3, listens in the home dir, says so on fd 4, and serves until the
// session ends. Call [Harden] before it.
func RunChild(ctx context.Context, dir string) error {
	keyR := os.NewFile(3, "agent-key")
	ready := os.NewFile(4, "agent-ready")
	if keyR == nil || ready == nil {
		return errors.New("this command is started by `kintsugi unlock`")
	}
	say := func(code byte, err error) {
		b := []byte{code}
		if err != nil {
			b = append(b, err.Error()...)
		}
		ready.Write(b)
		ready.Close()
	}
	var msg [1 + KeySize + 8]byte
	_, err := io.ReadFull(keyR, msg[:])
	keyR.Close()
	if err != nil || msg[0] != Version {
		clear(msg[:])
		err = errors.New("the unlocked session was not given a key; this command is started by `kintsugi unlock`")
		say(readyFailed, err)
		return err
	}
	key := NewSecret(KeySize)
	copy(key.Bytes(), msg[1:1+KeySize])
	expires := time.UnixMilli(int64(binary.BigEndian.Uint64(msg[1+KeySize:])))
	clear(msg[:])
	l, err := Listen(dir, startWait)
	if err != nil {
		key.Wipe()
		code := byte(readyFailed)
		if errors.Is(err, ErrRunning) {
			code = readyRunning
		}
		say(code, err)
		return err
	}
	say(readyOK, nil)
	return (&Server{Key: key, Expires: expires}).Serve(ctx, l)
}

// closeOnExec marks every descriptor above stderr close-on-exec. The ones
// Go opens already are; this catches inherited ones. Best effort.
func closeOnExec() {
	fds, err := os.ReadDir("/dev/fd")
	if err != nil {
		return
	}
	for _, f := range fds {
		if fd, err := strconv.Atoi(f.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}
