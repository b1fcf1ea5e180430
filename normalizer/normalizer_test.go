package normalizer

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/jstest"
	"github.com/invoicehub/invoicehub/schemas/stream"
	"github.com/invoicehub/invoicehub/schemas/subject"
	"github.com/invoicehub/invoicehub/sinks/consume"
)

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

func publishFixture(t *testing.T, js jetstream.JetStream, path string) {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e := rawEvent(t, "qonto", body)
	if _, err := ce.Publish(t.Context(), js, subject.Webhook("qonto", "acme"), *e); err != nil {
		t.Fatal(err)
	}
}

func runNormalizer(t *testing.T, js jetstream.JetStream) (stop func()) {
	t.Helper()
	cfg := Config{Backoff: consume.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}, MaxAttempts: 3}
	n, err := New(js, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, cfg) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("normalizer: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestNormalizerPublishesAndDeadLetters(t *testing.T) {
	_, js := jstest.Run(t).Connect(t)
	if err := stream.Ensure(t.Context(), js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	publishFixture(t, js, "testdata/bad/qonto/malformed-json.json")
	publishFixture(t, js, "testdata/raw/qonto/created-draft.json")
	publishFixture(t, js, "testdata/bad/qonto/unknown-event-type.json")
	publishFixture(t, js, "testdata/raw/qonto/updated-paid.json")
	stop := runNormalizer(t, js)

	jstest.Eventually(t, 5*time.Second, "2 canonical events and 2 dead letters", func() bool {
		return jstest.Count(t, js, stream.Invoices) == 2 && jstest.Count(t, js, stream.DLQ) == 2
	})
	// Dead letters arrive in any order; each names its raw stream sequence.
	dlq, _ := js.Stream(t.Context(), stream.DLQ)
	wantClass := map[string]string{"1": "malformed_json", "3": "unknown_event_type"}
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := dlq.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		rawSeq := m.Header.Get(consume.HeaderStreamSeq)
		if m.Subject != "dlq.normalizer.default" || m.Header.Get(consume.HeaderErrorClass) != wantClass[rawSeq] || m.Header.Get("ce-provider") != "qonto" {
			t.Errorf("dead letter of raw seq %s: %s %v", rawSeq, m.Subject, m.Header)
		}
	}
	inv, _ := js.Stream(t.Context(), stream.Invoices)
	if m, err := inv.GetLastMsgForSubject(t.Context(), "invoices.v1.updated.qonto.acme"); err != nil || m.Header.Get("ce-subject") != "qonto:acme:4d5418bb-bd0d-4df4-865c-c07afab8bb48" {
		t.Fatalf("canonical event: %v %v", m, err)
	}

	// Re-normalizing the whole history (a fresh consumer) publishes the
	// same ids, which JetStream drops.
	stop()
	if err := js.DeleteConsumer(t.Context(), stream.Webhooks, Config{}.ConsumeConfig().Durable()); err != nil {
		t.Fatal(err)
	}
	runNormalizer(t, js)
	jstest.Eventually(t, 5*time.Second, "history re-read", func() bool {
		c, err := js.Consumer(t.Context(), stream.Webhooks, Config{}.ConsumeConfig().Durable())
		if err != nil {
			return false
		}
		info, err := c.Info(t.Context())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	if n := jstest.Count(t, js, stream.Invoices); n != 2 {
		t.Fatalf("after re-normalizing, INVOICES holds %d events, want 2", n)
	}
}
