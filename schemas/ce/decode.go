package ce

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"

	"github.com/invoicehub/invoicehub/schemas"
)

// Canonical is a canonical event as a consumer reads it.
type Canonical struct {
	// Event is the CloudEvent as published; its data is Data, encoded.
	Event *event.Event
	// Data is the decoded payload.
	Data schemas.EventData
	// Version is the invoice version (ExtInvoiceVersion): of two states of
	// one invoice, keep the higher.
	Version int64
}

// ErrNotCanonical is returned for a CloudEvent that is not a canonical
// invoice event this version can read.
var ErrNotCanonical = errors.New("ce: not a canonical invoice event")

// DecodeCanonical reads a canonical event as a tolerant reader: it decodes
// the fields this version knows and ignores the others, and it does not
// validate against the schema (the producer does, before publishing). So
// an additive change of v1 — a new optional field, a new event kind, a new
// provider — reaches consumers built before it without an error; README's
// "Compatibility" says what is additive. It refuses only what no version
// of v1 publishes: an event without a v1 type, data that is not JSON, an
// event without an invoice id or a kind, or without an invoice version.
func DecodeCanonical(ctx context.Context, msg *nats.Msg) (Canonical, error) {
	ev, version, err := ReadCanonical(ctx, msg)
	if err != nil {
		return Canonical{}, err
	}
	d, err := DecodeData(ev)
	if err != nil {
		return Canonical{}, err
	}
	return Canonical{Event: ev, Data: d, Version: version}, nil
}

// ReadCanonical reads a canonical event's envelope as DecodeCanonical
// does, without decoding its data: a v1 type, an invoice id (the
// CloudEvent subject), an invoice version, and data that is one
// well-formed JSON value. A consumer that passes the event on as it was
// published (a webhook, a file) needs nothing more; DecodeData decodes
// the data when needed.
func ReadCanonical(ctx context.Context, msg *nats.Msg) (*event.Event, int64, error) {
	ev, err := FromMsg(ctx, msg)
	if err != nil {
		return nil, 0, err
	}
	if !isCanonicalType(ev.Type()) {
		return nil, 0, fmt.Errorf("%w: type %q", ErrNotCanonical, ev.Type())
	}
	if ev.Subject() == "" {
		return nil, 0, fmt.Errorf("%w: %s: no subject (invoice id)", ErrNotCanonical, ev.ID())
	}
	if !jsontext.Value(ev.Data()).IsValid() {
		return nil, 0, fmt.Errorf("%w: %s: data is not JSON", ErrNotCanonical, ev.ID())
	}
	version, err := ParseInvoiceVersion(ev)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s: %w", ErrNotCanonical, ev.ID(), err)
	}
	return ev, version, nil
}

// DecodeData decodes a canonical event's data as a tolerant reader
// (members this version does not know are ignored); it refuses data
// without an invoice id or a kind.
func DecodeData(ev *event.Event) (schemas.EventData, error) {
	var d schemas.EventData
	if err := jsonv2.Unmarshal(ev.Data(), &d); err != nil { // v2: a third faster; ignores unknown members as v1 does
		return schemas.EventData{}, fmt.Errorf("%w: %s: data: %w", ErrNotCanonical, ev.ID(), err)
	}
	if d.Invoice.ID == "" || d.Event.Kind == "" {
		return schemas.EventData{}, fmt.Errorf("%w: %s: no invoice id or kind", ErrNotCanonical, ev.ID())
	}
	return d, nil
}

// isCanonicalType reports whether t is com.invoicehub.invoice.<kind>.v1,
// of any kind, known to this version or not.
func isCanonicalType(t string) bool {
	const prefix, suffix = "com.invoicehub.invoice.", ".v1"
	return len(t) > len(prefix)+len(suffix) && t[:len(prefix)] == prefix && t[len(t)-len(suffix):] == suffix
}
