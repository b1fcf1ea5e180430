package provider

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/invoicehub/invoicehub/schemas"
)

// eventTypeSyntax keeps a provider's event type safe inside a CloudEvent
// type: invoice.status.paid, INVOICE.CREATED, v1/client-invoices...
var eventTypeSyntax = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_./-]{0,99}$`)

// envelope holds the string values of the few top-level keys providers
// identify events by; a key holding another kind of value is left empty.
type envelope struct {
	ID, Type, CreatedAt, EventType, Timestamp string
	// HasData says whether the object has a top-level "data" member.
	HasData bool
	// Data is that member's value, when jsonObject is asked to keep it.
	Data jsontext.Value
}

// field returns where the value of the top-level key name goes, or nil.
func (e *envelope) field(name string) *string {
	switch name {
	case "id":
		return &e.ID
	case "type":
		return &e.Type
	case "created_at":
		return &e.CreatedAt
	case "eventType":
		return &e.EventType
	case "timestamp":
		return &e.Timestamp
	}
	return nil
}

// decoders are reused from one webhook to the next: a decoder's state is
// a few KiB to allocate and clear.
var decoders = sync.Pool{New: func() any { return jsontext.NewDecoder(empty) }}

// empty is what a decoder reads while in the pool: it holds no body.
var empty = new(bytes.Buffer)

// jsonObject checks that body is one JSON object and reads its envelope,
// in a single pass that copies only the envelope's strings. It reads JSON
// as the normalizer does (names match case-sensitively), and refuses what
// two readers could read differently: a repeated name at any depth, two
// top-level names that differ only in case, invalid UTF-8.
func jsonObject(body []byte) (envelope, error) { return readEnvelope(body, false) }

// readEnvelope is jsonObject, keeping the value of "data" when keepData.
func readEnvelope(body []byte, keepData bool) (envelope, error) {
	var env envelope
	dec := decoders.Get().(*jsontext.Decoder)
	dec.Reset(bytes.NewBuffer(body)) // read in place: the decoder copies nothing from a *bytes.Buffer
	defer func() {
		dec.Reset(empty)
		decoders.Put(dec)
	}()
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return env, notObject(err)
	}
	seen := map[string]bool{}
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return env, notObject(err)
		}
		name := tok.String()
		if folded := strings.ToLower(name); seen[folded] {
			return env, malformed("top-level names %q differ only in case", name)
		} else {
			seen[folded] = true
		}
		env.HasData = env.HasData || name == "data"
		if keepData && name == "data" {
			v, err := dec.ReadValue()
			if err != nil {
				return env, notObject(err)
			}
			env.Data = v.Clone()
			continue
		}
		field := env.field(name)
		if field == nil || dec.PeekKind() != '"' {
			if err := dec.SkipValue(); err != nil {
				return env, notObject(err)
			}
			continue
		}
		value, err := dec.ReadToken()
		if err != nil {
			return env, notObject(err)
		}
		*field = value.String()
	}
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '}' {
		return env, notObject(err)
	}
	if _, err := dec.ReadToken(); err != io.EOF { // one value, nothing after it
		return env, notObject(nil)
	}
	return env, nil
}

// notObject is the refusal of a body that is not one well-formed JSON
// object; the decoder's reason (a repeated name, invalid UTF-8) is kept.
func notObject(err error) error {
	if err != nil && err != io.EOF {
		return malformed("body is not a well-formed JSON object: %v", err)
	}
	return malformed("body is not a well-formed JSON object")
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

// checkID refuses an event id that cannot serve as a dedup id and a
// header: the canonical schema's rule for identifiers.
func checkID(id string) error {
	if err := schemas.CheckReference("event id", id); err != nil {
		return malformed("%v", err)
	}
	return nil
}
