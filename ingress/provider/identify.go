package provider

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// eventTypeSyntax keeps a provider's event type safe inside a CloudEvent
// type: client_invoices.created, invoice.status.paid...
var eventTypeSyntax = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,99}$`)

// envelope holds the few top-level keys providers identify events by.
// Decoding into it checks the whole body is a JSON object but copies only
// these values (a map of every key costs a copy of the whole body).
type envelope struct {
	ID             json.RawMessage `json:"id"`
	EventID        json.RawMessage `json:"event_id"`
	EventType      json.RawMessage `json:"event_type"`
	EventTypeCamel json.RawMessage `json:"eventType"`
	Type           json.RawMessage `json:"type"`
	Event          json.RawMessage `json:"event"`
	CreatedAt      json.RawMessage `json:"created_at"`
	Timestamp      json.RawMessage `json:"timestamp"`
}

// jsonObject parses a body that must be a JSON object.
func jsonObject(body []byte) (envelope, error) {
	var env envelope
	if !startsObject(body) {
		return env, malformed("body is not a JSON object")
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return env, malformed("body is not a JSON object")
	}
	return env, nil
}

// startsObject reports whether body's first non-space byte opens an object.
func startsObject(body []byte) bool {
	for _, c := range body {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}

// firstString returns the first of values holding a non-empty JSON string.
func firstString(values ...json.RawMessage) string {
	for _, raw := range values {
		var s string
		if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// eventType checks a provider event type and prefixes it.
func eventType(prefix, t string) (string, error) {
	if !eventTypeSyntax.MatchString(t) {
		return "", malformed("event type missing or invalid")
	}
	return prefix + t, nil
}

// bodyTime parses an optional RFC 3339 time from the body.
func bodyTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, malformed("event time is not RFC 3339")
	}
	return t, nil
}

// checkID refuses an event id that cannot serve as a dedup id.
func checkID(id string) error {
	if len(id) > 200 || strings.ContainsFunc(id, unicode.IsControl) {
		return malformed("event id too long or not printable")
	}
	return nil
}
