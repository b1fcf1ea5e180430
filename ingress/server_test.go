package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/schemas/subject"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas/ce"
)

const testSecret = "qonto-acme-secret-ABC123-0123456789"

var testNow = time.Date(2024, 3, 4, 16, 0, 0, 0, time.UTC)

type fixture struct {
	srv    *jstest.Server
	server *Server
	nc     *nats.Conn
	js     jetstream.JetStream
	http   *httptest.Server
	reg    *prometheus.Registry
	logs   *bytes.Buffer
}

func newFixture(t *testing.T, opts Options, sources ...Source) *fixture {
	t.Helper()
	srv := jstest.Run(t)
	nc, err := nats.Connect(srv.ClientURL(), stage.ConnectOptions("ingress-test", slog.New(slog.DiscardHandler))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{srv: srv, nc: nc, js: js, reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}}
	opts.Registerer = f.reg
	opts.Now = func() time.Time { return testNow }
	if len(sources) == 0 {
		sources = []Source{{
			Provider: "qonto", ID: "acme", MaxBody: 4096,
			Credentials: provider.Credentials{Tolerance: 5 * time.Minute, Secrets: []provider.Secret{
				provider.NewSecret([]byte("old-secret-0123456789abcdef0123")), provider.NewSecret([]byte(testSecret)),
			}},
		}}
	}
	s, err := New(nc, js, sources, opts, slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	f.server = s
	f.http = httptest.NewUnstartedServer(s.Handler())
	f.http.Config = stage.NewHTTPServer(s.Handler())
	f.http.Start()
	t.Cleanup(f.http.Close)
	return f
}

func qontoBody(id string) []byte {
	// Qonto's documented envelope, a client invoice in data.
	return []byte(`{"id":"` + id + `","subscription_id":"5b0c7e4c-1b1d-4c8e-9f3a-6d2e1c0b9a87","organization_id":"8f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b","membership_id":"2a3b4c5d-6e7f-4081-92a3-b4c5d6e7f809","type":"v1/client-invoices","created_at":"2024-03-04T15:59:00Z","data":{"id":"inv-1","status":"unpaid","currency":"EUR"}}`)
}

func (f *fixture) post(t *testing.T, path string, header http.Header, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.http.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func signed(body []byte, secret string) http.Header {
	p, _ := provider.Lookup("qonto")
	return p.Sign(provider.Credentials{Secrets: []provider.Secret{provider.NewSecret([]byte(secret))}}, provider.Message{Body: body, At: testNow})
}

// withHeader sets name: value on h and returns it.
func withHeader(h http.Header, name, value string) http.Header {
	h.Set(name, value)
	return h
}

func (f *fixture) stored(t *testing.T) []*jetstream.RawStreamMsg {
	return jstest.Messages(t, f.js, subject.WebhooksStream)
}

func TestAcceptsSignedWebhookByteForByte(t *testing.T) {
	f := newFixture(t, Options{})
	body := qontoBody("evt-1")
	resp := f.post(t, "/webhooks/qonto/acme", signed(body, testSecret), body)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	msgs := f.stored(t)
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored", len(msgs))
	}
	m := msgs[0]
	if m.Subject != "webhooks.qonto.acme" || !bytes.Equal(m.Data, body) {
		t.Fatalf("stored %s %q", m.Subject, m.Data)
	}
	e, err := ce.FromMsg(t.Context(), &nats.Msg{Header: m.Header, Data: m.Data})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() != "evt-1" || e.Type() != "com.qonto.v1/client-invoices" || e.Source() != "/webhooks/qonto/acme" ||
		ce.StringExtension(e, ce.ExtVerifiedKey) != "1" || ce.StringExtension(e, ce.ExtClockSkewMS) != "0" ||
		m.Header.Get(jetstream.MsgIDHeader) != "qonto/acme/evt-1" || !e.Time().Equal(time.Date(2024, 3, 4, 15, 59, 0, 0, time.UTC)) {
		t.Fatalf("raw event %s", e)
	}
}

func TestContinuesIncomingTrace(t *testing.T) {
	f := newFixture(t, Options{})
	body := qontoBody("evt-traced")
	h := signed(body, testSecret)
	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	h.Set("traceparent", incoming)
	if resp := f.post(t, "/webhooks/qonto/acme", h, body); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := f.stored(t)[0].Header.Get("ce-traceparent")
	if got == "" || got[3:35] != incoming[3:35] {
		t.Fatalf("raw event traceparent %q does not continue %q", got, incoming)
	}
}

func TestDuplicateIsAcceptedOnce(t *testing.T) {
	f := newFixture(t, Options{})
	body := qontoBody("evt-dup")
	var statuses []string
	for range 2 {
		resp := f.post(t, "/webhooks/qonto/acme", signed(body, testSecret), body)
		var r struct{ Status string }
		json.NewDecoder(resp.Body).Decode(&r)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		statuses = append(statuses, r.Status)
	}
	if statuses[0] != "accepted" || statuses[1] != "duplicate" {
		t.Fatalf("statuses %v", statuses)
	}
	if n := len(f.stored(t)); n != 1 {
		t.Fatalf("%d messages stored", n)
	}
	if got := testutil.ToFloat64(f.server.metrics.requests.WithLabelValues("qonto", "acme", "duplicate")); got != 1 {
		t.Fatalf("duplicate metric %v", got)
	}
}

func TestMetricsCountWhatWasStored(t *testing.T) {
	f := newFixture(t, Options{})
	m := f.server.metrics
	if n := testutil.CollectAndCount(m.lastSeen); n != 0 {
		t.Fatalf("%d last-seen series before any webhook: a source never seen must have none", n)
	}
	body := qontoBody("evt-count")
	f.post(t, "/webhooks/qonto/acme", signed(body, "wrong-secret-0123456789abcdef012"), body)
	if n := testutil.CollectAndCount(m.lastSeen); n != 0 {
		t.Fatalf("%d last-seen series after a refusal", n)
	}
	f.post(t, "/webhooks/qonto/acme", signed(body, testSecret), body)
	for outcome, want := range map[string]float64{"unauthorized": 1, "accepted": 1, "duplicate": 0} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues("qonto", "acme", outcome)); got != want {
			t.Errorf("%s: %v, want %v", outcome, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.duration); n != 3 { // unauthorized, and accepted and duplicate bound at start
		t.Errorf("%d duration series, want 3", n)
	}
	if seen := testutil.ToFloat64(m.lastSeen.WithLabelValues("qonto", "acme")); seen < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last seen %v after a webhook stored", seen)
	}
}

