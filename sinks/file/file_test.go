package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/sinks"
	"github.com/invoicehub/invoicehub/sinks/sinktest"
)

type harness struct{ paths map[sinks.Sink]string }

func (h *harness) New(t *testing.T) sinks.Sink {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s, err := Factory(t.Context(), sinks.Build{Options: sinks.Options{"path": path}})
	if err != nil {
		t.Fatal(err)
	}
	h.paths[s] = path
	return s
}

func (h *harness) Delivered(t *testing.T, s sinks.Sink) []string { return readIDs(t, h.paths[s]) }

func readIDs(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev struct {
			ID   string            `json:"id"`
			Data schemas.EventData `json:"data"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

// failingWriter fails its first write, as a full disk would.
type failingWriter struct {
	w      io.Writer
	failed bool
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if !f.failed {
		f.failed = true
		return 0, errors.New("no space left on device")
	}
	return f.w.Write(p)
}

// failNextWrite makes the sink's next write fail: a transient failure. A
// file or stdout sink has no permanent one.
func failNextWrite(t *testing.T, s sinks.Sink, permanent bool) (sinks.Event, bool) {
	if permanent {
		return sinks.Event{}, false
	}
	fs := s.(*Sink)
	fs.w = &failingWriter{w: fs.w}
	return sinktest.Event(t, "raw-fail", schemas.KindUpdated), true
}

func (h *harness) Fail(t *testing.T, s sinks.Sink, permanent bool) (sinks.Event, bool) {
	return failNextWrite(t, s, permanent)
}

func (h *writerHarness) Fail(t *testing.T, s sinks.Sink, permanent bool) (sinks.Event, bool) {
	return failNextWrite(t, s, permanent)
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, &harness{paths: map[sinks.Sink]string{}})
}

type writerHarness struct{ bufs map[sinks.Sink]*bytes.Buffer }

func (h *writerHarness) New(t *testing.T) sinks.Sink {
	b := &bytes.Buffer{}
	s := NewWriter(b)
	h.bufs[s] = b
	return s
}

func (h *writerHarness) Delivered(t *testing.T, s sinks.Sink) []string {
	var ids []string
	for _, line := range bytes.Split(bytes.TrimSpace(h.bufs[s].Bytes()), []byte("\n")) {
		var ev struct{ ID string }
		if len(line) > 0 && json.Unmarshal(line, &ev) == nil {
			ids = append(ids, ev.ID)
		}
	}
	return ids
}

func TestStdoutConformance(t *testing.T) {
	sinktest.Run(t, &writerHarness{bufs: map[sinks.Sink]*bytes.Buffer{}})
}

func TestReopenKeepsIdempotence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	e := sinktest.Event(t, "raw-1", schemas.KindUpdated)
	for range 2 {
		s, err := Open(path, SyncAlways, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Deliver(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if ids := readIDs(t, path); len(ids) != 1 {
		t.Fatalf("after reopen the file holds %d lines", len(ids))
	}
}

// TestPartialLastLineIsMovedAside: a last line without its newline, torn
// by a crash of this sink or of another replica, or someone else's bytes,
// is kept in a sibling file (and logged), never dropped; the file goes on
// with whole lines.
func TestPartialLastLineIsMovedAside(t *testing.T) {
	first := sinktest.Event(t, "raw-1", schemas.KindUpdated)
	tests := []struct {
		name         string
		lines        []sinks.Event // whole lines before the partial one
		partial      string
		appearsLater bool // written while the sink is open, by another replica
	}{
		{name: "torn line of its own", lines: []sinks.Event{first}, partial: `{"specversion":"1.0","id":"half`},
		{name: "31 bytes it did not write", partial: "31 bytes without their newline."},
		{name: "torn by another replica", lines: []sinks.Event{first}, partial: `{"specversion":"1.0","id":"ha`, appearsLater: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			writeLines(t, path, tt.lines)
			if !tt.appearsLater {
				appendString(t, path, tt.partial)
			}
			var logs bytes.Buffer
			s, err := Open(path, SyncAlways, slog.New(slog.NewJSONHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close(context.Background()) })
			if tt.appearsLater {
				appendString(t, path, tt.partial)
			}
			second := sinktest.Event(t, "raw-2", schemas.KindUpdated)
			if err := s.Deliver(t.Context(), second); err != nil {
				t.Fatal(err)
			}
			want := append(eventIDs(tt.lines), second.ID())
			if got := readIDs(t, path); !slices.Equal(got, want) {
				t.Fatalf("file holds %v, want %v", got, want)
			}
			moved := movedAside(t, path)
			if moved.content != tt.partial {
				t.Fatalf("moved aside %q, want %q", moved.content, tt.partial)
			}
			if !strings.Contains(logs.String(), `"moved_to":"`+moved.name+`"`) {
				t.Fatalf("no log line names %s: %s", moved.name, logs.String())
			}
		})
	}
}

