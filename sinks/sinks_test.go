package sinks_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

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
	if _, err := r.New(t.Context(), sinks.Spec{ID: "x", Type: "nope"}); !errors.Is(err, sinks.ErrUnknownType) {
		t.Fatalf("unknown type: %v", err)
	}
	s, err := r.New(t.Context(), sinks.Spec{ID: "f", Type: "file", Options: sinks.Options{"path": filepath.Join(t.TempDir(), "x.jsonl")}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close(t.Context())
	if _, err := r.New(t.Context(), sinks.Spec{ID: "f", Type: "file"}); err == nil {
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
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- sinks.Run(ctx, js, spec, rec, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	}()
	t.Cleanup(func() { cancel(); <-done })

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
