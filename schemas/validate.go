package schemas

import (
	"bytes"
	_ "embed"
	"encoding/json"
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

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(SchemaJSON))
	if err != nil {
		return nil, fmt.Errorf("schemas: parse embedded schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(SchemaURL, doc); err != nil {
		return nil, fmt.Errorf("schemas: add embedded schema: %w", err)
	}
	return c.Compile(SchemaURL)
})

// Validate checks canonical event data (JSON) against the schema. It returns
// an error naming every violation, or nil.
func Validate(data []byte) error {
	schema, err := compiled()
	if err != nil {
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("schemas: validate: not JSON: %w", err)
	}
	if err := schema.Validate(doc); err != nil {
		return fmt.Errorf("schemas: validate: %w", err)
	}
	return nil
}

// Marshal encodes d as JSON and validates it against the schema, so nothing
// that breaks the contract is ever published.
func Marshal(d EventData) ([]byte, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("schemas: marshal: %w", err)
	}
	if err := Validate(data); err != nil {
		return nil, err
	}
	return data, nil
}
