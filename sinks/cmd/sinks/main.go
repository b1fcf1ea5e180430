// Command sinks delivers canonical invoice events to the sinks declared in
// INVOICEHUB_SINKS_FILE (see sinks.ParseFile), one durable consumer each.
// Configuration: see sinks.LoadConfig and package stage.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/observe"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/sinks"
	"github.com/invoicehub/invoicehub/sinks/builtin"
	"github.com/invoicehub/invoicehub/sinks/notify"
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
	defer stage.Drain(nc, stage.DrainTimeout)
	ctx, stopWatch := stage.WatchClosed(ctx, nc)
	defer stopWatch()
	reg := stage.Registry()
	obs, err := observe.New(nc, js, reg, len(cfg.Specs)+len(cfg.Notify), log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	defer cfg.Stage.StartMetrics(ctx, reg, obs.Ready, log)() // waits for its port to be free: a rerun binds it again
	deps := sinks.Deps{Log: log, Metrics: reg, Secrets: cfg.Stage.Secrets, Hooks: obs.Hooks}
	// The sinks and the notifiers run until ctx ends, or until either fails.
	err = consume.RunAll(ctx,
		func(ctx context.Context) error { return sinks.Serve(ctx, js, cfg.Specs, builtin.Registry(), deps) },
		func(ctx context.Context) error { return notify.Serve(ctx, js, cfg.Notify, deps) })
	obs.Finish()
	return stage.ExitCode(ctx, err, log)
}
