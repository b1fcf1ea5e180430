package e2e

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/sinks/sinktest"
)

// syncBuffer collects a process's output safely.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSinksProcessKilledDuringBackoff: the target answers 503 with
// Retry-After; the sinks process is SIGKILLed while the message waits out
// that delay; after a restart the message is retried and delivered once.
func TestSinksProcessKilledDuringBackoff(t *testing.T) {
	srv := jstest.Run(t)
	_, js := srv.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var attempts int
	delivered := map[string]int{}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts == 1 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		delivered[r.Header.Get("webhook-id")]++
	}))
	t.Cleanup(target.Close)

	specs := filepath.Join(t.TempDir(), "sinks.yaml")
	os.WriteFile(specs, []byte("sinks:\n  - {id: crm, type: http, options: {url: \""+target.URL+"\", allow_private: true}}\n"), 0o644)
	start := func() (*exec.Cmd, *syncBuffer) {
		cmd := exec.Command(filepath.Join(binDir, "sinks"))
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.Env = append(os.Environ(), "INVOICEHUB_NATS_URL="+srv.ClientURL(), "INVOICEHUB_SINKS_FILE="+specs,
			"INVOICEHUB_METRICS_ADDR=off", "INVOICEHUB_LOG_LEVEL=info")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, out
	}
	first, out := start()
	e := sinktest.Event(t, "raw-kill", schemas.KindPaid)
	if _, err := ce.Publish(t.Context(), js, "invoices.v1.paid.qonto.acme", e.CloudEvent); err != nil {
		t.Fatal(err)
	}
	jstest.Eventually(t, 10*time.Second, "first attempt answered 503 and the retry scheduled", func() bool {
		return strings.Contains(out.String(), "will retry")
	})
	first.Process.Kill() // SIGKILL during the 2 s backoff
	first.Wait()

	start()
	jstest.Eventually(t, 40*time.Second, "delivered after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return delivered[e.ID()] == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if attempts != 2 || len(delivered) != 1 {
		t.Fatalf("%d attempts, deliveries %v; want 2 attempts, one delivery", attempts, delivered)
	}
}
