// Command ingress receives provider webhooks, verifies them and archives
// them in JetStream. Configuration: see ingress.Config and package stage.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/invoicehub/invoicehub/ingress"
	"github.com/invoicehub/invoicehub/internal/stage"
)

func main() { stage.Main(run) }

func run(ctx context.Context, getenv stage.Env, stderr io.Writer) int {
	cfg, err := ingress.LoadConfig(getenv, os.ReadFile)
	if err != nil {
		fmt.Fprintf(stderr, "ingress: bad configuration:\n%v\n", err)
		return 2
	}
	log := cfg.Stage.Logger(stderr, "ingress")
	defer stage.Tracing(ctx, "ingress", getenv, log)()
	nc, js, err := cfg.Stage.Connect(ctx, "ingress", log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	defer stage.Drain(nc, stage.DrainTimeout)
	ctx, stopWatch := stage.WatchClosed(ctx, nc)
	defer stopWatch()
	reg := stage.Registry()
	cfg.Options.Registerer = reg
	srv, err := ingress.New(nc, js, cfg.Sources, cfg.Options, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	ln, err := stage.Listen(cfg.HTTPAddr, cfg.MaxConnections, cfg.Options.RetryAfter)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	defer cfg.Stage.StartMetrics(ctx, reg, srv.Ready, log)() // waits for its port to be free: a rerun binds it again
	log.Info("ingress started", "sources", len(cfg.Sources))
	// Shutdown: new requests are refused, requests in flight finish with
	// their PubAck, then the connection drains.
	err = stage.Serve(ctx, ln, srv.Handler(), cfg.Stage.ShutdownGrace, log)
	return stage.ExitCode(ctx, err, log)
}
