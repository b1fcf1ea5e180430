package ingress

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

const (
	benchConcurrency = 16
	benchBatch       = 400 // webhooks per phase per iteration
	benchBodySize    = 2500
)

// benchBody is a ~2.5 KB Qonto webhook with a unique event id.
func benchBody(id int64) []byte {
	head := fmt.Sprintf(`{"id":"bench-%d","subscription_id":"5b0c7e4c-1b1d-4c8e-9f3a-6d2e1c0b9a87","organization_id":"8f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b","membership_id":"2a3b4c5d-6e7f-4081-92a3-b4c5d6e7f809","type":"v1/client-invoices","created_at":"2024-03-04T15:59:00Z","data":{"id":"inv-%d","currency":"EUR","status":"unpaid","footer":"`, id, id)
	pad := benchBodySize - len(head) - len(`"}}`)
	return []byte(head + strings.Repeat("x", pad) + `"}}`)
}

// BenchmarkIngressVsPublish measures, in the same run and at the same
// concurrency, accepted webhooks per second through ingress (HTTP, verify,
// identify, publish, PubAck) and raw JetStream publishes of the same
// payloads as the same CloudEvent messages, and reports the ratio.
func BenchmarkIngressVsPublish(b *testing.B) {
	s, src, js := benchServer(b)
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Config = stage.NewHTTPServer(s.Handler())
	hs.Start()
	defer hs.Close()
	qonto, _ := provider.Lookup("qonto")
	// The cost of the HTTP round trip alone: same server limits, a handler
	// that reads the body and answers 200.
	bare := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"status":"accepted"}`))
	}))
	bare.Config = stage.NewHTTPServer(bare.Config.Handler)
	bare.Start()
	defer bare.Close()
	ingressConns, bareConns := dialLoad(b, hs.Listener.Addr().String()), dialLoad(b, bare.Listener.Addr().String())
	var seq atomic.Int64
	var rawTime, ingressTime, httpTime time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		msgs := make([]*nats.Msg, benchBatch)
		for i := range msgs {
			id := seq.Add(1)
			var err error
			msgs[i], err = ce.RawMsg(subject.Webhook("qonto", "bench"), ce.Raw{Provider: "qonto", Source: "bench", Type: "com.qonto.v1/client-invoices", ID: fmt.Sprintf("bench-%d", id), Time: time.Now(), Body: benchBody(id)})
			if err != nil {
				b.Fatal(err)
			}
		}
		reqs := make([][]byte, benchBatch)
		for i := range reqs {
			body := benchBody(seq.Add(1))
			reqs[i] = requestBytes(b, "/webhooks/qonto/bench", qonto.Sign(src.Credentials, provider.Message{Body: body, At: time.Now()}), body)
		}
		b.StartTimer()
		rawTime += parallel(b, benchBatch, func(_, i int) error {
			_, err := js.PublishMsg(context.Background(), msgs[i])
			return err
		})
		ingressTime += parallel(b, benchBatch, func(w, i int) error { return ingressConns[w].post(reqs[i]) })
		httpTime += parallel(b, benchBatch, func(w, i int) error { return bareConns[w].post(reqs[i]) })
	}
	n := float64(b.N * benchBatch)
	rawRate, ingressRate, httpRate := n/rawTime.Seconds(), n/ingressTime.Seconds(), n/httpTime.Seconds()
	b.ReportMetric(rawRate, "raw-publish/s")
	b.ReportMetric(ingressRate, "ingress/s")
	b.ReportMetric(httpRate, "http-only/s")
	b.ReportMetric(ingressRate/rawRate, "ingress/raw")
	// On a CPU-bound machine an HTTP round trip plus a publish costs the sum
	// of both: ingress can at best reach 1/(1/http + 1/raw).
	bound := 1 / (1/httpRate + 1/rawRate)
	b.ReportMetric(ingressRate/bound, "ingress/(http+publish)")
	b.ReportMetric(bound/rawRate, "ceiling/raw") // the best ingress/raw this machine allows
}

// parallel runs fn(worker, 0..n-1) on benchConcurrency workers and returns
// the elapsed time.
func parallel(b *testing.B, n int, fn func(worker, i int) error) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for w := range benchConcurrency {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := fn(w, i); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// loadConn is one keep-alive HTTP/1.1 connection of the benchmark's load
// generator: it writes prepared request bytes and reads just the status
// line, the Content-Length and the body of each response. Providers post
// from other machines; on one machine the load generator shares the CPU
// with ingress, and this client takes much less of it than net/http's
// Transport (a read and a write goroutine per connection, a parsed header
// map per response), so the figures describe ingress rather than the
// client. The bare HTTP phase uses the same client.
type loadConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialLoad opens one connection per benchmark worker.
func dialLoad(b *testing.B, addr string) []*loadConn {
	conns := make([]*loadConn, benchConcurrency)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		conns[i] = &loadConn{conn: c, r: bufio.NewReader(c)}
	}
	return conns
}

// requestBytes renders a POST as it goes on the wire.
func requestBytes(b *testing.B, path string, header http.Header, body []byte) []byte {
	req, err := http.NewRequest(http.MethodPost, "http://ingress"+path, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header = header
	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		b.Fatal(err)
	}
	return wire.Bytes()
}

// post sends one request and requires a 200 with a Content-Length body,
// as net/http's server sends small replies.
func (c *loadConn) post(req []byte) error {
	if _, err := c.conn.Write(req); err != nil {
		return err
	}
	status, err := c.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("status line %q", status)
	}
	length := -1
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if name, value, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(name), "Content-Length") {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return fmt.Errorf("content length %q", value)
			}
		}
	}
	if length < 0 {
		return errors.New("response without Content-Length")
	}
	_, err = c.r.Discard(length)
	return err
}

// BenchmarkWebhookHandler serves Qonto's documented client-invoice event
// through ingress's handler, in process (no socket), each request a new
// event id, signed, verified and stored in an embedded JetStream: the
// handler's own cost per webhook, for its CPU profile
// (-cpuprofile; the PubAck round trip dominates the time).
func BenchmarkWebhookHandler(b *testing.B) {
	s, src, _ := benchServer(b)
	documented, err := os.ReadFile("../normalizer/testdata/raw/qonto/client-invoice-documented.json")
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	qonto, _ := provider.Lookup("qonto")
	const documentedID = `"123e4567-e89b-12d3-a456-426614174000"`
	if !bytes.Contains(documented, []byte(documentedID)) {
		b.Fatalf("the documented event has no id %s to make unique", documentedID)
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf(`"bench-%d"`, seq.Add(1))
			body := bytes.Replace(documented, []byte(documentedID), []byte(id), 1)
			r := httptest.NewRequest(http.MethodPost, "/webhooks/qonto/bench", bytes.NewReader(body))
			r.Header = qonto.Sign(src.Credentials, provider.Message{Body: body, At: time.Now()})
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}

// benchServer is ingress with one Qonto source, "bench", storing in an
// embedded JetStream.
func benchServer(b *testing.B) (*Server, Source, jetstream.JetStream) {
	b.Helper()
	srv := jstest.Run(b)
	nc, js := srv.Connect(b)
	if err := streams.Ensure(context.Background(), js, streams.Config{}); err != nil {
		b.Fatal(err)
	}
	key := provider.NewSecret([]byte("bench-secret-0123456789abcdef0123"))
	src := Source{Provider: "qonto", ID: "bench", Credentials: provider.Credentials{Tolerance: 5 * time.Minute, Secrets: []provider.Secret{key}}}
	s, err := New(nc, js, []Source{src}, Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	return s, src, js
}
