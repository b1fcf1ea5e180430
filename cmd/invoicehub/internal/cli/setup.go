package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/normalizer"
	"github.com/invoicehub/invoicehub/sinks"
)

// runSetup creates or updates what the stages bind to, with an
// administrator's NATS credentials (the stages' users may not manage
// streams or consumers): the streams, the normalizer's state bucket and
// durable consumer, and a durable consumer per sink of
// INVOICEHUB_SINKS_FILE. It reads the stages' INVOICEHUB_* variables, so
// that what it creates is what they expect; run it again after an upgrade.
func runSetup(ctx context.Context, args []string, env Env) error {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ncfg, err := normalizer.LoadConfig(env.Getenv, os.ReadFile)
	var scfg sinks.Config
	if env.Getenv("INVOICEHUB_SINKS_FILE") != "" {
		var serr error
		scfg, serr = sinks.LoadConfig(env.Getenv, os.ReadFile)
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("bad configuration:\n%w", err)
	}
	log := logger(env)
	nc, js, err := ncfg.Stage.Connect(ctx, "setup", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := setup(ctx, js, ncfg, scfg.Consumers(), log); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "set up: streams, the normalizer's state bucket and consumer, %d sink and %d notifier consumers\n", len(scfg.Specs), len(scfg.Notify))
	return nil
}

// setup creates or updates the streams, the state bucket and the durable
// consumers, retrying while JetStream is not ready.
func setup(ctx context.Context, js jetstream.JetStream, ncfg normalizer.Config, consumers []consume.Config, log *slog.Logger) error {
	return consume.UntilReady(ctx, log, "JetStream", func() error { return setupOnce(ctx, js, ncfg, consumers) })
}

func setupOnce(ctx context.Context, js jetstream.JetStream, ncfg normalizer.Config, consumers []consume.Config) error {
	if err := streams.Ensure(ctx, js, ncfg.Stage.Streams); err != nil {
		return err
	}
	if err := normalizer.EnsureStateBucket(ctx, js, ncfg.Stage.Streams.Replicas); err != nil {
		return err
	}
	errs := []error{consume.Ensure(ctx, js, ncfg.ConsumeConfig())}
	for _, cc := range consumers {
		errs = append(errs, consume.Ensure(ctx, js, cc))
	}
	return errors.Join(errs...)
}
