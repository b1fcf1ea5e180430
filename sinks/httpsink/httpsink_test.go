package httpsink

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/deadletter"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/subject"
	"github.com/invoicehub/invoicehub/sinks"
	"github.com/invoicehub/invoicehub/sinks/sinktest"
)

var testKey = []byte("receiver-shared-key")

// receiver is a Standard Webhooks receiver: it verifies the signature and
// keeps each webhook-id once. answer decides the status of each request.
type receiver struct {
	mu       sync.Mutex
	ids      []string
	seen     map[string]bool
	attempts []time.Time
	answer   func(n int) (int, http.Header)
	srv      *httptest.Server
}

func newReceiver(t *testing.T, answer func(n int) (int, http.Header)) *receiver {
	r := &receiver{seen: map[string]bool{}, answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
		mac := hmac.New(sha256.New, testKey)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		if req.Header.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) ||
			req.Header.Get("Content-Type") != "application/cloudevents+json" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		r.attempts = append(r.attempts, time.Now())
		status, h := http.StatusOK, http.Header{}
		if r.answer != nil {
			status, h = r.answer(len(r.attempts))
		}
		if status/100 == 2 && !r.seen[id] {
			r.seen[id] = true
			r.ids = append(r.ids, id)
		}
		r.mu.Unlock()
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) delivered() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

type harness struct{ receivers map[sinks.Sink]*receiver }

// Fail returns an event the receiver answers 503 (transient) or 400
// (permanent).
func (h *harness) Fail(t *testing.T, s sinks.Sink, permanent bool) (sinks.Event, bool) {
	r := h.receivers[s]
	status := map[bool]int{false: http.StatusServiceUnavailable, true: http.StatusBadRequest}[permanent]
	r.mu.Lock()
	r.answer = func(n int) (int, http.Header) {
		if n == len(r.attempts) && n == 1 {
			return status, nil
		}
		return http.StatusOK, nil
	}
	r.mu.Unlock()
	return sinktest.Event(t, "raw-fail", schemas.KindUpdated), true
}

