package sinks

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/stage"
)

// Config is the sinks binary's configuration: the common stage variables
// (package stage) and INVOICEHUB_SINKS_FILE, the sinks file (ParseFile).
type Config struct {
	Stage stage.Config
	// Specs are the sinks of the file, Notify its notifiers, their
	// consumers tuned by Stage.
	Specs  []Spec
	Notify []NotifySpec
}

// LoadConfig reads the configuration and the sinks file, returning every
// problem at once. Each spec's ack wait, heartbeat and drain timeout are
// the stage's (INVOICEHUB_ACK_WAIT, INVOICEHUB_PULL_HEARTBEAT,
// INVOICEHUB_SHUTDOWN_GRACE).
func LoadConfig(getenv stage.Env, readFile stage.ReadFile) (Config, error) {
	common, commonErr := stage.Load(getenv, readFile)
	c := Config{Stage: common}
	errs := []error{commonErr}
	f, err := stage.ParseFile(getenv, readFile, "INVOICEHUB_SINKS_FILE", ParseFile)
	errs = append(errs, err)
	c.Specs, c.Notify = f.Sinks, f.Notify
	for i := range c.Specs {
		c.Specs[i].AckWait, c.Specs[i].Heartbeat, c.Specs[i].DrainTimeout = common.AckWait, common.PullHeartbeat, common.ShutdownGrace
	}
	for i := range c.Notify {
		c.Notify[i].AckWait, c.Notify[i].Heartbeat, c.Notify[i].DrainTimeout = common.AckWait, common.PullHeartbeat, common.ShutdownGrace
	}
	return c, errors.Join(errs...)
}

// Consumers returns the consumers of the sinks and notifiers, for setup.
func (c Config) Consumers() []consume.Config {
	var out []consume.Config
	for _, s := range c.Specs {
		out = append(out, s.ConsumeConfig())
	}
	for _, n := range c.Notify {
		out = append(out, n.ConsumeConfig())
	}
	return out
}

// Serve builds every sink of specs from types, all before any runs (a
// sink that cannot be built fails the start), runs each on its own
// durable consumer until ctx ends (each drains its deliveries in
// flight), then closes them; the first sink to fail stops the others.
// The sinks binary and `invoicehub dev` both run their sinks with it.
func Serve(ctx context.Context, js jetstream.JetStream, specs []Spec, types *Registry, deps Deps) error {
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	built := make([]Sink, 0, len(specs))
	defer func() {
		for i, s := range built {
			if err := s.Close(context.WithoutCancel(ctx)); err != nil {
				log.Error("close sink", "sink", specs[i].ID, "err", err)
			}
		}
	}()
	for _, spec := range specs {
		s, err := types.New(ctx, spec, deps)
		if err != nil {
			return err
		}
		built = append(built, s)
	}
	// One sink that stops with an error (its consumer cannot be bound,
	// say) stops them all, so that the process exits and says why rather
	// than running on without it.
	runs := make([]func(context.Context) error, len(specs))
	for i, spec := range specs {
		if deps.Hooks != nil {
			spec.Hooks = deps.Hooks(spec.ConsumeConfig())
		}
		runs[i] = func(ctx context.Context) error {
			err := Run(ctx, js, spec, built[i], log)
			if err != nil {
				log.Error("sink stopped", "sink", spec.ID, "err", err)
			}
			return err
		}
	}
	log.Info("sinks started", "count", len(specs))
	return consume.RunAll(ctx, runs...)
}
