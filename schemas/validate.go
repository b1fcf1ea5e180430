package schemas

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

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
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
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
	data, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("schemas: marshal: %w", err)
	}
	if err := errors.Join(Validate(data), d.Check()); err != nil {
		return nil, err
	}
	return data, nil
}
