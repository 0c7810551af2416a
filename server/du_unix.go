//go:build unix

package server

import (
	"io/fs"
	"path/filepath"
	"syscall"
)

// diskUsage is the space the files under dir occupy on disk: sparse files
// (Badger's preallocated value log) count the blocks they use, not their
// length.
func diskUsage(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += fi.Size()
		}
		return nil
	})
	return total
}
