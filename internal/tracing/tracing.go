// Package tracing carries one trace through the pipeline. Ingress starts a
// span per webhook (continuing an incoming W3C traceparent header); each
// stage continues the trace its message carries in the CloudEvent
// traceparent extension and stamps its own span on what it publishes; the
// http sink passes it on in the traceparent header.
//
// Setup installs an OpenTelemetry tracer provider: spans are exported over
// OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, and otherwise only get their
// ids (no span is built), so the traceparent still links a canonical event
// to its webhook.
package tracing

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

var propagator = propagation.TraceContext{}

const instrumentation = "github.com/invoicehub/invoicehub"

// Setup installs the global tracer provider for service and returns its
// shutdown, which flushes the spans still buffered.
func Setup(ctx context.Context, service string, getenv func(string) string) (func(context.Context) error, error) {
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		otel.SetTracerProvider(idsOnly{})
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx) // reads the standard OTEL_EXPORTER_OTLP_* variables
	if err != nil {
		return nil, errors.Join(errors.New("tracing: OTLP exporter"), err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("invoicehub-"+service))))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// idsOnly is the tracer provider when no exporter is set up: its spans
// get their ids as the SDK with its default sampler (parent-based, always
// on) gives them, and record nothing. The SDK would build every span,
// attributes and all, to drop it: 6 % of ingress's CPU under load.
// OTEL_TRACES_SAMPLER is honoured only with an exporter, by the SDK.
type idsOnly struct{ embedded.TracerProvider }

func (idsOnly) Tracer(string, ...trace.TracerOption) trace.Tracer { return idsTracer{} }

type idsTracer struct{ embedded.Tracer }

// Start gives the span the trace id of ctx's span (a new one if it has
// none, or with trace.WithNewRoot), a new span id, the parent's trace
// state, and its flags: a valid parent's as they are, sampled otherwise.
func (idsTracer) Start(ctx context.Context, _ string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	var parent trace.SpanContext
	if start := trace.NewSpanStartConfig(opts...); !start.NewRoot() {
		parent = trace.SpanContextFromContext(ctx)
	}
	cfg := trace.SpanContextConfig{TraceID: parent.TraceID(), TraceFlags: parent.TraceFlags(), TraceState: parent.TraceState()}
	if !parent.IsValid() {
		cfg.TraceFlags |= trace.FlagsSampled
	}
	for !cfg.TraceID.IsValid() {
		binary.BigEndian.PutUint64(cfg.TraceID[:8], rand.Uint64())
		binary.BigEndian.PutUint64(cfg.TraceID[8:], rand.Uint64())
	}
	for !cfg.SpanID.IsValid() {
		binary.BigEndian.PutUint64(cfg.SpanID[:], rand.Uint64())
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(cfg))
	return ctx, trace.SpanFromContext(ctx) // a span that carries the ids and records nothing
}

// Start starts a span continuing traceparent ("" starts a new trace).
func Start(ctx context.Context, name, traceparent string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if traceparent != "" {
		ctx = propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
	}
	return otel.Tracer(instrumentation).Start(ctx, name, trace.WithAttributes(attrs...))
}

// Traceparent returns the W3C traceparent of ctx's span, or "" when it has
// none (no tracer provider was set up and no trace came in).
func Traceparent(ctx context.Context) string {
	var c traceparentCarrier
	propagator.Inject(ctx, &c)
	return c.traceparent
}

// traceparentCarrier keeps the traceparent the propagator writes, without
// the map a propagation.MapCarrier would take per call.
type traceparentCarrier struct{ traceparent string }

func (c *traceparentCarrier) Get(string) string { return "" }
func (c *traceparentCarrier) Keys() []string    { return nil }
func (c *traceparentCarrier) Set(key, value string) {
	if key == "traceparent" {
		c.traceparent = value
	}
}

// Inject sets the traceparent header of an outgoing request.
func Inject(ctx context.Context, h http.Header) {
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// Fail records err on span.
func Fail(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}
