package sinks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
	"github.com/invoicehub/invoicehub/sinks"
	"github.com/invoicehub/invoicehub/sinks/file"
	"github.com/invoicehub/invoicehub/sinks/sinktest"
)

func TestRegistry(t *testing.T) {
	var r sinks.Registry
	r.Register("file", file.Factory)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("duplicate registration did not panic")
			}
		}()
		r.Register("file", file.Factory)
	}()
	if _, err := r.New(t.Context(), sinks.Spec{ID: "x", Type: "nope"}, sinks.Deps{}); !errors.Is(err, sinks.ErrUnknownType) {
		t.Fatalf("unknown type: %v", err)
	}
	s, err := r.New(t.Context(), sinks.Spec{ID: "f", Type: "file", Options: sinks.Options{"path": filepath.Join(t.TempDir(), "x.jsonl")}}, sinks.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close(t.Context())
	if _, err := r.New(t.Context(), sinks.Spec{ID: "f", Type: "file"}, sinks.Deps{}); err == nil {
		t.Fatal("factory error not returned")
	}
}

func TestSpec(t *testing.T) {
	tests := []struct {
		name string
		spec sinks.Spec
		want []string
	}{
		{"all", sinks.Spec{ID: "a", Type: "file"}, []string{"invoices.v1.>", "replay.sink.a"}},
		{"paid only", sinks.Spec{ID: "a", Type: "file", Kinds: []schemas.Kind{schemas.KindPaid}}, []string{"invoices.v1.paid.*.*", "replay.sink.a"}},
		{"one provider", sinks.Spec{ID: "a", Type: "file", Providers: []string{"mercoa"}}, []string{"invoices.v1.*.mercoa.*", "replay.sink.a"}},
		{"cross", sinks.Spec{ID: "a", Type: "file", Kinds: []schemas.Kind{"paid", "sent"}, Providers: []string{"qonto"}},
			[]string{"invoices.v1.paid.qonto.*", "invoices.v1.sent.qonto.*", "replay.sink.a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.spec.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := tt.spec.FilterSubjects(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	bad := sinks.Spec{ID: "Bad.ID", Kinds: []schemas.Kind{"refunded"}}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad spec accepted")
	}
	for _, want := range []string{"Bad.ID", "type is required", "refunded"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// runSink runs sinks.Run for sink until the test ends.
func runSink(t *testing.T, js jetstream.JetStream, spec sinks.Spec, sink sinks.Sink, log *slog.Logger) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sinks.Run(ctx, js, spec, sink, log) }()
	t.Cleanup(func() { cancel(); <-done })
}

type recordingSink struct {
	mu  sync.Mutex
	ids []string
}

func (r *recordingSink) Deliver(_ context.Context, e sinks.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, e.ID())
	return nil
}
func (r *recordingSink) Close(context.Context) error { return nil }
func (r *recordingSink) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

func TestRunDeliversAndDeadLettersGarbage(t *testing.T) {
	_, js := jstest.Run(t).Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	rec := &recordingSink{}
	spec := sinks.Spec{ID: "rec", Type: "test", Kinds: []schemas.Kind{schemas.KindPaid}}
	runSink(t, js, spec, rec, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))

	garbage := &nats.Msg{Subject: subject.Invoice("paid", "qonto", "acme"), Data: []byte("not a cloudevent")}
	if _, err := js.PublishMsg(t.Context(), garbage); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []schemas.Kind{schemas.KindUpdated, schemas.KindPaid} {
		e := sinktest.Event(t, "raw-1", kind)
		if _, err := ce.Publish(t.Context(), js, subject.Invoice(string(kind), "qonto", "acme"), e.CloudEvent); err != nil {
			t.Fatal(err)
		}
	}
	dlq, _ := js.Stream(t.Context(), subject.DLQStream)
	jstest.Eventually(t, 5*time.Second, "paid event delivered and garbage dead-lettered", func() bool {
		info, err := dlq.Info(t.Context())
		return err == nil && info.State.Msgs == 1 && rec.count() == 1
	})
	msg, err := dlq.GetLastMsgForSubject(t.Context(), "dlq.sink.rec")
	if err != nil || string(msg.Data) != "not a cloudevent" {
		t.Fatalf("dead letter: %v %v", msg, err)
	}
}

