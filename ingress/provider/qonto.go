package provider

// qonto: webhooks signed with X-Qonto-Signature (t=<unix>,v1=<hex
// HMAC-SHA256 of "<t>.<body>">, package tv1). The body is Qonto's envelope
// {"id", "subscription_id", "organization_id", "membership_id", "type",
// "created_at", "data"}: id is the dedup id, type the topic
// ("v1/client-invoices", "v1/clients"...: one subscription may deliver
// several topics to one URL), created_at the event's time.
//
// Readings the documentation leaves open, all accepted: the secret keys
// the HMAC as its text (the published test vector) or, for a whsec_
// secret, as the base64 decoding of what follows the prefix; the body is
// the envelope (the page's example) or the bare client invoice (the
// page's generated schema), which has no event id or topic: ingress
// derives the id from the content and the topic is v1/client-invoices.
var qonto = Provider{
	Name:     "qonto",
	Modes:    []string{"hmac"},
	Secret:   qontoSecret,
	Verify:   qontoSignature.verify,
	Identify: identifyQonto,
	Sign:     qontoSignature.sign,
}

var qontoSignature = tv1Signature{header: "X-Qonto-Signature"}

// QontoInvoiceTopic is the topic of Qonto's client-invoice webhooks.
const QontoInvoiceTopic = "v1/client-invoices"

func qontoSecret(_ string, raw []byte) (Secret, error) {
	if err := checkLength(raw, qontoMinSecret); err != nil {
		return Secret{}, err
	}
	if len(raw) > qontoMaxSecret {
		return Secret{}, errorString("too long: Qonto secrets are 32 to 128 characters")
	}
	return withReadings(raw, "whsec_"), nil
}

func identifyQonto(req Request) (Identity, error) {
	env, err := jsonObject(req.Body)
	if err != nil {
		return Identity{}, err
	}
	if env.Type == "" && !env.HasData { // the bare client invoice
		return Identity{Type: "com.qonto." + QontoInvoiceTopic}, nil
	}
	if env.ID == "" {
		return Identity{}, malformed("envelope id missing")
	}
	if err := checkID(env.ID); err != nil {
		return Identity{}, err
	}
	typ, err := eventType("com.qonto.", env.Type)
	if err != nil {
		return Identity{}, err
	}
	at, err := bodyTime(env.CreatedAt)
	if err != nil {
		return Identity{}, err
	}
	return Identity{ID: env.ID, Type: typ, Time: at}, nil
}
