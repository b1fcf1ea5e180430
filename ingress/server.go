// Package ingress is the HTTP front of invoicehub: it verifies each webhook
// on its raw bytes, publishes it unchanged as a raw CloudEvent to the
// WEBHOOKS stream, and answers 2xx only once JetStream has acknowledged it.
//
// Answers: 200 stored (or already stored: a duplicate); 400 malformed; 401
// not proven genuine; 404 unknown provider or source; 405 wrong method; 413
// body over the source's cap; 503 with Retry-After at once while the NATS
// connection is down, or when JetStream does not acknowledge within the
// publish deadline. Nothing is published for any answer but 200: the
// connection keeps no publish to send on reconnect (stage.Connect). Where
// a timeout leaves it unknown whether JetStream stored a webhook, the
// provider's retry is deduplicated by JetStream (within the duplicate
// window) and by the normalizer (whatever its age).
package ingress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/tracing"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// Options tune a Server. Zero values mean the defaults.
type Options struct {
	// PublishTimeout bounds the wait for the PubAck before answering 503.
	// Default 750ms: Qonto wants an answer within a second.
	PublishTimeout time.Duration
	// RetryAfter is the Retry-After sent with a 503. Default 1s.
	RetryAfter time.Duration
	// Registerer receives the metrics; nil means none are registered.
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Server handles webhooks for a set of sources.
type Server struct {
	js      jetstream.JetStream
	nc      *nats.Conn
	sources map[string]Source
	opts    Options
	log     *slog.Logger
	metrics *metrics
}

// New returns a server publishing with js; nc backs the readiness check.
func New(nc *nats.Conn, js jetstream.JetStream, sources []Source, opts Options, log *slog.Logger) (*Server, error) {
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 750 * time.Millisecond
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{js: js, nc: nc, sources: map[string]Source{}, opts: opts, log: log.With("component", "ingress"), metrics: m}
	for _, src := range sources {
		s.sources[sourceKey(src.Provider, src.ID)] = src
	}
	return s, nil
}

func sourceKey(providerName, sourceID string) string { return providerName + "/" + sourceID }

// Handler returns the HTTP routes: POST /webhooks/{provider}/{source},
// GET /healthz (the process is up) and GET /readyz (NATS is connected).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/{provider}/{source}", s.webhook)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, map[string]any{"status": "ok"}) })
	mux.HandleFunc("GET /readyz", s.ready)
	return mux
}

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	if s.nc == nil || s.nc.Status() != nats.CONNECTED {
		reply(w, http.StatusServiceUnavailable, map[string]any{"status": "nats not connected"})
		return
	}
	reply(w, http.StatusOK, map[string]any{"status": "ready"})
}

// outcome is how a webhook request ended; it labels the metrics and logs.
type outcome struct {
	status int
	label  string
	reason string
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	providerName, sourceID := r.PathValue("provider"), r.PathValue("source")
	ctx, span := tracing.Start(r.Context(), "ingress.webhook", r.Header.Get("traceparent"),
		attribute.String("invoicehub.provider", providerName), attribute.String("invoicehub.source", sourceID))
	defer span.End()
	r = r.WithContext(ctx)
	res, body := s.accept(r, w, providerName, sourceID)
	span.SetAttributes(attribute.Int("http.response.status_code", res.status), attribute.String("invoicehub.outcome", res.label))
	if res.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(s.opts.RetryAfter.Seconds()+0.5)))
	}
	if res.status == http.StatusOK {
		reply(w, res.status, body)
	} else {
		reply(w, res.status, map[string]any{"error": res.reason})
	}
	s.metrics.observe(providerName, sourceID, s.known(providerName, sourceID), res.label, time.Since(start))
	level := slog.LevelInfo
	if res.status >= 500 {
		level = slog.LevelWarn
	}
	s.log.Log(r.Context(), level, "webhook", "provider", providerName, "source", sourceID, "status", res.status, "outcome", res.label, "reason", res.reason)
}

func (s *Server) known(providerName, sourceID string) bool {
	_, ok := s.sources[sourceKey(providerName, sourceID)]
	return ok
}

