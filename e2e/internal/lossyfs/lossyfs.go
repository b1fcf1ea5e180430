// Package lossyfs is a filesystem for power-loss tests: a FUSE loopback
// over a directory that passes reads and metadata through but forgets, at
// a simulated power cut, every write no fsync covered.
//
// Writes reach the backing directory at once, so that reads, sizes and
// caches behave as on any filesystem while it runs; the first write to a
// region of a file since its last fsync saves what the region held
// before. An fsync (or a write through a file opened O_SYNC or O_DSYNC)
// forgets the file's saved regions: its content is on the disk. A power
// cut puts every saved region back and cuts each file to its size at its
// last sync, so the directory holds exactly what had been synced: the
// written data a kernel keeps in its page cache until writeback, and
// which a power failure loses. Metadata (creating, renaming, removing,
// truncating a file) is durable at once: the test is pessimistic on data
// only, like ext4 without delayed allocation's rename heuristics.
//
// A Disk is mounted over a backing directory; PowerCut undoes what was
// never synced and unmounts, and Remount serves the same directory again,
// as a machine reboots onto what reached its disk. The processes using
// the mount must be stopped (SIGKILL) before the cut: the cut is the
// instant they die.
package lossyfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// page is the granularity of the regions saved before a first write.
const page = 4096

// Disk is a lossy filesystem mounted over a backing directory.
type Disk struct {
	mountpoint, backing string
	fs                  *lossy
	server              *fuse.Server
}

// Lost is what a power cut undid: files and bytes written but never synced.
type Lost struct {
	Files int
	Bytes int64
}

// Available reports why FUSE cannot be mounted here, or nil.
func Available() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("no /dev/fuse: %w", err)
	}
	dir, err := os.MkdirTemp("", "lossyfs-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mnt, backing := filepath.Join(dir, "mnt"), filepath.Join(dir, "disk")
	for _, d := range []string{mnt, backing} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	d, err := Mount(mnt, backing)
	if err != nil {
		return err
	}
	return d.Close()
}

// Mount serves backing at mountpoint (both existing directories).
// LOSSYFS_DEBUG=1 logs every FUSE request.
func Mount(mountpoint, backing string) (*Disk, error) {
	d := &Disk{mountpoint: mountpoint, backing: backing}
	return d, d.mount()
}

func (d *Disk) mount() error {
	d.fs = &lossy{undo: map[uint64]*undo{}}
	root, err := fs.NewLoopbackRoot(d.backing)
	if err != nil {
		return fmt.Errorf("lossyfs: %w", err)
	}
	wrapped := &node{LoopbackNode: root.(*fs.LoopbackNode), fs: d.fs}
	server, err := fs.Mount(d.mountpoint, wrapped, &fs.Options{MountOptions: fuse.MountOptions{
		FsName: "lossyfs", Name: "lossyfs", DirectMount: true, MaxWrite: 1 << 20, Debug: os.Getenv("LOSSYFS_DEBUG") != "",
	}})
	if err != nil {
		return fmt.Errorf("lossyfs: mount %s: %w", d.mountpoint, err)
	}
	d.server = server
	return nil
}

// PowerCut puts back what was written and never synced, and unmounts.
// Stop every process using the mount first.
func (d *Disk) PowerCut() (Lost, error) {
	lost, err := d.fs.cut()
	return lost, errors.Join(err, d.unmount())
}

// Remount serves the backing directory again after a PowerCut, as a
// machine rebooting onto what its disk holds.
func (d *Disk) Remount() error { return d.mount() }

// Close unmounts, keeping every write (a clean shutdown's disk).
func (d *Disk) Close() error {
	d.fs.forget()
	return d.unmount()
}

// unmount retries while processes just killed still hold files open.
func (d *Disk) unmount() error {
	if d.server == nil {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := d.server.Unmount()
		if err == nil {
			d.server = nil
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lossyfs: unmount %s: %w", d.mountpoint, err)
		}
		time.Sleep(50 * time.Millisecond) // the kernel closes a dead process's files on its own time
	}
}

// lossy is the state of one mount: per backing inode, what its first
// writes since its last sync replaced.
type lossy struct {
	mu   sync.Mutex
	undo map[uint64]*undo
	dead bool // cut: nothing more reaches the disk
}

// undo is how to put a file back to its last sync: its size then, and
// the pages it held before they were first written since.
type undo struct {
	fd      int // the backing file, opened for reading and writing
	size    int64
	pages   map[int64][]byte
	written int64
}

