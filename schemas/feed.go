package schemas

import (
	"errors"
	"fmt"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// ErrFedInvoice is returned by ParseFedInvoice for data that is not a
// canonical invoice.
var ErrFedInvoice = errors.New("not a canonical invoice")

// ParseFedInvoice reads an invoice that a system feeding invoicehub wrote
// in canonical JSON (the invoice object of the schema). invoicehub sets
// id, provider, source and raw_ref itself, whatever the sender wrote
// there: the id is InvoiceID(provider, source, remote_id). The result is
// checked against the schema and Check, except for a deletion whose data
// holds remote_id alone: that is the invoice's ids and nothing else.
// Errors wrap ErrFedInvoice and name what is wrong.
func ParseFedInvoice(provider, source string, ref RawRef, data []byte, deletion bool) (Invoice, error) {
	var fields map[string]jsontext.Value
	if err := jsonv2.Unmarshal(data, &fields); err != nil || fields == nil {
		return Invoice{}, fmt.Errorf("%w: want a JSON object: %v", ErrFedInvoice, err)
	}
	var remoteID string
	if err := jsonv2.Unmarshal(fields["remote_id"], &remoteID); err != nil || remoteID == "" {
		return Invoice{}, fmt.Errorf("%w: remote_id (the invoice's id in your system) missing", ErrFedInvoice)
	}
	if deletion && len(fields) == 1 {
		return Invoice{ID: InvoiceID(provider, source, remoteID), Provider: provider, Source: source, RemoteID: remoteID, RawRef: ref}, nil
	}
	set := map[string]any{"id": InvoiceID(provider, source, remoteID), "provider": provider, "source": source, "raw_ref": ref}
	for name, v := range set {
		enc, err := jsonv2.Marshal(v)
		if err != nil {
			return Invoice{}, fmt.Errorf("%w: %v", ErrFedInvoice, err)
		}
		fields[name] = enc
	}
	filled, err := jsonv2.Marshal(fields, jsonv2.Deterministic(true))
	if err != nil {
		return Invoice{}, fmt.Errorf("%w: %v", ErrFedInvoice, err)
	}
	if err := ValidateInvoice(filled); err != nil {
		return Invoice{}, fmt.Errorf("%w: %v", ErrFedInvoice, err)
	}
	var inv Invoice
	if err := jsonv2.Unmarshal(filled, &inv); err != nil {
		return Invoice{}, fmt.Errorf("%w: %v", ErrFedInvoice, err)
	}
	if err := inv.Check(); err != nil {
		return Invoice{}, fmt.Errorf("%w: %v", ErrFedInvoice, err)
	}
	return inv, nil
}
