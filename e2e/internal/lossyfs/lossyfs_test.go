package lossyfs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mounted mounts a Disk for the test, or skips where FUSE cannot run.
func mounted(t *testing.T) (*Disk, string) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("the power-loss filesystem needs FUSE (root, /dev/fuse): %v", err)
	}
	dir := t.TempDir()
	mnt, backing := filepath.Join(dir, "mnt"), filepath.Join(dir, "disk")
	for _, d := range []string{mnt, backing} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Mount(mnt, backing)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, mnt
}

// writeFile writes data at off to path, fsyncing it if sync, and closes it.
func writeFile(t *testing.T, path string, flag int, off int64, data string, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(data), off); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPowerCutKeepsWhatWasSynced(t *testing.T) {
	big := strings.Repeat("s", 3*page+100) // spans pages, ends mid-page
	cases := []struct {
		name   string
		steps  func(t *testing.T, path string)
		before string // read back while mounted
		after  string // after the cut and a remount; "-" for no file
	}{
		{"never synced", func(t *testing.T, p string) { writeFile(t, p, 0, 0, "hello", false) }, "hello", ""},
		{"synced", func(t *testing.T, p string) { writeFile(t, p, 0, 0, "hello", true) }, "hello", "hello"},
		{"appended after a sync", func(t *testing.T, p string) {
			writeFile(t, p, 0, 0, "hello", true)
			writeFile(t, p, 0, 5, " world", false)
		}, "hello world", "hello"},
		{"overwritten after a sync", func(t *testing.T, p string) {
			writeFile(t, p, 0, 0, big, true)
			writeFile(t, p, 0, page-2, "XXXX", false)
			writeFile(t, p, 0, 2*page, "YY", false)
		}, big[:page-2] + "XXXX" + big[page+2:2*page] + "YY" + big[2*page+2:], big},
		{"synced twice", func(t *testing.T, p string) {
			writeFile(t, p, 0, 0, "one", true)
			writeFile(t, p, 0, 3, "two", true)
			writeFile(t, p, 0, 6, "three", false)
		}, "onetwothree", "onetwo"},
		{"O_SYNC writes", func(t *testing.T, p string) { writeFile(t, p, os.O_SYNC, 0, "direct", false) }, "direct", "direct"},
		{"truncated after a sync", func(t *testing.T, p string) {
			writeFile(t, p, 0, 0, "abcdefgh", true)
			writeFile(t, p, 0, 0, "ABCDEFGH", false)
			if err := os.Truncate(p, 4); err != nil {
				t.Fatal(err)
			}
		}, "ABCD", "abcd"},
		{"reopened with O_TRUNC", func(t *testing.T, p string) {
			writeFile(t, p, 0, 0, "abcdefgh", true)
			writeFile(t, p, os.O_TRUNC, 0, "xy", false)
		}, "xy", ""},
		{"renamed into place unsynced", func(t *testing.T, p string) {
			writeFile(t, p+".tmp", 0, 0, "meta", false)
			if err := os.Rename(p+".tmp", p); err != nil {
				t.Fatal(err)
			}
		}, "meta", ""},
		{"removed", func(t *testing.T, p string) {
			writeFile(t, p, 0, 0, "gone", true)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, "-", "-"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, mnt := mounted(t)
			path := filepath.Join(mnt, "f")
			c.steps(t, path)
			if got := read(t, path); got != c.before {
				t.Fatalf("while mounted: %q, want %q", short(got), short(c.before))
			}
			if _, err := d.PowerCut(); err != nil {
				t.Fatal(err)
			}
			if err := d.Remount(); err != nil {
				t.Fatal(err)
			}
			if got := read(t, path); got != c.after {
				t.Fatalf("after the cut: %q, want %q", short(got), short(c.after))
			}
		})
	}
}

// TestPowerCutCountsAndRefusesLaterWrites: the cut reports what it undid,
// and a process still holding a file open writes nothing more.
func TestPowerCutCountsAndRefusesLaterWrites(t *testing.T) {
	d, mnt := mounted(t)
	writeFile(t, filepath.Join(mnt, "a"), 0, 0, "12345", false)
	writeFile(t, filepath.Join(mnt, "b"), 0, 0, "123", false)
	writeFile(t, filepath.Join(mnt, "c"), 0, 0, "synced", true)
	lost, err := d.fs.cut()
	if err != nil {
		t.Fatal(err)
	}
	if lost != (Lost{Files: 2, Bytes: 8}) {
		t.Fatalf("lost %+v, want 2 files, 8 bytes", lost)
	}
	f, err := os.OpenFile(filepath.Join(mnt, "c"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("late"), 0); err == nil {
		t.Fatal("a write after the cut succeeded")
	}
	f.Close()
	if err := d.unmount(); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "-"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.Clone(b))
}

func short(s string) string {
	if len(s) > 40 {
		return s[:20] + "…" + s[len(s)-20:]
	}
	return s
}
