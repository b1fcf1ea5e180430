package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/invoicehub/invoicehub/ingress/provider"
)

func runSend(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("which provider? usage: invoicehub send <provider> [flags] (providers: %v)", samplers())
	}
	name := args[0]
	sample, ok := samples[name]
	p, known := provider.Lookup(name)
	if !ok || !known {
		return fmt.Errorf("no sample for provider %q (have: %v)", name, samplers())
	}
	fs := flag.NewFlagSet("send "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "ingress base URL")
	source := fs.String("source", DevSource, "source id")
	secret := fs.String("secret", "", "the source's secret as configured (default: the dev key; or set INVOICEHUB_SEND_SECRET)")
	status := fs.String("status", "", "the sample invoice's status, in the provider's words (default: an open invoice)")
	invoice := fs.String("invoice", "", "the sample invoice's remote id (default: a new one)")
	entity := fs.String("entity", "", "rillet: the entity, INVOICE (default) or BILL")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *secret == "" {
		*secret = env.Getenv("INVOICEHUB_SEND_SECRET")
	}
	creds := devCredentials(p)
	if *secret != "" {
		key, err := p.Secret(creds.Mode, []byte(*secret))
		if err != nil {
			return fmt.Errorf("secret: %w", err)
		}
		creds.Secrets = []provider.Secret{key}
	}
	if *invoice == "" {
		*invoice = uuid.NewString()
	}
	now := time.Now().UTC()
	eventID := uuid.NewString()
	body, eventType, err := sample(sampleParams{EventID: eventID, InvoiceID: *invoice, Status: *status, Entity: *entity, At: now})
	if err != nil {
		return err
	}
	target := strings.TrimRight(*url, "/") + "/webhooks/" + name + "/" + *source
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = p.Sign(creds, provider.Message{Body: body, At: now, ID: eventID, Type: eventType})
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w (is `invoicehub dev` running?)", target, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(env.Stdout, "POST %s → %s %s", target, resp.Status, answer)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("ingress answered %s", resp.Status)
	}
	fmt.Fprintf(env.Stdout, "invoice %s: its canonical event lands in the sink file within a second.\n", *invoice)
	return nil
}

type sampleParams struct {
	EventID, InvoiceID, Status, Entity string
	At                                 time.Time
}

// samples builds a webhook body per provider, shaped as the provider
// documents it (README, "Providers"), and the event type as the provider's
// headers carry it (where they do).
var samples = map[string]func(sampleParams) ([]byte, string, error){
	"mercoa":           mercoaSample,
	"moxie":            moxieSample,
	"qonto":            qontoSample,
	"rillet":           rilletSample,
	"standardwebhooks": standardWebhooksSample,
}

func orDefault(status, def string) string {
	if status == "" {
		return def
	}
	return status
}

// rilletSample is an Invoice with two lines, one discounted, in USD, or
// with -entity BILL a Bill (a payable) whose items carry sales tax.
func rilletSample(p sampleParams) ([]byte, string, error) {
	switch strings.ToUpper(p.Entity) {
	case "", "INVOICE":
	case "BILL":
		return rilletBillSample(p)
	default:
		return nil, "", fmt.Errorf("rillet -entity %q: want INVOICE or BILL", p.Entity)
	}
	st := orDefault(p.Status, "UNPAID")
	due := "1440.00"
	if st == "PAID" {
		due = "0.00"
	}
	usd := func(v string) map[string]string { return map[string]string{"amount": v, "currency": "USD"} }
	body, err := json.Marshal(map[string]any{
		"id": p.InvoiceID, "invoice_number": "INV-" + p.InvoiceID[:8], "customer_id": "c0ffee00-0000-4000-8000-00000000c001",
		"invoice_date": p.At.Format(time.DateOnly), "due_date": p.At.AddDate(0, 0, 30).Format(time.DateOnly), "status": st,
		"items": []map[string]any{
			{"id": "i-1", "description": "Subscription", "quantity": 1, "gross_rate": usd("1300.00"), "total_discount": usd("100.00"), "taxed_amount": usd("0.00"), "total_amount": usd("1200.00")},
			{"id": "i-2", "description": "Onboarding hours", "quantity": 2, "gross_rate": usd("120.00"), "total_discount": usd("0.00"), "taxed_amount": usd("0.00"), "total_amount": usd("240.00")},
		},
		"subtotal": usd("1540.00"), "total_discount": usd("100.00"), "net_amount": usd("1440.00"), "taxed_amount": usd("0.00"),
		"total": usd("1440.00"), "amount_due": usd(due), "overdue": false, "payment_terms": 30,
		"updated_at": p.At.Format(time.RFC3339),
	})
	return body, "INVOICE.CREATED", err
}

