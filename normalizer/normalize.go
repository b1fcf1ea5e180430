// Package normalizer turns raw webhooks (stream WEBHOOKS) into canonical
// invoice events (stream INVOICES): one schema, exact money, one status
// enum, whatever the provider.
//
// Normalize is pure: from a raw CloudEvent and the invoice's known state
// it derives the canonical events and the state to keep. The Normalizer
// runs it on a durable consumer through the shared consume adapter, one
// invoice at a time in stream order, and keeps each invoice's state in a
// JetStream KV bucket, written with compare-and-set together with the
// announcement of the change's events, which are published after and then
// confirmed: every change is announced exactly once, whatever crashes
// where, however late a raw event is redelivered or resent.
package normalizer

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/normalizer/mapper"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
)

// ErrUnknownProvider is returned for a raw event of a provider with no mapper.
var ErrUnknownProvider = errors.New("unknown_provider")

// ErrInvalidIdentifier classes a raw event whose id, or whose invoice's
// id, cannot be carried in a key, a subject or a header (see
// schemas.CheckIdentifier).
var ErrInvalidIdentifier = errors.New("invalid_identifier")

// Class returns the error class of a normalization error, for dead letters
// and metrics.
func Class(err error) string {
	for _, c := range []error{ErrUnknownProvider, ErrInvalidIdentifier, ErrSchemaViolation} {
		if errors.Is(err, c) {
			return c.Error()
		}
	}
	return mapper.Class(err)
}

// Canonical is one canonical event: its message, to be published as it
// is (on its subject, Nats-Msg-Id its id), and its data.
type Canonical struct {
	Msg  *nats.Msg
	Data schemas.EventData
}

// ID is the event's id, its dedup id in INVOICES.
func (c Canonical) ID() string { return c.Msg.Header.Get(jetstream.MsgIDHeader) }

// Output is what one raw event yields.
type Output struct {
	Events []Canonical
	// State is the state to store, or nil when it must not change. It
	// carries the announcement of Events.
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
	return apply(res, raw.ID(), known, ce.StringExtension(raw, ce.ExtTraceParent), time.Now())
}

// apply decides what a mapped raw event does to the known state, whose
// own announcement, if any, the caller has published already: nothing for
// a repeat of a raw event the state holds or a stale version; otherwise
// the change's events and the next state, announcing them. now stamps the
// announcement.
func apply(res mapper.Result, rawID string, known *State, traceparent string, now time.Time) (Output, error) {
	switch {
	case res.Action == mapper.ActionSkip:
		return Output{Outcome: OutcomeSkipped}, nil
	case known.applied(rawID):
		return Output{Outcome: OutcomeApplied}, nil
	case known != nil && res.Version < known.Sequence:
		return Output{Outcome: OutcomeStale}, nil
	}
	var prev *schemas.Invoice
	if known != nil && !known.Deleted {
		prev = &known.Invoice
	}
	c := derive(prev, res, rawID)
	switch c.outcome {
	case OutcomeDeletedUnknown:
		return Output{Outcome: c.outcome}, nil
	case OutcomeUnchanged:
		out := Output{Outcome: c.outcome}
		if res.Version > known.Sequence { // keep the newer version: an older one must not apply after it
			next := *known
			next.Sequence, next.Applied, next.Pending = res.Version, known.withApplied(rawID), nil
			out.State = &next
		}
		return out, nil
	}
	a := &Announcement{RawID: rawID, Kinds: c.kinds, Info: c.info, Payment: c.payment, Traceparent: traceparent, WrittenAt: now.UTC()}
	next := &State{Invoice: c.invoice, Sequence: res.Version, Deleted: res.Action == mapper.ActionDeleted, Applied: known.withApplied(rawID), Pending: a}
	events, err := next.announced()
	if err != nil {
		return Output{}, err
	}
	return Output{Events: events, State: next, Outcome: OutcomePublished, Warnings: check(c.invoice)}, nil
}

func mapRaw(raw *event.Event, header nats.Header, ref schemas.RawRef, opts Options) (mapper.Result, error) {
	return mapFields(rawFields(raw), header, ref, opts)
}

// rawFields are the fields of a raw CloudEvent a mapper reads, as ingress
// built them.
func rawFields(raw *event.Event) ce.Raw {
	return ce.Raw{
		Provider: ce.StringExtension(raw, ce.ExtProvider), Source: ce.StringExtension(raw, ce.ExtSource),
		ID: raw.ID(), Type: raw.Type(), Time: raw.Time(), Body: raw.Data(),
	}
}

// mapFields maps a raw event, from its fields and its provider headers:
// for the normalizer, and for ingress's size check (InvoiceSize).
func mapFields(r ce.Raw, header nats.Header, ref schemas.RawRef, opts Options) (mapper.Result, error) {
	m, ok := mapper.Lookup(r.Provider)
	if !ok {
		return mapper.Result{}, fmt.Errorf("%w: %q", ErrUnknownProvider, r.Provider)
	}
	in := mapper.Input{
		Provider: r.Provider, Source: r.Source, EventID: r.ID, EventType: r.Type,
		Time: r.Time, Body: r.Body, Headers: ce.ProviderHeaders(header), RawRef: ref,
	}
	if opts.Receivable[r.Provider+"/"+r.Source] {
		in.Direction = schemas.DirectionReceivable
	}
	return m(in)
}

// announced builds the events of the state's announcement, in the order
// of schemas.Kinds: always the same events, ids included, for the same
// state. It keeps the invoice's JSON for the state's own encoding.
func (s *State) announced() ([]Canonical, error) {
	a := s.Pending
	if a == nil || len(a.Kinds) == 0 {
		return nil, nil
	}
	var datas []schemas.EventData
	for _, kind := range schemas.Kinds {
		if !slices.Contains(a.Kinds, kind) {
			continue
		}
		info := a.Info
		info.Kind = kind
		data := schemas.EventData{SchemaVersion: schemas.SchemaVersion, Event: info, Invoice: s.Invoice}
		if kind == schemas.KindPaymentReceived {
			data.Payment = a.Payment
		}
		datas = append(datas, data)
	}
	invoice, err := schemas.EncodeJSON(s.Invoice)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSchemaViolation, err)
	}
	msgs, err := ce.CanonicalMsgs(datas, invoice, a.RawID, s.Sequence, a.Traceparent)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSchemaViolation, err)
	}
	s.invoiceJSON = invoice
	out := make([]Canonical, len(msgs))
	for i, m := range msgs {
		out[i] = Canonical{Msg: m, Data: datas[i]}
	}
	return out, nil
}