func TestPublishOutlivesTheClient(t *testing.T) {
	f := newFixture(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the client has gone before the PubAck came
	msg := nats.NewMsg(subject.Webhook("qonto", "acme"))
	msg.Header.Set(jetstream.MsgIDHeader, "qonto/acme/evt-gone")
	msg.Data = qontoBody("evt-gone")
	if res, st := f.server.publish(ctx, msg, "evt-gone"); res.status != http.StatusOK || st == nil || st.Status != "accepted" {
		t.Fatalf("publish after the client left: %+v %+v; JetStream's answer expected, not the client's", res, st)
	}
	if n := len(f.stored(t)); n != 1 {
		t.Fatalf("%d messages stored", n)
	}
}

func TestRejectsPublishNothing(t *testing.T) {
	f := newFixture(t, Options{})
	body := qontoBody("evt-x")
	big := bytes.Repeat([]byte("a"), 5000)
	tests := []struct {
		name   string
		method string
		path   string
		header http.Header
		body   []byte
		status int
	}{
		{"forged signature", "POST", "/webhooks/qonto/acme", signed(body, "wrong"), body, 401},
		{"missing signature", "POST", "/webhooks/qonto/acme", http.Header{}, body, 401},
		{"tampered body", "POST", "/webhooks/qonto/acme", signed(body, testSecret), append(bytes.Clone(body), ' '), 401},
		{"unknown provider", "POST", "/webhooks/stripe/acme", signed(body, testSecret), body, 404},
		{"unknown source", "POST", "/webhooks/qonto/other", signed(body, testSecret), body, 404},
		{"wrong method", "GET", "/webhooks/qonto/acme", signed(body, testSecret), nil, 405},
		{"too large", "POST", "/webhooks/qonto/acme", signed(big, testSecret), big, 413},
		{"signed but not json", "POST", "/webhooks/qonto/acme", signed([]byte("hello"), testSecret), []byte("hello"), 400},
		{"signed but no id", "POST", "/webhooks/qonto/acme", signed([]byte(`{"type":"v1/client-invoices","data":{}}`), testSecret), []byte(`{"type":"v1/client-invoices","data":{}}`), 400},
		{"signed but the content type is no media type", "POST", "/webhooks/qonto/acme", withHeader(signed(body, testSecret), "Content-Type", "application/json charset=utf-8"), body, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, f.http.URL+tt.path, bytes.NewReader(tt.body))
			req.Header = tt.header
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
		})
	}
	if n := len(f.stored(t)); n != 0 {
		t.Fatalf("%d messages stored after rejections", n)
	}
	if strings.Contains(f.logs.String(), testSecret) || strings.Contains(f.logs.String(), "old-secret") {
		t.Fatal("a secret appeared in the logs")
	}
}

