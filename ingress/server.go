// Package ingress is the HTTP front of invoicehub: it verifies each webhook
// on its raw bytes, publishes it unchanged as a raw CloudEvent to the
// WEBHOOKS stream, and answers 2xx only once JetStream has acknowledged it.
//
// Answers: 200 stored (or already stored: a duplicate); 400 malformed; 401
// not proven genuine; 404 not found (an unknown provider or source: one
// text for both); 405 wrong method; 413 body over the source's cap (or
// too large for NATS); 429 too many failed verifications on the source;
// 503 with Retry-After at once while the NATS connection is down, when
// the source has too many requests in flight, or when JetStream does not
// acknowledge within the publish deadline. Nothing is published for any
// answer but 200: the connection keeps no publish to send on reconnect
// (stage.ConnectOptions). Where a timeout leaves it unknown whether
// JetStream stored a webhook, the provider's retry is deduplicated by
// JetStream (within the duplicate window) and by the normalizer (whatever
// its age).
//
// Work before authentication is bounded: a body buffer grows with the
// bytes received (never sized from a declared Content-Length), each source
// has a bound on requests in flight, the listener on connections
// (stage.Listen), and the request log never carries attacker-sized strings.
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

	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/tracing"
	"github.com/invoicehub/invoicehub/normalizer"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// Options tune a Server. Zero values mean the defaults.
type Options struct {
	// PublishTimeout bounds the wait for the PubAck before answering 503.
	// Default 750ms: Qonto wants an answer within a second.
	PublishTimeout time.Duration
	// RetryAfter is the Retry-After sent with a 503 or 429. Default 1s.
	RetryAfter time.Duration
	// MaxInFlightPerSource bounds one source's requests being read,
	// verified or published at once; beyond it the answer is 503. Default 256.
	MaxInFlightPerSource int
	// FailedAuthPerSecond and FailedAuthBurst bound one source's failed
	// verifications; beyond them requests are answered 429 without being
	// verified, until the budget refills. Defaults 20 and 100.
	FailedAuthPerSecond float64
	FailedAuthBurst     int
	// MaxPayload is the NATS server's max_payload, which a raw event (body
	// and headers) must fit; default nc.MaxPayload().
	MaxPayload int64
	// Registerer receives the metrics; nil means none are registered.
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// HeaderRoom is what a raw event's headers may take of NATS's max_payload:
// a source's max_body is at most max_payload − HeaderRoom. A raw event is
// stored only if it leaves consume.DeadLetterRoom free, so that it can be
// dead-lettered whole.
const HeaderRoom = 8 << 10

// Server handles webhooks for a set of sources.
type Server struct {
	js      jetstream.JetStream
	nc      *nats.Conn
	sources map[string]*source
	opts    Options
	log     *slog.Logger
	metrics *metrics
	// maxInvoice is the largest canonical invoice JSON that fits the
	// server's max_payload (normalizer.MaxInvoiceJSON).
	maxInvoice int64
}

// source is a configured source and its bounds.
type source struct {
	Source
	inFlight     chan struct{}
	failedAuths  *rate.Limiter
	providerImpl provider.Provider
	metrics      *sourceMetrics
}

// New returns a server publishing with js; nc backs the readiness check
// and gives the server's max_payload. It refuses a source whose max_body
// cannot fit max_payload with the raw event's headers; a source without
// one gets the largest that fits, at most DefaultMaxBody.
func New(nc *nats.Conn, js jetstream.JetStream, sources []Source, opts Options, log *slog.Logger) (*Server, error) {
	opts = opts.withDefaults(nc)
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{js: js, nc: nc, sources: map[string]*source{}, opts: opts, log: log.With("component", "ingress"), metrics: m,
		maxInvoice: normalizer.MaxInvoiceJSON(opts.MaxPayload)}
	fits := opts.MaxPayload - HeaderRoom
	var errs []error
	for _, src := range sources {
		switch {
		case src.MaxBody == 0:
			src.MaxBody = min(DefaultMaxBody, fits)
		case src.MaxBody > fits:
			errs = append(errs, fmt.Errorf("ingress: source %s/%s: max_body %d cannot fit NATS max_payload %d with the raw event's headers: at most %d",
				src.Provider, src.ID, src.MaxBody, opts.MaxPayload, fits))
		}
		p, ok := provider.Lookup(src.Provider)
		if !ok {
			errs = append(errs, fmt.Errorf("ingress: source %s/%s: unknown provider", src.Provider, src.ID))
		}
		s.sources[sourceKey(src.Provider, src.ID)] = &source{
			Source: src, providerImpl: p, inFlight: make(chan struct{}, opts.MaxInFlightPerSource),
			failedAuths: rate.NewLimiter(rate.Limit(opts.FailedAuthPerSecond), opts.FailedAuthBurst),
			metrics:     m.forSource(src.Provider, src.ID),
		}
	}
	return s, errors.Join(errs...)
}

func (o Options) withDefaults(nc *nats.Conn) Options {
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 750 * time.Millisecond
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.MaxInFlightPerSource <= 0 {
		o.MaxInFlightPerSource = 256
	}
	if o.FailedAuthPerSecond <= 0 {
		o.FailedAuthPerSecond = 20
	}
	if o.FailedAuthBurst <= 0 {
		o.FailedAuthBurst = 100
	}
	if o.MaxPayload <= 0 && nc != nil {
		o.MaxPayload = nc.MaxPayload()
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = 1 << 20 // NATS's default
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func sourceKey(providerName, sourceID string) string { return providerName + "/" + sourceID }

// Handler returns the webhook routes: POST /webhooks/{provider}/{source},
// GET /healthz (the process is up) and GET /readyz (NATS is connected).
// Metrics are served apart (ServeMetrics), not on the webhook port.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/{provider}/{source}", s.webhook)
	mux.HandleFunc("GET /healthz", s.Healthz)
	mux.HandleFunc("GET /readyz", s.Readyz)
	mux.HandleFunc("POST /", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusNotFound, map[string]any{"error": notFound})
	})
	return mux
}

