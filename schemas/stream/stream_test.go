package stream

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/schemas/jstest"
)

func runJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := jstest.Run(t).Connect(t)
	return js
}

func TestEnsureIsIdempotentAndApplies(t *testing.T) {
	js := runJetStream(t)
	cfg := Config{DuplicateWindow: 5 * time.Minute, WebhooksMaxAge: 7 * day}
	for range 2 {
		if err := Ensure(t.Context(), js, cfg); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, subject string
		maxAge        time.Duration
	}{
		{Webhooks, "webhooks.qonto.acme", 7 * day},
		{Invoices, "invoices.v1.paid.qonto.acme", 30 * day},
		{DLQ, "dlq.sink.file", 90 * day},
		{Webhooks, "replay.normalizer.default", 7 * day},
		{Invoices, "replay.sink.file", 30 * day},
	}
	for _, tt := range tests {
		s, err := js.Stream(t.Context(), tt.name)
		if err != nil {
			t.Fatal(err)
		}
		info := s.CachedInfo()
		if info.Config.Storage != jetstream.FileStorage || info.Config.Duplicates != 5*time.Minute || info.Config.MaxAge != tt.maxAge {
			t.Errorf("%s: storage %v, duplicates %v, max age %v", tt.name, info.Config.Storage, info.Config.Duplicates, info.Config.MaxAge)
		}
		name, err := js.StreamNameBySubject(t.Context(), tt.subject)
		if err != nil || name != tt.name {
			t.Errorf("subject %s is captured by %q (%v), want %s", tt.subject, name, err, tt.name)
		}
	}
	// Changing the config updates the streams in place.
	if err := Ensure(t.Context(), js, Config{WebhooksMaxAge: 14 * day}); err != nil {
		t.Fatal(err)
	}
	s, _ := js.Stream(t.Context(), Webhooks)
	if got := s.CachedInfo().Config.MaxAge; got != 14*day {
		t.Fatalf("max age after update = %v", got)
	}
}

func TestEnsureReportsImpossibleConfig(t *testing.T) {
	js := runJetStream(t)
	// A single server cannot hold three replicas.
	if err := Ensure(t.Context(), js, Config{Replicas: 3}); err == nil {
		t.Fatal("Ensure accepted three replicas on one server")
	}
}
