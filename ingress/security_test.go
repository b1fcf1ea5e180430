package ingress

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/stage"
)

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestHeaderOnlyConnectionsStayCheap: 1,000 connections each send the
// headers of a webhook to a known source declaring a body of almost 1 MiB,
// and nothing more. The body buffers grow only with bytes received, the
// source takes 256 of them in flight and answers 503 to the rest at once,
// the listener answers 503 past its 600 connections, and /healthz (served
// apart) keeps answering. Ingress's heap stays below 48 MiB.
func TestHeaderOnlyConnectionsStayCheap(t *testing.T) {
	f := newFixture(t, Options{})
	ln, err := stage.Listen("127.0.0.1:0", 600, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	go stage.Serve(t.Context(), ln, f.server.Handler(), time.Second, slog.New(slog.DiscardHandler))
	health, err := stage.Listen("127.0.0.1:0", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	go stage.Serve(t.Context(), health, stage.MetricsHandler(f.reg, f.server.Ready), time.Second, slog.New(slog.DiscardHandler))

	before := heapInUse()
	const conns = 1000
	head := "POST /webhooks/qonto/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Qonto-Signature: t=1,v1=00\r\nContent-Length: 1040000\r\n\r\n"
	var answered503, silent atomic.Int32
	done := make(chan struct{}, conns)
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.Write([]byte(head))
		go func() {
			defer func() { done <- struct{}{} }()
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				silent.Add(1) // being read: waits for its body
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
				answered503.Add(1)
			}
		}()
	}
	for range conns {
		<-done
	}
	grown := heapInUse() - min(before, heapInUse())
	t.Logf("1,000 header-only connections: %d answered 503 at once, %d waiting for their body; heap grew by %.1f MiB", answered503.Load(), silent.Load(), float64(grown)/(1<<20))
	if grown > 48<<20 {
		t.Fatalf("heap grew by %d MiB", grown>>20)
	}
	if silent.Load() > 256 || answered503.Load() < conns-256 {
		t.Fatalf("%d waiting, %d answered 503: want at most 256 in flight", silent.Load(), answered503.Load())
	}
	resp, err := http.Get("http://" + health.Addr().String() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz during the flood: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestDedupIDsAreScoped: one event id on two sources of one provider, and
// on two providers, is four webhooks stored, not one and three duplicates.
func TestDedupIDsAreScoped(t *testing.T) {
	swKey, _ := provider.Lookup("mercoa")
	mercoaKey, err := swKey.Secret("standardwebhooks", []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
	if err != nil {
		t.Fatal(err)
	}
	qontoCreds := provider.Credentials{Tolerance: 5 * time.Minute, Secrets: []provider.Secret{provider.NewSecret([]byte(testSecret))}}
	f := newFixture(t, Options{},
		Source{Provider: "qonto", ID: "acme", Credentials: qontoCreds},
		Source{Provider: "qonto", ID: "other", Credentials: qontoCreds},
		Source{Provider: "rillet", ID: "acme", Credentials: provider.Credentials{Tolerance: 5 * time.Minute, Mode: "raw", Secrets: []provider.Secret{provider.NewSecret([]byte(testSecret))}}},
		Source{Provider: "mercoa", ID: "acme", Credentials: provider.Credentials{Tolerance: 5 * time.Minute, Mode: "standardwebhooks", Secrets: []provider.Secret{mercoaKey}}},
	)
	const shared = "7c1a2b3c-0000-4000-8000-000000000042"
	post := func(providerName, sourceID string, creds provider.Credentials, body []byte, m provider.Message) string {
		p, _ := provider.Lookup(providerName)
		m.Body, m.At = body, testNow
		resp := f.post(t, "/webhooks/"+providerName+"/"+sourceID, p.Sign(creds, m), body)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s/%s: %d %s", providerName, sourceID, resp.StatusCode, b)
		}
		return string(b)
	}
	for _, src := range []string{"other", "acme"} {
		if got := post("qonto", src, qontoCreds, qontoBody(shared), provider.Message{}); !strings.Contains(got, "accepted") {
			t.Fatalf("qonto/%s: %s, want accepted", src, got)
		}
	}
	if got := post("rillet", "acme", f.server.sources["rillet/acme"].Credentials, []byte(`{"id":"inv-9","status":"UNPAID"}`), provider.Message{ID: shared, Type: "INVOICE.UPDATED"}); !strings.Contains(got, "accepted") {
		t.Fatalf("rillet: %s", got)
	}
	if got := post("mercoa", "acme", f.server.sources["mercoa/acme"].Credentials, []byte(`{"eventType":"invoice.updated","invoice":{"id":"in_9"}}`), provider.Message{ID: shared}); !strings.Contains(got, "accepted") {
		t.Fatalf("mercoa: %s", got)
	}
	ids := map[string]bool{}
	for _, m := range f.stored(t) {
		ids[m.Header.Get(jetstream.MsgIDHeader)] = true
	}
	if len(ids) != 4 {
		t.Fatalf("dedup ids %v, want four", ids)
	}
}

// TestBodyAtTheCapIsStored: a source without max_body takes the largest
// body that fits NATS's max_payload with the raw event's headers; a body
// of exactly that size is stored, one byte more is 413; a max_body that
// cannot fit is refused at start; and what NATS refuses as too large is
// 413, never 503 (the provider's retries could not help).
func TestBodyAtTheCapIsStored(t *testing.T) {
	f := newFixture(t, Options{}, Source{Provider: "qonto", ID: "acme", Credentials: provider.Credentials{Tolerance: 5 * time.Minute, Secrets: []provider.Secret{provider.NewSecret([]byte(testSecret))}}})
	limit := f.server.sources["qonto/acme"].MaxBody
	if want := f.nc.MaxPayload() - HeaderRoom; limit != want {
		t.Fatalf("default max_body %d, want %d", limit, want)
	}
	body := func(n int64) []byte {
		b := qontoBody("evt-cap-" + strconv.FormatInt(n, 10))
		pad := `,"pad":"` + strings.Repeat("x", int(n)-len(b)-len(`,"pad":""`)) + `"}`
		return append(b[:len(b)-1], pad...)
	}
	exact := body(limit)
	if int64(len(exact)) != limit {
		t.Fatalf("test body of %d bytes, want %d", len(exact), limit)
	}
	if resp := f.post(t, "/webhooks/qonto/acme", signed(exact, testSecret), exact); resp.StatusCode != http.StatusOK {
		t.Fatalf("a body at the cap: %d", resp.StatusCode)
	}
	over := body(limit + 1)
	if resp := f.post(t, "/webhooks/qonto/acme", signed(over, testSecret), over); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("one byte over the cap: %d", resp.StatusCode)
	}
	if _, err := New(f.nc, f.js, []Source{{Provider: "qonto", ID: "big", MaxBody: f.nc.MaxPayload()}}, Options{}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "cannot fit") {
		t.Fatalf("a max_body of max_payload accepted: %v", err)
	}
	// A server that says more than it takes: its refusal is 413.
	liar, err := New(f.nc, f.js, []Source{{Provider: "qonto", ID: "acme", MaxBody: 2 << 20, Credentials: f.server.sources["qonto/acme"].Credentials}}, Options{MaxPayload: 4 << 20, Now: func() time.Time { return testNow }}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{header: http.Header{}}
	huge := body(1200 << 10)
	req, _ := http.NewRequest(http.MethodPost, "/webhooks/qonto/acme", bytes.NewReader(huge))
	req.Header = signed(huge, testSecret)
	liar.Handler().ServeHTTP(rec, req)
	if rec.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("NATS refused the payload: %d, want 413", rec.status)
	}
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

// TestFailedVerificationsAreThrottled: past the source's budget of failed
// verifications, requests are answered 429 + Retry-After without being
// verified; other sources are not affected.
func TestFailedVerificationsAreThrottled(t *testing.T) {
	creds := provider.Credentials{Tolerance: 5 * time.Minute, Secrets: []provider.Secret{provider.NewSecret([]byte(testSecret))}}
	f := newFixture(t, Options{FailedAuthPerSecond: 0.001, FailedAuthBurst: 5},
		Source{Provider: "qonto", ID: "acme", Credentials: creds}, Source{Provider: "qonto", ID: "beta", Credentials: creds})
	body := qontoBody("evt-brute")
	var statuses []int
	for range 8 {
		resp := f.post(t, "/webhooks/qonto/acme", signed(body, "a wrong secret of thirty-two chars"), body)
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if fmt.Sprint(statuses) != "[401 401 401 401 401 429 429 429]" {
		t.Fatalf("answers %v", statuses)
	}
	if resp := f.post(t, "/webhooks/qonto/beta", signed(body, testSecret), body); resp.StatusCode != http.StatusOK {
		t.Fatalf("another source: %d", resp.StatusCode)
	}
}

// TestNotFoundSaysNothing: an unknown provider and an unknown source get
// the same answer; an attacker-sized path reaches neither the log nor the
// metric labels; /metrics is not on the webhook port.
func TestNotFoundSaysNothing(t *testing.T) {
	f := newFixture(t, Options{})
	answer := func(path string) (int, string) {
		resp := f.post(t, path, http.Header{}, []byte("{}"))
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	s1, b1 := answer("/webhooks/stripe/acme")
	s2, b2 := answer("/webhooks/qonto/nobody")
	long := "/webhooks/qonto/" + strings.Repeat("A", 60<<10)
	s3, b3 := answer(long)
	if s1 != http.StatusNotFound || s2 != s1 || s3 != s1 || b1 != b2 || b2 != b3 {
		t.Fatalf("answers %d %q, %d %q, %d %q", s1, b1, s2, b2, s3, b3)
	}
	if strings.Contains(f.logs.String(), strings.Repeat("A", 100)) || strings.Contains(f.logs.String(), "stripe") {
		t.Fatal("an unknown path reached the log")
	}
	resp, _ := http.Get(f.http.URL + "/metrics")
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("/metrics served on the webhook port")
	}
}