// notFound is the one answer to an unknown provider, source or path, so a
// scan learns nothing of which exist.
const notFound = "not found"

// Healthz answers 200 while the process is up.
func (s *Server) Healthz(w http.ResponseWriter, _ *http.Request) {
	reply(w, http.StatusOK, map[string]any{"status": "ok"})
}

// Readyz answers 200 while NATS is connected, 503 otherwise.
func (s *Server) Readyz(w http.ResponseWriter, _ *http.Request) {
	if err := s.Ready(); err != nil {
		reply(w, http.StatusServiceUnavailable, map[string]any{"status": err.Error()})
		return
	}
	reply(w, http.StatusOK, map[string]any{"status": "ready"})
}

// Ready reports whether ingress can store webhooks: NATS is connected.
func (s *Server) Ready() error {
	if s.nc == nil || s.nc.Status() != nats.CONNECTED {
		return errors.New("nats not connected")
	}
	return nil
}

// outcome is how a webhook request ended; it labels the metrics and logs.
type outcome struct {
	status int
	label  string
	reason string
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	src := s.sources[sourceKey(r.PathValue("provider"), r.PathValue("source"))]
	if src == nil { // neither the path nor its length reaches a log or a metric label
		s.metrics.refused("unknown", "unknown", "not_found", time.Since(start))
		reply(w, http.StatusNotFound, map[string]any{"error": notFound})
		return
	}
	ctx, span := tracing.Start(r.Context(), "ingress.webhook", r.Header.Get("traceparent"),
		attribute.String("invoicehub.provider", src.Provider), attribute.String("invoicehub.source", src.ID))
	defer span.End()
	r = r.WithContext(ctx)
	res, body := s.accept(r, w, src)
	span.SetAttributes(attribute.Int("http.response.status_code", res.status), attribute.String("invoicehub.outcome", res.label))
	if res.status == http.StatusServiceUnavailable || res.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(int(s.opts.RetryAfter.Seconds()+0.5)))
	}
	if body != nil { // stored: accepted or duplicate, answered 200
		writeJSON(w, res.status, body.appendJSON(make([]byte, 0, 64)))
		src.metrics.stored(body.Status == "duplicate", time.Since(start))
	} else {
		reply(w, res.status, map[string]any{"error": res.reason})
		s.metrics.refused(src.Provider, src.ID, res.label, time.Since(start))
	}
	if level := logLevel(res.status); s.log.Enabled(r.Context(), level) { // the arguments are not even built at debug
		s.log.Log(r.Context(), level, "webhook", "provider", src.Provider, "source", src.ID, "status", res.status, "outcome", res.label, "reason", res.reason)
	}
}

