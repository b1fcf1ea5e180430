package normalizer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/schemas/subject"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas/ce"
)

const (
	benchBatch       = 500
	benchConcurrency = 8
)

// BenchmarkNormalizerVsPassThrough measures, in the same run, the same
// adapter and concurrency, raw webhooks per second through the normalizer
// (decode, map, state compare-and-set, publish the canonical events) and
// through a pass-through consumer that republishes each raw message
// unchanged, and reports the ratio.
func BenchmarkNormalizerVsPassThrough(b *testing.B) {
	_, js := jstest.Run(b).Connect(b)
	ctx := context.Background()
	if err := streams.Ensure(ctx, js, streams.Config{}); err != nil {
		b.Fatal(err)
	}
	cfg := Config{Concurrency: benchConcurrency}
	n, err := New(ctx, js, cfg, quiet)
	if err != nil {
		b.Fatal(err)
	}
	passCfg := consume.Config{Stage: "bench", ID: "passthrough", Stream: subject.WebhooksStream, Concurrency: benchConcurrency}
	passThrough := func(ctx context.Context, d consume.Delivery) error {
		msg := &nats.Msg{Subject: "invoices.v1.passthrough.bench.acme", Header: nats.Header{}, Data: d.Data}
		for k, v := range d.Header {
			msg.Header[k] = v
		}
		msg.Header.Set(jetstream.MsgIDHeader, "pt-"+d.Header.Get(jetstream.MsgIDHeader))
		_, err := js.PublishMsg(ctx, msg)
		return err
	}
	var next int
	var passTime, normTime time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for range benchBatch {
			next++
			body := fmt.Sprintf(`{"id":"bench-%d","subscription_id":"5b0c7e4c-1b1d-4c8e-9f3a-6d2e1c0b9a87","organization_id":"8f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b","membership_id":"2a3b4c5d-6e7f-4081-92a3-b4c5d6e7f809","type":"v1/client-invoices","created_at":"2024-03-04T15:59:00Z","data":{"event":"created","id":"inv-%d","number":"B-%d","status":"unpaid","currency":"EUR","total_amount":{"value":"1440.00","currency":"EUR"},"vat_amount":{"value":"240.00","currency":"EUR"},"issue_date":"2024-03-01","due_date":"2024-03-31","client":{"id":"c-1","name":"Client SARL"},"items":[{"title":"Consulting","quantity":"12","unit_price":{"value":"100.00","currency":"EUR"},"vat_rate":"0.2","total_vat":{"value":"240.00","currency":"EUR"},"subtotal":{"value":"1200.00","currency":"EUR"}}]}}`, next, next, next)
			e, _ := rawEvent(b, "qonto", []byte(body), nil)
			if _, err := ce.Publish(ctx, js, "webhooks.qonto.acme", *e); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		passTime += timeToDrain(b, js, passCfg.Durable(), func(ctx context.Context) error { return consume.Run(ctx, js, passCfg, passThrough, quiet) })
		normTime += timeToDrain(b, js, cfg.ConsumeConfig().Durable(), func(ctx context.Context) error { return n.Run(ctx, cfg) })
	}
	total := float64(b.N * benchBatch)
	pass, norm := total/passTime.Seconds(), total/normTime.Seconds()
	b.ReportMetric(pass, "passthrough/s")
	b.ReportMetric(norm, "normalizer/s")
	b.ReportMetric(norm/pass, "normalizer/passthrough")
	// JetStream writes per second on each side: the pass-through writes one
	// message per raw event; the normalizer writes its canonical events and
	// one state per raw event.
	s, err := js.Stream(ctx, subject.InvoicesStream)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("invoices.v1.*.qonto.>"))
	if err != nil {
		b.Fatal(err)
	}
	var events uint64
	for _, n := range info.State.Subjects {
		events += n
	}
	normWrites := (float64(events) + total) / normTime.Seconds()
	b.ReportMetric(normWrites/pass, "writes-ratio")
}

// timeToDrain runs a consumer until its durable has nothing pending and
// returns how long that took.
func timeToDrain(b *testing.B, js jetstream.JetStream, durable string, run func(context.Context) error) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- run(ctx) }()
	for {
		c, err := js.Consumer(ctx, subject.WebhooksStream, durable)
		if err == nil {
			if info, err := c.Info(ctx); err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream > 0 {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return elapsed
}
