package normalizer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/internal/tracing"
	"github.com/invoicehub/invoicehub/normalizer/mapper"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// ConsumerID names the normalizer's durable consumer (normalizer-default)
// and its dead letters (dlq.normalizer.default).
const ConsumerID = "default"

// Config tunes the normalizer.
type Config struct {
	// Stage is the common configuration. The normalizer reads from it the
	// state bucket's replicas (as the streams'), INVOICES' duplicate window
	// (an announcement older than it is checked against the stream before
	// it is published again; default 2m), the consumer's ack wait and
	// heartbeat, and the shutdown grace (how long deliveries in flight may
	// take to settle).
	Stage       stage.Config
	Concurrency int
	MaxAttempts int
	MaxAge      time.Duration
	Backoff     consume.Backoff
	// ReceivableSources lists "<provider>/<source>" whose invoices are
	// receivables although the provider's usually are payables (Mercoa).
	ReceivableSources []string
	// Registerer receives the metrics; nil means none are registered.
	Registerer prometheus.Registerer
	// Hooks connect the consumer to the stage running it (readiness, the
	// delivery ledger).
	Hooks consume.Hooks
}

// ConsumeConfig returns the consumer configuration of the normalizer.
func (c Config) ConsumeConfig() consume.Config {
	return consume.Config{
		Stage: "normalizer", ID: ConsumerID, Stream: subject.WebhooksStream,
		FilterSubjects: []string{subject.WebhooksRoot + ".>", subject.Replay("normalizer", ConsumerID)},
		Concurrency:    cmp.Or(c.Concurrency, DefaultConcurrency), MaxAttempts: c.MaxAttempts, MaxAge: c.MaxAge, Backoff: c.Backoff,
		AckWait: c.Stage.AckWait, Heartbeat: c.Stage.PullHeartbeat, DrainTimeout: c.Stage.ShutdownGrace,
		// A raw event's work is round trips to JetStream: one cut by a lost
		// connection is retried, not waited for (every step is idempotent).
		CancelOnDisconnect: true,
		Hooks:              c.Hooks,
	}
}

// DefaultConcurrency is how many raw events the normalizer handles at
// once, across invoices: each waits on three round trips to JetStream
// (the state write, the publishes, the announcement's clearing), and many
// in flight let the connection batch them. In `make bench-e2e` at
// 1,000/s, 4 cost 3,103–3,926 µs per webhook (p99 7.0–12.2 s), 16
// 2,235–2,720 µs (p99 2.7–5.3 s) and 64 1,886–1,955 µs (p99 1.2–1.6 s),
// the normalizer's RSS 53 MiB (docs/ARCHITECTURE.md, "Measured
// throughput").
const DefaultConcurrency = 64

// Normalizer consumes raw webhooks and publishes canonical events.
type Normalizer struct {
	js      jetstream.JetStream
	state   *stateStore
	opts    Options
	window  time.Duration
	log     *slog.Logger
	metrics *metrics
}

// casAttempts bounds the compare-and-set retries of one raw event before
// it is retried later with backoff.
const casAttempts = 8

// New returns a normalizer publishing with js; it creates or updates the
// state bucket.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger) (*Normalizer, error) {
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	st, err := openStateStore(ctx, js, cfg.Stage.Streams.Replicas, log)
	if err != nil {
		return nil, err
	}
	opts := Options{Receivable: map[string]bool{}}
	for _, s := range cfg.ReceivableSources {
		opts.Receivable[s] = true
	}
	window := cfg.Stage.Streams.DuplicateWindow
	if window <= 0 {
		window = 2 * time.Minute
	}
	return &Normalizer{js: js, state: st, opts: opts, window: window, log: log.With("component", "normalizer"), metrics: m}, nil
}

// Run processes WEBHOOKS until ctx ends, through the shared consume
// adapter: concurrently across invoices, one invoice's raw events in
// stream order.
func (n *Normalizer) Run(ctx context.Context, cfg Config) error {
	cc := cfg.ConsumeConfig()
	cc.Key = n.key
	return consume.Run(ctx, n.js, cc, n.Handle, n.log)
}

