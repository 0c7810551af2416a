package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// fillStore gives s two journals with members, blobs (one purged) and an
// open invite, and returns the blobs of each journal in order.
func fillStore(t *testing.T, s *BadgerStore) map[protocol.JournalID][][]byte {
	t.Helper()
	ctx := context.Background()
	if _, err := s.RelayID(ctx); err != nil {
		t.Fatal(err)
	}
	out := map[protocol.JournalID][][]byte{}
	for n := range 2 {
		j, dev := protocol.JournalID{byte(10 + n)}, [32]byte{byte(20 + n)}
		if err := s.CreateJournal(ctx, j, dev); err != nil {
			t.Fatal(err)
		}
		person := [32]byte{byte(30 + n)}
		if err := s.UpdateMembers(ctx, j, func(m *Members) error { m.Add(person, person); return nil }); err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			b := append(joinBlob(j, dev), fmt.Sprintf("journal %d blob %d", n, i)...)
			if _, _, _, err := s.Append(ctx, j, b); err != nil {
				t.Fatal(err)
			}
			out[j] = append(out[j], b)
		}
	}
	j := protocol.JournalID{10}
	if _, err := s.Purge(ctx, j, protocol.IDOf(out[j][3]), [32]byte{20}, protocol.BlobID{1}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutInvite(ctx, Invite{Journal: j, AuthHash: [32]byte{0xaa}, Expires: time.Now().Add(time.Hour), Packet: []byte("packet")}); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameStore checks that got holds what fillStore put in want.
func sameStore(t *testing.T, want, got *BadgerStore, blobs map[protocol.JournalID][][]byte) {
	t.Helper()
	ctx := context.Background()
	wid, _ := want.RelayID(ctx)
	gid, err := got.RelayID(ctx)
	if err != nil || gid != wid {
		t.Fatalf("relay id %q (%v), want %q", gid, err, wid)
	}
	for j, bs := range blobs {
		w, err1 := want.Read(ctx, j, 0, 1000)
		g, err2 := got.Read(ctx, j, 0, 1000)
		if err1 != nil || err2 != nil || len(g) != len(bs) || len(w) != len(g) {
			t.Fatalf("journal %x: read %d and %d blobs (%v, %v), want %d", j[:1], len(w), len(g), err1, err2, len(bs))
		}
		for i := range g {
			if g[i].Seq != w[i].Seq || g[i].Purged != w[i].Purged || !bytes.Equal(g[i].Blob, w[i].Blob) {
				t.Fatalf("journal %x entry %d differs", j[:1], i)
			}
		}
		if last, err := got.LastSeq(ctx, j); err != nil || last != uint64(len(bs)) {
			t.Fatalf("last seq %d, %v", last, err)
		}
		for _, d := range [][32]byte{{20 + j[0] - 10}, {30 + j[0] - 10}} {
			if ok, err := got.IsMember(ctx, j, d); !ok || err != nil {
				t.Fatalf("device %x is not a member of the restored journal", d[:1])
			}
		}
	}
	// The invite came along and still works once.
	j, packet, err := Redeem(ctx, got, [32]byte{0xaa}, [32]byte{0xbb}, time.Now(), 0) // two people are in already
	if err != nil || j != (protocol.JournalID{10}) || string(packet) != "packet" {
		t.Fatalf("redeem restored invite: %x %q %v", j[:1], packet, err)
	}
	// Appends continue the restored logs.
	seq, _, dup, err := got.Append(ctx, j, append(joinBlob(j, [32]byte{20}), "after restore"...))
	if err != nil || dup || seq != uint64(len(blobs[j])+1) {
		t.Fatalf("append after restore: seq %d dup %v %v", seq, dup, err)
	}
}

func writeBackupFile(t *testing.T, s *BadgerStore) (string, BackupInfo) {
	t.Helper()
	var buf bytes.Buffer
	info, err := s.Backup(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	if info.Bytes != int64(buf.Len()) {
		t.Fatalf("backup says %d bytes, wrote %d", info.Bytes, buf.Len())
	}
	path := filepath.Join(t.TempDir(), "relay.kbak")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, info
}

func restoreFile(t *testing.T, path, dir string) (RestoreResult, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	return RestoreBadger(context.Background(), dir, f, fi.Size(), RestoreOptions{})
}

func TestBackupRestore(t *testing.T) {
	t.Parallel()
	src := openTestStore(t, t.TempDir())
	blobs := fillStore(t, src)
	path, info := writeBackupFile(t, src)
	id, _ := src.RelayID(context.Background())
	if info.RelayID != id || info.Format != 1 {
		t.Fatalf("backup info %+v", info)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	res, err := restoreFile(t, path, dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.RelayID != id || res.Journals != 2 || res.Blobs != 100 {
		t.Fatalf("restore result %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, restoreMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the restore marker is still there: %v", err)
	}
	sameStore(t, src, openTestStore(t, dir), blobs)

	// An empty existing directory is fine too.
	empty := t.TempDir()
	if _, err := restoreFile(t, path, empty); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreRefuses(t *testing.T) {
	t.Parallel()
	src := openTestStore(t, t.TempDir())
	fillStore(t, src)
	path, _ := writeBackupFile(t, src)
	good, _ := os.ReadFile(path)

	// A directory with anything in it is never touched.
	busy := t.TempDir()
	os.WriteFile(filepath.Join(busy, "keep"), []byte("mine"), 0o600)
	if _, err := restoreFile(t, path, busy); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore into a non-empty directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(busy, "keep")); err != nil || string(b) != "mine" {
		t.Fatal("restore touched a non-empty directory")
	}

	damaged := map[string][]byte{
		"truncated":     good[:len(good)-100],
		"one byte off":  flip(good, len(good)/2),
		"header flip":   flip(good, len(backupMagic)+6),
		"not a backup":  []byte(strings.Repeat("hello ", 100)),
		"empty":         nil,
		"trailer only":  good[len(good)-backupTrailerSize:],
		"cut at header": good[:len(backupMagic)+4+10],
	}
	for name, data := range damaged {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.kbak")
			os.WriteFile(p, data, 0o600)
			dir := t.TempDir()
			_, err := restoreFile(t, p, dir)
			if !errors.Is(err, ErrBadBackup) {
				t.Fatalf("restore of a %s backup: %v", name, err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("a refused restore left %d entries", len(ents))
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

// A directory holding an interrupted restore is refused by OpenBadger
// with advice.
func TestOpenRefusesUnfinishedRestore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, restoreMarker), nil, 0o600)
	_, err := OpenBadger(dir, nil)
	if !errors.Is(err, ErrUnfinishedRestore) || !strings.Contains(err.Error(), "empty the directory and restore again") {
		t.Fatalf("open: %v", err)
	}
}

// The admin socket streams a backup of the running store while it takes
// writes; the restore holds every write acknowledged before the backup
// began and is consistent.
func TestAdminBackupWhileWriting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dataDir := t.TempDir()
	src := openTestStore(t, dataDir)
	blobs := fillStore(t, src)
	admin, err := ListenAdmin(dataDir, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if fi, err := os.Stat(admin.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket mode: %v %v", fi.Mode(), err)
	}

	// Writers keep appending to their own journals during the backup.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		j, dev := protocol.JournalID{byte(100 + w)}, [32]byte{byte(100 + w)}
		if err := src.CreateJournal(ctx, j, dev); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, _, err := src.Append(ctx, j, append(joinBlob(j, dev), fmt.Sprint(i)...)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var buf bytes.Buffer
	var progressed int64
	info, err := AdminBackup(ctx, dataDir, &buf, func(n int64) { progressed = n })
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if info.Bytes != int64(buf.Len()) || progressed != info.Bytes {
		t.Fatalf("backup of %d bytes, received %d, progress %d", info.Bytes, buf.Len(), progressed)
	}
	path := filepath.Join(t.TempDir(), "b.kbak")
	os.WriteFile(path, buf.Bytes(), 0o600)
	dir := t.TempDir()
	res, err := restoreFile(t, path, dir)
	if err != nil {
		t.Fatal(err) // includes the consistency check of every journal
	}
	if res.Journals != 6 {
		t.Fatalf("restored %d journals", res.Journals)
	}
	got := openTestStore(t, dir)
	for j, bs := range blobs {
		g, err := got.Read(ctx, j, 0, 1000)
		if err != nil || len(g) != len(bs) {
			t.Fatalf("journal %x: %d blobs, %v", j[:1], len(g), err)
		}
	}
}

// A data directory whose path is too long for a socket address has no
// admin socket: the relay is told why at start, and a backup or check
// hears "no relay answers", not a bare "invalid argument".
func TestAdminSocketPathTooLong(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	src := openTestStore(t, dataDir)
	if _, err := ListenAdmin(dataDir, src, nil); err == nil || !strings.Contains(err.Error(), "more than the 107 a socket address holds") {
		t.Fatalf("listen on a long path: %v", err)
	}
	if _, err := AdminBackup(context.Background(), dataDir, &bytes.Buffer{}, nil); !errors.Is(err, ErrNoAdmin) {
		t.Fatalf("backup on a long path: %v", err)
	}
}

func TestAdminSocket(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	src := openTestStore(t, dataDir)

	// No relay: no socket.
	if _, err := AdminBackup(context.Background(), dataDir, &bytes.Buffer{}, nil); !errors.Is(err, ErrNoAdmin) {
		t.Fatalf("backup with no relay: %v", err)
	}
	// A stale socket (a killed relay's) is no relay either, and is replaced.
	path := filepath.Join(dataDir, AdminSocketName)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := AdminBackup(context.Background(), dataDir, &bytes.Buffer{}, nil); !errors.Is(err, ErrNoAdmin) {
		t.Fatalf("backup with a stale socket: %v", err)
	}
	var logged bytes.Buffer
	admin, err := ListenAdmin(dataDir, src, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	// and the operator hears that the last relay did not shut down.
	if !strings.Contains(logged.String(), "the last relay on this data directory did not shut down") {
		t.Errorf("no word of the unclean stop: %q", logged.String())
	}
	// A second relay on the same socket is refused.
	if _, err := ListenAdmin(dataDir, src, nil); err == nil || !strings.Contains(err.Error(), "another process answers") {
		t.Fatalf("second listen: %v", err)
	}

	// Bad requests get an error frame.
	for req, want := range map[string]string{
		`{"op":"drop-everything"}` + "\n": "not an admin request this relay knows",
		"{}\n":                            "the request has no op",
		"nonsense\n":                      "not a json object",
		strings.Repeat("x", 5000):         "send one request line",
	} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(req))
		typ, p, err := readFrame(c, nil)
		c.Close()
		if err != nil || typ != frameError || !strings.Contains(string(p), want) {
			t.Errorf("request %.30q: frame %q %q %v", req, typ, p, err)
		}
	}

	// Close removes the socket; a backup then finds no relay.
	if err := admin.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket after close: %v", err)
	}
}

// Closing the store cancels a backup in flight instead of waiting for it.
func TestCloseCancelsBackup(t *testing.T) {
	t.Parallel()
	s, err := OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	fillStore(t, s)
	started := make(chan struct{})
	release := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Backup(context.Background(), &stallWriter{started: started, release: release})
		errc <- err
	}()
	<-started
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close cancels the backup's context; the backup sees it on its next
	// write. Let the stalled write return once that has happened.
	s.maint.mu.Lock()
	mctx := s.maint.ctx
	s.maint.mu.Unlock()
	<-mctx.Done()
	close(release)
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("backup during close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(context.Background(), &bytes.Buffer{}); !errors.Is(err, ErrStoreClosed) {
		t.Fatalf("backup after close: %v", err)
	}
}

// stallWriter blocks its first write until release is closed.
type stallWriter struct {
	started, release chan struct{}
	once             sync.Once
}

func (w *stallWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		close(w.started)
		<-w.release
	})
	return len(p), nil
}

// An error frame that names a damaged blob is ErrDamaged to the caller,
// and its words are said once, as the relay wrote them.
func TestRelaySaysDamaged(t *testing.T) {
	words := "the backup failed: journal 1, entry 2: " + ErrDamaged.Error() + ": the bytes at offset 3 are not the blob"
	err := relaySays([]byte(words))
	if !errors.Is(err, ErrDamaged) || err.Error() != "the relay says: "+words {
		t.Fatalf("damaged: %v (is ErrDamaged: %v)", err, errors.Is(err, ErrDamaged))
	}
	if err := relaySays([]byte("the disk is full")); errors.Is(err, ErrDamaged) || err.Error() != "the relay says: the disk is full" {
		t.Fatalf("not damaged: %v", err)
	}
}
