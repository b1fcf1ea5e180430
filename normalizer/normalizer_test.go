package normalizer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

func newJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := jstest.Run(t).Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	return js
}

func publishRaw(t *testing.T, js jetstream.JetStream, providerName string, body []byte, headers map[string]string) {
	t.Helper()
	e, h := rawEvent(t, providerName, body, headers)
	msg, err := ce.ToMsg(t.Context(), subject.Webhook(providerName, "acme"), *e)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		msg.Header[k] = v
	}
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
}

// qontoEnvelope wraps a client invoice in Qonto's documented envelope.
func qontoEnvelope(id, createdAt, data string) []byte {
	return []byte(`{"id":"` + id + `","subscription_id":"5b0c7e4c-1b1d-4c8e-9f3a-6d2e1c0b9a87","organization_id":"8f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b","membership_id":"2a3b4c5d-6e7f-4081-92a3-b4c5d6e7f809","type":"v1/client-invoices","created_at":"` + createdAt + `","data":` + data + `}`)
}

// publishUnmapped publishes a raw event of a provider with no mapper (one
// archived before a provider was withdrawn).
func publishUnmapped(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	e, err := ce.NewRaw(ce.Raw{Provider: "pennylane", Source: "acme", Type: "com.pennylane.invoice.created", ID: "p-1", Time: received, Body: []byte(`{"id":"p-1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ce.Publish(t.Context(), js, subject.Webhook("pennylane", "acme"), e); err != nil {
		t.Fatal(err)
	}
}

func publishFixture(t *testing.T, js jetstream.JetStream, path string) {
	t.Helper()
	p, body, headers := fixture(t, path)
	publishRaw(t, js, p, body, headers)
}

// runNormalizer runs a normalizer until the test ends or stop is called.
func runNormalizer(t *testing.T, js jetstream.JetStream, concurrency int) (stop func()) {
	t.Helper()
	cfg := Config{Concurrency: concurrency, MaxAttempts: 3, Backoff: consume.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}}
	n, err := New(t.Context(), js, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, cfg) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("normalizer: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

// drained waits until the normalizer's consumer has settled everything.
func drained(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	jstest.Eventually(t, 10*time.Second, "WEBHOOKS consumed", func() bool {
		c, err := js.Consumer(t.Context(), subject.WebhooksStream, Config{}.ConsumeConfig().Durable())
		if err != nil {
			return false
		}
		info, err := c.Info(t.Context())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

func TestEveryFailureClassIsDeadLetteredAndTheStreamFlows(t *testing.T) {
	js := newJetStream(t)
	publishFixture(t, js, "testdata/bad/qonto/malformed-json.json")                                                              // seq 1
	publishFixture(t, js, "testdata/raw/qonto/created-draft.json")                                                               // seq 2
	publishFixture(t, js, "testdata/bad/qonto/unknown-event-type.json")                                                          // seq 3
	publishFixture(t, js, "testdata/bad/qonto/currency-mismatch.json")                                                           // seq 4
	publishUnmapped(t, js)                                                                                                       // seq 5
	if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: "webhooks.qonto.acme", Data: []byte("no headers")}); err != nil { // seq 6
		t.Fatal(err)
	}
	publishFixture(t, js, "testdata/raw/qonto/updated-paid.json") // seq 7
	runNormalizer(t, js, 1)

	// created, updated; then updated, status_changed, sent, payment_received, paid.
	jstest.Eventually(t, 5*time.Second, "7 canonical events and 5 dead letters", func() bool {
		return jstest.Count(t, js, subject.InvoicesStream) == 7 && jstest.Count(t, js, subject.DLQStream) == 5
	})
	want := map[string]string{"1": "malformed_json", "3": "unknown_event_type", "4": "unmappable", "5": "unknown_provider", "6": "not_cloudevent"}
	for _, m := range jstest.Messages(t, js, subject.DLQStream) {
		seq := m.Header.Get(consume.HeaderStreamSeq)
		if m.Subject != "dlq.normalizer.default" || m.Header.Get(consume.HeaderErrorClass) != want[seq] || m.Header.Get(consume.HeaderReason) == "" {
			t.Errorf("dead letter of raw seq %s: %s %v", seq, m.Subject, m.Header)
		}
		delete(want, seq)
	}
	if len(want) != 0 {
		t.Errorf("no dead letter for %v", want)
	}
}

func TestRenormalizingHistoryPublishesNothingNew(t *testing.T) {
	js := newJetStream(t)
	publishFixture(t, js, "testdata/raw/qonto/created-draft.json")
	publishFixture(t, js, "testdata/raw/qonto/updated-paid.json")
	stop := runNormalizer(t, js, 1)
	drained(t, js)
	stop()
	before := jstest.Count(t, js, subject.InvoicesStream)
	// A fresh consumer re-reads the whole history.
	if err := js.DeleteConsumer(t.Context(), subject.WebhooksStream, Config{}.ConsumeConfig().Durable()); err != nil {
		t.Fatal(err)
	}
	runNormalizer(t, js, 1)
	drained(t, js)
	if after := jstest.Count(t, js, subject.InvoicesStream); after != before || before != 7 {
		t.Fatalf("INVOICES held %d events, %d after re-normalizing", before, after)
	}
}

// TestOutOfOrder: the provider delivers updated_at t2, then t1. The stored
// and published state stays at t2.
func TestOutOfOrder(t *testing.T) {
	js := newJetStream(t)
	publishFixture(t, js, "testdata/raw/qonto/updated-paid.json")  // t2: paid
	publishFixture(t, js, "testdata/raw/qonto/created-draft.json") // t1: draft, older
	runNormalizer(t, js, 1)
	drained(t, js)
	kv, err := js.KeyValue(t.Context(), StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(t.Context(), stateKey("qonto:acme:4d5418bb-bd0d-4df4-865c-c07afab8bb48"))
	if err != nil {
		t.Fatal(err)
	}
	var st State
	json.Unmarshal(e.Value(), &st)
	if st.Invoice.Status != schemas.StatusPaid || st.Invoice.RemoteUpdatedAt.Format(time.RFC3339) != "2022-03-04T15:58:30Z" {
		t.Fatalf("stored state regressed: %s at %v", st.Invoice.Status, st.Invoice.RemoteUpdatedAt)
	}
	for _, m := range jstest.Messages(t, js, subject.InvoicesStream) {
		var d schemas.EventData
		json.Unmarshal(m.Data, &d)
		if d.Invoice.Status != schemas.StatusPaid {
			t.Errorf("published a %s event with status %s", d.Event.Kind, d.Invoice.Status)
		}
	}
	if n := jstest.Count(t, js, subject.InvoicesStream); n != 5 {
		t.Fatalf("INVOICES holds %d events, want the 5 of t2", n)
	}
}

// TestReplicasDoNotClobber: two normalizers race over 20 versions of one
// invoice delivered in random order; the stored state ends at the newest
// and no version is published twice.
func TestReplicasDoNotClobber(t *testing.T) {
	js := newJetStream(t)
	const versions = 20
	order := rand.Perm(versions)
	for _, v := range order {
		at := time.Date(2024, 1, 1, 0, v, 0, 0, time.UTC).Format(time.RFC3339)
		body := qontoEnvelope(fmt.Sprintf("evt-%02d", v), at, fmt.Sprintf(`{"id":"race","number":"R-1","status":"unpaid","currency":"EUR","total_amount":{"value":"%d.00","currency":"EUR"}}`, 100+v))
		publishRaw(t, js, "qonto", []byte(body), nil)
	}
	runNormalizer(t, js, 4)
	runNormalizer(t, js, 4)
	drained(t, js)
	kv, _ := js.KeyValue(t.Context(), StateBucket)
	e, err := kv.Get(t.Context(), stateKey("qonto:acme:race"))
	if err != nil {
		t.Fatal(err)
	}
	var st State
	json.Unmarshal(e.Value(), &st)
	if st.Invoice.Totals.Total.String() != fmt.Sprintf("%d.00", 100+versions-1) || st.RawID != fmt.Sprintf("evt-%02d", versions-1) {
		t.Fatalf("final state %s from %s, want the newest", st.Invoice.Totals.Total, st.RawID)
	}
	seen := map[string]bool{}
	var newestPublished bool
	for _, m := range jstest.Messages(t, js, subject.InvoicesStream) {
		if m.Header.Get("ce-type") != schemas.KindUpdated.EventType() {
			continue
		}
		seq := m.Header.Get("ce-sequence")
		if seen[seq] {
			t.Errorf("version %s published twice", seq)
		}
		seen[seq] = true
		var d schemas.EventData
		json.Unmarshal(m.Data, &d)
		newestPublished = newestPublished || d.Event.ProviderEventID == st.RawID
	}
	if !newestPublished {
		t.Fatal("the newest version was not published")
	}
}

// TestRedeliveryAfterStateStoredRepublishes covers a crash between the
// state write and the publish: the redelivered "created" raw event finds
// its own state stored (the create it tries first fails), and publishes
// the events the first delivery derived, with the same ids.
func TestRedeliveryAfterStateStoredRepublishes(t *testing.T) {
	js := newJetStream(t)
	publishFixture(t, js, "testdata/raw/qonto/created-draft.json")
	raw := jstest.Messages(t, js, subject.WebhooksStream)[0]
	d := consume.Delivery{Subject: raw.Subject, Header: raw.Header, Data: raw.Data, Stream: subject.WebhooksStream, Sequence: raw.Sequence, Attempt: 2}
	n, err := New(t.Context(), js, Config{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	// The first delivery: derived and stored its state, then crashed.
	e, err := ce.FromMsg(t.Context(), d.Msg())
	if err != nil {
		t.Fatal(err)
	}
	first, err := Normalize(e, d.Header, schemas.RawRef{Stream: d.Stream, Sequence: d.Sequence}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.state.store(t.Context(), stateKey(first.State.Invoice.ID), first.State, 0); err != nil {
		t.Fatal(err)
	}
	if err := n.Handle(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range first.Events {
		want = append(want, c.Event.ID())
	}
	if got := eventIDs(t, js); !slices.Equal(got, want) || len(want) != 2 {
		t.Fatalf("redelivery published %v, want the created and updated %v", got, want)
	}
}

// eventIDs lists the ids of the events in INVOICES, in stream order.
func eventIDs(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var ids []string
	for _, m := range jstest.Messages(t, js, subject.InvoicesStream) {
		ids = append(ids, m.Header.Get("ce-id"))
	}
	return ids
}
