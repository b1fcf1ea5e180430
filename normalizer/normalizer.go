package normalizer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
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
	Concurrency int
	MaxAttempts int
	Backoff     consume.Backoff
	// Replicas of the state bucket (as the streams'); default 1.
	Replicas int
	// ReceivableSources lists "<provider>/<source>" whose invoices are
	// receivables although the provider's usually are payables (Mercoa).
	ReceivableSources []string
	// Registerer receives the metrics; nil means none are registered.
	Registerer prometheus.Registerer
}

// ConsumeConfig returns the consumer configuration of the normalizer.
func (c Config) ConsumeConfig() consume.Config {
	return consume.Config{
		Stage: "normalizer", ID: ConsumerID, Stream: subject.WebhooksStream,
		FilterSubjects: []string{subject.WebhooksRoot + ".>", subject.Replay("normalizer", ConsumerID)},
		Concurrency:    c.Concurrency, MaxAttempts: c.MaxAttempts, Backoff: c.Backoff,
	}
}

// Normalizer consumes raw webhooks and publishes canonical events.
type Normalizer struct {
	js      jetstream.JetStream
	state   *stateStore
	opts    Options
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
	st, err := openStateStore(ctx, js, cfg.Replicas)
	if err != nil {
		return nil, err
	}
	opts := Options{Receivable: map[string]bool{}}
	for _, s := range cfg.ReceivableSources {
		opts.Receivable[s] = true
	}
	return &Normalizer{js: js, state: st, opts: opts, log: log.With("component", "normalizer"), metrics: m}, nil
}

// Run processes WEBHOOKS until ctx ends, through the shared consume adapter.
func (n *Normalizer) Run(ctx context.Context, cfg Config) error {
	return consume.Run(ctx, n.js, cfg.ConsumeConfig(), n.Handle, n.log)
}

// Handle normalizes one raw webhook: it maps it, derives its events
// against the invoice's state, stores the new state with compare-and-set,
// and publishes the events. The state is written before the events are
// published, so a stale or losing replica publishes nothing; a crash in
// between is repaired by the redelivery, which derives the same events
// again (see Normalize). A raw event that cannot be mapped is a permanent
// error with its class; KV and publish failures are transient.
func (n *Normalizer) Handle(ctx context.Context, d consume.Delivery) error {
	_, err := n.process(ctx, d, false)
	return err
}

// process normalizes one delivery. In replay mode a raw event that made the
// invoice's current state is skipped: its events were published already,
// and republishing them past the duplicate window would duplicate them.
func (n *Normalizer) process(ctx context.Context, d consume.Delivery, replay bool) (Outcome, error) {
	raw, err := ce.FromMsg(ctx, d.Msg())
	if err != nil {
		n.metrics.outcome("", "not_cloudevent")
		return "", consume.PermanentClass("not_cloudevent", err)
	}
	providerName := ce.StringExtension(raw, ce.ExtProvider)
	ctx, span := tracing.Start(ctx, "normalizer.normalize", ce.StringExtension(raw, ce.ExtTraceParent),
		attribute.String("invoicehub.provider", providerName), attribute.String("invoicehub.raw_id", raw.ID()))
	defer span.End()
	outcome, err := n.normalize(ctx, raw, d, providerName, replay)
	tracing.Fail(span, err)
	span.SetAttributes(attribute.String("invoicehub.outcome", string(outcome)))
	return outcome, err
}

