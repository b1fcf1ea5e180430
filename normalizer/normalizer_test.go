package normalizer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/stage"
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
	cfg := Config{Concurrency: concurrency, MaxAttempts: 3, MaxAge: time.Millisecond, Backoff: consume.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}}
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

// drained waits until the normalizer's consumer has settled everything
// stored: its ack floor is the stream's last message (the pending counts
// alone can be read before the consumer has heard of a message just
// stored).
func drained(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	jstest.Eventually(t, 10*time.Second, "WEBHOOKS consumed", func() bool {
		stream, err := js.Stream(t.Context(), subject.WebhooksStream)
		if err != nil {
			return false
		}
		c, err := js.Consumer(t.Context(), subject.WebhooksStream, Config{}.ConsumeConfig().Durable())
		if err != nil {
			return false
		}
		info, err := c.Info(t.Context())
		return err == nil && info.AckFloor.Stream >= stream.CachedInfo().State.LastSeq && info.NumPending == 0 && info.NumAckPending == 0
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
	if newest := st.Applied[len(st.Applied)-1]; st.Invoice.Totals.Total.String() != fmt.Sprintf("%d.00", 100+versions-1) || newest != fmt.Sprintf("evt-%02d", versions-1) || st.Pending != nil {
		t.Fatalf("final state %s from %s (pending %v), want the newest", st.Invoice.Totals.Total, newest, st.Pending)
	}
	seen := map[string]bool{}
	var newestPublished bool
	created := 0
	for _, m := range jstest.Messages(t, js, subject.InvoicesStream) {
		if m.Header.Get("ce-type") == schemas.KindCreated.EventType() {
			created++ // both replicas guess the invoice is new: one create wins
		}
		if m.Header.Get("ce-type") != schemas.KindUpdated.EventType() {
			continue
		}
		seq := m.Header.Get("ce-invoiceversion")
		if seen[seq] {
			t.Errorf("version %s published twice", seq)
		}
		seen[seq] = true
		var d schemas.EventData
		json.Unmarshal(m.Data, &d)
		newestPublished = newestPublished || d.Event.ProviderEventID == st.Applied[len(st.Applied)-1]
	}
	if !newestPublished {
		t.Fatal("the newest version was not published")
	}
	if created != 1 {
		t.Fatalf("%d created events, want 1", created)
	}
}

// crashAfterStateWrite does what a normalizer killed between its state
// write and its publish leaves behind: the raw event's state, with its
// announcement, stored; nothing published; the raw event unacknowledged.
// It returns the events that state announces.
func crashAfterStateWrite(t *testing.T, js jetstream.JetStream, path string, seq uint64) []string {
	t.Helper()
	n, err := New(t.Context(), js, Config{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	p, body, headers := fixture(t, path)
	raw, h := rawEvent(t, p, body, headers)
	out, err := Normalize(raw, h, schemas.RawRef{Stream: subject.WebhooksStream, Sequence: seq}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.state.store(t.Context(), stateKey(out.State.Invoice.ID), out.State, 0); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range out.Events {
		ids = append(ids, c.ID())
	}
	return ids
}

// TestRedeliveryAfterStateStoredAnnounces: killed between the state write
// and the publish, the redelivered raw event finds its announcement stored
// and publishes it: the same events, the same ids, once; the announcement
// is cleared.
func TestRedeliveryAfterStateStoredAnnounces(t *testing.T) {
	js := newJetStream(t)
	publishFixture(t, js, "testdata/raw/qonto/created-draft.json") // seq 1: the delivery that "crashed"
	want := crashAfterStateWrite(t, js, "testdata/raw/qonto/created-draft.json", 1)
	runNormalizer(t, js, 1) // the redelivery
	drained(t, js)
	if got := eventIDs(t, js); !slices.Equal(got, want) || len(want) != 2 {
		t.Fatalf("redelivery published %v, want the created and updated %v", got, want)
	}
	if st := loadState(t, js, "qonto:acme:4d5418bb-bd0d-4df4-865c-c07afab8bb48"); st.Pending != nil {
		t.Fatalf("announcement left pending: %+v", st.Pending)
	}
}

// TestCrashBeforeANewerUpdateLosesNothing (issue 10, failure 1): the draft's
// state is stored, the process dies before publishing, the newer update is
// normalized first, and the draft's redelivery comes last. Its created
// event is published all the same (by the update's normalization, which
// found the draft's announcement), once, before the update's events.
func TestCrashBeforeANewerUpdateLosesNothing(t *testing.T) {
	js := newJetStream(t)
	draft := crashAfterStateWrite(t, js, "testdata/raw/qonto/created-draft.json", 1)
	publishFixture(t, js, "testdata/raw/qonto/updated-paid.json")  // the newer update
	publishFixture(t, js, "testdata/raw/qonto/created-draft.json") // the draft's redelivery, last
	runNormalizer(t, js, 2)
	drained(t, js)
	got := eventIDs(t, js)
	if len(got) != 7 || !slices.Equal(got[:2], draft) {
		t.Fatalf("published %v: want the draft's created and updated %v first, then the update's five", got, draft)
	}
	assertNoRepeat(t, got)
}

// TestResendAfterTheDuplicateWindowAnnouncesNothing (issue 10, failure
// 2): a webhook resent after INVOICES' duplicate window, stored again by
// ingress, yields no canonical event: its change was announced.
func TestResendAfterTheDuplicateWindowAnnouncesNothing(t *testing.T) {
	js := newJetStreamWindow(t, 200*time.Millisecond)
	publishFixture(t, js, "testdata/raw/qonto/created-draft.json")
	publishFixture(t, js, "testdata/raw/qonto/updated-paid.json")
	runNormalizer(t, js, 1)
	drained(t, js)
	first := eventIDs(t, js)
	waitOutDuplicateWindow(t, js)
	resend(t, js, "testdata/raw/qonto/updated-paid.json")
	resend(t, js, "testdata/raw/qonto/created-draft.json")
	drained(t, js)
	if got := eventIDs(t, js); !slices.Equal(got, first) || len(first) != 7 {
		t.Fatalf("after the resends INVOICES holds %v, want only the first %d", got, len(first))
	}
}

// TestLateFlushDoesNotRepublish: killed after publishing but before
// clearing, with no reader until the duplicate window has passed; the
// next reader finds the announcement, sees its events in INVOICES, and
// does not publish them again.
func TestLateFlushDoesNotRepublish(t *testing.T) {
	js := newJetStreamWindow(t, 200*time.Millisecond)
	publishFixture(t, js, "testdata/raw/qonto/created-draft.json")
	crashAfterStateWrite(t, js, "testdata/raw/qonto/created-draft.json", 1)
	st := loadState(t, js, "qonto:acme:4d5418bb-bd0d-4df4-865c-c07afab8bb48")
	events, err := st.announced()
	if err != nil {
		t.Fatal(err)
	}
	n, _ := New(t.Context(), js, Config{}, quiet)
	if err := n.publish(t.Context(), events); err != nil { // published, then the crash
		t.Fatal(err)
	}
	waitOutDuplicateWindow(t, js)
	runLateReader(t, js)
	if got := eventIDs(t, js); len(got) != 2 {
		t.Fatalf("INVOICES holds %v, want the two events once", got)
	}
}

// TestLateFlushPublishesWhatIsMissing: killed before publishing, with no
// reader until the duplicate window has passed; the next reader finds the
// events missing from INVOICES and publishes them, once.
func TestLateFlushPublishesWhatIsMissing(t *testing.T) {
	js := newJetStreamWindow(t, 200*time.Millisecond)
	publishFixture(t, js, "testdata/raw/qonto/created-draft.json")
	want := crashAfterStateWrite(t, js, "testdata/raw/qonto/created-draft.json", 1)
	waitOutDuplicateWindow(t, js)
	runLateReader(t, js)
	if got := eventIDs(t, js); !slices.Equal(got, want) {
		t.Fatalf("INVOICES holds %v, want %v once", got, want)
	}
}

// newJetStreamWindow runs a JetStream whose streams have a short
// duplicate window.
// runLateReader runs a normalizer, on a 200 ms duplicate window, until it
// has consumed everything.
func runLateReader(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	cfg := Config{MaxAttempts: 3, Stage: stage.Config{Streams: streams.Config{DuplicateWindow: 200 * time.Millisecond}}}
	late, err := New(t.Context(), js, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- late.Run(ctx, cfg) }()
	drained(t, js)
	cancel()
	<-done
}

func newJetStreamWindow(t *testing.T, window time.Duration) jetstream.JetStream {
	t.Helper()
	_, js := jstest.Run(t).Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{DuplicateWindow: window}); err != nil {
		t.Fatal(err)
	}
	return js
}

// waitOutDuplicateWindow polls until INVOICES has forgotten a message id
// published now: a probe on a subject no consumer here reads.
func waitOutDuplicateWindow(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	probe := &nats.Msg{Subject: subject.Replay("sink", "probe"), Header: nats.Header{jetstream.MsgIDHeader: {"probe-" + t.Name()}}}
	if _, err := js.PublishMsg(t.Context(), probe); err != nil {
		t.Fatal(err)
	}
	jstest.Eventually(t, 10*time.Second, "the duplicate window passed", func() bool {
		ack, err := js.PublishMsg(t.Context(), probe)
		return err == nil && !ack.Duplicate
	})
}

// resend stores a fixture's raw event again, as ingress does when the
// provider resends it after WEBHOOKS' duplicate window.
func resend(t *testing.T, js jetstream.JetStream, path string) {
	t.Helper()
	p, body, headers := fixture(t, path)
	e, h := rawEvent(t, p, body, headers)
	msg, err := ce.ToMsg(t.Context(), subject.Webhook(p, "acme"), *e)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		msg.Header[k] = v
	}
	msg.Header.Set(jetstream.MsgIDHeader, "resent-"+e.ID())
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
}

func loadState(t *testing.T, js jetstream.JetStream, invoiceID string) *State {
	t.Helper()
	n, err := New(t.Context(), js, Config{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := n.state.load(t.Context(), stateKey(invoiceID))
	if err != nil || st == nil {
		t.Fatalf("state of %s: %v", invoiceID, err)
	}
	return st
}

// assertNoRepeat fails when an event id appears twice.
func assertNoRepeat(t *testing.T, ids []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("event %s published twice in %v", id, ids)
		}
		seen[id] = true
	}
}

// eventIDs lists the ids of the events in INVOICES, in stream order.
func eventIDs(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var ids []string
	for _, m := range jstest.Messages(t, js, subject.InvoicesStream) {
		if strings.HasPrefix(m.Subject, subject.InvoicesRoot+".") {
			ids = append(ids, m.Header.Get("ce-id"))
		}
	}
	return ids
}

// TestTooLargeForNATSIsDeadLetteredAtOnce: a raw event that fits the
// server's max_payload but whose state and canonical events do not (a
// minimal Rillet invoice, whose canonical form is 4× its raw body, on a
// server of max_payload 1,200 bytes) is dead-lettered on its first
// attempt as payload_too_large, since retrying cannot help; the raw event
// behind it is handled.
func TestTooLargeForNATSIsDeadLetteredAtOnce(t *testing.T) {
	_, js := jstest.RunWith(t, func(o *server.Options) { o.MaxPayload = 1200 }).Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	publishFixture(t, js, "testdata/raw/rillet/invoice-unbilled-minimal.json")
	publishFixture(t, js, "testdata/skip/rillet/vendor-deleted.json")
	runNormalizer(t, js, 1)
	drained(t, js)
	dls := jstest.Messages(t, js, subject.DLQStream)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	if c, a := dls[0].Header.Get(consume.HeaderErrorClass), dls[0].Header.Get(consume.HeaderAttempts); c != "payload_too_large" || a != "1" {
		t.Fatalf("dead letter class %q after %s attempts, want payload_too_large after 1", c, a)
	}
	if n := jstest.Count(t, js, subject.InvoicesStream); n != 0 {
		t.Fatalf("%d canonical events published", n)
	}
}

// TestOneInvoiceInStreamOrderAtConcurrency8: the normalizer runs 8 raw
// events at once across invoices, yet each invoice's canonical events
// come out in the order of its raw events (the adapter's per-key lanes):
// in INVOICES every invoice's versions increase and none is dropped as
// stale.
func TestOneInvoiceInStreamOrderAtConcurrency8(t *testing.T) {
	js := newJetStream(t)
	const invoices, versions = 12, 6
	start := time.Date(2024, 3, 4, 10, 0, 0, 0, time.UTC)
	for i := range invoices {
		for v := range versions {
			at := start.Add(time.Duration(v) * time.Minute).Format(time.RFC3339)
			data := fmt.Sprintf(`{"id":"inv-%d","number":"F-%d","status":"unpaid","currency":"EUR","total_amount":{"value":"%d.00","currency":"EUR"},"vat_amount":{"value":"0.00","currency":"EUR"},"issue_date":"2024-03-01","due_date":"2099-03-31","finalized_at":"2024-03-01T10:00:00Z"}`, i, i, 100+v)
			publishRaw(t, js, "qonto", qontoEnvelope(fmt.Sprintf("evt-%d-%d", i, v), at, data), nil)
		}
	}
	runNormalizer(t, js, 8)
	drained(t, js)
	last := map[string]string{}
	updates := map[string]int{}
	for _, m := range jstest.Messages(t, js, subject.InvoicesStream) {
		inv, version := m.Header.Get("ce-partitionkey"), m.Header.Get("ce-invoiceversion")
		if version < last[inv] { // same number of digits: string order is numeric order
			t.Errorf("%s: version %s after %s", inv, version, last[inv])
		}
		last[inv] = version
		if m.Header.Get("ce-type") == schemas.KindUpdated.EventType() {
			updates[inv]++
		}
	}
	if len(updates) != invoices {
		t.Fatalf("%d invoices updated, want %d", len(updates), invoices)
	}
	for inv, n := range updates {
		if n != versions {
			t.Errorf("%s: %d updated events, want %d (none stale)", inv, n, versions)
		}
	}
}
