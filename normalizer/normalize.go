// Package normalizer turns raw webhooks (stream WEBHOOKS) into canonical
// invoice events (stream INVOICES): one schema, exact money, one status
// enum, whatever the provider.
//
// Normalize is the pure mapping from a raw CloudEvent to canonical
// CloudEvents; Run feeds it from a durable consumer through the shared
// consume adapter and publishes the results with deterministic ids, so a
// redelivered or replayed raw event yields the same ids and JetStream
// drops the repeats.
package normalizer

import (
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/invoicehub/invoicehub/normalizer/mapper"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// ErrUnknownProvider is returned for a raw event of a provider with no mapper.
var ErrUnknownProvider = errors.New("unknown_provider")

// Canonical is one canonical event, its decoded data, and the subject it
// is published on.
type Canonical struct {
	Subject string
	Event   event.Event
	Data    schemas.EventData
}

// Normalize maps a raw CloudEvent, stored at ref, to its canonical events.
// Errors wrap a mapper error class (or ErrUnknownProvider): the raw event
// cannot be mapped, and retrying will not help.
func Normalize(raw *event.Event, header nats.Header, ref schemas.RawRef) ([]Canonical, error) {
	providerName := ce.StringExtension(raw, ce.ExtProvider)
	source := ce.StringExtension(raw, ce.ExtSource)
	m, ok := mapper.Lookup(providerName)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownProvider, providerName)
	}
	res, err := m(mapper.Input{
		Provider: providerName, Source: source, EventID: raw.ID(), EventType: raw.Type(),
		Time: raw.Time(), Body: raw.Data(), Headers: ce.ProviderHeaders(header), RawRef: ref,
	})
	if err != nil {
		return nil, err
	}
	kind := schemas.KindUpdated
	switch res.Action {
	case mapper.ActionCreated:
		kind = schemas.KindCreated
	case mapper.ActionDeleted:
		kind = schemas.KindDeleted
	}
	data := schemas.EventData{
		SchemaVersion: schemas.SchemaVersion,
		Event: schemas.EventInfo{
			Kind: kind, OccurredAt: res.OccurredAt, ProviderEventID: raw.ID(), ProviderEventType: res.ProviderEventType,
		},
		Invoice: res.Invoice,
		Payment: res.Payment,
	}
	updated := res.OccurredAt
	if u := res.Invoice.RemoteUpdatedAt; u != nil {
		updated = *u
	}
	e, err := ce.NewCanonical(data, raw.ID(), ce.Sequence(updated), ce.StringExtension(raw, ce.ExtTraceParent))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", mapper.ErrUnmappable, err)
	}
	return []Canonical{{Subject: subject.Invoice(string(kind), providerName, source), Event: e, Data: data}}, nil
}
