package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// documented reads a fixture the normalizer's tests build from a
// provider's documentation, with its headers sidecar.
func documented(t *testing.T, name string) ([]byte, map[string]string) {
	t.Helper()
	body, err := os.ReadFile("../normalizer/testdata/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var headers map[string]string
	if b, err := os.ReadFile("../normalizer/testdata/" + name + ".headers"); err == nil {
		if err := json.Unmarshal(b, &headers); err != nil {
			t.Fatal(err)
		}
	}
	return body, headers
}

// postSigned posts body to the dev pipeline as providerName would send it.
func (p *devProcess) postSigned(t *testing.T, providerName string, body []byte, msg provider.Message) int {
	t.Helper()
	prov, _ := provider.Lookup(providerName)
	msg.Body, msg.At = body, time.Now()
	creds := provider.Credentials{Mode: prov.Modes[0], Secrets: []provider.Secret{provider.NewSecret([]byte(devSecret))}}
	req, _ := http.NewRequest(http.MethodPost, p.httpURL+"/webhooks/"+providerName+"/demo", bytes.NewReader(body))
	req.Header = prov.Sign(creds, msg)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestDocumentedWebhooksEndToEnd posts, to the real `invoicehub dev`,
// Qonto's documented client-invoice envelope, a Rillet bill, a Rillet
// customer event and a Qonto v1/clients event: the invoice and the bill
// (a payable, its totals computed from its items) come out canonical, the
// two others are acknowledged and counted as skipped, the DLQ stays empty.
func TestDocumentedWebhooksEndToEnd(t *testing.T) {
	p := startDev(t, t.TempDir())
	js := p.connect(t)
	qontoInvoice, _ := documented(t, "raw/qonto/client-invoice-documented")
	qontoClient, _ := documented(t, "skip/qonto/clients-created")
	bill, billHeaders := documented(t, "raw/rillet/bill-created")
	customer, customerHeaders := documented(t, "skip/rillet/customer-created")
	rilletMsg := func(h map[string]string) provider.Message {
		return provider.Message{ID: h["X-Rillet-Id"], Type: h["X-Rillet-Entity"] + "." + h["X-Rillet-Event"]}
	}
	for name, code := range map[string]int{
		"qonto invoice":   p.postSigned(t, "qonto", qontoInvoice, provider.Message{}),
		"qonto client":    p.postSigned(t, "qonto", qontoClient, provider.Message{}),
		"rillet bill":     p.postSigned(t, "rillet", bill, rilletMsg(billHeaders)),
		"rillet customer": p.postSigned(t, "rillet", customer, rilletMsg(customerHeaders)),
	} {
		if code != http.StatusOK {
			t.Fatalf("%s: %d", name, code)
		}
	}
	byInvoice := func() map[string]schemas.Invoice {
		out := map[string]schemas.Invoice{}
		for _, e := range sinkEvents(t, p.sinkFile) {
			if e.Event.Kind == schemas.KindUpdated {
				out[e.Invoice.ID] = e.Invoice
			}
		}
		return out
	}
	jstest.Eventually(t, 10*time.Second, "the Qonto invoice and the bill in the sink", func() bool { return len(byInvoice()) == 2 })
	invoices := byInvoice()
	q := invoices["qonto:demo:4d5418bb-bd0d-4df4-865c-c07afab8bb48"]
	if q.Number != "INV001" || q.Status != schemas.StatusPaid || q.Totals.Total.String() != "12.52" || q.Totals.Tax.String() != "0.51" || q.Direction != schemas.DirectionReceivable {
		t.Errorf("qonto invoice %+v", q)
	}
	b := invoices["rillet:demo:4b5c6d7e-8f90-41a2-b3c4-d5e6f7081920"]
	if b.Direction != schemas.DirectionPayable || b.Number != "B123" || b.Totals.Net.String() != "1001.01" || b.Totals.Tax.String() != "80.00" ||
		b.Totals.Total.String() != "1081.01" || b.Totals.Due.String() != "1081.01" || b.Seller == nil || b.Seller.ID != "1e2f3a4b-5c6d-4e7f-8091-a2b3c4d5e6f7" {
		t.Errorf("rillet bill %+v", b)
	}
	skipped := regexp.MustCompile(`invoicehub_normalizer_raw_events_total\{event_type="([^"]+)",outcome="skipped",provider="(\w+)"\} 1\n`)
	jstest.Eventually(t, 5*time.Second, "both non-invoice events counted as skipped", func() bool {
		var got []string
		for _, m := range skipped.FindAllStringSubmatch(p.metrics(t), -1) {
			got = append(got, m[2]+" "+m[1])
		}
		slices.Sort(got)
		return strings.Join(got, ", ") == "qonto v1/clients, rillet CUSTOMER.CREATED"
	})
	if n := jstest.Count(t, js, subject.DLQStream); n != 0 {
		t.Fatalf("DLQ holds %d dead letters", n)
	}
}

// metrics scrapes the dev pipeline's /metrics.
func (p *devProcess) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(p.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
