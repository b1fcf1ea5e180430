package sinks

import (
	"strings"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/schemas"
)

func TestParseFile(t *testing.T) {
	f, err := ParseFile(strings.NewReader(`
sinks:
  - id: archive
    type: file
    kinds: [paid]
    providers: [qonto]
    backoff: {base: 2s, max: 2s}
    options: {path: /data/x.jsonl}
  - {id: all, type: file, options: {path: /data/all.jsonl}}
notify:
  - {id: oncall, options: {url: "https://hooks.example.com/x"}}
`))
	if err != nil {
		t.Fatal(err)
	}
	specs := f.Sinks
	if len(f.Notify) != 1 || f.Notify[0].ConsumeConfig().Durable() != "notify-oncall" {
		t.Fatalf("notify %+v", f.Notify)
	}
	a := specs[0]
	if len(specs) != 2 || a.ID != "archive" || a.Kinds[0] != schemas.KindPaid || a.Backoff.Base != 2*time.Second || a.Backoff.Max != 2*time.Second || a.Options["path"] != "/data/x.jsonl" {
		t.Fatalf("specs %+v", specs)
	}
}

func TestParseFileReportsEveryProblem(t *testing.T) {
	_, err := ParseFile(strings.NewReader(`
sinks:
  - {id: a, type: file, kinds: [refunded], backoff: {base: soon}}
  - {id: a, type: file}
  - {id: "Bad Id"}
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"refunded", "backoff.base", "declared twice", "Bad Id", "type is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if _, err := ParseFile(strings.NewReader("sinks:\n  - {id: notify-x, type: stdout}\nnotify:\n  - {id: x}\n  - {id: y}\n  - {id: y}\n")); err == nil ||
		strings.Count(err.Error(), "declared twice") != 2 {
		t.Errorf("repeated notifier ids: %v", err)
	}
	if _, err := ParseFile(strings.NewReader("sinks: []\n")); err == nil {
		t.Error("empty file accepted")
	}
	if _, err := ParseFile(strings.NewReader("sinks:\n  - {id: a, type: file, colour: red}\n")); err == nil {
		t.Error("unknown field accepted")
	}
}