// accept runs one webhook through verification and publishing.
func (s *Server) accept(r *http.Request, w http.ResponseWriter, providerName, sourceID string) (outcome, map[string]any) {
	p, ok := provider.Lookup(providerName)
	if !ok {
		return outcome{http.StatusNotFound, "unknown_provider", "unknown provider"}, nil
	}
	src, ok := s.sources[sourceKey(providerName, sourceID)]
	if !ok {
		return outcome{http.StatusNotFound, "unknown_source", "unknown source"}, nil
	}
	body, err := readBody(w, r, src.MaxBody)
	if err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			return outcome{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", src.MaxBody)}, nil
		}
		return outcome{http.StatusBadRequest, "unreadable", "cannot read body"}, nil
	}
	req := provider.Request{Header: r.Header, Body: body, Received: s.opts.Now()}
	evidence, err := p.Verify(req, src.Credentials)
	if err != nil {
		return outcome{http.StatusUnauthorized, "unauthorized", err.Error()}, nil
	}
	identity, err := p.Identify(req)
	if err != nil {
		return outcome{http.StatusBadRequest, "malformed", err.Error()}, nil
	}
	msg, err := s.rawMessage(r.Context(), p, src, req, evidence, identity)
	if err != nil {
		return outcome{http.StatusBadRequest, "malformed", err.Error()}, nil
	}
	if s.nc != nil && s.nc.Status() != nats.CONNECTED {
		// Disconnected: refused at once, never buffered to be sent later.
		return outcome{http.StatusServiceUnavailable, "unavailable", "storage unavailable, retry later"}, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.PublishTimeout)
	defer cancel()
	ack, err := s.js.PublishMsg(ctx, msg)
	tracing.Fail(trace.SpanFromContext(ctx), err)
	if err != nil {
		s.log.Warn("publish failed", "provider", providerName, "source", sourceID, "err", err)
		return outcome{http.StatusServiceUnavailable, "unavailable", "storage unavailable, retry later"}, nil
	}
	label := "accepted"
	if ack.Duplicate {
		label = "duplicate"
	}
	return outcome{http.StatusOK, label, ""}, map[string]any{"status": label, "id": msg.Header.Get(jetstream.MsgIDHeader)}
}

// rawMessage builds the raw CloudEvent message for a verified webhook.
func (s *Server) rawMessage(ctx context.Context, p provider.Provider, src Source, req provider.Request, ev provider.Evidence, id provider.Identity) (*nats.Msg, error) {
	if id.ID == "" {
		id.ID = ContentID(p.Name, id.Type, req.Body)
	}
	at := id.Time
	if at.IsZero() {
		at = req.Received
	}
	e, err := ce.NewRaw(ce.Raw{
		Provider: p.Name, Source: src.ID, Type: id.Type, ID: id.ID, Time: at, Body: req.Body,
		ContentType: mediaType(req.Header.Get("Content-Type")), VerifiedKey: ev.KeyIndex, ClockSkew: ev.ClockSkew(req.Received),
		Traceparent: tracing.Traceparent(ctx),
	})
	if err != nil {
		return nil, err
	}
	msg, err := ce.ToMsg(ctx, subject.Webhook(p.Name, src.ID), e)
	if err != nil {
		return nil, err
	}
	for _, h := range p.Headers {
		if v := req.Header.Get(h); v != "" {
			msg.Header.Set(ce.ProviderHeaderPrefix+strings.ToLower(h), v)
		}
	}
	return msg, nil
}

// readBody reads the request body up to limit bytes, sized from
// Content-Length when the client sent one.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= limit {
		buf.Grow(int(n) + bytes.MinRead) // ReadFrom wants MinRead free bytes before each read, EOF included
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	return buf.Bytes(), err
}

// ContentID is the dedup id of a webhook whose provider sends no event id:
// hex SHA-256 of (provider, event type, body).
func ContentID(providerName, eventType string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(providerName))
	h.Write([]byte{0})
	h.Write([]byte(eventType))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// mediaType returns the request's media type without parameters, default
// application/json.
func mediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	if mt = strings.TrimSpace(strings.ToLower(mt)); mt == "" || !strings.Contains(mt, "/") {
		return "application/json"
	}
	return mt
}

func reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
