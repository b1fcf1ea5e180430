// Package sinktest is the conformance suite every sink passes:
//
//	sinktest.Run(t, harness)
//
// It checks delivery, that redelivering an id has no second effect, that a
// cancelled context delivers nothing, that transient and permanent failures
// are told apart and leave no effect (for harnesses implementing Faults),
// and that Close is idempotent and final. A harness builds a fresh sink and
// lists the events it holds.
package sinktest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/money"
	"github.com/invoicehub/invoicehub/sinks"
)

// Harness gives the suite a sink and a view of its effects.
type Harness interface {
	// New returns a fresh, empty sink.
	New(t *testing.T) sinks.Sink
	// Delivered returns the ids of the events the sink holds, in any order,
	// one entry per effect (a duplicate effect shows as a repeated id).
	Delivered(t *testing.T, s sinks.Sink) []string
}

// Faults is implemented by harnesses that can make a delivery fail.
type Faults interface {
	// Fail returns an event whose delivery to s must fail, permanently or
	// transiently as asked, and leave no effect; ok is false when the sink
	// has no such failure (a file has no permanent one).
	Fail(t *testing.T, s sinks.Sink, permanent bool) (e sinks.Event, ok bool)
}

// Run runs the conformance suite against h.
func Run(t *testing.T, h Harness) {
	t.Run("delivers", func(t *testing.T) {
		s := h.New(t)
		defer s.Close(t.Context())
		for i := range 3 {
			if err := s.Deliver(t.Context(), Event(t, fmt.Sprintf("raw-%d", i), schemas.KindUpdated)); err != nil {
				t.Fatal(err)
			}
		}
		if got := h.Delivered(t, s); len(got) != 3 {
			t.Fatalf("holds %d events, want 3: %v", len(got), got)
		}
	})
	t.Run("redelivery has no second effect", func(t *testing.T) {
		s := h.New(t)
		defer s.Close(t.Context())
		e := Event(t, "raw-dup", schemas.KindPaid)
		for range 3 {
			if err := s.Deliver(t.Context(), e); err != nil {
				t.Fatal(err)
			}
		}
		if got := h.Delivered(t, s); len(got) != 1 || got[0] != e.ID() {
			t.Fatalf("holds %v, want once %s", got, e.ID())
		}
	})
	t.Run("cancelled context delivers nothing", func(t *testing.T) {
		s := h.New(t)
		defer s.Close(t.Context())
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := s.Deliver(ctx, Event(t, "raw-cancel", schemas.KindUpdated)); err == nil {
			t.Fatal("Deliver with a cancelled context returned nil")
		}
		if got := h.Delivered(t, s); len(got) != 0 {
			t.Fatalf("holds %v after a cancelled delivery", got)
		}
	})
	for _, permanent := range []bool{false, true} {
		class := map[bool]string{false: "transient", true: "permanent"}[permanent]
		name := map[bool]string{false: "transient failure is retried", true: "permanent failure is not"}[permanent]
		t.Run(name, func(t *testing.T) {
			f, ok := h.(Faults)
			if !ok {
				t.Skip("the harness cannot make this sink fail")
			}
			s := h.New(t)
			defer s.Close(t.Context())
			e, ok := f.Fail(t, s, permanent)
			if !ok {
				t.Skipf("the harness has no %s failure for this sink", class)
			}
			err := s.Deliver(t.Context(), e)
			if err == nil || consume.IsPermanent(err) != permanent {
				t.Fatalf("Deliver = %v; want a failure with permanent=%v", err, permanent)
			}
			for _, id := range h.Delivered(t, s) {
				if id == e.ID() {
					t.Fatal("a failed delivery left an effect")
				}
			}
			// The sink still delivers afterwards.
			next := Event(t, "raw-after-failure", schemas.KindUpdated)
			if err := s.Deliver(t.Context(), next); err != nil {
				t.Fatalf("after the failure: %v", err)
			}
		})
	}
	t.Run("close is idempotent and final", func(t *testing.T) {
		s := h.New(t)
		if err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(t.Context()); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := s.Deliver(t.Context(), Event(t, "raw-closed", schemas.KindUpdated)); err == nil {
			t.Fatal("Deliver after Close returned nil")
		}
	})
}

// Event returns a valid canonical event of kind derived from raw event
// rawID, for a Qonto invoice.
func Event(t testing.TB, rawID string, kind schemas.Kind) sinks.Event {
	t.Helper()
	eur, _ := money.LookupCurrency("EUR")
	amount := func(s string) money.Amount {
		d, err := money.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return money.Total(d, eur)
	}
	updated := time.Date(2024, 3, 4, 15, 58, 30, 0, time.UTC)
	data := schemas.EventData{
		SchemaVersion: schemas.SchemaVersion,
		Event:         schemas.EventInfo{Kind: kind, OccurredAt: updated, ProviderEventID: rawID, ProviderEventType: "v1/client-invoices"},
		Invoice: schemas.Invoice{
			ID: schemas.InvoiceID("qonto", "acme", "inv-1"), Provider: "qonto", Source: "acme", RemoteID: "inv-1",
			Number: "INV001", Direction: schemas.DirectionReceivable, DocumentType: schemas.DocumentInvoice,
			Status: schemas.StatusOpen, ProviderStatus: "unpaid", Currency: "EUR",
			Totals: schemas.Totals{
				LinesNet: amount("100"), Discount: amount("0"), Net: amount("100"), Tax: amount("20"),
				Total: amount("120"), Paid: amount("0"), Credited: amount("0"), Due: amount("120"),
			},
			RemoteUpdatedAt: &updated,
			RawRef:          schemas.RawRef{Stream: "WEBHOOKS", Sequence: 1},
		},
	}
	version := ce.InvoiceVersion(updated)
	ev, err := ce.NewCanonical(data, rawID, version, "")
	if err != nil {
		t.Fatal(err)
	}
	return sinks.Event{CloudEvent: ev, Version: version, StreamSequence: 1}
}
