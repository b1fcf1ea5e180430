package normalizer

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/invoicehub/invoicehub/normalizer/mapper"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/stage"
	"github.com/invoicehub/invoicehub/schemas/stream"
	"github.com/invoicehub/invoicehub/sinks/consume"
)

// ConsumerID names the normalizer's durable consumer (normalizer-default)
// and its dead letters (dlq.normalizer.default).
const ConsumerID = "default"

// Config tunes the normalizer's consumer.
type Config struct {
	Concurrency int
	MaxAttempts int
	Backoff     consume.Backoff
	// Registerer receives the metrics; nil means none are registered.
	Registerer prometheus.Registerer
}

// ConsumeConfig returns the consumer configuration of the normalizer.
func (c Config) ConsumeConfig() consume.Config {
	return consume.Config{
		Stage: "normalizer", ID: ConsumerID, Stream: stream.Webhooks,
		Concurrency: c.Concurrency, MaxAttempts: c.MaxAttempts, Backoff: c.Backoff,
	}
}

// Normalizer consumes raw webhooks and publishes canonical events.
type Normalizer struct {
	js      jetstream.JetStream
	log     *slog.Logger
	metrics *metrics
}

// New returns a normalizer publishing with js.
func New(js jetstream.JetStream, cfg Config, log *slog.Logger) (*Normalizer, error) {
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Normalizer{js: js, log: log.With("component", "normalizer"), metrics: m}, nil
}

// Run processes WEBHOOKS until ctx ends, through the shared consume adapter.
func (n *Normalizer) Run(ctx context.Context, cfg Config) error {
	return consume.Run(ctx, n.js, cfg.ConsumeConfig(), n.Handle, n.log)
}

// Handle normalizes one raw webhook and publishes its canonical events. A
// raw event that cannot be mapped is a permanent error classed by the
// mapper (dead-lettered at once); a failed publish is transient (retried,
// and the deterministic ids make the retry safe).
func (n *Normalizer) Handle(ctx context.Context, d consume.Delivery) error {
	raw, err := ce.FromMsg(ctx, d.Msg())
	if err != nil {
		n.metrics.outcome("", "not_cloudevent")
		return consume.PermanentClass("not_cloudevent", err)
	}
	providerName := ce.StringExtension(raw, ce.ExtProvider)
	out, err := Normalize(raw, d.Header, schemas.RawRef{Stream: d.Stream, Sequence: d.Sequence})
	if err != nil {
		class := mapper.Class(err)
		if class == "internal" {
			class = ErrUnknownProvider.Error()
		}
		n.metrics.outcome(providerName, class)
		return consume.PermanentClass(class, fmt.Errorf("raw event %s: %w", raw.ID(), err))
	}
	for _, c := range out {
		if _, err := ce.Publish(ctx, n.js, c.Subject, c.Event); err != nil {
			return err
		}
		if c.Data.Invoice.Status == schemas.StatusUnknown {
			n.metrics.unknownStatus(providerName)
			n.log.Warn("unmapped provider status", "provider", providerName, "raw_id", raw.ID(), "invoice", c.Event.Subject())
		}
	}
	n.metrics.outcome(providerName, "published")
	return nil
}

// LoadConfig reads the normalizer's settings besides the common stage ones:
//
//	INVOICEHUB_CONCURRENCY   deliveries in flight [4]
//	INVOICEHUB_MAX_ATTEMPTS  deliveries before a raw event is dead-lettered [10]
func LoadConfig(getenv stage.Env) (Config, error) {
	p := &stage.Parser{Getenv: getenv}
	c := Config{
		Concurrency: p.Int("INVOICEHUB_CONCURRENCY", 4, 1, 256),
		MaxAttempts: p.Int("INVOICEHUB_MAX_ATTEMPTS", 10, 1, 1000),
	}
	return c, p.Err()
}
