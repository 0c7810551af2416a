package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// A relay backup file is one consistent snapshot of a [BadgerStore]:
//
//	magic    "KINTSUGI-RELAY-BACKUP\n" (22 bytes)
//	hlen     uint32, big-endian: length of the header, 2..65536
//	header   JSON: {"format":1,"relay_id":"…","created":"RFC 3339 time"}
//	section  Badger's backup stream (DB.Backup): repeated
//	         [uint64 little-endian n][n bytes of a protobuf KVList]
//	trailer  "KSRBEND1" | uint64 big-endian length of section |
//	         SHA-256 of every byte before the trailer
//
// The trailer comes last so the file can be written as a stream; the
// checksum lets restore refuse a truncated or damaged file before it writes
// anything. The file holds what the store holds: ciphertext, clear blob
// headers, membership and invite records, and the relay id (so clients,
// which pin the relay id, accept the restored relay).
const (
	backupMagic        = "KINTSUGI-RELAY-BACKUP\n"
	backupTrailerMagic = "KSRBEND1"
	backupTrailerSize  = len(backupTrailerMagic) + 8 + sha256.Size
	backupMaxHeader    = 64 << 10
	backupFormat       = 1
)

// restoreMarker is created in a data directory while a restore fills it
// and removed when the restore is complete and synced. OpenBadger refuses
// a directory that still has it.
const restoreMarker = "RESTORE-IN-PROGRESS"

// ErrBadBackup wraps every reason a file is not a usable backup.
var ErrBadBackup = errors.New("not a usable relay backup")

// ErrUnfinishedRestore means a data directory holds a restore that did not
// finish (the restore was interrupted); it must not be served.
var ErrUnfinishedRestore = errors.New("the data directory holds an unfinished restore")

// BackupInfo describes a backup file.
type BackupInfo struct {
	Format  int       `json:"format"`
	RelayID string    `json:"relay_id"`
	Created time.Time `json:"created"`
	// Bytes is the size of the whole file (not part of the file's header).
	Bytes int64 `json:"bytes,omitempty"`
}

// Backup writes a backup file of the store to w: one consistent snapshot,
// taken while the store keeps serving. Every write acknowledged before
// Backup is called is in it. Backup returns when w has the whole file; the
// caller makes w durable. It stops early, with an error, when ctx is done
// or the store closes.
func (s *BadgerStore) Backup(ctx context.Context, w io.Writer) (BackupInfo, error) {
	ctx, done, err := s.maint.enter(ctx)
	if err != nil {
		return BackupInfo{}, err
	}
	defer done()
	s.maint.heavy.Lock()
	defer s.maint.heavy.Unlock()
	if err := s.pend.drain(); err != nil { // every acknowledged blob into Badger's snapshot
		return BackupInfo{}, err
	}
	info := BackupInfo{Format: backupFormat, Created: s.now().UTC().Truncate(time.Second)}
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyRelayID)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil // a store that never served has no id yet
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		info.RelayID = string(v)
		return err
	})
	if err != nil {
		return BackupInfo{}, fmt.Errorf("read relay id: %w", err)
	}
	header, err := json.Marshal(info)
	if err != nil {
		return BackupInfo{}, err
	}
	sum := sha256.New()
	cw := &ctxWriter{ctx: ctx, w: io.MultiWriter(w, sum)}
	cw.Write([]byte(backupMagic))
	cw.Write(binary.BigEndian.AppendUint32(nil, uint32(len(header))))
	cw.Write(header)
	if cw.err != nil {
		return BackupInfo{}, cw.err
	}
	start := cw.n
	stream := s.db.NewStream()
	stream.LogPrefix = "relay backup"
	// One producer reads everything through one transaction, so the
	// backup is a single point in time. With several, each reads at its
	// own moment and a journal's last-sequence record could be newer than
	// its log.
	stream.NumGo = 1
	iw := &inlineWriter{s: s, w: cw} // blobs in segments go into the file inline; see backup_segs.go
	if _, err := stream.Backup(iw, 0); err != nil {
		if iw.err != nil {
			err = iw.err // a damaged blob, or cw's error
		}
		if cw.err != nil {
			err = cw.err
		}
		return BackupInfo{}, fmt.Errorf("stream the store: %w", err)
	}
	if err := iw.close(); err != nil {
		return BackupInfo{}, err
	}
	trailer := append([]byte(backupTrailerMagic), binary.BigEndian.AppendUint64(nil, uint64(cw.n-start))...)
	trailer = sum.Sum(trailer)
	if _, err := w.Write(trailer); err != nil {
		return BackupInfo{}, err
	}
	info.Bytes = cw.n + int64(len(trailer))
	return info, nil
}

