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
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"gopkg.in/yaml.v3"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/internal/tracing"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// Event is a canonical event handed to a sink.
type Event struct {
	// CloudEvent is the event as published; Data decodes its data.
	CloudEvent event.Event
	// Version is the invoice version (ce.ExtInvoiceVersion); a sink keeping
	// current state keeps the highest.
	Version int64
	// StreamSequence is the event's position in the INVOICES stream.
	StreamSequence uint64
}

// ID returns the event id, the key of idempotent delivery.
func (e Event) ID() string { return e.CloudEvent.ID() }

// Data decodes the event's canonical payload as a tolerant reader
// (ce.DecodeData). Run checks only the envelope (ce.ReadCanonical): a sink
// that passes the event on as published never pays for decoding it; one
// that needs the invoice's fields calls Data once per delivery. Its error
// is permanent: no retry makes the data readable.
func (e Event) Data() (schemas.EventData, error) {
	d, err := ce.DecodeData(&e.CloudEvent)
	if err != nil {
		return schemas.EventData{}, consume.Permanent(fmt.Errorf("sinks: decode: %w", err))
	}
	return d, nil
}

// Sink delivers canonical events. Deliver returns nil once the event is
// durably delivered; an error is retried unless marked consume.Permanent.
// Close releases the sink; it is safe to call more than once.
type Sink interface {
	Deliver(ctx context.Context, e Event) error
	Close(ctx context.Context) error
}

// Parallel is implemented by a sink whose deliveries mostly wait (a
// network round trip each, as the http sink's): its consumer runs
// DefaultConcurrency deliveries at once, across invoices, unless the
// sinks file sets its concurrency. Other sinks get the consume adapter's
// default, 4.
type Parallel interface {
	DefaultConcurrency() int
}

// Factory builds a sink. It decodes its options with b.Options.Decode
// into its own options struct, so that a misspelt or mistyped option is
// refused at start.
type Factory func(ctx context.Context, b Build) (Sink, error)

// Build is what a factory gets to build one sink.
type Build struct {
	// ID is the sink's id (its consumer is sink-<ID>).
	ID string
	// Options are the sink's options as written in the sinks file.
	Options Options
	// Log is scoped to the sink (sink=<id>).
	Log *slog.Logger
	// Metrics registers the sink's own metrics; each gets the label
	// sink=<id>. Never nil.
	Metrics prometheus.Registerer
	// Secrets resolves the secret references of the options.
	Secrets stage.Secrets
}

// ScopedMetrics is reg with the label sink=<id> on every metric, or, with
// a nil reg, a registry that exports nothing.
func ScopedMetrics(reg prometheus.Registerer, id string) prometheus.Registerer {
	if reg == nil {
		return prometheus.NewRegistry()
	}
	return prometheus.WrapRegistererWith(prometheus.Labels{"sink": id}, reg)
}

// Deps are what a process gives every sink it builds.
type Deps struct {
	Log *slog.Logger
	// Metrics registers the sinks' metrics; nil registers none.
	Metrics prometheus.Registerer
	Secrets stage.Secrets
	// Hooks, if set, gives each sink's consumer its hooks (Serve calls it
	// once per spec: observe.Stage.Hooks).
	Hooks func(consume.Config) consume.Hooks
}

// Options are a sink's type-specific settings (path, url, dsn...), as
// written in the sinks file.
type Options map[string]any

// Decode decodes the options into into, a pointer to the sink's options
// struct (fields tagged `yaml:"name"`), strictly: an option the struct
// does not have, or a value of the wrong type, is an error naming the
// option (never its value: it may be a secret pasted by mistake).
func (o Options) Decode(into any) error {
	for _, key := range slices.Sorted(maps.Keys(o)) { // one at a time, to name the culprit
		fresh := reflect.New(reflect.TypeOf(into).Elem()).Interface()
		if err := decodeYAML(map[string]any{key: o[key]}, fresh); err != nil {
			return fmt.Errorf("option %s: %w", key, err)
		}
	}
	return decodeYAML(map[string]any(o), into)
}

func decodeYAML(v map[string]any, into any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil && !errors.Is(err, io.EOF) {
		return stage.YAMLError(err)
	}
	return nil
}

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
func (r *Registry) New(ctx context.Context, spec Spec, deps Deps) (Sink, error) {
	r.mu.RLock()
	f, ok := r.factories[spec.Type]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (sink %q); known: %v", ErrUnknownType, spec.Type, spec.ID, r.Types())
	}
	log := cmp.Or(deps.Log, slog.New(slog.DiscardHandler))
	s, err := f(ctx, Build{ID: spec.ID, Options: spec.Options, Log: log.With("sink", spec.ID), Metrics: ScopedMetrics(deps.Metrics, spec.ID), Secrets: deps.Secrets})
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
	// Concurrency, MaxAttempts, MaxAge, Backoff, AckWait, Heartbeat and
	// DrainTimeout tune the consumer (see consume.Config); LoadConfig sets
	// the last three from the stage's configuration. A zero Concurrency
	// is the sink's own default (Parallel), or the adapter's.
	Concurrency                      int
	MaxAttempts                      int
	MaxAge                           time.Duration
	Backoff                          consume.Backoff
	AckWait, Heartbeat, DrainTimeout time.Duration
	Options                          Options
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
		Concurrency: s.Concurrency, MaxAttempts: s.MaxAttempts, MaxAge: s.MaxAge, Backoff: s.Backoff, AckWait: s.AckWait, Heartbeat: s.Heartbeat,
		DrainTimeout: s.DrainTimeout, Hooks: s.Hooks,
		Key: func(d *consume.Delivery) string { return d.Header.Get("ce-" + ce.ExtPartitionKey) },
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
	cc := spec.ConsumeConfig()
	if p, ok := sink.(Parallel); ok && cc.Concurrency == 0 {
		cc.Concurrency = p.DefaultConcurrency()
	}
	return consume.Run(ctx, js, cc, func(ctx context.Context, d *consume.Delivery) error {
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

// Decode turns a delivery from INVOICES into an Event, reading its
// envelope as a tolerant reader (ce.ReadCanonical): what this version
// does not know is ignored, so a newer normalizer's additive changes never
// dead-letter. The data is decoded by Event.Data, for the sinks that use it.
func Decode(ctx context.Context, d *consume.Delivery) (Event, error) {
	ev, version, err := ce.ReadCanonical(ctx, d.Msg())
	if err != nil {
		return Event{}, fmt.Errorf("sinks: decode: %w", err)
	}
	return Event{CloudEvent: *ev, Version: version, StreamSequence: d.Sequence}, nil
}