func (n *Normalizer) normalize(ctx context.Context, raw *event.Event, d consume.Delivery, providerName string, replay bool) (Outcome, error) {
	res, err := mapRaw(raw, d.Header, schemas.RawRef{Stream: d.Stream, Sequence: d.Sequence}, n.opts)
	if err != nil {
		return "", n.permanent(providerName, raw.ID(), err)
	}
	if res.Action == mapper.ActionSkip {
		n.metrics.skipped(providerName, res.ProviderEventType)
		n.log.Debug("not about an invoice: skipped", "provider", providerName, "raw_id", raw.ID(), "event_type", res.ProviderEventType)
		return OutcomeSkipped, nil
	}
	key := stateKey(res.Invoice.ID)
	// A provider's "created" event is almost always the invoice's first: it
	// is first tried as a create without reading the state, which saves a
	// round trip. Should the invoice exist, the create fails like any
	// conflict and the next attempt reads the state.
	assumeNew := res.Action == mapper.ActionCreated
	for range casAttempts {
		var known *State
		var revision uint64
		if !assumeNew {
			if known, revision, err = n.state.load(ctx, key); err != nil {
				return "", err
			}
		}
		assumeNew = false
		if replay && known != nil && known.RawID == raw.ID() {
			return OutcomeApplied, nil
		}
		out, err := apply(res, raw, known, tracing.Traceparent(ctx))
		if err != nil {
			return "", n.permanent(providerName, raw.ID(), err)
		}
		if out.State != nil {
			if err := n.state.store(ctx, key, out.State, revision); errors.Is(err, errConflict) {
				continue
			} else if err != nil {
				return "", err
			}
		}
		return out.Outcome, n.publish(ctx, providerName, raw.ID(), out)
	}
	return "", fmt.Errorf("normalizer: state of %s changed %d times in a row", res.Invoice.ID, casAttempts)
}

func (n *Normalizer) permanent(providerName, rawID string, err error) error {
	class := Class(err)
	n.metrics.outcome(providerName, class)
	return consume.PermanentClass(class, fmt.Errorf("raw event %s: %w", rawID, err))
}

// publish publishes a change's events at once and waits for every PubAck.
func (n *Normalizer) publish(ctx context.Context, providerName, rawID string, out Output) error {
	acks := make([]jetstream.PubAckFuture, 0, len(out.Events))
	for _, c := range out.Events {
		msg, err := ce.ToMsg(ctx, c.Subject, c.Event)
		if err != nil {
			return err
		}
		f, err := n.js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("normalizer: publish %s: %w", c.Event.ID(), err)
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("normalizer: publish %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
		case <-ctx.Done():
			return fmt.Errorf("normalizer: publish: %w", ctx.Err())
		}
	}
	n.metrics.outcome(providerName, string(out.Outcome))
	if out.Outcome == OutcomeStale {
		n.log.Info("stale update dropped", "provider", providerName, "raw_id", rawID)
	}
	if len(out.Events) == 0 {
		return nil
	}
	inv := out.Events[0].Data.Invoice
	if inv.Status == schemas.StatusUnknown {
		n.metrics.unknownStatus(providerName)
		n.log.Warn("unmapped provider status", "provider", providerName, "raw_id", rawID, "invoice", inv.ID, "provider_status", inv.ProviderStatus)
	}
	for _, w := range out.Warnings {
		n.metrics.arithmetic(providerName)
		n.log.Warn("EN 16931 arithmetic", "provider", providerName, "raw_id", rawID, "invoice", inv.ID, "rule", w)
	}
	return nil
}

// LoadConfig reads the normalizer's settings besides the common stage ones:
//
//	INVOICEHUB_CONCURRENCY          deliveries in flight [4]
//	INVOICEHUB_MAX_ATTEMPTS         deliveries before a raw event is dead-lettered [10]
//	INVOICEHUB_RECEIVABLE_SOURCES   comma-separated <provider>/<source> whose
//	                                invoices are receivables (Mercoa) []
func LoadConfig(getenv stage.Env) (Config, error) {
	p := &stage.Parser{Getenv: getenv}
	c := Config{
		Concurrency: p.Int("INVOICEHUB_CONCURRENCY", 4, 1, 256),
		MaxAttempts: p.Int("INVOICEHUB_MAX_ATTEMPTS", 10, 1, 1000),
		Replicas:    p.Int("INVOICEHUB_STREAM_REPLICAS", 1, 1, 5),
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
	return c, p.Err()
}
