package provider

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// rillet: X-Rillet-Signature holds up to 10 comma-separated base64
// HMAC-SHA256 signatures over
// "<X-Rillet-Timestamp>.<X-Rillet-Id>.<X-Rillet-Entity>.<X-Rillet-Event>.<body>",
// keyed with the webhook token: base64-decoded (mode "base64", the default)
// or its raw bytes (mode "raw"). X-Rillet-Timestamp is ISO 8601.
// X-Rillet-Id is the dedup id; entity and event (INVOICE, CREATED) make the
// type com.rillet.invoice.created.
var rillet = Provider{
	Name:     "rillet",
	Modes:    []string{"base64", "raw"},
	Key:      rilletKey,
	Verify:   verifyRillet,
	Identify: identifyRillet,
	Sign:     signRillet,
	Headers:  []string{"X-Rillet-Entity", "X-Rillet-Event", "X-Rillet-Timestamp"},
}

var rilletWord = regexp.MustCompile(`^[A-Z][A-Z_]{0,49}$`)

func rilletKey(mode string, raw []byte) ([]byte, error) {
	if mode == "raw" {
		return raw, nil
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) == 0 {
		return nil, errors.New("not base64 (set mode: raw to use the token's bytes)")
	}
	return key, nil
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
	return matchHMAC(creds, signedAt, sigs, func(key []byte) []byte { return rilletMAC(key, h.ts, h.id, h.entity, h.event, req.Body) })
}

// rilletMAC is HMAC-SHA256 over "<timestamp>.<id>.<entity>.<event>.<body>".
func rilletMAC(key []byte, ts, id, entity, event string, body []byte) []byte {
	dot := []byte(".")
	return hmacSHA256(key, []byte(ts), dot, []byte(id), dot, []byte(entity), dot, []byte(event), dot, body)
}

func parseRilletSignatures(value string) ([][]byte, error) {
	parts := strings.Split(value, ",")
	if len(parts) > maxSignatures {
		return nil, errorString("too many signatures")
	}
	sigs := make([][]byte, 0, len(parts))
	for _, p := range parts {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(p))
		if err != nil || len(b) != 32 {
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
	// A deleted event's body is the bare id, a JSON string; JSON all the same.
	if !json.Valid(req.Body) {
		return Identity{}, malformed("body is not JSON")
	}
	at, _ := time.Parse(time.RFC3339Nano, h.ts) // verified already
	return Identity{ID: h.id, Type: "com.rillet." + strings.ToLower(h.entity) + "." + strings.ToLower(h.event), Time: at}, nil
}

// signRillet signs m; m.Type is "<ENTITY>.<EVENT>" (INVOICE.CREATED).
func signRillet(creds Credentials, m Message) http.Header {
	entity, event, _ := strings.Cut(m.Type, ".")
	ts := m.At.UTC().Format(time.RFC3339)
	mac := rilletMAC(creds.Secrets[0].Bytes(), ts, m.ID, entity, event, m.Body)
	h := http.Header{}
	h.Set("X-Rillet-Signature", base64.StdEncoding.EncodeToString(mac))
	h.Set("X-Rillet-Timestamp", ts)
	h.Set("X-Rillet-Id", m.ID)
	h.Set("X-Rillet-Entity", entity)
	h.Set("X-Rillet-Event", event)
	h.Set("Content-Type", "application/json")
	return h
}
