package normalizer

import (
	"github.com/nats-io/nats.go"

	"github.com/invoicehub/invoicehub/normalizer/mapper"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
)

// The size budget (docs/ARCHITECTURE.md, "Sizes"): a raw event becomes
// canonical events, each its invoice's JSON with the event's head, a
// payment and the CloudEvent headers, which must leave room for a sink's
// dead letter (consume.DeadLetterRoom); and a state, the invoice's JSON
// with its announcement and up to maxApplied raw event ids. Both must fit
// the server's max_payload. A canonical invoice's JSON of at most
// MaxInvoiceJSON fits both, whatever its content: ingress maps every
// webhook as the normalizer will and refuses one whose invoice would not
// fit (413), before it is stored, instead of the normalizer
// dead-lettering it after its 2xx.

// InvoiceRoom is what a canonical event or a state adds to its invoice's
// JSON at most: the state's 32 applied ids of up to 255 bytes and its
// announcement (9 KiB); an event's head, payment and headers, and its
// dead letter's headers (5 KiB).
const InvoiceRoom = 16 << 10

// MaxInvoiceJSON is the largest canonical invoice, encoded, that a NATS
// server whose max_payload is maxPayload carries in an event and in a
// state.
func MaxInvoiceJSON(maxPayload int64) int64 { return maxPayload - InvoiceRoom }

// MaxGrowth bounds how many times larger than its body a canonical
// invoice's JSON is: a line item the provider writes in two bytes ("{}")
// still becomes a canonical line of its fields, 40 times larger for
// Qonto, 35 for Rillet, 32 for Mercoa (TestSizeBudget holds every shape
// under MaxGrowth). A body of at most MaxInvoiceJSON/MaxGrowth bytes fits
// without being mapped (ingress maps only larger ones).
const MaxGrowth = 64

// InvoiceSize maps the raw event r (its provider headers in header) as the
// normalizer does and returns the size of its canonical invoice's JSON: 0
// for an event that is not about an invoice, an error for one that does
// not map (the normalizer dead-letters it with that reason).
func InvoiceSize(r ce.Raw, header nats.Header) (int, error) {
	res, err := mapFields(r, header, schemas.RawRef{}, Options{})
	if err != nil || res.Action == mapper.ActionSkip {
		return 0, err
	}
	invoice, err := schemas.EncodeJSON(res.Invoice)
	return len(invoice), err
}
