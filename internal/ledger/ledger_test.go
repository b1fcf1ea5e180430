package ledger

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// TestWriterRecordsEveryAttemptOfAnInvoice: what the adapter observes is
// read back per invoice, in order, with the replay `dlq replay` adds; an
// entry of another invoice is not.
func TestWriterRecordsEveryAttemptOfAnInvoice(t *testing.T) {
	srv := jstest.Run(t)
	nc, js := srv.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w, err := NewWriter(nc, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	const invoice = "qonto:acme:inv-1"
	d := &consume.Delivery{Stage: "sink", ConsumerID: "crm", Stream: subject.InvoicesStream, Sequence: 7, Subject: "invoices.v1.paid.qonto.acme",
		Header: nats.Header{"ce-id": {"e-1"}, "ce-type": {"com.invoicehub.invoice.paid.v1"}}, Key: invoice}
	w.Observe(d, consume.Outcome{Result: consume.ResultRetrying, Class: consume.ClassTransient, Err: errors.New("503"), Attempt: 1, NextRetry: time.Second})
	w.Observe(d, consume.Outcome{Result: consume.ResultDeadLettered, Class: "http_410", Err: errors.New("410"), Attempt: 2})
	other := *d
	other.Key = "qonto:acme:inv-2"
	w.Observe(&other, consume.Outcome{Result: consume.ResultDelivered, Attempt: 1})
	h := nats.Header{consume.HeaderStream: {subject.InvoicesStream}, consume.HeaderStreamSeq: {"7"}, consume.HeaderKey: {invoice}, "ce-id": {"e-1"}, consume.HeaderErrorClass: {"http_410"}}
	if err := Replayed(t.Context(), js, "sink", "crm", h); err != nil {
		t.Fatal(err)
	}
	var got []Entry
	jstest.Eventually(t, 5*time.Second, "three entries of the invoice", func() bool {
		got, err = OfInvoice(t.Context(), js, invoice)
		return err == nil && len(got) == 3
	})
	for i, want := range []consume.Result{consume.ResultRetrying, consume.ResultDeadLettered, ResultReplayed} {
		e := got[i]
		if e.Result != want || e.Durable() != "sink-crm" || e.EventID != "e-1" || e.StreamSeq != 7 || e.Invoice != invoice {
			t.Errorf("entry %d: %+v, want %s", i, e, want)
		}
	}
	if got[0].NextRetry == nil || got[0].Error != "503" || got[1].Class != "http_410" {
		t.Errorf("retry and dead letter details: %+v %+v", got[0], got[1])
	}
	if n := testutil.ToFloat64(w.failed); n != 0 {
		t.Errorf("%v write errors", n)
	}
}

// TestWriterNeverBlocksOnAMissingLedger: without the LEDGER stream the
// entries fail, counted, and Observe returns at once.
func TestWriterNeverBlocksOnAMissingLedger(t *testing.T) {
	nc, _ := jstest.Run(t).Connect(t)
	w, err := NewWriter(nc, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d := &consume.Delivery{Stage: "sink", ConsumerID: "crm", Header: nats.Header{}}
	start := time.Now()
	for range 10 {
		w.Observe(d, consume.Outcome{Result: consume.ResultDelivered, Attempt: 1})
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("10 observations took %v", took)
	}
	jstest.Eventually(t, 15*time.Second, "failures counted", func() bool { return testutil.ToFloat64(w.failed) == 10 })
	if err := w.Check(); err == nil || !strings.Contains(err.Error(), "invoicehub setup") {
		t.Fatalf("Check with entries failing = %v, want the problem named (the stage's readiness)", err)
	}
}

// TestWriterIsHealthyWhileItWrites: Check is nil while entries are
// written.
func TestWriterIsHealthyWhileItWrites(t *testing.T) {
	nc, js := jstest.Run(t).Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(nc, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	w.Observe(&consume.Delivery{Stage: "sink", ConsumerID: "crm", Header: nats.Header{}}, consume.Outcome{Result: consume.ResultDelivered, Attempt: 1})
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Check(); err != nil || testutil.ToFloat64(w.failed) != 0 {
		t.Fatalf("Check = %v with %v failures", err, testutil.ToFloat64(w.failed))
	}
}