// stored is the answer to a webhook stored: accepted or duplicate, and
// the event id it was stored under.
type stored struct {
	Status string `json:"status"`
	ID     string `json:"id"`
}

// appendJSON appends the answer's JSON without reflection, on every
// webhook stored: what json.Marshal would encode but that <, >, &, U+2028
// and U+2029 are left unescaped (FuzzStoredAnswerIsItsJSON). Invalid
// UTF-8 is replaced with U+FFFD, as json.Marshal does; the error saying
// so is dropped.
func (b *stored) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"status":`...)
	dst, _ = jsontext.AppendQuote(dst, b.Status)
	dst = append(dst, `,"id":`...)
	dst, _ = jsontext.AppendQuote(dst, b.ID)
	return append(dst, '}')
}

// logLevel is the level of a webhook's log line: debug for a webhook
// stored (counted by invoicehub_ingress_requests_total and kept in
// WEBHOOKS), info for a refusal, warn when storage failed.
func logLevel(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelWarn
	case status >= 300:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// accept runs one webhook of a known source through verification and
// publishing.
func (s *Server) accept(r *http.Request, w http.ResponseWriter, src *source) (outcome, *stored) {
	select {
	case src.inFlight <- struct{}{}:
		defer func() { <-src.inFlight }()
	default:
		return outcome{http.StatusServiceUnavailable, "busy", "too many requests in flight, retry later"}, nil
	}
	if src.failedAuths.Tokens() < 1 {
		return outcome{http.StatusTooManyRequests, "throttled", "too many failed verifications, retry later"}, nil
	}
	body, err := readBody(w, r, src.MaxBody)
	if err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			return outcome{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", src.MaxBody)}, nil
		}
		return outcome{http.StatusBadRequest, "unreadable", "cannot read body"}, nil
	}
	p := src.providerImpl
	req := provider.Request{Header: r.Header, Body: body, Received: s.opts.Now()}
	evidence, err := p.Verify(req, src.Credentials)
	if err != nil {
		src.failedAuths.Allow()
		return outcome{http.StatusUnauthorized, "unauthorized", err.Error()}, nil
	}
	identity, err := p.Identify(req)
	if err != nil {
		return outcome{http.StatusBadRequest, "malformed", err.Error()}, nil
	}
	msg, raw, err := s.rawMessage(r.Context(), p, src.Source, req, evidence, identity)
	if err != nil {
		return outcome{http.StatusBadRequest, "malformed", err.Error()}, nil
	}
	if o, ok := s.fits(raw, msg); !ok {
		return o, nil
	}
	return s.publish(r.Context(), msg, raw.ID)
}

// publish stores the raw event: 200 once JetStream acknowledged it; 503
// when it is unavailable (retrying may help), 413 when the event is too
// large for it (retrying cannot).
func (s *Server) publish(ctx context.Context, msg *nats.Msg, id string) (outcome, *stored) {
	if s.nc != nil && s.nc.Status() != nats.CONNECTED {
		// Disconnected: refused at once, never buffered to be sent later.
		return outcome{http.StatusServiceUnavailable, "unavailable", "storage unavailable, retry later"}, nil
	}
	// The wait for the PubAck is bounded by the deadline alone, not by the
	// client staying: a client gone cannot take back a publish sent, and the
	// outcome counted and logged is then JetStream's. (Detached, the timer
	// is not registered with the request's context: a map insert and
	// delete less per webhook.)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.PublishTimeout)
	defer cancel()
	if encodedSize(msg) > s.opts.MaxPayload-consume.DeadLetterRoom {
		return outcome{http.StatusRequestEntityTooLarge, "too_large", "too large to store"}, nil
	}
	ack, err := s.js.PublishMsg(ctx, msg)
	tracing.Fail(trace.SpanFromContext(ctx), err)
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return outcome{http.StatusRequestEntityTooLarge, "too_large", "too large to store"}, nil
	case err != nil:
		s.log.Warn("publish failed", "subject", msg.Subject, "err", err)
		return outcome{http.StatusServiceUnavailable, "unavailable", "storage unavailable, retry later"}, nil
	}
	label := "accepted"
	if ack.Duplicate {
		label = "duplicate"
	}
	return outcome{http.StatusOK, label, ""}, &stored{Status: label, ID: id}
}

// fits maps the raw event as the normalizer will, unless its body is too
// small to outgrow the budget (normalizer.MaxGrowth), and refuses it
// (413) if its canonical invoice would pass normalizer.MaxInvoiceJSON:
// stored, it could never be published (the size budget,
// docs/ARCHITECTURE.md). An event that does not map is stored: the
// normalizer dead-letters it with its reason.
func (s *Server) fits(raw ce.Raw, msg *nats.Msg) (outcome, bool) {
	if int64(len(raw.Body))*normalizer.MaxGrowth <= s.maxInvoice {
		return outcome{}, true // too small to outgrow it
	}
	n, err := normalizer.InvoiceSize(raw, msg.Header)
	if err != nil || int64(n) <= s.maxInvoice {
		return outcome{}, true
	}
	return outcome{http.StatusRequestEntityTooLarge, "too_large",
		fmt.Sprintf("its canonical invoice would be %d bytes, over the %d that NATS max_payload %d leaves", n, s.maxInvoice, s.opts.MaxPayload)}, false
}

// rawMessage builds the raw CloudEvent message for a verified webhook and
// returns it with the raw event it carries.
func (s *Server) rawMessage(ctx context.Context, p provider.Provider, src Source, req provider.Request, ev provider.Evidence, id provider.Identity) (*nats.Msg, ce.Raw, error) {
	if id.ID == "" {
		id.ID = ContentID(p.Name, src.ID, id.Type, req.Body)
	}
	at := id.Time
	if at.IsZero() {
		at = req.Received
	}
	raw := ce.Raw{
		Provider: p.Name, Source: src.ID, Type: id.Type, ID: id.ID, Time: at, Body: req.Body,
		ContentType: mediaType(req.Header.Get("Content-Type")), VerifiedKey: ev.KeyIndex, ClockSkew: ev.ClockSkew(req.Received),
		Traceparent: tracing.Traceparent(ctx),
	}
	msg, err := ce.RawMsg(subject.Webhook(p.Name, src.ID), raw)
	if err != nil {
		return nil, ce.Raw{}, err
	}
	msg.Header.Set(jetstream.MsgIDHeader, DedupID(p.Name, src.ID, id.ID))
	for _, h := range p.Headers {
		if v := req.Header.Get(h); v != "" {
			msg.Header.Set(ce.ProviderHeaderPrefix+strings.ToLower(h), v)
		}
	}
	return msg, raw, nil
}

// encodedSize is what msg counts against max_payload: its body and its
// header block as NATS encodes it.
func encodedSize(msg *nats.Msg) int64 {
	n := len(msg.Data) + len("NATS/1.0\r\n\r\n")
	for k, vs := range msg.Header {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return int64(n)
}

// DedupID is a raw event's Nats-Msg-Id: the provider's event id scoped by
// provider and source, so that one provider's id never hides another's,
// nor one account's another's. (The CloudEvent id stays the provider's.)
func DedupID(providerName, sourceID, eventID string) string {
	return providerName + "/" + sourceID + "/" + eventID
}

// readBody reads the request body up to limit bytes into a buffer that
// grows with the bytes received: a declared Content-Length reserves
// nothing before the bytes arrive.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(min(max(r.ContentLength, 0), firstRead)) + bytes.MinRead)
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	return buf.Bytes(), err
}

// firstRead is the most a body buffer takes before bytes arrive: webhooks
// are a few KB, larger ones grow the buffer as they come.
const firstRead = 8 << 10

// ContentID is the event id of a webhook whose provider sends none: hex
// SHA-256 of (provider, source, event type, body).
func ContentID(providerName, sourceID, eventType string, body []byte) string {
	h := sha256.New()
	for _, part := range []string{providerName, sourceID, eventType} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
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

// reply writes body as one line of JSON.
func reply(w http.ResponseWriter, status int, body map[string]any) {
	b, err := json.Marshal(body)
	if err != nil { // its bodies are string maps: cannot fail
		status, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode the answer"}`)
	}
	writeJSON(w, status, b)
}

// jsonContentType is the answers' Content-Type value, set under its
// canonical key without canonicalizing or allocating. It is shared by
// every answer: never mutate it (Set and Add replace or reallocate it,
// net/http copies the header when the answer is written).
var jsonContentType = []string{"application/json"}

// writeJSON writes b, one JSON value, as the answer's one line.
func writeJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
