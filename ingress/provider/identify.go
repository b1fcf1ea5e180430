package provider

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/go-json-experiment/json/jsontext"
)

// eventTypeSyntax keeps a provider's event type safe inside a CloudEvent
// type: client_invoices.created, invoice.status.paid...
var eventTypeSyntax = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,99}$`)

// envelope holds the string values of the few top-level keys providers
// identify events by; a key holding another kind of value is left empty.
type envelope struct {
	ID, EventID, EventType, EventTypeCamel, Type, Event, CreatedAt, Timestamp string
}

// field returns where the value of the top-level key name goes, or nil.
func (e *envelope) field(name string) *string {
	switch name {
	case "id":
		return &e.ID
	case "event_id":
		return &e.EventID
	case "event_type":
		return &e.EventType
	case "eventType":
		return &e.EventTypeCamel
	case "type":
		return &e.Type
	case "event":
		return &e.Event
	case "created_at":
		return &e.CreatedAt
	case "timestamp":
		return &e.Timestamp
	}
	return nil
}

// jsonObject checks that body is one JSON object and reads its envelope,
// in a single pass that copies only the envelope's strings. As with
// encoding/json, a repeated key keeps its last value and invalid UTF-8 is
// tolerated: a provider signed these bytes, and ingress stores them as they
// are.
func jsonObject(body []byte) (envelope, error) {
	var env envelope
	dec := jsontext.NewDecoder(bytes.NewBuffer(body), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return env, malformed("body is not a JSON object")
	}
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return env, malformed("body is not a JSON object")
		}
		field := env.field(name.String())
		if field == nil || dec.PeekKind() != '"' {
			if field != nil {
				*field = "" // a repeated key keeps its last value, even a non-string
			}
			if err := dec.SkipValue(); err != nil {
				return env, malformed("body is not a JSON object")
			}
			continue
		}
		value, err := dec.ReadToken()
		if err != nil {
			return env, malformed("body is not a JSON object")
		}
		*field = value.String()
	}
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '}' {
		return env, malformed("body is not a JSON object")
	}
	if _, err := dec.ReadToken(); err != io.EOF { // one value, nothing after it
		return env, malformed("body is not a JSON object")
	}
	return env, nil
}

// firstString returns the first non-empty value.
func firstString(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
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
