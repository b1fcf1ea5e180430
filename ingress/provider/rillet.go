package provider

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// rillet: every POST carries X-Rillet-Signature (base64 HMAC-SHA256),
// X-Rillet-Timestamp (ISO 8601), X-Rillet-Id (the event's id: the dedup
// id), X-Rillet-Entity and X-Rillet-Event (INVOICE, CREATED: the type
// com.rillet.invoice.created). The body is the entity, or for DELETED its
// bare id.
//
// Rillet's text leaves the signed string and the key open ("the contents
// of the body are prefixed with the timestamp and id before hashing",
// keyed "with the configured webhook token"), so every reading is tried:
// the message "<timestamp>.<id>.<entity>.<event>.<body>",
// "<timestamp>.<id>.<body>" or "<timestamp><id><body>", keyed with the
// token's text or its base64 decoding (mode "auto", the default; "base64"
// or "raw" keep one key reading). The header may list several
// comma-separated signatures. Entity and event are read in upper snake
// case (the OpenAPI document's INVOICE, PAYMENT_UPDATED) or lower kebab
// case (invoice, payment-updated). A DELETED body is the id as a JSON
// string or bare.
var rillet = Provider{
	Name:     "rillet",
	Modes:    []string{rilletAuto, "base64", "raw"},
	Secret:   rilletSecret,
	Verify:   verifyRillet,
	Identify: identifyRillet,
	Sign:     signRillet,
	Headers:  []string{"X-Rillet-Entity", "X-Rillet-Event", "X-Rillet-Timestamp"},
}

const rilletAuto = "auto"

var (
	rilletWord   = regexp.MustCompile(`^[A-Za-z][A-Za-z_-]{0,49}$`)
	rilletBareID = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

func rilletSecret(mode string, raw []byte) (Secret, error) {
	if err := checkLength(raw, tokenMinSecret); err != nil {
		return Secret{}, err
	}
	decoded := base64Reading(raw)
	switch mode {
	case "raw":
		return NewSecret(raw), nil
	case "base64":
		if decoded == nil {
			return Secret{}, errorString("not base64 (set mode: raw or auto to use the token's text)")
		}
		return NewSecret(decoded), nil
	}
	if decoded == nil {
		return NewSecret(raw), nil
	}
	return NewSecret(decoded, raw), nil
}

type rilletHeaders struct{ sig, ts, id, entity, event string }

func readRilletHeaders(h http.Header) (rilletHeaders, error) {
	var r rilletHeaders
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"X-Rillet-Signature", &r.sig}, {"X-Rillet-Timestamp", &r.ts}, {"X-Rillet-Id", &r.id},
		{"X-Rillet-Entity", &r.entity}, {"X-Rillet-Event", &r.event},
	} {
		v, err := single(h, f.name)
		if err != nil {
			return r, err
		}
		*f.dst = v
	}
	return r, nil
}

func verifyRillet(req Request, creds Credentials) (Evidence, error) {
	h, err := readRilletHeaders(req.Header)
	if err != nil {
		return Evidence{}, err
	}
	signedAt, err := time.Parse(time.RFC3339Nano, h.ts)
	if err != nil {
		return Evidence{}, unauthorized("bad X-Rillet-Timestamp")
	}
	if err := checkTolerance(signedAt, req.Received, creds.Tolerance); err != nil {
		return Evidence{}, err
	}
	sigs, err := parseRilletSignatures(h.sig)
	if err != nil {
		return Evidence{}, unauthorized("X-Rillet-Signature: %s", err)
	}
	for _, message := range rilletMessages {
		ev, err := matchHMAC(creds, signedAt, sigs, func(key []byte) []byte { return hmacSHA256(key, message(h, req.Body)...) })
		if err == nil {
			return ev, nil
		}
	}
	return Evidence{}, unauthorized("signature mismatch")
}

// rilletMessages are the readings of the signed string, the one Sign uses
// first.
var rilletMessages = []func(h rilletHeaders, body []byte) [][]byte{
	func(h rilletHeaders, body []byte) [][]byte {
		return [][]byte{[]byte(h.ts), dot, []byte(h.id), dot, []byte(h.entity), dot, []byte(h.event), dot, body}
	},
	func(h rilletHeaders, body []byte) [][]byte {
		return [][]byte{[]byte(h.ts), dot, []byte(h.id), dot, body}
	},
	func(h rilletHeaders, body []byte) [][]byte { return [][]byte{[]byte(h.ts), []byte(h.id), body} },
}

var dot = []byte(".")

func parseRilletSignatures(value string) ([][]byte, error) {
	parts := strings.Split(value, ",")
	if len(parts) > maxSignatures {
		return nil, errorString("too many signatures")
	}
	sigs := make([][]byte, 0, len(parts))
	for _, p := range parts {
		b := base64Reading([]byte(p))
		if len(b) != 32 {
			return nil, errorString("bad signature")
		}
		sigs = append(sigs, b)
	}
	return sigs, nil
}

func identifyRillet(req Request) (Identity, error) {
	h, err := readRilletHeaders(req.Header)
	if err != nil {
		return Identity{}, malformed("%v", err)
	}
	if !rilletWord.MatchString(h.entity) || !rilletWord.MatchString(h.event) {
		return Identity{}, malformed("X-Rillet-Entity or X-Rillet-Event invalid")
	}
	if err := checkID(h.id); err != nil {
		return Identity{}, err
	}
	entity, event := RilletWord(h.entity), RilletWord(h.event)
	if err := checkRilletBody(req.Body, event); err != nil {
		return Identity{}, err
	}
	at, _ := time.Parse(time.RFC3339Nano, h.ts) // verified already
	return Identity{ID: h.id, Type: "com.rillet." + entity + "." + event, Time: at}, nil
}

// checkRilletBody accepts a JSON object, or for a deletion the id as a
// JSON string or bare.
func checkRilletBody(body []byte, event string) error {
	if event == "deleted" {
		var id string
		if json.Unmarshal(body, &id) == nil || rilletBareID.Match(body) {
			return nil
		}
		return malformed("deleted body is not an id")
	}
	_, err := jsonObject(body)
	return err
}

// RilletWord reads an entity or event name in either documented case,
// INVOICE / PAYMENT_UPDATED or invoice / payment-updated, as lower snake
// case: invoice, payment_updated.
func RilletWord(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "-", "_")
}

// signRillet signs m with the first reading; m.Type is "<ENTITY>.<EVENT>"
// (INVOICE.CREATED).
func signRillet(creds Credentials, m Message) http.Header {
	entity, event, _ := strings.Cut(m.Type, ".")
	h := rilletHeaders{ts: m.At.UTC().Format(time.RFC3339), id: m.ID, entity: entity, event: event}
	mac := hmacSHA256(creds.Secrets[0].Bytes(), rilletMessages[0](h, m.Body)...)
	out := http.Header{}
	out.Set("X-Rillet-Signature", base64.StdEncoding.EncodeToString(mac))
	out.Set("X-Rillet-Timestamp", h.ts)
	out.Set("X-Rillet-Id", m.ID)
	out.Set("X-Rillet-Entity", entity)
	out.Set("X-Rillet-Event", event)
	out.Set("Content-Type", "application/json")
	return out
}
