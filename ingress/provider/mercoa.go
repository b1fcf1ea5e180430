package provider

import (
	"net/http"
)

// mercoa documents no signature. A source picks: Standard Webhooks / Svix
// headers (mode "standardwebhooks", the default), a shared secret in a
// header it names (mode "header"), or Basic auth (mode "basic"). The body
// is {"eventType": "invoice.created", "invoice": {...}}; the dedup id is
// webhook-id (or svix-id) when sent, else derived from the content.
var mercoa = Provider{
	Name:  "mercoa",
	Modes: []string{mercoaDefault, modeHeader, modeBasic},
	Key: func(mode string, raw []byte) ([]byte, error) {
		if mode == "" || mode == mercoaDefault {
			return standardKey(mode, raw)
		}
		return raw, nil
	},
	Verify: func(req Request, creds Credentials) (Evidence, error) {
		if mode := creds.modeOr(mercoaDefault); mode != mercoaDefault {
			return verifyToken(req, creds, mode)
		}
		return verifyStandard(req, creds)
	},
	Identify: identifyMercoa,
	Sign: func(creds Credentials, m Message) http.Header {
		if mode := creds.modeOr(mercoaDefault); mode != mercoaDefault {
			return signToken(creds, mode)
		}
		return signStandard(creds, m)
	},
}

const mercoaDefault = "standardwebhooks"

func identifyMercoa(req Request) (Identity, error) {
	env, err := jsonObject(req.Body)
	if err != nil {
		return Identity{}, err
	}
	typ, err := eventType("com.mercoa.", firstString(env.EventTypeCamel))
	if err != nil {
		return Identity{}, err
	}
	_, id, at, err := standardIdentity(req.Header)
	if err != nil {
		return Identity{}, err
	}
	return Identity{ID: id, Type: typ, Time: at}, nil
}
