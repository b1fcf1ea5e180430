// Package httpsink is the http sink: it POSTs each canonical event as a
// structured CloudEvent (application/cloudevents+json) signed with Standard
// Webhooks headers (webhook-id = the event id, webhook-timestamp,
// webhook-signature), so receivers verify it and deduplicate by id.
//
// Options (see Options): url (required); secret_env or secret_file, naming
// a whsec_ secret to sign with (unsigned without); timeout (default 10s);
// allow_private (true to allow loopback and private targets, refused by
// default: the check runs on the address actually dialled, so a DNS answer
// cannot smuggle one in).
//
// Answers: 2xx delivered; 408, 429, 5xx and network errors are retried,
// honouring Retry-After (seconds or a date, capped at 24h); 410 and other
// 4xx are permanent (dead-lettered at once, class http_<status>).
package httpsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/internal/standardwebhooks"
	"github.com/invoicehub/invoicehub/internal/tracing"
	"github.com/invoicehub/invoicehub/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrPrivateTarget is returned for a target on a special-purpose address
// (loopback, private, link-local, shared, documentation, NAT64...; see
// specialPurpose) when allow_private is off.
var ErrPrivateTarget = errors.New("httpsink: target address is private or loopback")

// Config configures a Sink.
type Config struct {
	URL string
	// Key signs the requests (the decoded whsec_ secret); nil sends them unsigned.
	Key          []byte
	Timeout      time.Duration
	AllowPrivate bool
}

// Sink posts events to one URL.
type Sink struct {
	cfg       Config
	client    *http.Client
	now       func() time.Time
	closed    atomic.Bool
	responses *prometheus.CounterVec // nil: not counted
}

// newResponses registers invoicehub_sink_http_responses_total{code}: the
// receiver's answers by status code ("error" when there was none), the
// first thing to look at when a sink retries (Build.Metrics adds sink).
func newResponses(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "invoicehub", Subsystem: "sink", Name: "http_responses_total",
		Help: "Answers of the http sink's receiver by status code; error: none (network, timeout).",
	}, []string{"code"})
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("httpsink: metrics: %w", err)
	}
	return c, nil
}

// count records one answer.
func (s *Sink) count(code string) {
	if s.responses != nil {
		s.responses.WithLabelValues(code).Inc()
	}
}

var (
	_ sinks.Sink     = (*Sink)(nil)
	_ sinks.Parallel = (*Sink)(nil)
)

// Concurrency is how many deliveries an http sink runs at once, across
// invoices, unless its spec says otherwise: each is a round trip to the
// receiver, mostly waiting. In `make bench-e2e` on two cores, 16 instead
// of the adapter's 4 took p99 webhook → receiver at 2,250/s from 37–67 ms
// to 23–26 ms, at the same CPU (docs/ARCHITECTURE.md, "Measured
// throughput"). It is also how many idle connections to the receiver the
// sink keeps.
const Concurrency = 16

// DefaultConcurrency is Concurrency: see sinks.Parallel.
func (s *Sink) DefaultConcurrency() int { return Concurrency }

// Options are the http sink's options.
type Options struct {
	URL string `yaml:"url"`
	// SecretEnv or SecretFile name the whsec_ secret to sign with; unsigned
	// without (stage.Secrets.Resolve reads them).
	SecretEnv  string        `yaml:"secret_env"`
	SecretFile string        `yaml:"secret_file"`
	Timeout    time.Duration `yaml:"timeout"` // default 10s
	// AllowPrivate allows loopback and private targets.
	AllowPrivate bool `yaml:"allow_private"`
}

// Factory builds an http sink from its options.
func Factory(_ context.Context, b sinks.Build) (sinks.Sink, error) {
	var o Options
	if err := b.Options.Decode(&o); err != nil {
		return nil, fmt.Errorf("httpsink: %w", err)
	}
	cfg := Config{URL: o.URL, Timeout: o.Timeout, AllowPrivate: o.AllowPrivate}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("httpsink: timeout %s: want a positive duration", o.Timeout)
	}
	if ref := (stage.SecretRef{Env: o.SecretEnv, File: o.SecretFile}); !ref.IsZero() {
		secret, err := b.Secrets.Resolve(ref)
		if err != nil {
			return nil, fmt.Errorf("httpsink: secret: %w", err)
		}
		if cfg.Key, err = standardwebhooks.DecodeSecret(string(secret)); err != nil {
			return nil, fmt.Errorf("httpsink: secret (%s): %w", ref, err)
		}
	}
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if s.responses, err = newResponses(b.Metrics); err != nil {
		return nil, err
	}
	return s, nil
}