// ctxWriter counts bytes, stops at the first error and fails once ctx is
// done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
	n   int64
	err error
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// VerifyBackup checks that r (size bytes) is a complete, undamaged backup
// file and returns its description. It reads the whole file; progress, if
// not nil, is called with the bytes checked so far. Every failure wraps
// ErrBadBackup.
func VerifyBackup(r io.ReaderAt, size int64, progress func(done int64)) (BackupInfo, error) {
	info, _, err := verifyBackup(r, size, progress)
	return info, err
}

// backupSection locates Badger's stream inside a backup file.
type backupSection struct{ off, n int64 }

func badBackup(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadBackup, fmt.Sprintf(format, args...))
}

func verifyBackup(r io.ReaderAt, size int64, progress func(int64)) (BackupInfo, backupSection, error) {
	var info BackupInfo
	var sec backupSection
	minSize := int64(len(backupMagic) + 4 + 2 + backupTrailerSize)
	if size < minSize {
		return info, sec, badBackup("the file is %d bytes, too short to be a backup", size)
	}
	head := make([]byte, len(backupMagic)+4)
	if _, err := r.ReadAt(head, 0); err != nil {
		return info, sec, badBackup("read: %v", err)
	}
	if string(head[:len(backupMagic)]) != backupMagic {
		return info, sec, badBackup("the file does not start like a kintsugi relay backup")
	}
	hlen := int64(binary.BigEndian.Uint32(head[len(backupMagic):]))
	hoff := int64(len(head))
	if hlen < 2 || hlen > backupMaxHeader || hoff+hlen > size-int64(backupTrailerSize) {
		return info, sec, badBackup("the header length %d is impossible", hlen)
	}
	trailer := make([]byte, backupTrailerSize)
	if _, err := r.ReadAt(trailer, size-int64(backupTrailerSize)); err != nil {
		return info, sec, badBackup("read: %v", err)
	}
	if string(trailer[:len(backupTrailerMagic)]) != backupTrailerMagic {
		return info, sec, badBackup("the file does not end like a backup: it is incomplete (was the backup interrupted?)")
	}
	sec.off = hoff + hlen
	sec.n = int64(binary.BigEndian.Uint64(trailer[len(backupTrailerMagic):]))
	if sec.n < 0 || sec.off+sec.n != size-int64(backupTrailerSize) {
		return info, sec, badBackup("the file's length does not match its trailer: it is incomplete or damaged")
	}
	// The checksum first: nothing below trusts bytes it does not cover.
	h := sha256.New()
	body := io.NewSectionReader(r, 0, size-int64(backupTrailerSize))
	if _, err := io.Copy(h, &progressReader{r: body, progress: progress}); err != nil {
		return info, sec, badBackup("read: %v", err)
	}
	if !bytes.Equal(h.Sum(nil), trailer[len(backupTrailerMagic)+8:]) {
		return info, sec, badBackup("the checksum does not match: the file is damaged")
	}
	header := make([]byte, hlen)
	if _, err := r.ReadAt(header, hoff); err != nil {
		return info, sec, badBackup("read: %v", err)
	}
	if err := json.Unmarshal(header, &info); err != nil {
		return info, sec, badBackup("the header is not valid: %v", err)
	}
	if info.Format != backupFormat {
		return info, sec, badBackup("backup format %d is not one this relay reads (it reads format %d); use the relay version that made it", info.Format, backupFormat)
	}
	if len(info.RelayID) > 255 {
		return info, sec, badBackup("the relay id in the header is %d bytes", len(info.RelayID))
	}
	// Walk Badger's length-prefixed chunks so Load never reads a length
	// that runs past the section.
	var n [8]byte
	for off := sec.off; off < sec.off+sec.n; {
		if sec.off+sec.n-off < 8 {
			return info, sec, badBackup("the data section ends inside a chunk length")
		}
		if _, err := r.ReadAt(n[:], off); err != nil {
			return info, sec, badBackup("read: %v", err)
		}
		l := binary.LittleEndian.Uint64(n[:])
		if l > uint64(sec.off+sec.n-off-8) {
			return info, sec, badBackup("a chunk of %d bytes runs past the end of the data section", l)
		}
		off += 8 + int64(l)
	}
	info.Bytes = size
	return info, sec, nil
}

