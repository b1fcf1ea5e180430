// Package mapper turns one provider's raw webhook into the canonical
// invoice (schemas.Invoice). Each provider is one file and one entry in the
// table; they share this package's toolkit for money, dates and statuses,
// so amounts are parsed from their literal JSON text and rendered at the
// currency's minor unit the same way for everyone.
//
// A mapper knows every event its provider documents: an event about an
// invoice maps to a Result; a genuine event about something else (a
// customer, a transaction...) is ActionSkip, acknowledged and counted,
// never dead-lettered; only what needs a person is an error.
package mapper

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/invoicehub/invoicehub/schemas"
)

// Error classes of a raw event that cannot be mapped. They name the
// problem in dead letters and metrics.
var (
	ErrMalformedJSON = errors.New("malformed_json")
	// ErrUnknownEventType is an event of an invoice entity (a Rillet
	// INVOICE, a Mercoa invoice.*...) that the provider does not document.
	ErrUnknownEventType = errors.New("unknown_event_type")
	ErrUnmappable       = errors.New("unmappable")
	// ErrTooPrecise is a settled amount with more decimals than its
	// currency's minor unit (see settled).
	ErrTooPrecise = errors.New("amount_too_precise")
)

// Class returns the error class of err ("malformed_json"...), or "internal".
func Class(err error) string {
	for _, c := range []error{ErrMalformedJSON, ErrUnknownEventType, ErrTooPrecise, ErrUnmappable} {
		if errors.Is(err, c) {
			return c.Error()
		}
	}
	return "internal"
}

func unmappable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnmappable, fmt.Sprintf(format, args...))
}

func unknownEvent(provider, eventType string) error {
	return fmt.Errorf("%w: %s %q", ErrUnknownEventType, provider, eventType)
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
	// ActionUpsert: created or changed, Result.Invoice is the full state;
	// the normalizer tells created from updated by what it knows.
	ActionUpsert Action = iota
	// ActionCreated: the provider says created; Result.Invoice is the full state.
	ActionCreated
	// ActionDeleted: deleted; Result.Invoice may hold only ids.
	ActionDeleted
	// ActionSkip: a genuine event that is not about an invoice; only
	// Result.ProviderEventType is set.
	ActionSkip
)

// Result is the canonical reading of one webhook.
type Result struct {
	Action  Action
	Invoice schemas.Invoice
	// Payment is set when the webhook reports a payment.
	Payment *schemas.Payment
	// OccurredAt is when the change happened at the provider.
	OccurredAt time.Time
	// Version orders the invoice's versions: microseconds since the epoch
	// of the latest time the payload proves (the provider's update time;
	// for Moxie, which has none, its latest send, payment or creation
	// date). A version older than the known state's is stale.
	Version int64
	// ProviderEventType is the provider's own name for the event.
	ProviderEventType string
	// PreviousStatus is the status before the change, when the provider
	// says (Mercoa's invoice.status.changed).
	PreviousStatus schemas.Status
}

// skip is the result of a genuine event that is not about an invoice.
func skip(eventType string) (Result, error) {
	return Result{Action: ActionSkip, ProviderEventType: eventType}, nil
}

// Mapper maps one provider's raw webhooks.
type Mapper func(in Input) (Result, error)

// table is the one list of mappers, by provider: schemas.Providers.
var table = map[string]Mapper{
	"mercoa":           mapMercoa,
	"moxie":            mapMoxie,
	"qonto":            mapQonto,
	"rillet":           mapRillet,
	"standardwebhooks": mapStandardWebhooks,
}

// Lookup returns the mapper for a provider.
func Lookup(provider string) (Mapper, bool) {
	m, ok := table[provider]
	return m, ok
}

// Providers lists the providers with a mapper, sorted.
func Providers() []string { return slices.Sorted(maps.Keys(table)) }
