package provider

import (
	"net/http"
	"strings"

	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// standardwebhooks: an in-house system feeding invoicehub with its own
// invoices, signed as the Standard Webhooks specification says
// (webhook-id, webhook-timestamp, webhook-signature; a whsec_ secret) and
// shaped as it recommends: {"type": "invoice.updated", "timestamp": "...",
// "data": {...}}, where data is an invoice in invoicehub's canonical JSON
// (README, "Feeding your own invoices"). webhook-id is the dedup id.
var standardWebhooks = Provider{
	Name:     "standardwebhooks",
	Modes:    []string{"hmac"},
	Secret:   standardSecret,
	Verify:   verifyStandard,
	Identify: identifyStandard,
	Sign:     func(creds Credentials, m Message) http.Header { return signStandard(creds, m) },
}

func identifyStandard(req Request) (Identity, error) {
	env, err := readEnvelope(req.Body, true)
	if err != nil {
		return Identity{}, err
	}
	if strings.HasPrefix(env.Type, "invoice.") { // the invoice is checked at the door: the sender learns now
		if _, err := schemas.ParseFedInvoice("standardwebhooks", "door", schemas.RawRef{Stream: subject.WebhooksStream, Sequence: 1}, env.Data, env.Type == "invoice.deleted"); err != nil {
			return Identity{}, malformed("data: %v", err)
		}
	}
	typ, err := eventType("com.standardwebhooks.", env.Type)
	if err != nil {
		return Identity{}, err
	}
	p, id, signedAt, err := standardIdentity(req.Header)
	if err != nil {
		return Identity{}, err
	}
	if id == "" {
		return Identity{}, malformed("%sId missing", p)
	}
	at, err := bodyTime(env.Timestamp)
	if err != nil {
		return Identity{}, err
	}
	if at.IsZero() {
		at = signedAt
	}
	return Identity{ID: id, Type: typ, Time: at}, nil
}
