package agent

import (
	"fmt"
	"net"
	"os"
)

// checkPeer checks that the process at the other end of c runs as this
// user.
func checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var uid uint32
	var credErr error
	if err := raw.Control(func(fd uintptr) { uid, credErr = peerUID(int(fd)) }); err != nil {
		return err
	}
	if credErr != nil {
		return fmt.Errorf("%w: %v", ErrOtherUser, credErr)
	}
	return allowPeer(uid, uint32(os.Getuid()))
}

// allowPeer admits only the agent's own user: not other users, and not
// root either (root could read the agent's memory anyway, but has no
// business asking for the key).
func allowPeer(peer, self uint32) error {
	if peer != self {
		return fmt.Errorf("%w (uid %d, not %d)", ErrOtherUser, peer, self)
	}
	return nil
}
