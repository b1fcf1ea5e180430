package provider

import (
	"net/http"
)

// standardwebhooks: any sender following the Standard Webhooks spec. The
// payload is {"type": "invoice.paid", "timestamp": "...", "data": {...}};
// webhook-id is the dedup id.
var standardWebhooks = Provider{
	Name:     "standardwebhooks",
	Modes:    []string{"hmac"},
	Key:      standardKey,
	Verify:   verifyStandard,
	Identify: identifyStandard,
	Sign:     func(creds Credentials, m Message) http.Header { return signStandard(creds, m) },
}

func identifyStandard(req Request) (Identity, error) {
	env, err := jsonObject(req.Body)
	if err != nil {
		return Identity{}, err
	}
	typ, err := eventType("com.standardwebhooks.", firstString(env.Type))
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
	at, err := bodyTime(firstString(env.Timestamp))
	if err != nil {
		return Identity{}, err
	}
	if at.IsZero() {
		at = signedAt
	}
	return Identity{ID: id, Type: typ, Time: at}, nil
}
