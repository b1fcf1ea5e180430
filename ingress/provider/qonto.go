package provider

// qonto: client-invoice webhooks signed with X-Qonto-Signature
// (t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">). The body is an envelope
// {"id", "event_type", "created_at", "data"}; id is the dedup id.
var qonto = Provider{
	Name:     "qonto",
	Modes:    []string{"hmac"},
	Key:      rawKey,
	Verify:   qontoSignature.verify,
	Identify: identifyEnvelope("com.qonto.", true),
	Sign:     qontoSignature.sign,
}

var qontoSignature = tv1Signature{header: "X-Qonto-Signature"}

// identifyEnvelope reads an event envelope: id from "id" (or "event_id"),
// type from "event_type" (or "type", "event"), time from "created_at" (or
// "timestamp"). idRequired refuses an envelope without id; otherwise
// ingress derives one from the content.
func identifyEnvelope(typePrefix string, idRequired bool) func(Request) (Identity, error) {
	return func(req Request) (Identity, error) {
		env, err := jsonObject(req.Body)
		if err != nil {
			return Identity{}, err
		}
		id := firstString(env.ID, env.EventID)
		if id == "" && idRequired {
			return Identity{}, malformed("envelope id missing")
		}
		if err := checkID(id); err != nil {
			return Identity{}, err
		}
		typ, err := eventType(typePrefix, firstString(env.EventType, env.Type, env.Event))
		if err != nil {
			return Identity{}, err
		}
		at, err := bodyTime(firstString(env.CreatedAt, env.Timestamp))
		if err != nil {
			return Identity{}, err
		}
		return Identity{ID: id, Type: typ, Time: at}, nil
	}
}
