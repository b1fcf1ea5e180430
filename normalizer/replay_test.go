package normalizer

import (
	"maps"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/schemas/subject"

	"github.com/invoicehub/invoicehub/internal/jstest"
)

func TestReplay(t *testing.T) {
	js := newJetStream(t)
	publishFixture(t, js, "testdata/raw/qonto/created-draft.json")          // seq 1, invoice A
	publishFixture(t, js, "testdata/raw/qonto/updated-paid.json")           // seq 2, invoice A
	publishFixture(t, js, "testdata/raw/qonto/updated-unpaid-overdue.json") // seq 3, invoice B
	publishFixture(t, js, "testdata/bad/qonto/malformed-json.json")         // seq 4
	n, err := New(t.Context(), js, Config{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		r        ReplayRange
		read     int
		outcomes map[string]int
		invoices uint64
	}{
		// Nothing consumed yet: replay normalizes everything.
		{"first replay", ReplayRange{}, 4, map[string]int{"published": 3, "malformed_json": 1}, 2 + 5 + 3},
		// Everything is in the state now: nothing is published again.
		{"again", ReplayRange{}, 4, map[string]int{"applied": 3, "malformed_json": 1}, 10},
		{"from a sequence", ReplayRange{FromSeq: 3}, 2, map[string]int{"applied": 1, "malformed_json": 1}, 10},
		{"a sequence range", ReplayRange{FromSeq: 2, ToSeq: 2}, 1, map[string]int{"applied": 1}, 10},
		{"since a time to come", ReplayRange{Since: time.Now().Add(time.Hour)}, 0, map[string]int{}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stats, err := n.Replay(t.Context(), tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if stats.Read != tt.read || !maps.Equal(stats.Outcomes, tt.outcomes) {
				t.Fatalf("read %d %v, want %d %v", stats.Read, stats.Outcomes, tt.read, tt.outcomes)
			}
			if got := jstest.Count(t, js, subject.InvoicesStream); got != tt.invoices {
				t.Fatalf("INVOICES holds %d, want %d", got, tt.invoices)
			}
		})
	}
}
