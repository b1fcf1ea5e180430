package file

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
		s, err := Open(path, SyncAlways)
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

func TestTornLastLineIsCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	s, _ := Open(path, SyncNever)
	first := sinktest.Event(t, "raw-1", schemas.KindUpdated)
	if err := s.Deliver(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	s.Close(t.Context())
	// The process died halfway through writing the next line.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"specversion":"1.0","id":"half`)
	f.Close()

	s, err := Open(path, SyncNever)
	if err != nil {
		t.Fatal(err)
	}
	second := sinktest.Event(t, "raw-2", schemas.KindUpdated)
	if err := s.Deliver(t.Context(), second); err != nil {
		t.Fatal(err)
	}
	s.Close(t.Context())
	ids := readIDs(t, path)
	if len(ids) != 2 || ids[0] != first.ID() || ids[1] != second.ID() {
		t.Fatalf("ids %v", ids)
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
	a, err := Open(path, SyncNever)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(path, SyncNever)
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