// progressReader reports the bytes read so far.
type progressReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.progress != nil && n > 0 {
		p.progress(p.n)
	}
	return n, err
}

// RestoreResult describes a completed restore.
type RestoreResult struct {
	Backup   BackupInfo
	RelayID  string // the restored store's relay id
	Journals int
	Blobs    int // log entries, purged ones included
}

// RestoreOptions configures [RestoreBadger]. The zero value works.
type RestoreOptions struct {
	Logger *slog.Logger // Badger's warnings; default discard
	// Progress, if set, is called with the phase ("verify" or "load") and
	// the bytes of the backup file done in that phase.
	Progress func(phase string, done, total int64)
}

// ErrNotEmpty is returned by [RestoreBadger] for a data directory that
// already holds files.
var ErrNotEmpty = errors.New("the data directory is not empty")

// RestoreBadger restores the backup file r (size bytes) into dir, which
// must be empty or not exist. It verifies the whole file before writing
// anything, loads it, checks that the restored store is consistent (every
// journal's log is contiguous up to its last sequence number, the relay
// id is the backup's) and syncs it. While it runs dir holds a marker that
// makes [OpenBadger] refuse the directory, so an interrupted restore is
// never served. If it fails, it removes what it wrote (dir itself stays if
// it existed: it may be a mount point).
func RestoreBadger(ctx context.Context, dir string, r io.ReaderAt, size int64, opts RestoreOptions) (res RestoreResult, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	report := func(phase string) func(int64) {
		if opts.Progress == nil {
			return nil
		}
		return func(n int64) { opts.Progress(phase, n, size) }
	}
	info, sec, err := verifyBackup(r, size, report("verify"))
	if err != nil {
		return res, err
	}
	res.Backup = info
	entries, err := os.ReadDir(dir)
	created := false
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return res, err
		}
		created = true
	case err != nil:
		return res, err
	case len(entries) > 0:
		return res, fmt.Errorf("%w: %s holds %d entries", ErrNotEmpty, dir, len(entries))
	}
	var db *badger.DB
	defer func() {
		if err == nil {
			return
		}
		if db != nil {
			db.Close()
		}
		if created {
			os.RemoveAll(dir)
			return
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}()
	if err = os.WriteFile(filepath.Join(dir, restoreMarker), []byte("a kintsugi-relay restore into this directory did not finish\n"), 0o600); err != nil {
		return res, err
	}
	if err = syncDir(dir); err != nil {
		return res, err
	}
	opt := defaultPlan().apply(badger.DefaultOptions(dir)).
		WithCompression(options.None). // as OpenBadger; the plan has no block cache, which compression needs
		WithLogger(badgerLogger{opts.Logger.With("component", "badger")})
	if db, err = badger.Open(opt); err != nil {
		return res, fmt.Errorf("create the store in %s: %w", dir, err)
	}
	segs, _, err := openSegLog(db, dir, false, opts.Logger) // an empty directory: no tail
	if err != nil {
		return res, fmt.Errorf("create the store in %s: %w", dir, err)
	}
	defer segs.close()
	load := &progressReader{r: io.NewSectionReader(r, sec.off, sec.n), progress: report("load")}
	// Blobs go to segments on the way in (outline), Badger loads the rest.
	pr, pw := io.Pipe()
	outlined := make(chan error, 1)
	go func() {
		err := outline(&ctxReader{ctx: ctx, r: load}, pw, segs)
		pw.CloseWithError(err)
		outlined <- err
	}()
	err = db.Load(pr, 16)
	pr.CloseWithError(errors.New("the load stopped"))
	if oerr := <-outlined; oerr != nil {
		return res, fmt.Errorf("load the backup: %w", oerr)
	}
	if err != nil {
		return res, fmt.Errorf("load the backup: %w", err)
	}
	if err = segs.restoreFinish(db); err != nil {
		return res, fmt.Errorf("write the backup's blobs: %w", err)
	}
	if res.RelayID, res.Journals, res.Blobs, err = checkRestored(db); err != nil {
		return res, err
	}
	if info.RelayID != "" && res.RelayID != info.RelayID {
		return res, fmt.Errorf("%w: the restored relay id %q is not the backup's %q", ErrBadBackup, res.RelayID, info.RelayID)
	}
	err = db.Close()
	db = nil
	if err != nil {
		return res, fmt.Errorf("close the restored store: %w", err)
	}
	// Badger syncs what it must for its own recovery; sync every file so
	// the restore is whole on disk before the marker goes.
	if err = syncTree(dir); err != nil {
		return res, err
	}
	if err = os.Remove(filepath.Join(dir, restoreMarker)); err != nil {
		return res, err
	}
	if err = syncDir(dir); err != nil {
		return res, err
	}
	return res, nil
}