// TestJetStreamDownAnswers503AtOnceAndStoresNothing: while NATS is down
// every webhook gets 503 + Retry-After at once, not after the publish
// deadline; once NATS is back nothing of them was stored (no publish was
// kept to send on reconnect), so the provider's retry is accepted anew.
func TestJetStreamDownAnswers503AtOnceAndStoresNothing(t *testing.T) {
	f := newFixture(t, Options{PublishTimeout: 750 * time.Millisecond, RetryAfter: 2 * time.Second})
	f.srv.Shutdown()
	jstest.Eventually(t, 5*time.Second, "the connection noticed", func() bool { return !f.nc.IsConnected() })
	var slowest time.Duration
	for i := range 20 {
		body := qontoBody("evt-down-" + strconv.Itoa(i))
		start := time.Now()
		resp := f.post(t, "/webhooks/qonto/acme", signed(body, testSecret), body)
		slowest = max(slowest, time.Since(start))
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "2" {
			t.Fatalf("status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if slowest > 50*time.Millisecond {
		t.Fatalf("the slowest 503 took %v", slowest)
	}
	t.Logf("slowest 503 of 20 while NATS was down: %v", slowest)
	ready, _ := http.Get(f.http.URL + "/readyz")
	ready.Body.Close()
	if ready.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d while NATS is down", ready.StatusCode)
	}
	f.srv.Restart(t)
	jstest.Eventually(t, 10*time.Second, "reconnected", f.nc.IsConnected)
	if n := len(f.stored(t)); n != 0 {
		t.Fatalf("%d webhooks answered 503 were stored after the reconnect", n)
	}
	body := qontoBody("evt-down-0")
	resp := f.post(t, "/webhooks/qonto/acme", signed(body, testSecret), body)
	var answer map[string]string
	json.NewDecoder(resp.Body).Decode(&answer)
	if resp.StatusCode != http.StatusOK || answer["status"] != "accepted" {
		t.Fatalf("the provider's retry: %d %v, want 200 accepted", resp.StatusCode, answer)
	}
}

func TestHealthAndReady(t *testing.T) {
	f := newFixture(t, Options{})
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(f.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
}

func TestContentID(t *testing.T) {
	a := ContentID("moxie", "studio", "com.moxie.invoice.sent", []byte("{}"))
	if a != ContentID("moxie", "studio", "com.moxie.invoice.sent", []byte("{}")) || len(a) != 64 {
		t.Fatal("not deterministic")
	}
	for _, other := range []string{
		ContentID("moxie", "studio", "com.moxie.payment.received", []byte("{}")),
		ContentID("mercoa", "studio", "com.moxie.invoice.sent", []byte("{}")),
		ContentID("moxie", "other", "com.moxie.invoice.sent", []byte("{}")),
	} {
		if other == a {
			t.Fatal("provider, source and type must be part of the id")
		}
	}
}

// TestWebhookLogLevels: a webhook stored is logged at debug (the metrics
// and WEBHOOKS count it), a refused one at info, so that info-level logs
// hold what an operator looks into and no line per webhook accepted.
func TestWebhookLogLevels(t *testing.T) {
	f := newFixture(t, Options{})
	body := qontoBody("evt-levels")
	for _, tc := range []struct {
		header http.Header
		status int
		level  string
	}{
		{signed(body, testSecret), http.StatusOK, "DEBUG"},
		{signed(body, "not-the-secret-0123456789abcdef"), http.StatusUnauthorized, "INFO"},
	} {
		f.logs.Reset()
		if resp := f.post(t, "/webhooks/qonto/acme", tc.header, body); resp.StatusCode != tc.status {
			t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
		}
		var line struct{ Level, Msg string }
		for l := range strings.Lines(f.logs.String()) {
			if err := json.Unmarshal([]byte(l), &line); err == nil && line.Msg == "webhook" {
				break
			}
		}
		if line.Msg != "webhook" || line.Level != tc.level {
			t.Fatalf("status %d: webhook line at %q, want %s (logs: %s)", tc.status, line.Level, tc.level, f.logs)
		}
	}
}