// before saves, for a write of n bytes at off to the backing file at
// path (inode ino), the pages it will change that were synced.
func (l *lossy) before(ino uint64, path string, off, n int64) syscall.Errno {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return syscall.EIO
	}
	u := l.undo[ino]
	if u == nil {
		fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			return fs.ToErrno(err)
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			syscall.Close(fd)
			return fs.ToErrno(err)
		}
		if st.Ino != ino { // renamed over meanwhile: refuse rather than save another file's pages
			syscall.Close(fd)
			return syscall.ESTALE
		}
		u = &undo{fd: fd, size: st.Size, pages: map[int64][]byte{}}
		l.undo[ino] = u
	}
	u.written += n
	for p := off / page * page; p < off+n && p < u.size; p += page {
		if _, saved := u.pages[p]; saved {
			continue
		}
		buf := make([]byte, page)
		got, err := syscall.Pread(u.fd, buf, p)
		if err != nil {
			return fs.ToErrno(err)
		}
		u.pages[p] = buf[:got]
	}
	return 0
}

// synced forgets what ino's file held before: it is on the disk.
func (l *lossy) synced(ino uint64) syscall.Errno {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return syscall.EIO
	}
	if u := l.undo[ino]; u != nil {
		syscall.Close(u.fd)
		delete(l.undo, ino)
	}
	return 0
}

// truncated records that ino's file was cut to size, which is durable
// at once: nothing beyond it comes back.
func (l *lossy) truncated(ino uint64, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := l.undo[ino]; u != nil && size < u.size {
		u.size = size
	}
}

// cut puts every file back to its last sync.
func (l *lossy) cut() (Lost, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dead = true
	var lost Lost
	var errs []error
	for ino, u := range l.undo {
		lost.Files++
		lost.Bytes += u.written
		for p, buf := range u.pages {
			if keep := u.size - p; keep < int64(len(buf)) {
				buf = buf[:max(keep, 0)]
			}
			if _, err := syscall.Pwrite(u.fd, buf, p); err != nil {
				errs = append(errs, fmt.Errorf("lossyfs: restore inode %d at %d: %w", ino, p, err))
			}
		}
		if err := syscall.Ftruncate(u.fd, u.size); err != nil {
			errs = append(errs, fmt.Errorf("lossyfs: truncate inode %d: %w", ino, err))
		}
		syscall.Close(u.fd)
	}
	l.undo = map[uint64]*undo{}
	return lost, errors.Join(errs...)
}

// forget keeps every write, as a clean shutdown does.
func (l *lossy) forget() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, u := range l.undo {
		syscall.Close(u.fd)
	}
	l.undo = map[uint64]*undo{}
}

// node is a loopback node whose files are lossy files.
type node struct {
	*fs.LoopbackNode
	fs *lossy
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
)

func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), fs: n.fs}
}

func (n *node) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	f, errno := n.file(n, n.backingPath(), fh, flags)
	return f, fuseFlags, errno
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	child, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	// The child is not yet in the tree: its path is the parent's and name.
	f, errno := n.file(child.Operations().(*node), filepath.Join(n.backingPath(), name), fh, flags)
	return child, f, fuseFlags, errno
}

// file wraps a loopback file handle of the backing file at path.
func (n *node) file(of *node, path string, fh fs.FileHandle, flags uint32) (fs.FileHandle, syscall.Errno) {
	lf := fh.(*fs.LoopbackFile)
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		lf.Release(context.Background())
		return nil, fs.ToErrno(err)
	}
	if flags&syscall.O_TRUNC != 0 {
		n.fs.truncated(st.Ino, 0)
	}
	return &file{LoopbackFile: lf, fs: n.fs, node: of, ino: st.Ino, sync: flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0}, 0
}

// Setattr records a truncation made by path (a handle's goes through file).
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok && f == nil {
		var st syscall.Stat_t
		if err := syscall.Lstat(n.backingPath(), &st); err == nil {
			n.fs.truncated(st.Ino, int64(size))
		}
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

// CopyFileRange would write past the saved pages: callers copy by hand.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, len uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.EOPNOTSUPP
}

// Tmpfile is not offered (O_TMPFILE falls back to a named file).
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// file is an open backing file whose writes are undone at a power cut
// unless synced.
type file struct {
	*fs.LoopbackFile
	fs   *lossy
	node *node
	ino  uint64
	sync bool
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if errno := f.fs.before(f.ino, f.node.backingPath(), off, int64(len(data))); errno != 0 {
		return 0, errno
	}
	n, errno := f.LoopbackFile.Write(ctx, data, off)
	if errno == 0 && f.sync {
		errno = f.fs.synced(f.ino)
	}
	return n, errno
}

func (f *file) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	var all []byte
	for _, d := range data {
		all = append(all, d...)
	}
	return f.Write(ctx, all, off)
}

// Fsync makes the file's writes durable. The backing file is not synced:
// the simulated power cut is the only one this disk sees.
func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return f.fs.synced(f.ino)
}

func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		f.fs.truncated(f.ino, int64(size))
	}
	return f.LoopbackFile.Setattr(ctx, in, out)
}

// PassthroughFd refuses kernel passthrough: every write must come here.
func (f *file) PassthroughFd() (int, bool) { return -1, false }

// Allocate is not offered: it would change sizes past the saved pages.
func (f *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	return syscall.EOPNOTSUPP
}