// prepared is a raw event decoded and mapped, once, by key.
type prepared struct {
	raw      *event.Event
	provider string
	res      mapper.Result
	err      error // permanent, classified
}

// prepare decodes and maps a delivery.
func (n *Normalizer) prepare(d *consume.Delivery) *prepared {
	if p, ok := d.Prepared.(*prepared); ok {
		return p
	}
	raw, err := ce.FromMsg(context.Background(), d.Msg())
	if err != nil {
		return &prepared{err: consume.PermanentClass("not_cloudevent", err)}
	}
	p := &prepared{raw: raw, provider: ce.StringExtension(raw, ce.ExtProvider)}
	if p.res, err = mapRaw(raw, d.Header, schemas.RawRef{Stream: d.Stream, Sequence: d.Sequence}, n.opts); err == nil {
		err = checkKeys(raw.ID(), p.res)
	}
	if err != nil {
		p.err = consume.PermanentClass(Class(err), fmt.Errorf("raw event %.80q: %w", raw.ID(), err))
	}
	d.Prepared = p
	return p
}

// checkKeys refuses, before any request to JetStream is built from them,
// the ids that become keys, subjects and headers: the invoice's (its state
// key, its ledger subject, its events' subject and partition key) and the
// raw event's (its events' ids). A 4,200-byte id made a protocol line the
// server refused, closing the connection.
func checkKeys(rawID string, res mapper.Result) error {
	if res.Action == mapper.ActionSkip {
		return nil
	}
	err := errors.Join(schemas.CheckIdentifier("raw event id", rawID), schemas.CheckIdentifier("invoice.id", res.Invoice.ID))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidIdentifier, err)
	}
	return nil
}

// key orders raw events by invoice: the adapter handles one invoice's raw
// events one at a time, in stream order.
func (n *Normalizer) key(d *consume.Delivery) string {
	p := n.prepare(d)
	if p.err != nil || p.res.Action == mapper.ActionSkip {
		return ""
	}
	return p.res.Invoice.ID
}

// Handle normalizes one raw webhook: it maps it, flushes the invoice's
// pending announcement if any, derives the events against the state,
// stores the new state with its announcement (compare-and-set), publishes
// the events and clears the announcement. A raw event that cannot be
// mapped is a permanent error with its class; KV and publish failures are
// transient.
func (n *Normalizer) Handle(ctx context.Context, d *consume.Delivery) error {
	_, err := n.process(ctx, d)
	return err
}

func (n *Normalizer) process(ctx context.Context, d *consume.Delivery) (Outcome, error) {
	p := n.prepare(d)
	if p.raw == nil {
		n.metrics.outcome("", "not_cloudevent")
		return "", p.err
	}
	ctx, span := tracing.Start(ctx, "normalizer.normalize", ce.StringExtension(p.raw, ce.ExtTraceParent),
		attribute.String("invoicehub.provider", p.provider), attribute.String("invoicehub.raw_id", p.raw.ID()))
	defer span.End()
	outcome, err := n.normalize(ctx, p)
	tracing.Fail(span, err)
	span.SetAttributes(attribute.String("invoicehub.outcome", string(outcome)))
	return outcome, err
}