func (h *harness) New(t *testing.T) sinks.Sink {
	r := newReceiver(t, nil)
	s, err := New(Config{URL: r.srv.URL, Key: testKey, AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	h.receivers[s] = r
	return s
}

func (h *harness) Delivered(t *testing.T, s sinks.Sink) []string { return h.receivers[s].delivered() }

func TestConformance(t *testing.T) { sinktest.Run(t, &harness{receivers: map[sinks.Sink]*receiver{}}) }

func TestAnswers(t *testing.T) {
	tests := []struct {
		status     int
		retryAfter string
		wantNil    bool
		permanent  string
		hint       time.Duration
	}{
		{200, "", true, "", 0},
		{204, "", true, "", 0},
		{408, "", false, "", 0},
		{429, "7", false, "", 7 * time.Second},
		{500, "", false, "", 0},
		{503, "2", false, "", 2 * time.Second},
		{503, "Wed, 21 Oct 2099 07:28:00 GMT", false, "", -1},
		{503, "9223372036854775807", false, "", maxRetryAfter},
		{429, "99999999999999999999", false, "", maxRetryAfter},
		{400, "", false, "http_400", 0},
		{401, "", false, "http_401", 0},
		{404, "", false, "http_404", 0},
		{410, "", false, "http_410", 0},
		{422, "", false, "http_422", 0},
		{301, "", false, "http_301", 0},
	}
	for _, tt := range tests {
		r := newReceiver(t, func(int) (int, http.Header) {
			h := http.Header{}
			if tt.retryAfter != "" {
				h.Set("Retry-After", tt.retryAfter)
			}
			return tt.status, h
		})
		s, _ := New(Config{URL: r.srv.URL, Key: testKey, AllowPrivate: true})
		err := s.Deliver(t.Context(), sinktest.Event(t, "raw", schemas.KindUpdated))
		class, permanent := consume.PermanentClassOf(err)
		hint, hasHint := consume.RetryAfterHint(err)
		switch {
		case tt.wantNil && err != nil, !tt.wantNil && err == nil:
			t.Errorf("%d: err %v", tt.status, err)
		case tt.permanent != "" && class != tt.permanent:
			t.Errorf("%d: class %q permanent=%v, want %q", tt.status, class, permanent, tt.permanent)
		case tt.permanent == "" && permanent:
			t.Errorf("%d: permanent, want a retry", tt.status)
		case tt.hint > 0 && hint != tt.hint, tt.hint < 0 && (!hasHint || hint < time.Hour):
			t.Errorf("%d Retry-After %q: hint %v", tt.status, tt.retryAfter, hint)
		}
	}
}

func TestRefusesPrivateTargets(t *testing.T) {
	r := newReceiver(t, nil)
	s, err := New(Config{URL: r.srv.URL, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Deliver(t.Context(), sinktest.Event(t, "raw", schemas.KindUpdated))
	if class, ok := consume.PermanentClassOf(err); !ok || class != "private_target" || !errors.Is(err, ErrPrivateTarget) {
		t.Fatalf("loopback target: %v", err)
	}
	if len(r.delivered()) != 0 {
		t.Fatal("delivered to a loopback target")
	}
	for _, bad := range []string{"", "ftp://x", "http://", "not a url"} {
		if _, err := New(Config{URL: bad}); err == nil {
			t.Errorf("url %q accepted", bad)
		}
	}
}

// run runs the sink on INVOICES until the test ends.
func run(t *testing.T, s sinks.Sink) (*jstest.Server, sinks.Spec) {
	t.Helper()
	srv := jstest.Run(t)
	_, js := srv.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	spec := sinks.Spec{ID: "crm", Type: "http", MaxAttempts: 6, Backoff: consume.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	go func() { done <- sinks.Run(ctx, js, spec, s, log) }()
	t.Cleanup(func() { cancel(); <-done })
	e := sinktest.Event(t, "raw-1", schemas.KindPaid)
	if _, err := ce.Publish(t.Context(), js, subject.Invoice("paid", "qonto", "acme"), e.CloudEvent); err != nil {
		t.Fatal(err)
	}
	return srv, spec
}

func TestRetryAfterThenDelivered(t *testing.T) {
	r := newReceiver(t, func(n int) (int, http.Header) {
		if n <= 3 {
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"1"}}
		}
		return http.StatusOK, nil
	})
	s, _ := New(Config{URL: r.srv.URL, Key: testKey, AllowPrivate: true})
	run(t, s)
	jstest.Eventually(t, 15*time.Second, "delivered after three 503s", func() bool { return len(r.delivered()) == 1 })
	r.mu.Lock()
	attempts := append([]time.Time(nil), r.attempts...)
	r.mu.Unlock()
	if len(attempts) != 4 {
		t.Fatalf("%d attempts, want 4", len(attempts))
	}
	for i := 1; i < len(attempts); i++ {
		if gap := attempts[i].Sub(attempts[i-1]); gap < time.Second {
			t.Errorf("attempt %d came %v after the previous, before Retry-After: 1", i+1, gap)
		}
	}
}

func TestBadRequestDeadLetteredThenReplayed(t *testing.T) {
	var mu sync.Mutex
	fixed := false
	r := newReceiver(t, func(int) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		if !fixed {
			return http.StatusBadRequest, nil
		}
		return http.StatusOK, nil
	})
	s, _ := New(Config{URL: r.srv.URL, Key: testKey, AllowPrivate: true})
	srv, _ := run(t, s)
	_, js := srv.Connect(t)
	var letters []deadletter.Letter
	jstest.Eventually(t, 5*time.Second, "dead-lettered", func() bool {
		letters, _ = deadletter.List(t.Context(), js, deadletter.Filter{Stage: "sink", Consumer: "crm"})
		return len(letters) == 1
	})
	l := letters[0]
	if l.Class() != "http_400" || l.Attempts() != "1" {
		t.Fatalf("dead letter class %q after %s attempts, want http_400 at once", l.Class(), l.Attempts())
	}
	mu.Lock()
	fixed = true
	mu.Unlock()
	if err := deadletter.Replay(t.Context(), js, l.Seq); err != nil {
		t.Fatal(err)
	}
	jstest.Eventually(t, 5*time.Second, "delivered after replay", func() bool { return len(r.delivered()) == 1 })
	if left, _ := deadletter.List(t.Context(), js, deadletter.Filter{}); len(left) != 0 {
		t.Fatalf("%d dead letters left", len(left))
	}
}

// TestSpecialPurposeAddressesRefused checks the dialer's Control hook on
// an address of every special-purpose block, without dialling anything:
// each is refused unless allow_private, and public addresses pass.
func TestSpecialPurposeAddressesRefused(t *testing.T) {
	refused := []string{
		"0.0.0.0:443", "0.1.2.3:443", "10.1.2.3:443", "100.64.0.1:443", "100.127.255.254:443", "127.0.0.1:443", "127.9.9.9:443",
		"169.254.169.254:80", "172.16.0.1:443", "172.31.255.255:443", "192.0.0.8:443", "192.0.0.170:443", "192.0.2.1:443",
		"192.31.196.1:443", "192.52.193.1:443", "192.88.99.1:443", "192.168.1.1:443", "192.175.48.1:443",
		"198.18.0.1:443", "198.19.255.255:443", "198.51.100.7:443", "203.0.113.9:443", "224.0.0.1:443", "239.1.1.1:443",
		"240.0.0.1:443", "255.255.255.255:443",
		"[::]:443", "[::1]:443", "[::ffff:127.0.0.1]:443", "[::ffff:10.0.0.1]:443", "[::ffff:169.254.169.254]:443",
		"[64:ff9b::7f00:1]:443", "[64:ff9b::808:808]:443", "[64:ff9b:1::1]:443", "[100::1]:443", "[2001::1]:443",
		"[2001:2::1]:443", "[2001:db8::1]:443", "[2002:7f00:1::1]:443", "[2620:4f:8000::1]:443", "[3fff::1]:443",
		"[5f00::1]:443", "[fc00::1]:443", "[fd12:3456::1]:443", "[fe80::1%eth0]:443", "[fec0::1]:443", "[ff02::1]:443",
		"not-an-address", "example.com:443",
	}
	for _, addr := range refused {
		if err := checkAddress(addr, false); !errors.Is(err, ErrPrivateTarget) {
			t.Errorf("%s: %v, want refused", addr, err)
		}
		if err := checkAddress(addr, true); err != nil {
			t.Errorf("%s with allow_private: %v", addr, err)
		}
	}
	for _, addr := range []string{"93.184.216.34:443", "8.8.8.8:53", "1.1.1.1:443", "[2606:4700:4700::1111]:443", "[::ffff:8.8.8.8]:443", "[2a00:1450:4007:80e::200e]:443"} {
		if err := checkAddress(addr, false); err != nil {
			t.Errorf("%s: %v, want allowed", addr, err)
		}
	}
}

// TestURLCredentialsNeverInErrors: a target's query token, password and
// path (Slack-style URLs carry their secret there) appear in no error,
// hence in no log line, ledger entry, dead letter or notification.
func TestURLCredentialsNeverInErrors(t *testing.T) {
	const path = "/services/T0000/B0000/pathS3cretXYZ"
	leaks := func(err error) bool {
		return strings.Contains(err.Error(), "s3cr3t-token") || strings.Contains(err.Error(), "hunter2pass") || strings.Contains(err.Error(), "pathS3cretXYZ")
	}
	r := newReceiver(t, func(int) (int, http.Header) { return http.StatusBadRequest, nil })
	u := strings.Replace(r.srv.URL, "http://", "http://hook:hunter2pass@", 1) + path + "?token=s3cr3t-token&x=1"
	s, err := New(Config{URL: u, Key: testKey, AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Deliver(t.Context(), sinktest.Event(t, "raw-redact", schemas.KindUpdated))
	if err == nil || leaks(err) {
		t.Fatalf("answer error: %v", err)
	}
	down, _ := New(Config{URL: "http://hook:hunter2pass@127.0.0.1:1" + path + "?token=s3cr3t-token", AllowPrivate: true, Timeout: time.Second})
	err = down.Deliver(t.Context(), sinktest.Event(t, "raw-redact-2", schemas.KindUpdated))
	if err == nil || leaks(err) {
		t.Fatalf("transport error: %v", err)
	}
	if _, err := New(Config{URL: "ftp://hook:hunter2pass@example.com" + path + "?token=s3cr3t-token"}); err == nil || leaks(err) {
		t.Fatalf("configuration error: %v", err)
	}
}

// TestRetryAfter: a Retry-After hint is never negative nor wrapped around
// by an overflow, and never longer than maxRetryAfter.
func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header string
		want   time.Duration
		wantOK bool
	}{
		{"seconds", "120", 2 * time.Minute, true},
		{"zero", "0", 0, true},
		{"spaces", " 7 ", 7 * time.Second, true},
		{"just under the cap", "86399", maxRetryAfter - time.Second, true},
		{"just over the cap", "86401", maxRetryAfter, true},
		{"overflows a Duration to a short wait", "18446744074", maxRetryAfter, true},
		{"max int64", "9223372036854775807", maxRetryAfter, true},
		{"beyond uint64", "99999999999999999999", maxRetryAfter, true},
		{"far beyond uint64", strings.Repeat("9", 40), maxRetryAfter, true},
		{"date ahead", "Sun, 01 Jun 2025 12:01:30 GMT", 90 * time.Second, true},
		{"date far ahead", "Fri, 31 Dec 9999 23:59:59 GMT", maxRetryAfter, true},
		{"date in the past", "Sun, 06 Nov 1994 08:49:37 GMT", 0, true},
		{"negative", "-5", 0, false},
		{"negative huge", "-9223372036854775808", 0, false},
		{"plus sign", "+5", 0, false},
		{"fraction", "1.5", 0, false},
		{"garbage", "soon", 0, false},
		{"empty", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := retryAfter(tt.header, now)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("retryAfter(%q) = %v, %v; want %v, %v", tt.header, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
