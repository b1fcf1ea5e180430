package ce

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// addFields decodes an event's data, applies add, and encodes it again: a
// newer producer's additive change.
func addFields(t *testing.T, data []byte, add func(d map[string]any)) []byte {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	add(d)
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDecodeCanonicalIsATolerantReader: what a later v1 producer may add
// (README, "Compatibility") is read without error, the known fields
// intact; an event published before invoiceversion existed is read by its
// sequence; only what no v1 producer publishes is refused.
func TestDecodeCanonicalIsATolerantReader(t *testing.T) {
	d := paidEvent(t)
	const version = int64(1700000000000000)
	e, err := NewCanonical(d, "raw-1", version, "")
	if err != nil {
		t.Fatal(err)
	}
	base, err := ToMsg(t.Context(), subject.Invoice("paid", "qonto", "acme"), e)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(data []byte, header func(nats.Header)) *nats.Msg {
		h := nats.Header{}
		for k, v := range base.Header {
			h[k] = append([]string(nil), v...)
		}
		if header != nil {
			header(h)
		}
		return &nats.Msg{Subject: base.Subject, Header: h, Data: data}
	}
	invoice := func(d map[string]any) map[string]any { return d["invoice"].(map[string]any) }
	readable := []struct {
		name string
		msg  *nats.Msg
	}{
		{"as published", base},
		{"new top-level field", msg(addFields(t, base.Data, func(d map[string]any) { d["links"] = map[string]any{"portal": "https://example.com"} }), nil)},
		{"new invoice field", msg(addFields(t, base.Data, func(d map[string]any) { invoice(d)["payment_terms_days"] = 30 }), nil)},
		{"new field in totals", msg(addFields(t, base.Data, func(d map[string]any) { invoice(d)["totals"].(map[string]any)["withholding"] = "0.00" }), nil)},
		{"new event field", msg(addFields(t, base.Data, func(d map[string]any) { d["event"].(map[string]any)["actor"] = "api" }), nil)},
		{"new extension", msg(base.Data, func(h nats.Header) { h.Set("ce-tenant", "t-1") })},
		{"new kind", msg(addFields(t, base.Data, func(d map[string]any) { d["event"].(map[string]any)["kind"] = "disputed" }), func(h nats.Header) {
			h.Set("ce-type", "com.invoicehub.invoice.disputed.v1")
		})},
		{"before invoiceversion", msg(base.Data, func(h nats.Header) { h.Del("ce-" + ExtInvoiceVersion) })},
	}
	for _, tc := range readable {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCanonical(t.Context(), tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if ev, v, err := ReadCanonical(t.Context(), tc.msg); err != nil || v != version || ev.Subject() != d.Invoice.ID {
				t.Fatalf("ReadCanonical: version %d subject %q, %v", v, ev.Subject(), err)
			}
			if c.Version != version || c.Data.Invoice.ID != d.Invoice.ID || c.Data.Invoice.Totals.Total.String() != d.Invoice.Totals.Total.String() {
				t.Fatalf("decoded version %d invoice %q total %s", c.Version, c.Data.Invoice.ID, c.Data.Invoice.Totals.Total)
			}
		})
	}
	// envelope: ReadCanonical, which does not decode the data, refuses it too.
	refused := []struct {
		name     string
		msg      *nats.Msg
		envelope bool
	}{
		{"v2 type", msg(base.Data, func(h nats.Header) { h.Set("ce-type", "com.invoicehub.invoice.paid.v2") }), true},
		{"a raw event's type", msg(base.Data, func(h nats.Header) { h.Set("ce-type", "com.qonto.v1/client-invoices") }), true},
		{"data not JSON", msg([]byte("<invoice/>"), nil), true},
		{"data cut short", msg(base.Data[:len(base.Data)/2], nil), true},
		{"no subject", msg(base.Data, func(h nats.Header) { h.Del("ce-subject") }), true},
		{"no version", msg(base.Data, func(h nats.Header) { h.Del("ce-" + ExtInvoiceVersion); h.Del("ce-" + ExtSequenceDeprecated) }), true},
		{"no invoice id in the data", msg(addFields(t, base.Data, func(d map[string]any) { delete(invoice(d), "id") }), nil), false},
		{"no kind in the data", msg(addFields(t, base.Data, func(d map[string]any) { delete(d["event"].(map[string]any), "kind") }), nil), false},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			if _, err := DecodeCanonical(t.Context(), tc.msg); !errors.Is(err, ErrNotCanonical) {
				t.Fatalf("DecodeCanonical: err = %v, want ErrNotCanonical", err)
			}
			if _, _, err := ReadCanonical(t.Context(), tc.msg); tc.envelope != errors.Is(err, ErrNotCanonical) {
				t.Fatalf("ReadCanonical: err = %v, want ErrNotCanonical: %v", err, tc.envelope)
			}
		})
	}
}

// paidEvent is the contract's example event (testdata/events).
func paidEvent(t testing.TB) schemas.EventData {
	t.Helper()
	raw, err := os.ReadFile("../testdata/events/qonto-paid.json")
	if err != nil {
		t.Fatal(err)
	}
	var d schemas.EventData
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// BenchmarkReadCanonical: what a sink pays per delivery for reading the
// envelope only (ReadCanonical) and for decoding the data too
// (DecodeCanonical), on the contract's example event.
func BenchmarkReadCanonical(b *testing.B) {
	e, err := NewCanonical(paidEvent(b), "raw-1", 1700000000000000, "")
	if err != nil {
		b.Fatal(err)
	}
	msg, err := ToMsg(b.Context(), subject.Invoice("paid", "qonto", "acme"), e)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("envelope", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := ReadCanonical(b.Context(), msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("envelope+data", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeCanonical(b.Context(), msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
