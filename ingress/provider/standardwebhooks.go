package provider

import (
	"net/http"
	"strconv"
	"time"
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
	p := standardHeaderSet(req.Header)
	id := req.Header.Get(p + "Id")
	if id == "" {
		return Identity{}, malformed("%sId missing", p)
	}
	if err := checkID(id); err != nil {
		return Identity{}, err
	}
	at, err := bodyTime(firstString(env.Timestamp))
	if err != nil {
		return Identity{}, err
	}
	if at.IsZero() {
		if ts, err := strconv.ParseInt(req.Header.Get(p+"Timestamp"), 10, 64); err == nil {
			at = time.Unix(ts, 0)
		}
	}
	return Identity{ID: id, Type: typ, Time: at}, nil
}