func (n *Normalizer) normalize(ctx context.Context, p *prepared) (Outcome, error) {
	if p.err != nil {
		if class, _ := consume.PermanentClassOf(p.err); class != "" {
			n.metrics.outcome(p.provider, class)
		}
		return "", p.err
	}
	if p.res.Action == mapper.ActionSkip {
		n.metrics.skipped(p.provider, p.res.ProviderEventType)
		n.log.Debug("not about an invoice: skipped", "provider", p.provider, "raw_id", p.raw.ID(), "event_type", p.res.ProviderEventType)
		return OutcomeSkipped, nil
	}
	key := stateKey(p.res.Invoice.ID)
	guess := n.mayBeNew(p.res.Action, key)
	attempts := casAttempts
	if guess {
		attempts++ // a refused guess is not a concurrent change
	}
	for attempt := range attempts {
		var known *State
		var revision uint64
		var err error
		guessed := guess && attempt == 0
		if !guessed {
			if known, revision, err = n.state.load(ctx, key); err != nil {
				return "", err
			}
		}
		if known != nil && known.Pending != nil {
			if known, revision, err = n.flush(ctx, key, known, revision); errors.Is(err, errConflict) {
				continue
			} else if err != nil {
				return "", err
			}
		}
		out, err := apply(p.res, p.raw.ID(), known, tracing.Traceparent(ctx), time.Now())
		if guessed && (err != nil || out.State == nil) {
			continue // decided on a guess: read the state and decide again
		}
		if err != nil {
			return "", consume.PermanentClass(Class(err), fmt.Errorf("raw event %s: %w", p.raw.ID(), err))
		}
		if out.State == nil {
			n.report(p, out)
			return out.Outcome, nil
		}
		rev, err := n.storeState(ctx, key, out.State, revision, guessed)
		if errors.Is(err, errConflict) {
			continue
		} else if err != nil {
			return "", err
		}
		crashPoint("after-state-write")
		if err := n.publish(ctx, out.Events); err != nil {
			return "", err // the redelivery finds the announcement and publishes it
		}
		n.clear(ctx, key, out.State, rev)
		n.report(p, out)
		return out.Outcome, nil
	}
	return "", fmt.Errorf("normalizer: state of %s changed %d times in a row", p.res.Invoice.ID, casAttempts)
}

// mayBeNew decides whether a raw event is first tried as the invoice's
// creation, without reading its state (a round trip saved): when the
// provider says created, or says neither created nor deleted, and the
// invoice was never seen here. Should the invoice exist, the create
// conflicts like any compare-and-set and the next attempt reads it.
func (n *Normalizer) mayBeNew(action mapper.Action, key string) bool {
	return (action == mapper.ActionCreated || action == mapper.ActionUpsert) && n.state.unseen(key)
}

// storeState writes the next state: as a first value if it was derived
// from a guess that there was none, else compare-and-set on revision.
func (n *Normalizer) storeState(ctx context.Context, key string, st *State, revision uint64, guessed bool) (uint64, error) {
	if guessed {
		return n.state.storeNew(ctx, key, st)
	}
	return n.state.store(ctx, key, st, revision)
}

// flush publishes a state's pending announcement, then clears it; it
// returns the state without it and its revision. An announcement older
// than the duplicate window is first renewed (so that a later flush knows
// when this one may have published) and its events checked against
// INVOICES, so that what a crash left published is not published again.
func (n *Normalizer) flush(ctx context.Context, key string, st *State, revision uint64) (*State, uint64, error) {
	events, err := st.announced()
	if err != nil {
		return nil, 0, consume.PermanentClass(Class(err), err)
	}
	next := *st
	if since := st.Pending.WrittenAt; time.Since(since) > n.window-windowMargin {
		pending := *st.Pending
		pending.WrittenAt = time.Now().UTC()
		next.Pending = &pending
		if revision, err = n.state.store(ctx, key, &next, revision); err != nil {
			return nil, 0, err
		}
		if events, err = n.unpublished(ctx, events, since); err != nil {
			return nil, 0, err
		}
	}
	if err := n.publish(ctx, events); err != nil {
		return nil, 0, err
	}
	n.metrics.flushed.Inc()
	revision = n.clear(ctx, key, &next, revision)
	next.Pending = nil
	return &next, revision, nil
}

// clear writes st without its announcement, once its events are
// published; it returns the new revision (that read, if another writer
// was first: it flushed the same announcement).
func (n *Normalizer) clear(ctx context.Context, key string, st *State, revision uint64) uint64 {
	if st == nil || st.Pending == nil {
		return revision
	}
	cleared := *st
	cleared.Pending = nil
	rev, err := n.state.store(ctx, key, &cleared, revision)
	if err != nil {
		// The next reader flushes it again: within the duplicate window
		// JetStream drops the repeats, past it flush checks the stream.
		n.log.Debug("clearing an announcement", "key", key, "err", err)
		return revision
	}
	st.Pending = nil
	return rev
}

