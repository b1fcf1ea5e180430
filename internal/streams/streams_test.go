package streams

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
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
		{subject.WebhooksStream, "webhooks.qonto.acme", 7 * day},
		{subject.InvoicesStream, "invoices.v1.paid.qonto.acme", 30 * day},
		{subject.DLQStream, "dlq.sink.file", 90 * day},
		{subject.WebhooksStream, "replay.normalizer.default", 7 * day},
		{subject.InvoicesStream, "replay.sink.file", 30 * day},
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
	s, _ := js.Stream(t.Context(), subject.WebhooksStream)
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

// TestLedgerAloneRelaxesItsSync: on one server LEDGER is created with
// async persistence and the other streams keep the server's fsync before
// every ack; a LEDGER created before keeps its mode, which NATS refuses
// to change, and setup still succeeds.
func TestLedgerAloneRelaxesItsSync(t *testing.T) {
	js := runJetStream(t)
	if err := Ensure(t.Context(), js, Config{}); err != nil {
		t.Fatal(err)
	}
	for _, sc := range (Config{}).Configs() {
		s, err := js.Stream(t.Context(), sc.Name)
		if err != nil {
			t.Fatal(err)
		}
		want := jetstream.DefaultPersistMode
		if sc.Name == subject.LedgerStream {
			want = jetstream.AsyncPersistMode
		}
		if got := s.CachedInfo().Config.PersistMode; got != want {
			t.Errorf("%s: persist mode %v, want %v", sc.Name, got, want)
		}
	}

	older := runJetStream(t)
	ledger := (Config{}).Configs()[3]
	ledger.PersistMode = jetstream.DefaultPersistMode
	if _, err := older.CreateStream(t.Context(), ledger); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(t.Context(), older, Config{}); err != nil {
		t.Fatalf("setup over a LEDGER made before: %v", err)
	}
	s, err := older.Stream(t.Context(), subject.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.PersistMode; got != jetstream.DefaultPersistMode {
		t.Fatalf("an existing LEDGER's persist mode became %v", got)
	}
}

// TestEnsureFitsASmallStore: on a JetStream store of 512 MiB the default
// streams are created (the delivery ledger reserves 256 MiB); a ledger
// larger than the store is refused with what to change.
func TestEnsureFitsASmallStore(t *testing.T) {
	_, js := jstest.RunWith(t, func(o *server.Options) { o.JetStreamMaxStore = 512 << 20 }).Connect(t)
	if err := Ensure(t.Context(), js, Config{}); err != nil {
		t.Fatalf("default streams on a 512 MiB store: %v", err)
	}
	err := Ensure(t.Context(), js, Config{LedgerMaxBytes: 1 << 30})
	if err == nil || !strings.Contains(err.Error(), "INVOICEHUB_LEDGER_MAX_BYTES") {
		t.Fatalf("a 1 GiB ledger on a 512 MiB store: %v, want the setting named", err)
	}
}

// An odd but valid body: the archive must keep its exact bytes.
var oddBody = []byte("{ \"id\" :\"e-1\",\n\t\"amount\": 0.10 , \"name\":\"caf\u00e9 \\u00e9\" }\n")

// TestPublishDeduplicatesAndKeepsBytes: a raw event published twice with
// the same id is stored once, byte for byte.
func TestPublishDeduplicatesAndKeepsBytes(t *testing.T) {
	_, js := jstest.Run(t).Connect(t)
	if err := Ensure(t.Context(), js, Config{}); err != nil {
		t.Fatal(err)
	}
	e, err := ce.NewRaw(ce.Raw{Provider: "qonto", Source: "acme", Type: "com.qonto.v1/client-invoices", ID: "e-dup", Time: time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC), Body: oddBody})
	if err != nil {
		t.Fatal(err)
	}
	subj := subject.Webhook("qonto", "acme")
	first, err := ce.Publish(t.Context(), js, subj, e)
	if err != nil || first.Duplicate {
		t.Fatalf("first publish: %+v %v", first, err)
	}
	second, err := ce.Publish(t.Context(), js, subj, e)
	if err != nil || !second.Duplicate || second.Sequence != first.Sequence {
		t.Fatalf("second publish: %+v %v", second, err)
	}
	s, _ := js.Stream(t.Context(), subject.WebhooksStream)
	stored, err := s.GetMsg(t.Context(), first.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.Data, oddBody) {
		t.Fatalf("stored body changed: %q", stored.Data)
	}
	info, _ := s.Info(t.Context())
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
}
