package mapper

import (
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/invoicehub/invoicehub/schemas"
)

// standardwebhooks: an in-house system feeding its own invoices, signed
// with Standard Webhooks and shaped as the specification recommends:
// {"type": "invoice.created" | "invoice.updated" | "invoice.deleted",
// "timestamp": RFC 3339, "data": <invoice>}, where the invoice is written
// in invoicehub's canonical JSON (the invoice object of
// schemas/invoice-event.v1.json). invoicehub sets id, provider, source and
// raw_ref itself (from the source the webhook came to and its remote_id),
// then checks the invoice against the schema; remote_updated_at, or the
// timestamp, versions it. A deletion may carry remote_id alone. Other invoice.* types are unknown; types about
// anything else are skipped.

var standardWebhooksActions = map[string]Action{
	"invoice.created": ActionCreated,
	"invoice.updated": ActionUpsert,
	"invoice.deleted": ActionDeleted,
}

type standardWebhooksBody struct {
	Type      string         `json:"type"`
	Timestamp string         `json:"timestamp"`
	Data      jsontext.Value `json:"data"`
}

func mapStandardWebhooks(in Input) (Result, error) {
	var body standardWebhooksBody
	if err := decodeJSON(in.Body, &body); err != nil {
		return Result{}, err
	}
	action, ok := standardWebhooksActions[body.Type]
	switch {
	case !ok && strings.HasPrefix(body.Type, "invoice."):
		return Result{}, unknownEvent("standardwebhooks", body.Type)
	case !ok:
		return skip(body.Type)
	}
	if body.Data == nil {
		return Result{}, unmappable("data missing: want a canonical invoice")
	}
	inv, err := schemas.ParseFedInvoice(in.Provider, in.Source, in.RawRef, body.Data, action == ActionDeleted)
	if err != nil {
		return Result{}, unmappable("%v", err)
	}
	occurred := in.Time.UTC()
	if at, err := timestamp(body.Timestamp, "timestamp"); err != nil {
		return Result{}, err
	} else if at != nil {
		occurred = *at
	}
	res := Result{Action: action, Invoice: inv, OccurredAt: occurred, ProviderEventType: body.Type}
	res.Version = versionOf(inv.RemoteUpdatedAt, occurred)
	return res, nil
}
