// Package file is the JSON-lines sink: each canonical event is appended to
// a file as one structured-mode CloudEvent (JSON) per line.
//
// Options: path (required); fsync, "always" (default) or "never".
//
//   - always: the line is fsynced before Deliver returns, so an acked event
//     survives a power cut. One fsync per event bounds throughput by the disk.
//   - never: lines reach the OS page cache only; a crash of the machine (not
//     of the process) can lose acked events. For dev and throwaway files.
//
// The sink is idempotent by event id: at open it reads the ids already in
// the file, and a redelivered id is not written twice. Several processes
// may share the file (replicas of the sinks stage, taking turns on the
// consumer): each write holds an exclusive flock, reads what the others
// appended since (their ids), and appends at the end. It keeps those ids
// in memory (about 100 bytes each): rotate the file, with a new sink id,
// when it grows into the millions of events.
//
// A last line without its newline (a write torn by a crash, before the
// ack) is moved aside, never dropped: copied to a new sibling file
// <path>.partial-<UTC time>-<random>, logged, and then cut from the file,
// so the next line starts on a line of its own. Its event is redelivered
// and written whole. The sink refuses a path that is a symbolic link or
// not a regular file (ErrNotRegular).
package file

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/invoicehub/invoicehub/sinks"
)

// SyncPolicy says when written lines are fsynced.
type SyncPolicy string

// The sync policies.
const (
	SyncAlways SyncPolicy = "always"
	SyncNever  SyncPolicy = "never"
)

// ErrNotRegular is returned by Open for a path that is a symbolic link or
// not a regular file: the sink writes, and cuts torn lines from, only a
// file of its own.
var ErrNotRegular = errors.New("file: not a regular file")

// Sink appends events to a JSON-lines file, or to standard output.
type Sink struct {
	mu     sync.Mutex
	w      io.Writer
	f      *os.File // nil for standard output: nothing to sync or cut back
	path   string
	log    *slog.Logger
	policy SyncPolicy
	seen   map[string]struct{}
	size   int64 // bytes of whole lines; a failed write is cut back to it
	closed bool
}

// StdoutFactory builds the stdout sink: JSON lines on standard output, each
// event id once per process (a pipe cannot take a line back). For trying
// things out and for log shippers.
func StdoutFactory(_ context.Context, b sinks.Build) (sinks.Sink, error) {
	if err := b.Options.Decode(&struct{}{}); err != nil { // it has none
		return nil, err
	}
	return NewWriter(os.Stdout), nil
}

// NewWriter returns a sink writing JSON lines to w.
func NewWriter(w io.Writer) *Sink {
	return &Sink{w: w, policy: SyncNever, seen: map[string]struct{}{}}
}

var _ sinks.Sink = (*Sink)(nil)

// Options are the file sink's options.
type Options struct {
	Path  string     `yaml:"path"`
	FSync SyncPolicy `yaml:"fsync"` // default always
}

// Factory builds a file sink from its options.
func Factory(_ context.Context, b sinks.Build) (sinks.Sink, error) {
	var o Options
	if err := b.Options.Decode(&o); err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	return Open(o.Path, cmp.Or(o.FSync, SyncAlways), b.Log)
}

// Open opens (or creates) the file at path for appending and loads the
// event ids it already holds; log (nil: none) hears of partial lines
// moved aside. It returns ErrNotRegular for a symbolic link, a directory
// or a device at path.
func Open(path string, policy SyncPolicy, log *slog.Logger) (*Sink, error) {
	if path == "" {
		return nil, errors.New("file: option path is required")
	}
	if policy != SyncAlways && policy != SyncNever {
		return nil, fmt.Errorf("file: fsync %q: want always or never", policy)
	}
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	log = cmp.Or(log, slog.New(slog.DiscardHandler))
	s := &Sink{w: f, f: f, path: path, log: log, policy: policy, seen: map[string]struct{}{}}
	if err := s.locked(s.catchUp); err != nil {
		f.Close()
		return nil, fmt.Errorf("file: %s: %w", path, err)
	}
	return s, nil
}

// openRegular opens (or creates) path for appending, refusing a symbolic
// link (O_NOFOLLOW) and anything but a regular file.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o644)
	if errors.Is(err, syscall.ELOOP) {
		if info, lerr := os.Lstat(path); lerr == nil && info.Mode()&os.ModeSymlink != 0 {
			return nil, fmt.Errorf("file: open %s: a symbolic link, refused: %w", path, ErrNotRegular)
		}
	}
	if errors.Is(err, syscall.EISDIR) {
		return nil, fmt.Errorf("file: open %s: a directory: %w", path, ErrNotRegular)
	}
	if err != nil {
		return nil, fmt.Errorf("file: open: %w", err)
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("%s: %w", info.Mode().Type(), ErrNotRegular)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file: open %s: %w", path, err)
	}
	return f, nil
}

