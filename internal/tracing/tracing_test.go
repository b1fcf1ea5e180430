package tracing

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestTraceCrossesStages(t *testing.T) {
	shutdown, err := Setup(t.Context(), "test", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t.Context())
	ctx, span := Start(t.Context(), "ingress", "")
	first := Traceparent(ctx)
	span.End()
	if len(first) != 55 || !strings.HasPrefix(first, "00-") {
		t.Fatalf("traceparent %q", first)
	}
	ctx2, span2 := Start(t.Context(), "normalizer", first)
	second := Traceparent(ctx2)
	span2.End()
	if second[3:35] != first[3:35] || second[36:52] == first[36:52] {
		t.Fatalf("child %q of %q: same trace, new span expected", second, first)
	}
	h := http.Header{}
	Inject(ctx2, h)
	if h.Get("traceparent") != second {
		t.Fatalf("header %q", h.Get("traceparent"))
	}
}

func TestTraceparentWithoutTrace(t *testing.T) {
	if tp := Traceparent(t.Context()); tp != "" {
		t.Fatalf("got %q", tp)
	}
}

func TestTraceparentIsWhatAMapCarrierGets(t *testing.T) {
	state, err := trace.ParseTraceState("vendor=x")
	if err != nil {
		t.Fatal(err)
	}
	for _, flags := range []trace.TraceFlags{0, trace.FlagsSampled, 0xff} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
			SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: flags, TraceState: state,
		})
		ctx := trace.ContextWithSpanContext(t.Context(), sc)
		c := propagation.MapCarrier{}
		propagator.Inject(ctx, c)
		if got := Traceparent(ctx); got != c["traceparent"] {
			t.Errorf("flags %v: Traceparent %q, propagator %q", flags, got, c["traceparent"])
		}
	}
}

func TestWithoutExporterSpansCarryIdsOnly(t *testing.T) {
	if _, err := Setup(t.Context(), "test", func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	ctx, span := Start(t.Context(), "root", "")
	if span.IsRecording() {
		t.Error("a span is recorded with no exporter to send it to")
	}
	root := Traceparent(ctx)
	if !strings.HasSuffix(root, "-01") {
		t.Errorf("new trace %q: sampled expected, as the SDK's default sampler does", root)
	}
	seen := map[string]bool{}
	for range 100 {
		ctx, _ := Start(t.Context(), "root", "")
		if tp := Traceparent(ctx); seen[tp[3:35]] {
			t.Fatalf("trace id %s given twice", tp[3:35])
		} else {
			seen[tp[3:35]] = true
		}
	}
	const unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	ctx, _ = Start(t.Context(), "child", unsampled)
	child := Traceparent(ctx)
	if child[3:35] != unsampled[3:35] || child[36:52] == unsampled[36:52] || !strings.HasSuffix(child, "-00") {
		t.Errorf("child %q of %q: same trace and flags, new span expected", child, unsampled)
	}
}

func TestWithExporterSpansAreExported(t *testing.T) {
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" {
			posts.Add(1)
		}
	}))
	defer srv.Close()
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL) // the exporter reads the variables itself
	shutdown, err := Setup(t.Context(), "test", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	_, span := Start(t.Context(), "exported", "")
	if !span.IsRecording() {
		t.Error("with an exporter, spans must be recorded")
	}
	span.End()
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if posts.Load() == 0 {
		t.Error("no span reached the OTLP endpoint")
	}
}