// rilletBillSample is a Bill from a vendor: one item whose 1000.00 exclude
// 8% sales tax, one of 360.00 that include theirs, so 1440.00 in all.
func rilletBillSample(p sampleParams) ([]byte, string, error) {
	usd := func(v string) map[string]string { return map[string]string{"amount": v, "currency": "USD"} }
	tax := func(pct float64, amount, coverage string) map[string]any {
		return map[string]any{"percentage": pct, "tax_amount": usd(amount), "coverage": coverage, "country": "US", "type": "SALES_TAX", "description": "Sales tax"}
	}
	body, err := json.Marshal(map[string]any{
		"id": p.InvoiceID, "vendor_id": "1e2f3a4b-5c6d-4e7f-8091-a2b3c4d5e6f7", "expense_number": "B-" + p.InvoiceID[:8],
		"bill_date": p.At.Format(time.DateOnly), "due_date": p.At.AddDate(0, 0, 30).Format(time.DateOnly),
		"status": orDefault(p.Status, "UNPAID"), "updated_at": p.At.Format(time.RFC3339),
		"items": []map[string]any{
			{"id": "bi-1", "account_code": "11112", "description": "Cloud hosting", "amount": usd("1000.00"), "tax_rate": tax(8, "80.00", "EXCLUSIVE")},
			{"id": "bi-2", "account_code": "11112", "description": "Support plan", "amount": usd("360.00"), "tax_rate": tax(0, "0.00", "INCLUSIVE")},
		},
	})
	return body, "BILL.CREATED", err
}

// mercoaSample is a payable from a vendor, amounts as JSON numbers.
func mercoaSample(p sampleParams) ([]byte, string, error) {
	at := p.At.Format(time.RFC3339)
	body, err := json.Marshal(map[string]any{
		"eventType": "invoice.created",
		"invoice": map[string]any{
			"id": "in_" + p.InvoiceID, "status": orDefault(p.Status, "NEW"), "amount": 1440, "currency": "USD",
			"invoiceNumber": "INV-" + p.InvoiceID[:8], "invoiceDate": at, "dueDate": p.At.AddDate(0, 0, 30).Format(time.RFC3339),
			"createdAt": at, "updatedAt": at,
			"lineItems": []map[string]any{{"id": "li-1", "name": "Office supplies", "amount": 1440, "quantity": 12, "unitPrice": 120, "currency": "USD"}},
			"vendor":    map[string]any{"id": "ent_vendor", "name": "Big Box Store", "email": "vendor@bigboxstore.com"},
			"payer":     map[string]any{"id": "ent_payer", "name": "Acme Inc."},
		},
	})
	return body, "", err
}

// moxieSample is a sent invoice, or a payment when the status is PAID.
func moxieSample(p sampleParams) ([]byte, string, error) {
	st := orDefault(p.Status, "SENT")
	event, paid, due := "InvoiceSent", 0.0, 1440.0
	var payments []map[string]any
	if st == "PAID" {
		event, paid, due = "PaymentReceived", 1440.0, 0.0
		payments = []map[string]any{{"id": "pay-" + p.InvoiceID[:8], "amount": 1440, "currency": "USD", "paymentProvider": "STRIPE", "timestamp": p.At.Format(time.RFC3339), "datePaid": p.At.Format(time.DateOnly)}}
	}
	body, err := json.Marshal(map[string]any{
		"id": p.InvoiceID, "invoiceNumberFormatted": "M-" + p.InvoiceID[:8], "status": st, "currency": "USD",
		"dateCreated": p.At.Format(time.DateOnly), "dateSent": p.At.Format(time.DateOnly), "dateDue": p.At.AddDate(0, 0, 30).Format(time.DateOnly),
		"subTotal": 1350, "tax": 90, "total": 1440, "paymentTotal": paid, "amountDue": due, "discountAmount": 0,
		"clientInfo": map[string]any{"id": "client-1", "name": "Client LLC", "country": "US"},
		"payments":   payments,
	})
	return body, event, err
}

