package provider

import (
	"encoding/json"
	"regexp"
	"time"
)

// qonto: client-invoice webhooks signed with X-Qonto-Signature
// (t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">). The body is an envelope
// {"id", "event_type", "created_at", "data"}; id is the dedup id.
var qonto = Provider{
	Name:     "qonto",
	Verify:   qontoSignature.verify,
	Identify: identifyEnvelope("com.qonto."),
	Sign:     qontoSignature.sign,
}

var qontoSignature = tv1Signature{header: "X-Qonto-Signature"}

// eventTypeSyntax keeps a provider's event type safe inside a CloudEvent
// type: client_invoices.created, invoice.status.paid...
var eventTypeSyntax = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,99}$`)

// identifyEnvelope reads {"id", "event_type", "created_at"} from a JSON
// envelope; the CloudEvent type is prefix + event_type.
func identifyEnvelope(typePrefix string) func(Request) (Identity, error) {
	return func(req Request) (Identity, error) {
		var env struct {
			ID        string `json:"id"`
			EventType string `json:"event_type"`
			CreatedAt string `json:"created_at"`
		}
		if err := json.Unmarshal(req.Body, &env); err != nil {
			return Identity{}, malformed("body is not a JSON object")
		}
		if env.ID == "" || len(env.ID) > 200 {
			return Identity{}, malformed("envelope id missing or too long")
		}
		if !eventTypeSyntax.MatchString(env.EventType) {
			return Identity{}, malformed("envelope event_type missing or invalid")
		}
		id := Identity{ID: env.ID, Type: typePrefix + env.EventType}
		if env.CreatedAt != "" {
			t, err := time.Parse(time.RFC3339, env.CreatedAt)
			if err != nil {
				return Identity{}, malformed("envelope created_at is not RFC 3339")
			}
			id.Time = t
		}
		return id, nil
	}
}
