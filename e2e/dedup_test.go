package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// TestOneEventIDOnFourSourcesIsFourWebhooks: one event id sent to two
// Qonto sources (one invoice id in two accounts), to Rillet (X-Rillet-Id)
// and to Mercoa (webhook-id) is four webhooks, each answered "accepted",
// stored, and normalized to its own source's invoice, on real processes.
func TestOneEventIDOnFourSourcesIsFourWebhooks(t *testing.T) {
	const (
		shared    = "7c1a2b3c-0000-4000-8000-000000000042"
		rilletKey = "rillet-acme-token-of-the-dedup-test-0123"
		mercoaKey = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the Standard Webhooks documentation's example key
	)
	p := startPipeline(t, pipelineOptions{
		sources: "  - {provider: qonto, id: other, secrets: [{env: QONTO_ACME_SECRET}]}\n" +
			"  - {provider: rillet, id: acme, mode: raw, secrets: [{env: RILLET_SECRET}]}\n" +
			"  - {provider: mercoa, id: acme, secrets: [{env: MERCOA_SECRET}]}\n",
		env: []string{"RILLET_SECRET=" + rilletKey, "MERCOA_SECRET=" + mercoaKey},
	})
	secret := func(providerName, mode, key string) provider.Credentials {
		prov, _ := provider.Lookup(providerName)
		s, err := prov.Secret(mode, []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return provider.Credentials{Mode: mode, Secrets: []provider.Secret{s}}
	}
	post := func(providerName, sourceID string, creds provider.Credentials, body []byte, m provider.Message) {
		prov, _ := provider.Lookup(providerName)
		m.Body, m.At = body, time.Now()
		req, _ := http.NewRequest(http.MethodPost, p.httpURL+"/webhooks/"+providerName+"/"+sourceID, bytes.NewReader(body))
		req.Header = prov.Sign(creds, m)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(answer), "accepted") {
			t.Fatalf("%s/%s: %d %s, want 200 accepted", providerName, sourceID, resp.StatusCode, answer)
		}
	}
	qonto := invoiceWebhook(shared, "inv-shared", "unpaid", time.Now())
	for _, src := range []string{"acme", "other"} {
		post("qonto", src, secret("qonto", "hmac", p.secret), qonto.body, provider.Message{})
	}
	rillet, rh := documented(t, "raw/rillet/invoice-created")
	post("rillet", "acme", secret("rillet", "raw", rilletKey), rillet, provider.Message{ID: shared, Type: rh["X-Rillet-Entity"] + "." + rh["X-Rillet-Event"]})
	mercoa, _ := documented(t, "raw/mercoa/invoice-created-seed")
	post("mercoa", "acme", secret("mercoa", "standardwebhooks", mercoaKey), mercoa, provider.Message{ID: shared})

	js := p.connect()
	if n := jstest.Count(t, js, subject.WebhooksStream); n != 4 {
		t.Fatalf("WEBHOOKS holds %d raw events, want 4", n)
	}
	want := []string{"mercoa/acme", "qonto/acme", "qonto/other", "rillet/acme"}
	var got []string
	jstest.Eventually(t, 30*time.Second, "four sources' invoices normalized", func() bool {
		msgs, err := jstest.ReadAll(t.Context(), js, subject.InvoicesStream)
		if err != nil {
			return false
		}
		got = got[:0]
		for _, m := range msgs {
			var d schemas.EventData
			if json.Unmarshal(m.Data, &d) == nil && d.Event.ProviderEventID == shared && !slices.Contains(got, d.Invoice.Provider+"/"+d.Invoice.Source) {
				got = append(got, d.Invoice.Provider+"/"+d.Invoice.Source)
			}
		}
		slices.Sort(got)
		return slices.Equal(got, want)
	})
}
