// Package mapper turns one provider's raw webhook into the canonical
// invoice (schemas.Invoice). Each provider is one file and one entry in the
// table; they share this file's toolkit for money, dates and statuses, so
// amounts are parsed from their literal JSON text and rendered at the
// currency's minor unit the same way for everyone.
package mapper

import (
	"errors"
	"fmt"
	"time"

	"github.com/invoicehub/invoicehub/schemas"
)

// Error classes of a raw event that cannot be mapped. They name the
// problem in dead letters and metrics.
var (
	ErrMalformedJSON    = errors.New("malformed_json")
	ErrUnknownEventType = errors.New("unknown_event_type")
	ErrUnmappable       = errors.New("unmappable")
)

// Class returns the error class of err ("malformed_json"...), or "internal".
func Class(err error) string {
	for _, c := range []error{ErrMalformedJSON, ErrUnknownEventType, ErrUnmappable} {
		if errors.Is(err, c) {
			return c.Error()
		}
	}
	return "internal"
}

func unmappable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnmappable, fmt.Sprintf(format, args...))
}

// Input is a raw webhook, as archived by ingress.
type Input struct {
	Provider, Source string
	// EventID and EventType are the raw CloudEvent's id and type.
	EventID, EventType string
	// Time is the raw CloudEvent's time: when the provider says the event
	// happened, or when it arrived.
	Time time.Time
	// Body is the provider's body, byte-for-byte.
	Body []byte
	// Headers are the provider headers ingress kept, lower-case names.
	Headers map[string]string
	// RawRef locates the raw event in WEBHOOKS.
	RawRef schemas.RawRef
	// Direction overrides the provider's usual direction (Mercoa's
	// payables can be configured as receivables); empty keeps it.
	Direction schemas.Direction
}

// Action is what a webhook reports about its invoice.
type Action int

// The actions.
const (
	ActionUpsert  Action = iota // created or changed; Result.Invoice is the full state
	ActionCreated               // created; Result.Invoice is the full state
	ActionDeleted               // deleted; Result.Invoice may hold only ids
)

// Result is the canonical reading of one webhook.
type Result struct {
	Action  Action
	Invoice schemas.Invoice
	// Payment is set when the webhook reports a payment.
	Payment *schemas.Payment
	// OccurredAt is when the change happened at the provider.
	OccurredAt time.Time
	// ProviderEventType is the provider's own name for the event.
	ProviderEventType string
	// PreviousStatus is the status before the change, when the provider
	// says (Mercoa's invoice.status.changed).
	PreviousStatus schemas.Status
}

// Mapper maps one provider's raw webhooks.
type Mapper func(in Input) (Result, error)

// table is the one list of mappers, by provider.
var table = map[string]Mapper{
	"mercoa": mapMercoa,
	"moxie":  mapMoxie,
	"qonto":  mapQonto,
	"rillet": mapRillet,
}

// Lookup returns the mapper for a provider.
func Lookup(provider string) (Mapper, bool) {
	m, ok := table[provider]
	return m, ok
}
