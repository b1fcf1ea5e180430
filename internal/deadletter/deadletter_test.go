package deadletter

import (
	"errors"
	"strings"
	"testing"

	"github.com/invoicehub/invoicehub/schemas/subject"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/streams"
)

func deadLetter(t *testing.T, js jetstream.JetStream, stage, consumer, body string) {
	t.Helper()
	h := nats.Header{"ce-id": {body}, consume.HeaderErrorClass: {"http_400"}, consume.HeaderStreamSeq: {"7"}, consume.HeaderStream: {"INVOICES"}}
	if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: "dlq." + stage + "." + consumer, Header: h, Data: []byte(body)}); err != nil {
		t.Fatal(err)
	}
}

func TestListShowReplayPurge(t *testing.T) {
	_, js := jstest.Run(t).Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	deadLetter(t, js, "sink", "crm", "a")
	deadLetter(t, js, "sink", "archive", "b")
	deadLetter(t, js, "normalizer", "default", "c")
	tests := []struct {
		filter string
		want   []string
	}{{"", []string{"a", "b", "c"}}, {"sink", []string{"a", "b"}}, {"sink.crm", []string{"a"}}, {"normalizer.default", []string{"c"}}, {"sink.nobody", nil}}
	for _, tt := range tests {
		got, err := List(t.Context(), js, ParseFilter(tt.filter))
		if err != nil {
			t.Fatal(err)
		}
		var bodies []string
		for _, l := range got {
			bodies = append(bodies, string(l.Data))
		}
		if len(bodies) != len(tt.want) || len(bodies) > 0 && bodies[0] != tt.want[0] {
			t.Errorf("filter %q: %v, want %v", tt.filter, bodies, tt.want)
		}
	}
	l, err := Get(t.Context(), js, 1)
	if err != nil || l.Stage != "sink" || l.Consumer != "crm" || l.Class() != "http_400" {
		t.Fatalf("get: %+v %v", l, err)
	}
	if _, err := Get(t.Context(), js, 99); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	// Replay goes to the sink's replay subject, in INVOICES, and leaves the DLQ.
	if err := Replay(t.Context(), js, 1); err != nil {
		t.Fatal(err)
	}
	inv, _ := js.Stream(t.Context(), subject.InvoicesStream)
	m, err := inv.GetLastMsgForSubject(t.Context(), "replay.sink.crm")
	if err != nil || string(m.Data) != "a" || m.Header.Get("ce-id") != "a" || m.Header.Get(consume.HeaderErrorClass) != "" {
		t.Fatalf("replayed message %v %v", m, err)
	}
	// Its ledger entry was stored first: it precedes the replay's attempts.
	ledgerStream, _ := js.Stream(t.Context(), subject.LedgerStream)
	entry, err := ledgerStream.GetLastMsgForSubject(t.Context(), subject.LedgerRoot+".sink.crm.>")
	if err != nil || !strings.Contains(string(entry.Data), `"result":"replayed"`) {
		t.Fatalf("replayed entry %v %v", entry, err)
	}
	if entry.Time.After(m.Time) {
		t.Fatalf("replayed entry stored at %v, after the replay at %v", entry.Time, m.Time)
	}
	if n, err := Purge(t.Context(), js, ParseFilter("sink")); err != nil || n != 1 {
		t.Fatalf("purge sink: %d %v", n, err)
	}
	left, _ := List(t.Context(), js, Filter{})
	if len(left) != 1 || string(left[0].Data) != "c" {
		t.Fatalf("left %v", left)
	}
}
