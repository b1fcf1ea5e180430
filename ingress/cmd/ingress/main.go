// Command ingress receives provider webhooks, verifies them and archives
// them in JetStream. Configuration: see ingress.Config and package stage.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus/promhttp"

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
	defer nc.Drain()
	reg := stage.Registry()
	cfg.Options.Registerer = reg
	srv, err := ingress.New(nc, js, cfg.Sources, cfg.Options, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle("/", srv.Handler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	log.Info("ingress started", "sources", len(cfg.Sources))
	// Shutdown: new requests are refused, requests in flight finish with
	// their PubAck, then the connection drains.
	if err := stage.Serve(ctx, cfg.HTTPAddr, mux, cfg.Stage.ShutdownGrace, log); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}