// locked runs fn holding the file's exclusive lock, shared with the other
// processes writing it.
func (s *Sink) locked(fn func() error) error {
	if err := syscall.Flock(int(s.f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer syscall.Flock(int(s.f.Fd()), syscall.LOCK_UN)
	return fn()
}

// catchUp reads the ids of the lines appended since s.size (by this
// process before, or by another), moving a torn last line aside. The lock
// is held.
func (s *Sink) catchUp() error {
	info, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if info.Size() == s.size {
		return nil
	}
	if info.Size() < s.size { // cut back by another writer: read it all again
		s.size, s.seen = 0, map[string]struct{}{}
	}
	size, err := loadIDs(io.NewSectionReader(s.f, s.size, info.Size()-s.size), s.seen)
	if err != nil {
		return err
	}
	s.size += size
	if s.size < info.Size() {
		return s.moveAside(info.Size() - s.size)
	}
	return nil
}

// moveAside copies the last n bytes, a line without its newline, to a new
// sibling file, syncs it, and only then cuts them from the file. The lock
// is held.
func (s *Sink) moveAside(n int64) error {
	name, err := s.copyTail(n)
	if err != nil {
		return fmt.Errorf("move partial line aside: %w", err)
	}
	if err := s.f.Truncate(s.size); err != nil {
		return fmt.Errorf("cut partial line (kept in %s): %w", name, err)
	}
	s.log.Warn("file sink: moved a partial last line aside",
		"path", s.path, "bytes", n, "offset", s.size, "moved_to", name)
	return nil
}

// copyTail writes the last n bytes of the file to a new file beside it and
// returns its name, synced along with its directory.
func (s *Sink) copyTail(n int64) (string, error) {
	stamp := time.Now().UTC().Format("20060102T150405Z")
	tmp, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".partial-"+stamp+"-*")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(tmp, io.NewSectionReader(s.f, s.size, n))
	err = errors.Join(err, tmp.Sync(), tmp.Close())
	if err == nil {
		err = syncDir(filepath.Dir(tmp.Name()))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// syncDir makes a new entry of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// loadIDs adds every whole line's event id to seen and returns the bytes
// of those lines (a last line without its newline is torn: not counted).
func loadIDs(f io.Reader, seen map[string]struct{}) (int64, error) {
	r := bufio.NewReader(f)
	var good int64
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // a line without its newline is torn: dropped below
		}
		if err != nil {
			return 0, fmt.Errorf("read: %w", err)
		}
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(bytes.TrimSpace(line), &ev); err != nil || ev.ID == "" {
			return 0, fmt.Errorf("line %d is not a CloudEvent with an id", n)
		}
		seen[ev.ID] = struct{}{}
		good += int64(len(line))
	}
	return good, nil
}

// Deliver appends the event unless its id is already in the file.
func (s *Sink) Deliver(ctx context.Context, e sinks.Event) error {
	line, err := e.CloudEvent.MarshalJSON() // the SDK writes compact JSON: encoding/json would only scan it again
	if err != nil {
		return fmt.Errorf("file: encode %s: %w", e.ID(), err)
	}
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("file: sink is closed")
	}
	if s.f == nil {
		return s.deliver(ctx, e.ID(), line)
	}
	return s.locked(func() error {
		if err := s.catchUp(); err != nil {
			return fmt.Errorf("file: %w", err)
		}
		return s.deliver(ctx, e.ID(), line)
	})
}

func (s *Sink) deliver(ctx context.Context, id string, line []byte) error {
	if _, dup := s.seen[id]; dup {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.write(line); err != nil {
		return fmt.Errorf("file: %s: %w", id, err)
	}
	s.seen[id] = struct{}{}
	return nil
}

// write appends line and syncs it per policy; on failure it cuts the file
// back so no partial line is left before the next one.
func (s *Sink) write(line []byte) error {
	_, err := s.w.Write(line)
	if err == nil && s.policy == SyncAlways {
		err = s.f.Sync()
	}
	if err != nil && s.f != nil {
		return errors.Join(err, s.f.Truncate(s.size))
	}
	if err != nil {
		return err
	}
	s.size += int64(len(line))
	return nil
}

// Close syncs and closes the file; later calls do nothing.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.f == nil {
		return nil
	}
	err := errors.Join(s.f.Sync(), s.f.Close())
	if err != nil {
		return fmt.Errorf("file: close: %w", err)
	}
	return nil
}
