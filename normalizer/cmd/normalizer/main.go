// Command normalizer turns raw webhooks into canonical invoice events.
// Configuration: see normalizer.LoadConfig and package stage.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/invoicehub/invoicehub/internal/observe"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/normalizer"
)

func main() { stage.Main(run) }

func run(ctx context.Context, getenv stage.Env, stderr io.Writer) int {
	cfg, err := normalizer.LoadConfig(getenv, os.ReadFile)
	if err != nil {
		fmt.Fprintf(stderr, "normalizer: bad configuration:\n%v\n", err)
		return 2
	}
	log := cfg.Stage.Logger(stderr, "normalizer")
	defer stage.Tracing(ctx, "normalizer", getenv, log)()
	nc, js, err := cfg.Stage.Connect(ctx, "normalizer", log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	defer stage.Drain(nc, stage.DrainTimeout)
	ctx, stopWatch := stage.WatchClosed(ctx, nc)
	defer stopWatch()
	reg := stage.Registry()
	obs, err := observe.New(nc, js, reg, 1, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	cfg.Registerer, cfg.Hooks = reg, obs.Hooks(cfg.ConsumeConfig())
	n, err := normalizer.New(ctx, js, cfg, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	defer cfg.Stage.StartMetrics(ctx, reg, obs.Ready, log)() // waits for its port to be free: a rerun binds it again
	log.Info("normalizer started")
	err = n.Run(ctx, cfg) // returns after draining deliveries in flight
	obs.Finish()
	return stage.ExitCode(ctx, err, log)
}
