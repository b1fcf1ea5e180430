package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestTraceCrossesStages(t *testing.T) {
	restoreProvider(t)
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

// TestIdsOnlyGivesTheSDKsIds holds idsOnly to the SDK's tracer with its
// default sampler, parent by parent: the same trace id (or a new one
// where the SDK makes one), flags and trace state, a new span id, and
// nothing recorded.
func TestIdsOnlyGivesTheSDKsIds(t *testing.T) {
	sdk := sdktrace.NewTracerProvider().Tracer("sdk")
	ours := idsOnly{}.Tracer("ours")
	state, err := trace.ParseTraceState("vendor=x,other=y")
	if err != nil {
		t.Fatal(err)
	}
	tid := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	sid := trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	parent := func(c trace.SpanContextConfig) context.Context {
		return trace.ContextWithRemoteSpanContext(t.Context(), trace.NewSpanContext(c))
	}
	cases := map[string]struct {
		ctx  context.Context
		opts []trace.SpanStartOption
	}{
		"no parent":                  {t.Context(), nil},
		"sampled parent":             {parent(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}), nil},
		"unsampled parent":           {parent(trace.SpanContextConfig{TraceID: tid, SpanID: sid}), nil},
		"parent with trace state":    {parent(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: state}), nil},
		"parent with other flags":    {parent(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: 0x02}), nil},
		"trace id without a span id": {parent(trace.SpanContextConfig{TraceID: tid, TraceFlags: 0x02}), nil},
		"new root under a parent":    {parent(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}), []trace.SpanStartOption{trace.WithNewRoot()}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, want := sdk.Start(c.ctx, "span", c.opts...)
			ctx, got := ours.Start(c.ctx, "span", c.opts...)
			w, g := want.SpanContext(), got.SpanContext()
			if got.IsRecording() {
				t.Error("a span is recorded with no exporter to send it to")
			}
			if !g.IsValid() || !trace.SpanFromContext(ctx).SpanContext().Equal(g) {
				t.Fatalf("span context %v: valid and in the returned context expected", g)
			}
			if g.TraceFlags() != w.TraceFlags() || g.TraceState().String() != w.TraceState().String() {
				t.Errorf("flags %v, state %q; the SDK gives %v, %q", g.TraceFlags(), g.TraceState(), w.TraceFlags(), w.TraceState())
			}
			inherited := w.TraceID() == tid
			if (g.TraceID() == tid) != inherited {
				t.Errorf("trace id %v; the SDK keeps the parent's: %v", g.TraceID(), inherited)
			}
			if g.SpanID() == sid {
				t.Error("the parent's span id given again")
			}
		})
	}
	seen := map[trace.TraceID]bool{}
	for range 1000 {
		_, span := ours.Start(t.Context(), "root")
		if id := span.SpanContext().TraceID(); seen[id] {
			t.Fatalf("trace id %v given twice", id)
		} else {
			seen[id] = true
		}
	}
}

// FuzzIdsOnly is TestIdsOnlyGivesTheSDKsIds on any parent: any trace and
// span id (valid or not), flags, trace state, remote or local, new root
// or not.
func FuzzIdsOnly(f *testing.F) {
	f.Add([]byte("4bf92f3577b34da6a3ce929d0e0e4736"), []byte("00f067aa0ba902b7"), byte(1), "vendor=x", true, false)
	f.Add([]byte{}, []byte{}, byte(0), "", false, true)
	sdk := sdktrace.NewTracerProvider().Tracer("sdk")
	ours := idsOnly{}.Tracer("ours")
	f.Fuzz(func(t *testing.T, tid, sid []byte, flags byte, state string, remote, newRoot bool) {
		var cfg trace.SpanContextConfig
		copy(cfg.TraceID[:], tid)
		copy(cfg.SpanID[:], sid)
		cfg.TraceFlags = trace.TraceFlags(flags)
		cfg.TraceState, _ = trace.ParseTraceState(state)
		cfg.Remote = remote
		ctx := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(cfg))
		var opts []trace.SpanStartOption
		if newRoot {
			opts = append(opts, trace.WithNewRoot())
		}
		_, want := sdk.Start(ctx, "span", opts...)
		_, got := ours.Start(ctx, "span", opts...)
		w, g := want.SpanContext(), got.SpanContext()
		if !g.IsValid() || got.IsRecording() {
			t.Fatalf("span context %v, recording %v: valid and not recorded expected", g, got.IsRecording())
		}
		if g.TraceFlags() != w.TraceFlags() || g.TraceState().String() != w.TraceState().String() {
			t.Fatalf("flags %v, state %q; the SDK gives %v, %q", g.TraceFlags(), g.TraceState(), w.TraceFlags(), w.TraceState())
		}
		if (g.TraceID() == cfg.TraceID) != (w.TraceID() == cfg.TraceID) {
			t.Fatalf("trace id %v from parent %v; the SDK gives %v", g.TraceID(), cfg.TraceID, w.TraceID())
		}
		if g.SpanID() == cfg.SpanID {
			t.Fatal("the parent's span id given again")
		}
	})
}

func TestSetupWithoutExporterGivesIdsOnly(t *testing.T) {
	restoreProvider(t)
	if _, err := Setup(t.Context(), "test", func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	ctx, span := Start(t.Context(), "root", "")
	if span.IsRecording() {
		t.Error("a span is recorded with no exporter to send it to")
	}
	if tp := Traceparent(ctx); len(tp) != 55 || !strings.HasSuffix(tp, "-01") {
		t.Errorf("new trace %q: a sampled traceparent expected, as the SDK's default sampler gives", tp)
	}
}

// restoreProvider puts the global tracer provider back after the test.
func restoreProvider(t *testing.T) {
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
}

func TestWithExporterSpansAreExported(t *testing.T) {
	restoreProvider(t)
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