// New returns a sink posting to cfg.URL.
func New(cfg Config) (*Sink, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, errors.New("httpsink: url: not a URL") // never echoed: it may hold a token
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("httpsink: url %s: want an http(s) URL", stage.RedactURL(u))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: func(_, address string, _ syscall.RawConn) error {
		return checkAddress(address, cfg.AllowPrivate)
	}}
	transport := &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: Concurrency, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: cfg.Timeout}
	client := &http.Client{Transport: transport, Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect is an answer, not an instruction
	}}
	return &Sink{cfg: cfg, client: client, now: time.Now}, nil
}

// Deliver posts the event; see the package comment for what an answer means.
func (s *Sink) Deliver(ctx context.Context, e sinks.Event) error {
	body, err := e.CloudEvent.MarshalJSON() // the SDK writes compact JSON: encoding/json would only scan it again
	if err != nil {
		return consume.Permanent(fmt.Errorf("httpsink: encode %s: %w", e.ID(), err))
	}
	return s.Post(ctx, e.ID(), "application/cloudevents+json", body)
}

// Post sends body as a Standard Webhooks message of id (webhook-id) and
// classifies the answer as Deliver does.
func (s *Sink) Post(ctx context.Context, id, contentType string, body []byte) error {
	if s.closed.Load() {
		return errors.New("httpsink: sink is closed")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return consume.Permanent(fmt.Errorf("httpsink: %w", err))
	}
	req.Header.Set("Content-Type", contentType)
	tracing.Inject(ctx, req.Header)
	standardwebhooks.Sign(req.Header, s.cfg.Key, id, s.now(), body)
	resp, err := s.client.Do(req)
	if err != nil {
		s.count("error")
		err = redactError(err)
		if errors.Is(err, ErrPrivateTarget) {
			return consume.PermanentClass("private_target", err)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("httpsink: post %s: %w", id, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	s.count(strconv.Itoa(resp.StatusCode))
	return classify(resp, id, s.now())
}

// classify turns an answer into nil, a retry (with its Retry-After) or a
// permanent error.
func classify(resp *http.Response, id string, now time.Time) error {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	err := fmt.Errorf("httpsink: %s answered %d for %s", stage.RedactURL(resp.Request.URL), code, id)
	if code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500 {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), now); ok {
			return consume.RetryAfter(err, d)
		}
		return err
	}
	return consume.PermanentClass("http_"+strconv.Itoa(code), err)
}

// redactError rewrites the URL a transport error names with redactURL.
func redactError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			redacted := *ue
			redacted.URL = stage.RedactURL(u)
			return &redacted
		}
	}
	return err
}

// maxRetryAfter caps the wait a Retry-After asks for: a longer one, a
// date further ahead, or a number of seconds too large for a Duration, is
// read as maxRetryAfter. The consumer caps the hint again
// (consume.Backoff.MaxRetryAfter, 1h by default).
const maxRetryAfter = 24 * time.Hour

// retryAfter reads a Retry-After header (RFC 9110, section 10.2.3): a
// number of seconds, digits only, or an HTTP date, capped at
// maxRetryAfter; a date in the past is 0. Anything else (a sign, a
// fraction, garbage) is no hint: false.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if strings.Trim(v, "0123456789") == "" {
		return retryAfterSeconds(v), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter), true // Sub saturates: no overflow
	}
	return 0, false
}

// retryAfterSeconds reads digits as seconds, capped at maxRetryAfter
// before they are multiplied into a Duration, so they cannot overflow.
func retryAfterSeconds(digits string) time.Duration {
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n > uint64(maxRetryAfter/time.Second) { // err: digits beyond uint64
		return maxRetryAfter
	}
	return time.Duration(n) * time.Second
}

// Close releases idle connections; later calls do nothing.
func (s *Sink) Close(context.Context) error {
	if s.closed.CompareAndSwap(false, true) {
		s.client.CloseIdleConnections()
	}
	return nil
}
