package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/schemas/subject"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas"
)

// binDir holds the binaries TestMain builds once.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "invoicehub-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	build := exec.Command("go", "build", "-o", binDir, "github.com/invoicehub/invoicehub/cmd/invoicehub", "github.com/invoicehub/invoicehub/sinks/cmd/sinks")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const devSecret = "invoicehub-dev-secret"

// devProcess is a running `invoicehub dev`.
type devProcess struct {
	cmd      *exec.Cmd
	dataDir  string
	httpURL  string
	natsURL  string
	sinkFile string
	mu       sync.Mutex
	out      bytes.Buffer
	exited   chan error
}

var (
	httpLine = regexp.MustCompile(`send webhooks to\s+(http://\S+)/webhooks/`)
	natsLine = regexp.MustCompile(`NATS / JetStream\s+(nats://\S+)`)
	sinkLine = regexp.MustCompile(`canonical events\s+(\S+)`)
)

// startDev runs `invoicehub dev` on dataDir with free ports and waits for
// its banner.
func startDev(t *testing.T, dataDir string) *devProcess {
	t.Helper()
	p := &devProcess{dataDir: dataDir, exited: make(chan error, 1)}
	p.cmd = exec.Command(filepath.Join(binDir, "invoicehub"), "dev", "-data", dataDir, "-http", "127.0.0.1:0", "-nats-port", "-1")
	p.cmd.Env = append(os.Environ(), "INVOICEHUB_LOG_LEVEL=warn")
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = &lockedWriter{p: p}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		p.exited <- p.cmd.Wait()
	}()
	jstest.Eventually(t, 30*time.Second, "dev banner", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		out := p.out.String()
		h, n, s := httpLine.FindStringSubmatch(out), natsLine.FindStringSubmatch(out), sinkLine.FindStringSubmatch(out)
		if h == nil || n == nil || s == nil {
			return false
		}
		p.httpURL, p.natsURL, p.sinkFile = h[1], n[1], s[1]
		return true
	})
	return p
}

type lockedWriter struct{ p *devProcess }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

func (p *devProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *devProcess) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// stop sends SIGINT and returns the exit error.
func (p *devProcess) stop(t *testing.T) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.exited:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("dev did not stop on SIGINT:\n%s", p.output())
		return nil
	}
}

