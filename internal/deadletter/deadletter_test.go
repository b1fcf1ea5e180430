package deadletter

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/invoicehub/invoicehub/schemas/subject"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/streams"
)

// deadLetter stores body as a message of the stream stage's consumers
// read, then a dead letter of it as the consume adapter writes one.
func deadLetter(t *testing.T, js jetstream.JetStream, stage, consumer, body string) {
	t.Helper()
	stream, subj := subject.InvoicesStream, "invoices.v1.created.qonto.acme"
	if stage == "normalizer" {
		stream, subj = subject.WebhooksStream, "webhooks.qonto.acme"
	}
	ack, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: subj, Header: nats.Header{"ce-id": {body}}, Data: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	forged(t, js, stage, consumer, body, stream, strconv.FormatUint(ack.Sequence, 10), subj)
}

// forged stores a dead letter as any user that may dead-letter can: its
// body and reference are whatever it says.
func forged(t *testing.T, js jetstream.JetStream, stage, consumer, body, stream, seq, subj string) {
	t.Helper()
	h := nats.Header{"ce-id": {body}, consume.HeaderErrorClass: {"http_400"}, consume.HeaderStreamSeq: {seq}, consume.HeaderStream: {stream}, consume.HeaderSubject: {subj}}
	if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: "dlq." + stage + "." + consumer, Header: h, Data: []byte(body)}); err != nil {
		t.Fatal(err)
	}
}

// TestReplaySendsTheOriginalNotTheDeadLettersCopy: a dead letter forged
// with a body of its own republishes the message its reference names,
// and one whose reference does not resolve is refused and kept.
func TestReplaySendsTheOriginalNotTheDeadLettersCopy(t *testing.T) {
	_, js := jstest.Run(t).Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	deadLetter(t, js, "sink", "crm", "genuine")                                                           // INVOICES 1, DLQ 1
	forged(t, js, "sink", "crm", "forged", subject.InvoicesStream, "1", "invoices.v1.created.qonto.acme") // DLQ 2
	forged(t, js, "sink", "crm", "forged", subject.InvoicesStream, "99", "invoices.v1.created.qonto.acme")
	forged(t, js, "sink", "crm", "forged", subject.WebhooksStream, "1", "invoices.v1.created.qonto.acme")
	forged(t, js, "sink", "crm", "forged", subject.InvoicesStream, "1", "invoices.v1.paid.qonto.acme")
	forged(t, js, "sink", "crm", "forged", "", "", "")
	if err := Replay(t.Context(), js, 2); err != nil {
		t.Fatal(err)
	}
	inv, _ := js.Stream(t.Context(), subject.InvoicesStream)
	m, err := inv.GetLastMsgForSubject(t.Context(), "replay.sink.crm")
	if err != nil || string(m.Data) != "genuine" || m.Header.Get("ce-id") != "genuine" {
		t.Fatalf("replayed %q %v, want the original's body", m.Data, err)
	}
	for seq := uint64(3); seq <= 6; seq++ {
		if err := Replay(t.Context(), js, seq); !errors.Is(err, ErrUnresolved) {
			t.Errorf("dead letter %d: %v, want ErrUnresolved", seq, err)
		}
		if _, err := Get(t.Context(), js, seq); err != nil {
			t.Errorf("dead letter %d was removed: %v", seq, err)
		}
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
