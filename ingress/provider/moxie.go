package provider

import (
	"net/http"
	"regexp"

	"github.com/invoicehub/invoicehub/schemas/ce"
)

// moxie does not sign: its webhook settings offer None, Basic, Bearer Token
// or Custom (a header name and value). invoicehub refuses None and takes
// the others: a Bearer token (mode "bearer", the default), Basic auth
// ("basic") or a custom header ("header"). The event type is only in
// X-Event-Type (InvoiceSent, PaymentReceived, ClientCreate... →
// com.moxie.invoice.sent...); there is no event id, so ingress derives one
// from the content.
var moxie = Provider{
	Name:   "moxie",
	Modes:  []string{modeBearer, modeBasic, modeHeader},
	Secret: tokenSecret,
	Verify: func(req Request, creds Credentials) (Evidence, error) {
		return verifyToken(req, creds, creds.modeOr(modeBearer))
	},
	Identify: identifyMoxie,
	Sign: func(creds Credentials, m Message) http.Header {
		h := signToken(creds, creds.modeOr(modeBearer))
		h.Set("X-Event-Type", m.Type)
		return h
	},
	Headers: []string{"X-Event-Type"},
}

var moxieEventType = regexp.MustCompile(`^[A-Z][A-Za-z]{0,49}$`)

func identifyMoxie(req Request) (Identity, error) {
	t, err := single(req.Header, "X-Event-Type")
	if err != nil || !moxieEventType.MatchString(t) {
		return Identity{}, malformed("X-Event-Type missing or invalid")
	}
	if _, err := jsonObject(req.Body); err != nil {
		return Identity{}, err
	}
	return Identity{Type: "com.moxie." + ce.DottedName(t)}, nil
}
