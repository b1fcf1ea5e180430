package sinks

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/schemas/subject"

	"gopkg.in/yaml.v3"

	"github.com/invoicehub/invoicehub/schemas"
)

// File is a sinks file: the sinks, and the notifiers of dead letters.
type File struct {
	Sinks  []Spec
	Notify []NotifySpec
}

// ParseFile reads a sinks file:
//
//	sinks:
//	  - id: archive              # consumer sink-archive, dead letters dlq.sink.archive
//	    type: file               # a registered sink type
//	    kinds: [paid]            # optional filters
//	    providers: [qonto]
//	    concurrency: 4           # optional: deliveries at once (Spec.Concurrency)
//	    max_attempts: 10         # a failing event is dead-lettered after
//	    max_age: 1h              # max_attempts failures and max_age (both)
//	    backoff: {base: 1s, max: 5m}
//	    options: {path: /data/invoices.jsonl}
//	notify:                      # optional: a signed message per dead letter
//	  - id: oncall               # consumer notify-oncall on the DLQ
//	    options: {url: "https://hooks.example.com/invoicehub", secret_env: ONCALL_WHSEC}
//
// Notifier options are the http sink's. It returns every problem found,
// joined, and nothing if there is any.
func ParseFile(r io.Reader) (File, error) {
	var f struct {
		Sinks []struct {
			ID          string                     `yaml:"id"`
			Type        string                     `yaml:"type"`
			Kinds       []schemas.Kind             `yaml:"kinds"`
			Providers   []string                   `yaml:"providers"`
			Concurrency int                        `yaml:"concurrency"`
			MaxAttempts int                        `yaml:"max_attempts"`
			MaxAge      string                     `yaml:"max_age"`
			Backoff     struct{ Base, Max string } `yaml:"backoff"`
			Options     map[string]any             `yaml:"options"`
		} `yaml:"sinks"`
		Notify []struct {
			ID      string         `yaml:"id"`
			Options map[string]any `yaml:"options"`
		} `yaml:"notify"`
	}
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return File{}, fmt.Errorf("sinks: %w", stage.YAMLError(err))
	}
	var errs []error
	var specs []Spec
	seen := map[string]bool{}
	for i, s := range f.Sinks {
		spec := Spec{ID: s.ID, Type: s.Type, Kinds: s.Kinds, Providers: s.Providers,
			Concurrency: s.Concurrency, MaxAttempts: s.MaxAttempts, Options: s.Options}
		where := fmt.Sprintf("sinks[%d] (%s)", i, s.ID)
		var durErrs []error
		spec.MaxAge, durErrs = parseDuration(durErrs, "max_age", s.MaxAge)
		spec.Backoff.Base, durErrs = parseDuration(durErrs, "backoff.base", s.Backoff.Base)
		spec.Backoff.Max, durErrs = parseDuration(durErrs, "backoff.max", s.Backoff.Max)
		if err := errors.Join(append(durErrs, spec.Validate())...); err != nil {
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
	var notify []NotifySpec
	for i, n := range f.Notify {
		if !idSyntax.MatchString(n.ID) {
			errs = append(errs, fmt.Errorf("notify[%d] (%s): id: want lower-case letters, digits, '-' or '_'", i, n.ID))
		}
		if seen["notify-"+n.ID] { // notifier ids, and sink ids spelt notify-<id>, share the http metrics' label
			errs = append(errs, fmt.Errorf("notify[%d] (%s): id declared twice, or as sink notify-%s", i, n.ID, n.ID))
		}
		seen["notify-"+n.ID] = true
		notify = append(notify, NotifySpec{ID: n.ID, Options: n.Options})
	}
	if len(errs) > 0 {
		return File{}, errors.Join(errs...)
	}
	return File{Sinks: specs, Notify: notify}, nil
}

// NotifySpec configures one notifier: a consumer of the DLQ that posts a
// signed Standard Webhooks message for every dead letter of the
// normalizer and the sinks (package notify).
type NotifySpec struct {
	ID      string
	Options Options // the http sink's
	// AckWait, Heartbeat and DrainTimeout come from the stage (LoadConfig).
	AckWait, Heartbeat, DrainTimeout time.Duration
	Hooks                            consume.Hooks
}

// ConsumeConfig returns the notifier's consumer: notify-<id> on the DLQ,
// reading the normalizer's and the sinks' dead letters (never the
// notifiers' own, which go to dlq.notify.<id>).
func (n NotifySpec) ConsumeConfig() consume.Config {
	return consume.Config{
		Stage: "notify", ID: n.ID, Stream: subject.DLQStream,
		FilterSubjects: []string{subject.DLQRoot + ".normalizer.>", subject.DLQRoot + ".sink.>"},
		AckWait:        n.AckWait, Heartbeat: n.Heartbeat, DrainTimeout: n.DrainTimeout, Hooks: n.Hooks,
	}
}

// parseDuration reads an optional positive duration ("" is zero: the
// default), adding a problem to errs.
func parseDuration(errs []error, name, text string) (time.Duration, []error) {
	if text == "" {
		return 0, errs
	}
	d, err := time.ParseDuration(text)
	if err != nil || d <= 0 {
		return 0, append(errs, fmt.Errorf("%s: %q is not a positive duration (e.g. 30s, 1h)", name, text))
	}
	return d, errs
}
