// Package sinks is the plugin API for delivering canonical invoice events
// downstream. A sink is one small package: a type that implements Sink, a
// Factory, and one Register line in package builtin.
//
// Sinks never ack or retry: Run feeds them through the shared consume
// adapter, which retries transient errors and dead-letters permanent ones
// (consume.Permanent, consume.RetryAfter). A sink must be idempotent by
// event id: the same event may be delivered more than once.
package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/tracing"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// Event is a canonical event handed to a sink.
type Event struct {
	// CloudEvent is the event as published; its data is Data, encoded.
	CloudEvent event.Event
	// Data is the decoded canonical payload.
	Data schemas.EventData
	// Sequence is the invoice version (the CloudEvent sequence extension);
	// a sink keeping current state keeps the highest.
	Sequence int64
	// StreamSequence is the event's position in the INVOICES stream.
	StreamSequence uint64
}

// ID returns the event id, the key of idempotent delivery.
func (e Event) ID() string { return e.CloudEvent.ID() }

// Sink delivers canonical events. Deliver returns nil once the event is
// durably delivered; an error is retried unless marked consume.Permanent.
// Close releases the sink; it is safe to call more than once.
type Sink interface {
	Deliver(ctx context.Context, e Event) error
	Close(ctx context.Context) error
}

// Factory builds a sink from its options.
type Factory func(ctx context.Context, opts Options) (Sink, error)

// Options are a sink's type-specific settings (path, url, dsn...).
type Options map[string]string

// Registry maps sink types to factories.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
}

// Register adds a sink type. It panics if typ is empty or already
// registered: registration is a programming step, done once at init.
func (r *Registry) Register(typ string, f Factory) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if typ == "" || f == nil {
		panic("sinks: Register with empty type or nil factory")
	}
	if _, dup := r.factories[typ]; dup {
		panic("sinks: sink type registered twice: " + typ)
	}
	if r.factories == nil {
		r.factories = map[string]Factory{}
	}
	r.factories[typ] = f
}

// Types lists the registered sink types, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	types := make([]string, 0, len(r.factories))
	for t := range r.factories {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}

// ErrUnknownType is returned by New for a type nobody registered.
var ErrUnknownType = errors.New("sinks: unknown sink type")

// New builds a sink of the spec's type.
func (r *Registry) New(ctx context.Context, spec Spec) (Sink, error) {
	r.mu.RLock()
	f, ok := r.factories[spec.Type]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (sink %q); known: %v", ErrUnknownType, spec.Type, spec.ID, r.Types())
	}
	s, err := f(ctx, spec.Options)
	if err != nil {
		return nil, fmt.Errorf("sinks: %s sink %q: %w", spec.Type, spec.ID, err)
	}
	return s, nil
}

// Spec configures one sink instance.
type Spec struct {
	// ID names the instance: consumer sink-<id>, dead letters dlq.sink.<id>.
	ID string
	// Type is the registered sink type: file, stdout, http, sql...
	Type string
	// Kinds and Providers filter the events, server-side; empty means all.
	Kinds     []schemas.Kind
	Providers []string
	// Concurrency, MaxAttempts, Backoff, AckWait and Heartbeat tune the
	// consumer (see consume.Config).
	Concurrency        int
	MaxAttempts        int
	Backoff            consume.Backoff
	AckWait, Heartbeat time.Duration
	Options            Options
	// Hooks connect the consumer to the stage running it (readiness, the
	// delivery ledger); they are not read from the sinks file.
	Hooks consume.Hooks
}

var idSyntax = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Validate reports every problem with the spec.
func (s Spec) Validate() error {
	var errs []error
	if !idSyntax.MatchString(s.ID) {
		errs = append(errs, fmt.Errorf("sink id %q: want lower-case letters, digits, '-' or '_'", s.ID))
	}
	if s.Type == "" {
		errs = append(errs, fmt.Errorf("sink %q: type is required", s.ID))
	}
	for _, k := range s.Kinds {
		if !slices.Contains(schemas.Kinds, k) {
			errs = append(errs, fmt.Errorf("sink %q: unknown kind %q", s.ID, k))
		}
	}
	return errors.Join(errs...)
}

// FilterSubjects returns the server-side filters for the spec: every
// (kind, provider) pair, or all canonical events when both are empty; and
// the sink's replay subject, where its dead letters come back.
func (s Spec) FilterSubjects() []string {
	replay := subject.Replay("sink", s.ID)
	if len(s.Kinds) == 0 && len(s.Providers) == 0 {
		return []string{subject.InvoicesRoot + ".>", replay}
	}
	kinds := []string{""}
	if len(s.Kinds) > 0 {
		kinds = kinds[:0]
		for _, k := range s.Kinds {
			kinds = append(kinds, string(k))
		}
	}
	providers := s.Providers
	if len(providers) == 0 {
		providers = []string{""}
	}
	var out []string
	for _, k := range kinds {
		for _, p := range providers {
			out = append(out, subject.InvoiceFilter(k, p, ""))
		}
	}
	return append(out, replay)
}

// ConsumeConfig returns the consumer configuration for the spec: one
// invoice's events are delivered one at a time, in stream order (key: the
// partitionkey extension, the invoice id).
func (s Spec) ConsumeConfig() consume.Config {
	return consume.Config{
		Stage: "sink", ID: s.ID, Stream: subject.InvoicesStream, FilterSubjects: s.FilterSubjects(),
		Concurrency: s.Concurrency, MaxAttempts: s.MaxAttempts, Backoff: s.Backoff, AckWait: s.AckWait, Heartbeat: s.Heartbeat,
		Hooks: s.Hooks,
		Key:   func(d *consume.Delivery) string { return d.Header.Get("ce-" + ce.ExtPartitionKey) },
	}
}

// Run delivers the canonical events matching spec to sink until ctx ends,
// through the shared consume adapter. A message that is not a valid
// canonical event is dead-lettered at once.
func Run(ctx context.Context, js jetstream.JetStream, spec Spec, sink Sink, log *slog.Logger) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	log = log.With("component", "sink", "sink", spec.ID)
	return consume.Run(ctx, js, spec.ConsumeConfig(), func(ctx context.Context, d *consume.Delivery) error {
		e, err := Decode(ctx, d)
		if err != nil {
			return consume.Permanent(err)
		}
		ctx, span := tracing.Start(ctx, "sink.deliver", ce.StringExtension(&e.CloudEvent, ce.ExtTraceParent),
			attribute.String("invoicehub.sink", spec.ID), attribute.String("invoicehub.event_id", e.ID()))
		defer span.End()
		err = sink.Deliver(ctx, e)
		tracing.Fail(span, err)
		return err
	}, log)
}

// Decode turns a delivery from INVOICES into an Event, validating the data
// against the canonical schema.
func Decode(ctx context.Context, d *consume.Delivery) (Event, error) {
	ev, err := ce.FromMsg(ctx, d.Msg())
	if err != nil {
		return Event{}, fmt.Errorf("sinks: decode: %w", err)
	}
	if err := schemas.Validate(ev.Data()); err != nil {
		return Event{}, fmt.Errorf("sinks: decode %s: %w", ev.ID(), err)
	}
	var data schemas.EventData
	if err := json.Unmarshal(ev.Data(), &data); err != nil {
		return Event{}, fmt.Errorf("sinks: decode %s: %w", ev.ID(), err)
	}
	seq, err := ce.ParseSequence(ev)
	if err != nil {
		return Event{}, fmt.Errorf("sinks: decode %s: %w", ev.ID(), err)
	}
	return Event{CloudEvent: *ev, Data: data, Sequence: seq, StreamSequence: d.Sequence}, nil
}
