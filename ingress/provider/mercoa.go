package provider

import (
	"net/http"
)

// mercoa documents no signing scheme: its developer settings "configure
// unique tokens or secrets", without saying how they travel. A source
// picks a reading: Standard Webhooks / Svix headers (mode
// "standardwebhooks", the default, as DESIGN.md asks), the secret in a
// header it names (mode "header"), or Basic auth (mode "basic"). The body
// is {"eventType": "invoice.created", "invoice": {...}} with no event id:
// the dedup id is webhook-id (or svix-id) when sent, else derived from the
// content.
var mercoa = Provider{
	Name:  "mercoa",
	Modes: []string{mercoaDefault, modeHeader, modeBasic},
	Secret: func(mode string, raw []byte) (Secret, error) {
		if mode == "" || mode == mercoaDefault {
			return standardSecret(mode, raw)
		}
		return tokenSecret(mode, raw)
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
	typ, err := eventType("com.mercoa.", env.EventType)
	if err != nil {
		return Identity{}, err
	}
	_, id, at, err := standardIdentity(req.Header)
	if err != nil {
		return Identity{}, err
	}
	return Identity{ID: id, Type: typ, Time: at}, nil
}