// partialFile is a file the sink moved a partial line to.
type partialFile struct{ name, content string }

// movedAside returns the one partial file beside path.
func movedAside(t *testing.T, path string) partialFile {
	t.Helper()
	names, err := filepath.Glob(path + ".partial-*")
	if err != nil || len(names) != 1 {
		t.Fatalf("partial files beside %s: %v (%v), want one", path, names, err)
	}
	b, err := os.ReadFile(names[0])
	if err != nil {
		t.Fatal(err)
	}
	return partialFile{names[0], string(b)}
}

// writeLines writes events to path as the sink does, one whole line each.
func writeLines(t *testing.T, path string, events []sinks.Event) {
	t.Helper()
	var b []byte
	for _, e := range events {
		line, err := e.CloudEvent.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		b = append(append(b, line...), '\n')
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// appendString appends s to path as a process dying mid-write would leave it.
func appendString(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func eventIDs(events []sinks.Event) []string {
	ids := []string{}
	for _, e := range events {
		ids = append(ids, e.ID())
	}
	return ids
}

// TestWholeLinesAreNotMovedAside: a file of whole lines is left alone.
func TestWholeLinesAreNotMovedAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	writeLines(t, path, []sinks.Event{sinktest.Event(t, "raw-1", schemas.KindUpdated)})
	s, err := Open(path, SyncNever, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close(t.Context())
	if names, _ := filepath.Glob(path + ".partial-*"); len(names) != 0 {
		t.Fatalf("moved aside: %v", names)
	}
}

// TestRefusesWhatIsNotARegularFile: a symbolic link at the path is not
// followed, whatever it points to, and its target is left as it was; a
// directory or a FIFO is refused too.
func TestRefusesWhatIsNotARegularFile(t *testing.T) {
	const content = "31 bytes without their newline."
	tests := []struct {
		name string
		// make puts the thing at path and returns the target a link
		// points to ("" for none) and what it must still hold ("" for
		// "must not exist").
		make func(t *testing.T, path string) (target, holds string)
	}{
		{"symlink to a file", func(t *testing.T, path string) (string, string) {
			target := filepath.Join(t.TempDir(), "target")
			must(t, os.WriteFile(target, []byte(content), 0o644))
			must(t, os.Symlink(target, path))
			return target, content
		}},
		{"dangling symlink", func(t *testing.T, path string) (string, string) {
			target := filepath.Join(t.TempDir(), "missing")
			must(t, os.Symlink(target, path))
			return target, ""
		}},
		{"directory", func(t *testing.T, path string) (string, string) { must(t, os.Mkdir(path, 0o755)); return "", "" }},
		{"fifo", func(t *testing.T, path string) (string, string) { must(t, syscall.Mkfifo(path, 0o644)); return "", "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			target, holds := tt.make(t, path)
			s, err := Open(path, SyncNever, nil)
			if err == nil {
				s.Close(t.Context())
			}
			if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want ErrNotRegular naming %s", err, path)
			}
			if target == "" {
				return
			}
			b, err := os.ReadFile(target)
			if holds == "" && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the link's target was created (%v)", err)
			}
			if holds != "" && string(b) != holds {
				t.Fatalf("the link's target holds %q (%v), want %q", b, err, holds)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.jsonl")
	os.WriteFile(junk, []byte("not json\n"), 0o644)
	tests := []struct {
		name string
		opts sinks.Options
	}{
		{"no path", sinks.Options{}},
		{"bad fsync", sinks.Options{"path": filepath.Join(dir, "x"), "fsync": "sometimes"}},
		{"not a jsonl file", sinks.Options{"path": junk}},
		{"directory", sinks.Options{"path": dir}},
		{"misspelt option", sinks.Options{"path": filepath.Join(dir, "y"), "fsnyc": "never"}},
		{"wrong type", sinks.Options{"path": []any{"a", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Factory(t.Context(), sinks.Build{Options: tt.opts}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestReplicasShareTheFile: two sinks (two replicas of the sinks stage)
// write one file in turns: every event is kept once, in the order
// delivered, none overwritten, and an event the other one wrote is not
// written again.
func TestReplicasShareTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.jsonl")
	a, err := Open(path, SyncNever, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(path, SyncNever, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	var events []sinks.Event
	for i := range 6 {
		e := sinktest.Event(t, "raw-"+strconv.Itoa(i), schemas.KindUpdated)
		s := []sinks.Sink{a, b}[i%2] // the replicas take turns
		if err := s.Deliver(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		want, events = append(want, e.ID()), append(events, e)
	}
	for _, e := range events { // redelivered to both: already there
		for _, s := range []sinks.Sink{a, b} {
			if err := s.Deliver(t.Context(), e); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := readIDs(t, path); !slices.Equal(got, want) {
		t.Fatalf("the shared file holds %v, want %v", got, want)
	}
}
