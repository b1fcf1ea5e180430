package schemas

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// SchemaURL is the canonical event schema's $id, carried as the CloudEvent
// dataschema of every canonical event.
const SchemaURL = "https://invoicehub.dev/schemas/invoice-event/v1.json"

// SchemaJSON is the canonical invoice event JSON Schema (draft 2020-12).
//
//go:embed invoice-event.v1.json
var SchemaJSON []byte

// compiledSchemas holds the event schema and its invoice definition.
var compiledSchemas = sync.OnceValues(func() ([2]*jsonschema.Schema, error) {
	var out [2]*jsonschema.Schema
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(SchemaJSON))
	if err != nil {
		return out, fmt.Errorf("schemas: parse embedded schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(SchemaURL, doc); err != nil {
		return out, fmt.Errorf("schemas: add embedded schema: %w", err)
	}
	for i, ref := range []string{SchemaURL, SchemaURL + "#/$defs/invoice"} {
		if out[i], err = c.Compile(ref); err != nil {
			return out, fmt.Errorf("schemas: compile %s: %w", ref, err)
		}
	}
	return out, nil
})

// Validate checks canonical event data (JSON) against the schema. It returns
// an error naming every violation, or nil.
func Validate(data []byte) error { return validate(0, data) }

// ValidateInvoice checks a canonical invoice (JSON) against the schema's
// invoice definition.
func ValidateInvoice(data []byte) error { return validate(1, data) }

func validate(which int, data []byte) error {
	schemas, err := compiledSchemas()
	if err != nil {
		return err
	}
	doc, err := decodeJSON(data)
	if err != nil {
		return fmt.Errorf("schemas: validate: not JSON: %w", err)
	}
	if err := schemas[which].Validate(doc); err != nil {
		return fmt.Errorf("schemas: validate: %w", err)
	}
	return nil
}

// Marshal encodes d as JSON and validates it against the schema and Check,
// so nothing that breaks the contract is ever published.
func Marshal(d EventData) ([]byte, error) {
	data, err := EncodeJSON(d)
	if err != nil {
		return nil, fmt.Errorf("schemas: marshal: %w", err)
	}
	if err := errors.Join(Validate(data), d.Check()); err != nil {
		return nil, err
	}
	return data, nil
}

// decodeJSON reads data as the validator takes it, as
// jsonschema.UnmarshalJSON does (objects as map[string]any, arrays as
// []any, numbers as json.Number, the last of repeated names, invalid
// UTF-8 as U+FFFD), with go-json-experiment's token reader, in place:
// 40 % faster on a canonical event (BenchmarkDecodeJSON;
// TestDecodeJSONIsUnmarshalJSON and FuzzDecodeJSON hold the two equal).
func decodeJSON(data []byte) (any, error) {
	dec := jsontext.NewDecoder(bytes.NewBuffer(data), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, fmt.Errorf("more than one value: %w", cmp.Or(err, errTrailing))
	}
	return v, nil
}

var errTrailing = errors.New("data after the value")

func decodeValue(dec *jsontext.Decoder) (any, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case '{':
		m := map[string]any{}
		for dec.PeekKind() != '}' {
			name, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			key := name.String() // before the next read voids the token
			if m[key], err = decodeValue(dec); err != nil {
				return nil, err
			}
		}
		_, err := dec.ReadToken()
		return m, err
	case '[':
		a := []any{}
		for dec.PeekKind() != ']' {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.ReadToken()
		return a, err
	case '"':
		return tok.String(), nil
	case '0':
		return json.Number(tok.String()), nil
	case 't', 'f':
		return tok.Bool(), nil
	}
	return nil, nil // null
}

// EncodeJSON is json.Marshal without HTML escaping: '<', '>' and '&' stay
// one byte each instead of six ("\u003c"), so a text of them does not
// grow sixfold on its way to a canonical event (the size budget,
// docs/ARCHITECTURE.md). Every canonical event, and the normalizer's
// state, is encoded with it. (U+2028 and U+2029 are still escaped: three
// bytes become six.)
func EncodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
