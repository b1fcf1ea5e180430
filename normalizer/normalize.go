// Package normalizer turns raw webhooks (stream WEBHOOKS) into canonical
// invoice events (stream INVOICES): one schema, exact money, one status
// enum, whatever the provider.
//
// Normalize is pure: from a raw CloudEvent and the invoice's known state
// it derives the canonical events and the state to keep. The Normalizer
// runs it on a durable consumer through the shared consume adapter, keeps
// the state in a JetStream KV bucket with compare-and-set (so replicas
// cannot clobber each other), and publishes with deterministic ids, so a
// redelivered or replayed raw event yields the same ids and JetStream drops
// the repeats.
package normalizer

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/invoicehub/invoicehub/normalizer/mapper"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// ErrUnknownProvider is returned for a raw event of a provider with no mapper.
var ErrUnknownProvider = errors.New("unknown_provider")

// Class returns the error class of a normalization error, for dead letters
// and metrics.
func Class(err error) string {
	for _, c := range []error{ErrUnknownProvider, ErrSchemaViolation} {
		if errors.Is(err, c) {
			return c.Error()
		}
	}
	return mapper.Class(err)
}

// Canonical is one canonical event, its decoded data, and the subject it
// is published on.
type Canonical struct {
	Subject string
	Event   event.Event
	Data    schemas.EventData
}

// Output is what one raw event yields.
type Output struct {
	Events []Canonical
	// State is the state to store, or nil when it must not change.
	State   *State
	Outcome Outcome
	// Warnings are EN 16931 arithmetic problems of the invoice (see check).
	Warnings []string
}

// Options adjust the mapping per source.
type Options struct {
	// Receivable lists "<provider>/<source>" whose invoices are
	// receivables although the provider's are payables (Mercoa).
	Receivable map[string]bool
}

// Normalize maps a raw CloudEvent stored at ref against the invoice's
// known state (nil when none). Errors carry a class (see Class): the raw
// event cannot be mapped, and retrying will not help.
func Normalize(raw *event.Event, header nats.Header, ref schemas.RawRef, known *State, opts Options) (Output, error) {
	res, err := mapRaw(raw, header, ref, opts)
	if err != nil {
		return Output{}, err
	}
	return apply(res, raw, known, ce.StringExtension(raw, ce.ExtTraceParent))
}

// apply derives a mapped raw event against the known state; the canonical
// events carry traceparent.
func apply(res mapper.Result, raw *event.Event, known *State, traceparent string) (Output, error) {
	if res.Action == mapper.ActionSkip {
		return Output{Outcome: OutcomeSkipped}, nil
	}
	seq := res.Version
	if known != nil && known.RawID == raw.ID() {
		// This raw event made the last change: derive it again from the
		// state before it, so its events are published even if a crash
		// cut them off. Their ids are the same.
		out, err := build(derive(known.Previous, res, raw.ID()), raw, seq, traceparent)
		out.State = nil
		return out, err
	}
	if stale(known, seq) {
		return Output{Outcome: OutcomeStale}, nil
	}
	var prev *schemas.Invoice
	if known != nil && !known.Deleted {
		prev = &known.Invoice
	}
	c := derive(prev, res, raw.ID())
	out, err := build(c, raw, seq, traceparent)
	if err != nil || c.outcome == OutcomeDeletedUnknown {
		return out, err
	}
	out.State = &State{Invoice: c.invoice, Previous: prev, Sequence: seq, RawID: raw.ID(), Deleted: res.Action == mapper.ActionDeleted}
	return out, nil
}

func mapRaw(raw *event.Event, header nats.Header, ref schemas.RawRef, opts Options) (mapper.Result, error) {
	providerName := ce.StringExtension(raw, ce.ExtProvider)
	source := ce.StringExtension(raw, ce.ExtSource)
	m, ok := mapper.Lookup(providerName)
	if !ok {
		return mapper.Result{}, fmt.Errorf("%w: %q", ErrUnknownProvider, providerName)
	}
	in := mapper.Input{
		Provider: providerName, Source: source, EventID: raw.ID(), EventType: raw.Type(),
		Time: raw.Time(), Body: raw.Data(), Headers: ce.ProviderHeaders(header), RawRef: ref,
	}
	if opts.Receivable[providerName+"/"+source] {
		in.Direction = schemas.DirectionReceivable
	}
	return m(in)
}

// build turns a change into its canonical events, in the order of
// schemas.Kinds.
func build(c change, raw *event.Event, seq int64, traceparent string) (Output, error) {
	out := Output{Outcome: c.outcome}
	if len(c.kinds) == 0 {
		return out, nil
	}
	out.Warnings = check(c.invoice)
	var datas []schemas.EventData
	for _, kind := range schemas.Kinds {
		if !slices.Contains(c.kinds, kind) {
			continue
		}
		info := c.info
		info.Kind = kind
		data := schemas.EventData{SchemaVersion: schemas.SchemaVersion, Event: info, Invoice: c.invoice}
		if kind == schemas.KindPaymentReceived {
			data.Payment = c.payment
		}
		datas = append(datas, data)
	}
	events, err := ce.NewCanonicalSet(datas, raw.ID(), seq, traceparent)
	if err != nil {
		return Output{}, fmt.Errorf("%w: %w", ErrSchemaViolation, err)
	}
	for i, e := range events {
		out.Events = append(out.Events, Canonical{Subject: subject.Invoice(string(datas[i].Event.Kind), c.invoice.Provider, c.invoice.Source), Event: e, Data: datas[i]})
	}
	return out, nil
}
