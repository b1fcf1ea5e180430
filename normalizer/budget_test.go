package normalizer

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/schemas"
)

// budgetShapes are the documented fixtures whose repeated parts can grow
// a body: the line items (and notes), at the path given.
var budgetShapes = []struct {
	fixture string
	path    []string
	texts   []string // text fields of an element, filled in the text shape
}{
	{"testdata/raw/qonto/created-multi-rate.json", []string{"data", "items"}, []string{"title", "description"}},
	{"testdata/raw/rillet/invoice-created.json", []string{"items"}, []string{"description"}},
	{"testdata/raw/rillet/bill-created.json", []string{"items"}, []string{"description"}},
	{"testdata/raw/mercoa/invoice-created-seed.json", []string{"invoice", "lineItems"}, []string{"name", "description"}},
	{"testdata/raw/standardwebhooks/invoice-created.json", []string{"data", "lines"}, []string{"name", "description"}},
	{"testdata/raw/standardwebhooks/invoice-created.json", []string{"data", "notes"}, []string{"text"}},
}

// budgetSize is what one raw event becomes at most: its largest canonical
// event (data and headers) and the state written with it.
func budgetSize(t *testing.T, providerName string, body []byte, headers map[string]string) (event, state int, err error) {
	raw, h := rawEvent(t, providerName, body, headers)
	out, err := Normalize(raw, h, schemas.RawRef{Stream: "WEBHOOKS", Sequence: 1}, nil, Options{})
	if err != nil {
		return 0, 0, err
	}
	for _, c := range out.Events {
		n := len(c.Msg.Data)
		for k, vs := range c.Msg.Header {
			for _, v := range vs {
				n += len(k) + len(v) + 4
			}
		}
		event = max(event, n)
	}
	st, err := out.State.encode()
	return event, len(st), err
}

// TestSizeBudget: for every shape, the largest body ingress accepts (its
// canonical invoice within MaxInvoiceJSON, the body within max_payload)
// becomes canonical events that leave room for their dead letters and a
// state that fits with 32 applied ids of 255 bytes: what ingress accepts,
// the normalizer can publish. It logs the table of docs/ARCHITECTURE.md.
func TestSizeBudget(t *testing.T) {
	const maxPayload = 1 << 20
	maxBody, maxInvoice := maxPayload-8<<10, MaxInvoiceJSON(maxPayload)
	appliedRoom := maxApplied * (schemas.MaxIdentifierBytes + 3)
	for _, shape := range budgetShapes {
		for _, kind := range []string{"smallest elements", "elements of text"} {
			p, body, headers := fixture(t, shape.fixture)
			var doc map[string]any
			json.Unmarshal(body, &doc)
			parent := doc
			for _, k := range shape.path[:len(shape.path)-1] {
				parent = parent[k].(map[string]any)
			}
			key := shape.path[len(shape.path)-1]
			elem := parent[key].([]any)[0].(map[string]any)
			if kind == "smallest elements" {
				elem = smallest(t, p, doc, parent, key, elem, headers)
			} else {
				for _, f := range shape.texts {
					elem[f] = strings.Repeat("\u2028", 1000)
				}
			}
			with := func(n int) []byte {
				elems := make([]any, n)
				for i := range elems {
					elems[i] = elem
				}
				return encodeBody(t, doc, parent, key, elems)
			}
			accepted := func(n int) bool {
				b := with(n)
				if len(b) > maxBody {
					return false
				}
				raw, h := rawEvent(t, p, b, headers)
				size, err := InvoiceSize(rawFields(raw), h)
				return err == nil && int64(size) <= maxInvoice
			}
			lo, hi := 1, 2
			for accepted(hi) {
				lo, hi = hi, hi*2
			}
			for hi-lo > 1 { // the largest n accepted
				if mid := (lo + hi) / 2; accepted(mid) {
					lo = mid
				} else {
					hi = mid
				}
			}
			b := with(lo)
			ev, st, err := budgetSize(t, p, b, headers)
			if err != nil {
				t.Fatalf("%s %s: %v", shape.fixture, kind, err)
			}
			t.Logf("| %s %s, %s | %d | %d | %d |", p, strings.Join(shape.path, "."), kind, len(b), ev, st+appliedRoom)
			if kind == "smallest elements" {
				raw, h := rawEvent(t, p, b, headers)
				size, _ := InvoiceSize(rawFields(raw), h)
				if growth := float64(size) / float64(len(b)); growth > MaxGrowth {
					t.Errorf("%s %s: the invoice is %.1f times its body, over MaxGrowth", shape.fixture, kind, growth)
				}
			}
			if ev > maxPayload-consume.DeadLetterRoom || st+appliedRoom > maxPayload {
				t.Errorf("%s %s: a %d-byte body accepted, its event %d bytes, its state %d: over the budget", shape.fixture, kind, len(b), ev, st+appliedRoom)
			}
		}
	}
}

// smallest drops what it can of elem while the body still maps.
func smallest(t *testing.T, p string, doc, parent map[string]any, key string, elem map[string]any, headers map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range elem {
		out[k] = v
	}
	for k := range elem {
		v := out[k]
		delete(out, k)
		if _, _, err := budgetSize(t, p, encodeBody(t, doc, parent, key, []any{out}), headers); err != nil {
			out[k] = v
		}
	}
	return out
}

func encodeBody(t *testing.T, doc, parent map[string]any, key string, elems []any) []byte {
	parent[key] = elems
	b, err := schemas.EncodeJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkInvoiceSize is what ingress's size check costs per webhook:
// Qonto's documented client-invoice event mapped and its invoice encoded.
func BenchmarkInvoiceSize(b *testing.B) {
	p, body, headers := fixture(b, "testdata/raw/qonto/client-invoice-documented.json")
	raw, h := rawEvent(b, p, body, headers)
	r := rawFields(raw)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := InvoiceSize(r, h); err != nil {
			b.Fatal(err)
		}
	}
}
