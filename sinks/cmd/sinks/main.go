// Command sinks delivers canonical invoice events to the sinks declared in
// INVOICEHUB_SINKS_FILE (see sinks.ParseSpecs), one durable consumer each.
// Common configuration: package stage.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/sinks"
	"github.com/invoicehub/invoicehub/sinks/builtin"
)

func main() { stage.Main(run) }

func run(ctx context.Context, getenv stage.Env, stderr io.Writer) int {
	common, err := stage.Load(getenv)
	specs, specErr := loadSpecs(getenv("INVOICEHUB_SINKS_FILE"))
	if err := errors.Join(err, specErr); err != nil {
		fmt.Fprintf(stderr, "sinks: bad configuration:\n%v\n", err)
		return 2
	}
	log := common.Logger(stderr, "sinks")
	defer stage.Tracing(ctx, "sinks", getenv, log)()
	nc, js, err := common.Connect(ctx, "sinks", log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	defer nc.Drain()
	ready := stage.NewReadiness(nc, len(specs))
	go func() {
		if err := common.ServeMetrics(ctx, stage.Registry(), ready.Check, log); err != nil {
			log.Error("metrics", "err", err)
		}
	}()
	for i := range specs {
		specs[i].AckWait, specs[i].Heartbeat = common.AckWait, common.PullHeartbeat
		specs[i].Hooks.Bound = ready.Bound
	}
	if err := runSinks(ctx, js, specs, log); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

func loadSpecs(path string) ([]sinks.Spec, error) {
	if path == "" {
		return nil, errors.New("INVOICEHUB_SINKS_FILE is required")
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("INVOICEHUB_SINKS_FILE: %w", err)
	}
	return sinks.ParseSpecs(bytes.NewReader(body))
}

// runSinks builds every sink, runs each on its own consumer until ctx ends
// (each drains its deliveries in flight), then closes them.
func runSinks(ctx context.Context, js jetstream.JetStream, specs []sinks.Spec, log *slog.Logger) error {
	reg := builtin.Registry()
	built := make([]sinks.Sink, 0, len(specs))
	defer func() {
		for _, s := range built {
			if err := s.Close(context.WithoutCancel(ctx)); err != nil {
				log.Error("close sink", "err", err)
			}
		}
	}()
	for _, spec := range specs {
		s, err := reg.New(ctx, spec)
		if err != nil {
			return err
		}
		built = append(built, s)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	for i, spec := range specs {
		wg.Go(func() { errs[i] = sinks.Run(ctx, js, spec, built[i], log) })
	}
	log.Info("sinks started", "count", len(specs))
	wg.Wait()
	return errors.Join(errs...)
}
