// Package notify tells a team when invoicehub gives up on something: for
// every dead letter of the normalizer or a sink, a notifier (the sinks
// file's notify section) posts a Standard Webhooks message, signed like
// the http sink's (webhook-id, webhook-timestamp, webhook-signature), to
// a URL of the team's: a chat bridge, an incident tool, any webhook
// receiver. The body follows Standard Webhooks' recommended shape:
//
//	{"type": "invoicehub.dead_letter",
//	 "timestamp": "2026-12-02T10:00:00Z",
//	 "data": {"consumer": "sink-crm", "class": "http_410", "reason": "...",
//	          "attempts": 1, "invoice": "qonto:acme:inv-1",
//	          "event_id": "...", "event_type": "com.invoicehub.invoice.paid.v1",
//	          "stream": "INVOICES", "stream_seq": 42, "subject": "invoices.v1.paid.qonto.acme",
//	          "dlq_seq": 7, "dead_lettered_at": "2026-12-02T10:00:00Z"}}
//
// webhook-id is dlq-<DLQ sequence>: a receiver deduplicates retries by it.
// A notifier is a durable consumer (notify-<id>) like any other: its
// failures are retried with backoff and its own dead letters go to
// dlq.notify.<id>, which no notifier reads.
package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/sinks"
	"github.com/invoicehub/invoicehub/sinks/httpsink"
)

// Type is the message type of a dead letter notice.
const Type = "invoicehub.dead_letter"

// Message is what a notifier posts.
type Message struct {
	Type      string     `json:"type"`
	Timestamp time.Time  `json:"timestamp"`
	Data      DeadLetter `json:"data"`
}

// DeadLetter describes one dead letter.
type DeadLetter struct {
	Consumer       string    `json:"consumer"`
	Class          string    `json:"class"`
	Reason         string    `json:"reason"`
	Attempts       int       `json:"attempts"`
	Invoice        string    `json:"invoice,omitempty"`
	EventID        string    `json:"event_id,omitempty"`
	EventType      string    `json:"event_type,omitempty"`
	Stream         string    `json:"stream"`
	StreamSeq      uint64    `json:"stream_seq"`
	Subject        string    `json:"subject"`
	DLQSeq         uint64    `json:"dlq_seq"`
	DeadLetteredAt time.Time `json:"dead_lettered_at"`
}

// Serve runs every notifier of specs until ctx ends or one fails, like
// sinks.Serve.
func Serve(ctx context.Context, js jetstream.JetStream, specs []sinks.NotifySpec, deps sinks.Deps) error {
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	posters := make([]*httpsink.Sink, 0, len(specs))
	for _, spec := range specs {
		p, err := poster(ctx, spec, deps, log)
		if err != nil {
			return err
		}
		defer p.Close(context.WithoutCancel(ctx))
		posters = append(posters, p)
	}
	runs := make([]func(context.Context) error, len(specs))
	for i, spec := range specs {
		if deps.Hooks != nil {
			spec.Hooks = deps.Hooks(spec.ConsumeConfig())
		}
		runs[i] = func(ctx context.Context) error {
			err := consume.Run(ctx, js, spec.ConsumeConfig(), handler(posters[i]), log)
			if err != nil {
				log.Error("notifier stopped", "notify", spec.ID, "err", err)
			}
			return err
		}
	}
	return consume.RunAll(ctx, runs...) // the first to fail stops the others, as in sinks.Serve
}

// poster builds the notifier's http sink from its options.
func poster(ctx context.Context, spec sinks.NotifySpec, deps sinks.Deps, log *slog.Logger) (*httpsink.Sink, error) {
	id := "notify-" + spec.ID
	b := sinks.Build{ID: id, Options: spec.Options, Log: log.With("notify", spec.ID), Metrics: sinks.ScopedMetrics(deps.Metrics, id), Secrets: deps.Secrets}
	s, err := httpsink.Factory(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("notify %q: %w", spec.ID, err)
	}
	return s.(*httpsink.Sink), nil
}

func handler(p *httpsink.Sink) consume.Handler {
	return func(ctx context.Context, d *consume.Delivery) error {
		body, err := json.Marshal(Notice(d, time.Now()))
		if err != nil {
			return consume.Permanent(err)
		}
		return p.Post(ctx, "dlq-"+strconv.FormatUint(d.Sequence, 10), "application/json", body)
	}
}

// Notice is the message for the dead letter d.
func Notice(d *consume.Delivery, now time.Time) Message {
	h := d.Header
	attempts, _ := strconv.Atoi(h.Get(consume.HeaderAttempts))
	seq, _ := strconv.ParseUint(h.Get(consume.HeaderStreamSeq), 10, 64)
	at, _ := time.Parse(time.RFC3339Nano, h.Get(consume.HeaderLastFailure))
	return Message{Type: Type, Timestamp: now.UTC(), Data: DeadLetter{
		Consumer: h.Get(consume.HeaderConsumer), Class: h.Get(consume.HeaderErrorClass), Reason: h.Get(consume.HeaderReason),
		Attempts: attempts, Invoice: h.Get(consume.HeaderKey), EventID: h.Get("ce-id"), EventType: h.Get("ce-type"),
		Stream: h.Get(consume.HeaderStream), StreamSeq: seq, Subject: h.Get(consume.HeaderSubject), DLQSeq: d.Sequence, DeadLetteredAt: at,
	}}
}
