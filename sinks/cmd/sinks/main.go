// Command sinks delivers canonical invoice events to the sinks declared in
// INVOICEHUB_SINKS_FILE (see sinks.ParseSpecs), one durable consumer each.
// Configuration: see sinks.LoadConfig and package stage.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/sinks"
	"github.com/invoicehub/invoicehub/sinks/builtin"
)

func main() { stage.Main(run) }

func run(ctx context.Context, getenv stage.Env, stderr io.Writer) int {
	cfg, err := sinks.LoadConfig(getenv, os.ReadFile)
	if err != nil {
		fmt.Fprintf(stderr, "sinks: bad configuration:\n%v\n", err)
		return 2
	}
	log := cfg.Stage.Logger(stderr, "sinks")
	defer stage.Tracing(ctx, "sinks", getenv, log)()
	nc, js, err := cfg.Stage.Connect(ctx, "sinks", log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	defer nc.Drain()
	reg := stage.Registry()
	ready := stage.NewReadiness(nc, len(cfg.Specs))
	for i := range cfg.Specs {
		cfg.Specs[i].Hooks.Bound = ready.Bound
	}
	go func() {
		if err := cfg.Stage.ServeMetrics(ctx, reg, ready.Check, log); err != nil {
			log.Error("metrics", "err", err)
		}
	}()
	deps := sinks.Deps{Log: log, Metrics: reg, Secrets: cfg.Stage.Secrets}
	if err := sinks.Serve(ctx, js, cfg.Specs, builtin.Registry(), deps); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}