// checkRestored checks a restored store: each journal's log runs from 1 to
// its last-sequence record without a gap. It returns the relay id and
// counts.
func checkRestored(db *badger.DB) (id string, journals, blobs int, err error) {
	err = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyRelayID)
		if err == nil {
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			id = string(v)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfxJournal})
		var js [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			js = append(js, it.Item().KeyCopy(nil)[len(pfxJournal):])
		}
		it.Close()
		journals = len(js)
		for _, j := range js {
			last, err := getU64(txn, key(pfxLastSeq, j), "last-sequence")
			if err != nil {
				return err
			}
			prefix := key(pfxLog, j)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			want := uint64(1)
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().Key()
				if len(k) != len(prefix)+8 || binary.BigEndian.Uint64(k[len(prefix):]) != want {
					it.Close()
					return fmt.Errorf("%w: journal %x: the log has a gap before entry %d", ErrBadBackup, j, want)
				}
				want++
			}
			it.Close()
			if want-1 != last {
				return fmt.Errorf("%w: journal %x: the log has %d entries but records %d", ErrBadBackup, j, want-1, last)
			}
			blobs += int(last)
		}
		return nil
	})
	return id, journals, blobs, err
}

// ctxReader fails once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// checkRestoreMarker fails if dir holds an unfinished restore.
func checkRestoreMarker(dir string) error {
	if UnfinishedRestore(dir) {
		return fmt.Errorf("%w (a restore was interrupted): empty the directory and restore again", ErrUnfinishedRestore)
	}
	return nil
}

// UnfinishedRestore reports whether dir holds a restore that did not
// finish.
func UnfinishedRestore(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, restoreMarker))
	return err == nil
}

// HasStore reports whether dir holds a relay store (a Badger manifest).
func HasStore(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, badger.ManifestFilename))
	return err == nil && fi.Mode().IsRegular()
}

// OpenBadgerForBackup opens the store in dir, which no relay is using, for
// a backup: read-only when it can. A store whose last writer was killed
// may need its write-ahead log's torn tail cut first, or blobs it
// acknowledged indexed from its newest segment, which read-only mode
// cannot do; then it opens the store for writing, which does exactly what
// starting the relay would. Fails with an error [IsLocked] recognizes if a
// relay holds the directory.
func OpenBadgerForBackup(dir string, logger *slog.Logger) (*BadgerStore, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := checkRestoreMarker(dir); err != nil {
		return nil, err
	}
	if !HasStore(dir) {
		return nil, fmt.Errorf("%s holds no relay store", dir)
	}
	opts := defaultPlan().apply(badger.DefaultOptions(dir)).
		WithCompression(options.None). // as OpenBadger; the plan has no block cache, which compression needs
		WithReadOnly(true).
		WithLogger(badgerLogger{logger.With("component", "badger")})
	db, err := badger.Open(opts)
	if truncateNeeded(err) {
		return OpenBadger(dir, logger)
	}
	if err != nil {
		return nil, fmt.Errorf("open relay store in %s: %w", dir, err)
	}
	segs, _, err := openSegLog(db, dir, true, logger)
	if errors.Is(err, errTailNotIndexed) {
		// As for Badger's torn tail: what starting the relay would do.
		db.Close()
		return OpenBadger(dir, logger)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open relay store in %s: blob segments: %w", dir, err)
	}
	return newBadgerStore(db, segs), nil
}

// truncateNeeded reports whether err is Badger refusing to open a store
// read-only because its write-ahead log has a torn tail, as every relay
// stopped by a crash or a kill leaves it. Badger builds that error with
// its y.Wrap, which outside Badger's debug mode formats the cause into
// the message rather than wrapping it, so errors.Is cannot see it.
func truncateNeeded(err error) bool {
	return err != nil && (errors.Is(err, badger.ErrTruncateNeeded) || strings.Contains(err.Error(), badger.ErrTruncateNeeded.Error()))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// syncTree fsyncs every regular file directly in dir, then dir.
func syncTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return syncDir(dir)
}