func (p *devProcess) connect(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(p.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// qontoWebhook is a client invoice in Qonto's documented envelope.
func qontoWebhook(eventID, invoiceID string, at time.Time) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"subscription_id":"5b0c7e4c-1b1d-4c8e-9f3a-6d2e1c0b9a87","organization_id":"8f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b","membership_id":"2a3b4c5d-6e7f-4081-92a3-b4c5d6e7f809","type":"v1/client-invoices","created_at":%q,"data":{"id":%q,"number":"INV-E2E","status":"unpaid","currency":"EUR","total_amount":{"value":"120.00","currency":"EUR"},"vat_amount":{"value":"20.00","currency":"EUR"},"issue_date":"2024-03-01","due_date":"2099-03-31"}}`,
		eventID, at.UTC().Format(time.RFC3339), invoiceID))
}

func (p *devProcess) post(t *testing.T, body []byte, secret string) (int, string) {
	t.Helper()
	qonto, _ := provider.Lookup("qonto")
	req, _ := http.NewRequest(http.MethodPost, p.httpURL+"/webhooks/qonto/demo", bytes.NewReader(body))
	req.Header = qonto.Sign(provider.Credentials{Secrets: []provider.Secret{provider.NewSecret([]byte(secret))}}, provider.Message{Body: body, At: time.Now()})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sinkEvents reads the file sink's canonical events. A last line without
// its newline is being written: it is not read yet.
func sinkEvents(t *testing.T, path string) []schemas.EventData {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(b, []byte("\n"))
	var out []schemas.EventData
	for _, line := range lines[:len(lines)-1] {
		var ev struct{ Data schemas.EventData }
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("sink line %q: %v", line, err)
		}
		out = append(out, ev.Data)
	}
	return out
}

func TestQontoWebhookEndToEnd(t *testing.T) {
	p := startDev(t, t.TempDir())
	js := p.connect(t)
	body := qontoWebhook("evt-e2e-1", "inv-e2e-1", time.Now())

	if code, answer := p.post(t, body, devSecret); code != http.StatusOK || !strings.Contains(answer, "accepted") {
		t.Fatalf("signed webhook: %d %s", code, answer)
	}
	// A first sighting is created plus updated (the full state).
	jstest.Eventually(t, 5*time.Second, "canonical events on INVOICES", func() bool { return jstest.Count(t, js, subject.InvoicesStream) == 2 })
	inv, _ := js.Stream(t.Context(), subject.InvoicesStream)
	msg, err := inv.GetLastMsgForSubject(t.Context(), "invoices.v1.created.qonto.demo")
	if err != nil {
		t.Fatal(err)
	}
	var data schemas.EventData
	if err := json.Unmarshal(msg.Data, &data); err != nil {
		t.Fatal(err)
	}
	// One trace from the webhook to its canonical event.
	raw := jstest.Messages(t, js, subject.WebhooksStream)[0]
	rawTrace, canonicalTrace := raw.Header.Get("ce-traceparent"), msg.Header.Get("ce-traceparent")
	if len(rawTrace) != 55 || len(canonicalTrace) != 55 || rawTrace[3:35] != canonicalTrace[3:35] || rawTrace == canonicalTrace {
		t.Fatalf("trace not carried: raw %q, canonical %q", rawTrace, canonicalTrace)
	}
	if data.Invoice.ID != "qonto:demo:inv-e2e-1" || data.Invoice.Status != schemas.StatusOpen || data.Invoice.Totals.Total.String() != "120.00" || data.Event.ProviderEventID != "evt-e2e-1" {
		t.Fatalf("canonical event %+v", data)
	}
	jstest.Eventually(t, 5*time.Second, "canonical events in the file sink", func() bool {
		evs := sinkEvents(t, p.sinkFile) // in either order: the sink delivers concurrently
		return len(evs) == 2 && evs[0].Invoice.ID == "qonto:demo:inv-e2e-1" && evs[0].Event.Kind != evs[1].Event.Kind
	})

	// The same webhook again: 200, still one raw message and its events.
	if code, answer := p.post(t, body, devSecret); code != http.StatusOK || !strings.Contains(answer, "duplicate") {
		t.Fatalf("redelivery: %d %s", code, answer)
	}
	// A forged signature: 401, nothing published.
	forged := qontoWebhook("evt-e2e-forged", "inv-e2e-2", time.Now())
	if code, _ := p.post(t, forged, "not-the-secret"); code != http.StatusUnauthorized {
		t.Fatalf("forged webhook: %d", code)
	}
	if n := jstest.Count(t, js, subject.WebhooksStream); n != 1 {
		t.Fatalf("WEBHOOKS holds %d messages, want 1", n)
	}
	if n := jstest.Count(t, js, subject.InvoicesStream); n != 2 {
		t.Fatalf("INVOICES holds %d events, want 2", n)
	}
	if err := p.stop(t); err != nil {
		t.Fatalf("dev exited with %v:\n%s", err, p.output())
	}
	if evs := sinkEvents(t, p.sinkFile); len(evs) != 2 {
		t.Fatalf("file sink holds %d events after shutdown", len(evs))
	}
}

// TestAcceptedWebhookSurvivesKill: a webhook answered 200 is delivered to
// the sink even when the process is killed (SIGKILL) right after the answer.
func TestAcceptedWebhookSurvivesKill(t *testing.T) {
	dataDir := t.TempDir()
	p := startDev(t, dataDir)
	const n = 20
	for i := range n {
		body := qontoWebhook(fmt.Sprintf("evt-kill-%d", i), fmt.Sprintf("inv-kill-%d", i), time.Now())
		if code, answer := p.post(t, body, devSecret); code != http.StatusOK {
			t.Fatalf("webhook %d: %d %s", i, code, answer)
		}
	}
	p.kill() // SIGKILL: no drain, no flush

	p2 := startDev(t, dataDir)
	jstest.Eventually(t, 20*time.Second, "all accepted webhooks in the sink after restart", func() bool {
		return len(sinkEvents(t, p2.sinkFile)) == 2*n // created and updated each
	})
	if err := p2.stop(t); err != nil {
		t.Fatalf("dev exited with %v", err)
	}
}

// TestSendEveryProviderThroughDev: `invoicehub send <provider>` signs a
// sample shaped as the provider documents it; the running pipeline
// verifies, maps and delivers it, for every provider (and Rillet's bills).
func TestSendEveryProviderThroughDev(t *testing.T) {
	p := startDev(t, t.TempDir())
	sends := [][]string{{"qonto"}, {"rillet"}, {"rillet", "-entity", "BILL"}, {"mercoa"}, {"moxie"}, {"standardwebhooks"}}
	for _, args := range sends {
		send := exec.Command(filepath.Join(binDir, "invoicehub"), append(append([]string{"send"}, args...), "-url", p.httpURL)...)
		if out, err := send.CombinedOutput(); err != nil || !strings.Contains(string(out), "200 OK") {
			t.Fatalf("send %v: %v\n%s", args, err, out)
		}
	}
	type want struct {
		provider  string
		direction schemas.Direction
		number    string
	}
	wants := []want{
		{"qonto", schemas.DirectionReceivable, "INV-"}, {"rillet", schemas.DirectionReceivable, "INV-"}, {"rillet", schemas.DirectionPayable, "B-"},
		{"mercoa", schemas.DirectionPayable, "INV-"}, {"moxie", schemas.DirectionReceivable, "M-"}, {"standardwebhooks", schemas.DirectionReceivable, "OWN-"},
	}
	jstest.Eventually(t, 10*time.Second, "a created event per sample in the sink", func() bool {
		found := 0
		for _, w := range wants {
			for _, e := range sinkEvents(t, p.sinkFile) {
				inv := e.Invoice
				if e.Event.Kind == schemas.KindCreated && inv.Provider == w.provider && inv.Direction == w.direction &&
					strings.HasPrefix(inv.Number, w.number) && inv.Totals.Total.String() == "1440.00" {
					found++
					break
				}
			}
		}
		return found == len(wants)
	})
}
