// Command normalizer turns raw webhooks into canonical invoice events.
// Configuration: see normalizer.LoadConfig and package stage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/normalizer"
)

func main() { stage.Main(run) }

func run(ctx context.Context, getenv stage.Env, stderr io.Writer) int {
	common, err1 := stage.Load(getenv)
	cfg, err2 := normalizer.LoadConfig(getenv)
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintf(stderr, "normalizer: bad configuration:\n%v\n", err)
		return 2
	}
	log := common.Logger(stderr, "normalizer")
	defer stage.Tracing(ctx, "normalizer", getenv, log)()
	nc, js, err := common.Connect(ctx, "normalizer", log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	defer nc.Drain()
	reg := stage.Registry()
	cfg.Registerer = reg
	cfg.Replicas, cfg.DuplicateWindow = common.Streams.Replicas, common.Streams.DuplicateWindow
	cfg.AckWait, cfg.Heartbeat = common.AckWait, common.PullHeartbeat
	ready := stage.NewReadiness(nc, 1)
	cfg.Hooks.Bound = ready.Bound
	n, err := normalizer.New(ctx, js, cfg, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	go func() {
		if err := common.ServeMetrics(ctx, reg, ready.Check, log); err != nil {
			log.Error("metrics", "err", err)
		}
	}()
	log.Info("normalizer started")
	if err := n.Run(ctx, cfg); err != nil { // returns after draining deliveries in flight
		log.Error("run", "err", err)
		return 1
	}
	return 0
}
