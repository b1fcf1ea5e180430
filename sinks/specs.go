package sinks

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/invoicehub/invoicehub/internal/stage"

	"gopkg.in/yaml.v3"

	"github.com/invoicehub/invoicehub/schemas"
)

// ParseSpecs reads a sinks file:
//
//	sinks:
//	  - id: archive              # consumer sink-archive, dead letters dlq.sink.archive
//	    type: file               # a registered sink type
//	    kinds: [paid]            # optional filters
//	    providers: [qonto]
//	    concurrency: 4           # optional consumer tuning
//	    max_attempts: 10
//	    backoff: {base: 1s, max: 5m}
//	    options: {path: /data/invoices.jsonl}
//
// It returns every problem found, joined, and no specs if there is any.
func ParseSpecs(r io.Reader) ([]Spec, error) {
	var f struct {
		Sinks []struct {
			ID          string                     `yaml:"id"`
			Type        string                     `yaml:"type"`
			Kinds       []schemas.Kind             `yaml:"kinds"`
			Providers   []string                   `yaml:"providers"`
			Concurrency int                        `yaml:"concurrency"`
			MaxAttempts int                        `yaml:"max_attempts"`
			Backoff     struct{ Base, Max string } `yaml:"backoff"`
			Options     map[string]any             `yaml:"options"`
		} `yaml:"sinks"`
	}
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("sinks: %w", stage.YAMLError(err))
	}
	var errs []error
	var specs []Spec
	seen := map[string]bool{}
	for i, s := range f.Sinks {
		spec := Spec{ID: s.ID, Type: s.Type, Kinds: s.Kinds, Providers: s.Providers,
			Concurrency: s.Concurrency, MaxAttempts: s.MaxAttempts, Options: s.Options}
		where := fmt.Sprintf("sinks[%d] (%s)", i, s.ID)
		if err := spec.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		if seen[s.ID] {
			errs = append(errs, fmt.Errorf("%s: id declared twice", where))
		}
		seen[s.ID] = true
		duration := func(field, v string, dst *time.Duration) {
			if v == "" {
				return
			}
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s: %s %q is not a positive duration", where, field, v))
			}
			*dst = d
		}
		duration("backoff.base", s.Backoff.Base, &spec.Backoff.Base)
		duration("backoff.max", s.Backoff.Max, &spec.Backoff.Max)
		specs = append(specs, spec)
	}
	if len(f.Sinks) == 0 {
		errs = append(errs, errors.New("sinks: no sinks declared"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return specs, nil
}