// TestRunToleratesAdditiveChanges: during a rolling upgrade a newer
// normalizer publishes fields and kinds this sink does not know; they are
// delivered, not dead-lettered (the tolerant reader, ce.DecodeCanonical).
func TestRunToleratesAdditiveChanges(t *testing.T) {
	_, js := jstest.Run(t).Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	rec := &recordingSink{}
	runSink(t, js, sinks.Spec{ID: "old", Type: "test"}, rec, slog.New(slog.DiscardHandler))

	e := sinktest.Event(t, "raw-newer", schemas.KindPaid)
	msg, err := ce.ToMsg(t.Context(), subject.Invoice("paid", "qonto", "acme"), e.CloudEvent)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	json.Unmarshal(msg.Data, &data)
	data["links"] = map[string]any{"portal": "https://example.com/i/1"}
	data["invoice"].(map[string]any)["payment_terms_days"] = 30
	msg.Data, _ = json.Marshal(data)
	msg.Header.Set("ce-tenant", "t-1")
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	jstest.Eventually(t, 5*time.Second, "the newer event delivered", func() bool { return rec.count() == 1 })
	if n := jstest.Count(t, js, subject.DLQStream); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

// orderVersions is how many versions of each invoice the order test sends.
const orderVersions = 10

// orderSink records, per invoice, the invoice versions in the order they
// were delivered, taking longer over older versions so that concurrent
// deliveries of one invoice would overtake one another unless something
// keeps them in order.
type orderSink struct {
	mu   sync.Mutex
	seen map[string][]int64
	n    int
}

func (s *orderSink) Deliver(_ context.Context, e sinks.Event) error {
	time.Sleep(time.Duration(orderVersions-e.Version) * time.Millisecond) // older versions take longer: work, not a wait
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[e.CloudEvent.Subject()] = append(s.seen[e.CloudEvent.Subject()], e.Version)
	s.n++
	return nil
}
func (s *orderSink) Close(context.Context) error { return nil }
func (s *orderSink) delivered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// publishUpdated publishes an updated event of invoice inv-<i> at
// version, derived from raw event rawID.
func publishUpdated(t *testing.T, js jetstream.JetStream, i int, rawID string, version int64) {
	t.Helper()
	d, err := sinktest.Event(t, rawID, schemas.KindUpdated).Data()
	if err != nil {
		t.Fatal(err)
	}
	d.Invoice.RemoteID = fmt.Sprintf("inv-%d", i)
	d.Invoice.ID = schemas.InvoiceID("qonto", "acme", d.Invoice.RemoteID)
	ev, err := ce.NewCanonical(d, rawID, version, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ce.Publish(t.Context(), js, subject.Invoice("updated", "qonto", "acme"), ev); err != nil {
		t.Fatal(err)
	}
}

// TestOneInvoiceInStreamOrderAtConcurrency8: a sink running 8 deliveries
// at once across invoices still gets each invoice's events in stream
// order (the adapter's per-key lanes, key = partitionkey).
func TestOneInvoiceInStreamOrderAtConcurrency8(t *testing.T) {
	_, js := jstest.Run(t).Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	const invoices, versions = 20, orderVersions
	for i := range invoices { // each invoice's versions one after the other
		for v := range versions {
			publishUpdated(t, js, i, fmt.Sprintf("raw-%d-%d", i, v), int64(v+1))
		}
	}
	s := &orderSink{seen: map[string][]int64{}}
	runSink(t, js, sinks.Spec{ID: "ordered", Type: "test", Concurrency: 8}, s, slog.New(slog.DiscardHandler))
	jstest.Eventually(t, 20*time.Second, "every event delivered", func() bool { return s.delivered() == invoices*versions })
	for id, got := range s.seen {
		if !slices.IsSorted(got) || len(got) != versions {
			t.Errorf("%s delivered in order %v", id, got)
		}
	}
}

// gateSink holds every delivery until released and counts how many it
// holds at once; it asks for a concurrency of its own (sinks.Parallel).
type gateSink struct {
	want    int // DefaultConcurrency
	release chan struct{}
	mu      sync.Mutex
	now     int
	most    int
	done    int
}

func (s *gateSink) DefaultConcurrency() int { return s.want }

func (s *gateSink) Deliver(ctx context.Context, _ sinks.Event) error {
	s.mu.Lock()
	s.now++
	s.most = max(s.most, s.now)
	s.mu.Unlock()
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.now--
	s.done++
	s.mu.Unlock()
	return ctx.Err()
}
func (s *gateSink) Close(context.Context) error { return nil }
func (s *gateSink) counts() (now, most, done int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now, s.most, s.done
}

// TestRunHonoursTheSinksConcurrency: a sink that asks for 6 deliveries at
// once gets 6, across invoices; a concurrency in its spec wins.
func TestRunHonoursTheSinksConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name       string
		spec, want int
	}{{"the sink's default", 0, 6}, {"the spec's", 3, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			_, js := jstest.Run(t).Connect(t)
			if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
				t.Fatal(err)
			}
			const invoices = 12
			for i := range invoices {
				publishUpdated(t, js, i, fmt.Sprintf("raw-%d", i), 1)
			}
			s := &gateSink{want: 6, release: make(chan struct{})}
			runSink(t, js, sinks.Spec{ID: "gated", Type: "test", Concurrency: tc.spec}, s, slog.New(slog.DiscardHandler))
			// Every event pulled (the adapter holds them all), tc.want of them
			// running: the rest wait for a free slot.
			jstest.Eventually(t, 10*time.Second, "every event pulled, some running", func() bool {
				c, err := js.Consumer(t.Context(), subject.InvoicesStream, "sink-gated")
				if err != nil {
					return false
				}
				info, err := c.Info(t.Context())
				now, _, _ := s.counts()
				return err == nil && info.NumAckPending == invoices && now == tc.want
			})
			close(s.release)
			jstest.Eventually(t, 10*time.Second, "every event delivered", func() bool { _, _, n := s.counts(); return n == invoices })
			if _, most, _ := s.counts(); most != tc.want {
				t.Errorf("%d deliveries at once, want %d", most, tc.want)
			}
		})
	}
}