// roundTripTimeout bounds one request to JetStream (a state read or
// write, a publish): a stream whose leader froze answers nothing until
// the cluster elects another, and the request is better retried after
// the backoff, against the new leader, than waited out to the attempt's
// timeout (30 s: the cluster tier's frozen node kept the normalizer's
// writes waiting that long).
const roundTripTimeout = 5 * time.Second

func roundTrip(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, roundTripTimeout)
}

// windowMargin is how far inside the duplicate window an announcement is
// still trusted to JetStream's deduplication.
const windowMargin = 30 * time.Second

// publish publishes events one after the other, each once the one before
// is stored, so that INVOICES holds an invoice's events in the order they
// were derived whatever its leader does: published at once, a set whose
// first publish was lost in a leader's failover had its later events
// stored first and the first one on the retry. A repeat inside the
// duplicate window is acknowledged as a duplicate, in its place.
func (n *Normalizer) publish(ctx context.Context, events []Canonical) error {
	for _, c := range events {
		rtCtx, cancel := roundTrip(ctx)
		_, err := n.js.PublishMsg(rtCtx, c.Msg)
		cancel()
		if errors.Is(err, nats.ErrMaxPayload) {
			return consume.PermanentClass("payload_too_large", fmt.Errorf("normalizer: publish %s: %w", c.ID(), err))
		}
		if err != nil {
			return fmt.Errorf("normalizer: publish %s: %w", c.ID(), err)
		}
		n.metrics.published(c.Data.Event.Kind, c.Data.Invoice.Provider)
	}
	return nil
}

// report counts and logs what a raw event did.
func (n *Normalizer) report(p *prepared, out Output) {
	n.metrics.outcome(p.provider, string(out.Outcome))
	if out.Outcome == OutcomeStale {
		n.log.Info("stale update dropped", "provider", p.provider, "raw_id", p.raw.ID())
	}
	if len(out.Events) == 0 {
		return
	}
	inv := out.Events[0].Data.Invoice
	if inv.Status == schemas.StatusUnknown {
		n.metrics.unknownStatus(p.provider)
		n.log.Warn("unmapped provider status", "provider", p.provider, "raw_id", p.raw.ID(), "invoice", inv.ID, "provider_status", inv.ProviderStatus)
	}
	for _, w := range out.Warnings {
		n.metrics.arithmetic(p.provider)
		n.log.Warn("EN 16931 arithmetic", "provider", p.provider, "raw_id", p.raw.ID(), "invoice", inv.ID, "rule", w)
	}
}

// LoadConfig reads the normalizer's configuration, the common stage
// variables (package stage) and these, returning every problem at once:
//
//	INVOICEHUB_CONCURRENCY          deliveries in flight [64]
//	INVOICEHUB_MAX_ATTEMPTS         failures before a raw event is dead-lettered [10]
//	INVOICEHUB_MAX_AGE              and for how long at least (consume.Config) [1h]
//	INVOICEHUB_RECEIVABLE_SOURCES   comma-separated <provider>/<source> whose
//	                                invoices are receivables (Mercoa) []
func LoadConfig(getenv stage.Env, readFile stage.ReadFile) (Config, error) {
	common, commonErr := stage.Load(getenv, readFile)
	p := &stage.Parser{Getenv: getenv}
	c := Config{
		Stage:       common,
		Concurrency: p.Int("INVOICEHUB_CONCURRENCY", DefaultConcurrency, 1, 256),
		MaxAttempts: p.Int("INVOICEHUB_MAX_ATTEMPTS", 10, 1, 1000),
		MaxAge:      p.Duration("INVOICEHUB_MAX_AGE", time.Hour),
	}
	for _, s := range strings.Split(getenv("INVOICEHUB_RECEIVABLE_SOURCES"), ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if prov, src, ok := strings.Cut(s, "/"); !ok || prov == "" || src == "" {
			p.Fail("INVOICEHUB_RECEIVABLE_SOURCES: %q is not <provider>/<source>", s)
			continue
		}
		c.ReceivableSources = append(c.ReceivableSources, s)
	}
	return c, errors.Join(commonErr, p.Err())
}
