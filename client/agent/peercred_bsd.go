//go:build darwin || freebsd

package agent

import "golang.org/x/sys/unix"

// peerUID returns the effective uid of the process at the other end of
// the unix socket fd, as the kernel recorded it at connect
// (LOCAL_PEERCRED).
func peerUID(fd int) (uint32, error) {
	cred, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return 0, err
	}
	return cred.Uid, nil
}