func samplers() []string { return slices.Sorted(maps.Keys(samples)) }

// qontoSample is Qonto's v1/client-invoices envelope around a client
// invoice of one item, 1440.00 EUR with 20% VAT.
func qontoSample(p sampleParams) ([]byte, string, error) {
	at := p.At.Format(time.RFC3339)
	eur := func(v string) map[string]string { return map[string]string{"value": v, "currency": "EUR"} }
	body, err := json.Marshal(map[string]any{
		"id": p.EventID, "subscription_id": "5b0c7e4c-1b1d-4c8e-9f3a-6d2e1c0b9a87", "organization_id": "8f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b",
		"membership_id": "2a3b4c5d-6e7f-4081-92a3-b4c5d6e7f809", "type": "v1/client-invoices", "created_at": at,
		"data": map[string]any{
			"id": p.InvoiceID, "number": "INV-" + p.InvoiceID[:8], "status": orDefault(p.Status, "unpaid"), "currency": "EUR",
			"total_amount": eur("1440.00"), "vat_amount": eur("240.00"),
			"issue_date": p.At.Format(time.DateOnly), "due_date": p.At.AddDate(0, 0, 30).Format(time.DateOnly),
			"created_at": at, "finalized_at": at, "contact_email": "billing@client.example", "invoice_type": "standard",
			"client": map[string]any{"id": "client-1", "name": "Client SARL", "billing_address": map[string]string{"city": "Paris", "country_code": "FR"}},
			"items": []map[string]any{{
				"title": "Consulting", "quantity": "12", "unit": "hour", "unit_price": eur("100.00"), "vat_rate": "0.2",
				"total_vat": eur("240.00"), "subtotal": eur("1200.00"), "total_amount": eur("1440.00"),
			}},
		},
	})
	return body, "", err
}

// standardWebhooksSample is an invoice of your own system in invoicehub's
// canonical JSON, as the standardwebhooks provider takes it: 1440.00 EUR.
func standardWebhooksSample(p sampleParams) ([]byte, string, error) {
	st := orDefault(p.Status, "open")
	paid, due := "0.00", "1440.00"
	if st == "paid" {
		paid, due = "1440.00", "0.00"
	}
	body, err := json.Marshal(map[string]any{
		"type": "invoice.created", "timestamp": p.At.Format(time.RFC3339),
		"data": map[string]any{
			"remote_id": p.InvoiceID, "number": "OWN-" + p.InvoiceID[:8], "direction": "receivable", "document_type": "invoice",
			"status": st, "provider_status": st, "is_overdue": false, "currency": "EUR",
			"issue_date": p.At.Format(time.DateOnly), "due_date": p.At.AddDate(0, 0, 30).Format(time.DateOnly),
			"buyer": map[string]any{"name": "Client SARL", "country": "FR"},
			"totals": map[string]string{"lines_net": "1200.00", "discount": "0.00", "net": "1200.00", "tax": "240.00",
				"total": "1440.00", "paid": paid, "credited": "0.00", "due": due},
			"lines": []map[string]any{{"name": "Consulting", "quantity": "12", "unit_price": "100.00", "net_amount": "1200.00",
				"tax_rate": "0.2", "tax_amount": "240.00", "total_amount": "1440.00"}},
			"remote_updated_at": p.At.Format(time.RFC3339),
		},
	})
	return body, "", err
}
