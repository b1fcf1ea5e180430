package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/invoicehub/invoicehub/ingress"
	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/observe"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/normalizer"
	"github.com/invoicehub/invoicehub/sinks"
	"github.com/invoicehub/invoicehub/sinks/builtin"
)

// DevSecret signs and verifies webhooks of the dev sources: its bytes are
// the key of every provider's demo source (configured, it would read
// "invoicehub-dev-secret" for raw keys, its base64 for Rillet and
// whsec_ + its base64 for Standard Webhooks). It is public: dev mode only,
// never in production.
const DevSecret = "invoicehub-dev-secret"

// devCredentials are the demo source's credentials for provider p: its
// default mode, keyed with DevSecret.
func devCredentials(p provider.Provider) provider.Credentials {
	return provider.Credentials{
		Tolerance: ingress.DefaultTolerance, Mode: p.Modes[0],
		Secrets: []provider.Secret{provider.NewSecret([]byte(DevSecret))},
	}
}

// DevSource is the source id dev mode accepts for every provider.
const DevSource = "demo"

type devConfig struct {
	dataDir  string
	httpAddr string
	natsPort int
	grace    time.Duration
}

func runDev(ctx context.Context, args []string, env Env) error {
	var cfg devConfig
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.StringVar(&cfg.dataDir, "data", "data", "directory for the JetStream store and the sink files")
	fs.StringVar(&cfg.httpAddr, "http", "127.0.0.1:8080", "address ingress listens on")
	fs.IntVar(&cfg.natsPort, "nats-port", 4222, "port of the embedded NATS server on 127.0.0.1 (-1: any free port)")
	fs.DurationVar(&cfg.grace, "grace", 10*time.Second, "how long shutdown waits for work in flight")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := logger(env)
	defer stage.Tracing(ctx, "dev", env.Getenv, log)()
	var err error
	stage.Rerun(ctx, env.Stderr, func() int {
		if err = runDevOnce(ctx, cfg, env, log); errors.Is(err, stage.ErrClosedByServer) {
			log.Error("the NATS server closed the pipeline's connection: starting it again", "err", err)
			return stage.CodeReconnect
		}
		return 0
	})
	return err
}

// runDevOnce runs the pipeline until ctx ends, a stage dies, or the server
// closes the pipeline's connection (ErrClosedByServer: runDev starts it
// again, the store and the sink files kept).
func runDevOnce(ctx context.Context, cfg devConfig, env Env, log *slog.Logger) error {
	d, err := startDev(ctx, cfg, log)
	if err != nil {
		return err
	}
	d.printBanner(env)
	watched, stopWatch := stage.WatchClosed(ctx, d.nc)
	defer stopWatch()
	select {
	case <-watched.Done():
		if stage.ClosedByServer(watched) {
			return errors.Join(context.Cause(watched), d.shutdown())
		}
		fmt.Fprintln(env.Stdout, "\nshutting down: finishing work in flight...")
		return d.shutdown()
	case err := <-d.errs: // a stage died: stop everything, loudly
		return errors.Join(err, d.shutdown())
	}
}

// dev is the whole pipeline in one process, assembled from the stages'
// own constructors: ingress.New served by stage.Serve, normalizer.New and
// Run, sinks.Serve; setup as `invoicehub setup` does it.
type dev struct {
	cfg       devConfig
	nats      *server.Server
	nc        *nats.Conn
	httpURL   string
	sinkFile  string
	sinkDB    string
	stopHTTP  context.CancelFunc
	http      sync.WaitGroup
	stopWork  context.CancelFunc
	consumers sync.WaitGroup
	errs      chan error
	obs       *observe.Stage
	log       *slog.Logger
}

func startDev(ctx context.Context, cfg devConfig, log *slog.Logger) (_ *dev, err error) {
	d := &dev{cfg: cfg, log: log, errs: make(chan error, 3)} // the normalizer, the sinks, HTTP
	defer func() {
		if err != nil {
			d.shutdown()
		}
	}()
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if d.nats, err = startNATS(cfg); err != nil {
		return nil, err
	}
	if d.nc, err = nats.Connect(d.nats.ClientURL(), stage.ConnectOptions("dev", d.log)...); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	js, err := jetstream.New(d.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	d.sinkFile = filepath.Join(cfg.dataDir, "invoices.jsonl")
	d.sinkDB = filepath.Join(cfg.dataDir, "invoices.db")
	common := stage.Config{ShutdownGrace: cfg.grace}
	ncfg := normalizer.Config{Stage: common}
	specs := d.sinkSpecs()
	if err := setup(ctx, js, ncfg, sinks.Config{Specs: specs}.Consumers(), log); err != nil {
		return nil, err
	}
	reg := stage.Registry()
	obs, err := observe.New(d.nc, js, reg, 1+len(specs), log)
	if err != nil {
		return nil, err
	}
	d.obs = obs
	ncfg.Registerer, ncfg.Hooks = reg, obs.Hooks(ncfg.ConsumeConfig())
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	d.stopWork = stopWork
	if err := d.startConsumers(workCtx, js, ncfg, specs, reg, obs); err != nil {
		return nil, err
	}
	if err := d.startIngress(ctx, js, reg, obs); err != nil {
		return nil, err
	}
	return d, nil
}

// devNATSOptions are the embedded server's: JetStream under the
// project's durability policy (deploy/nats/durability.conf), every write
// fsynced before it is acknowledged, so that a 2xx survives a power cut.
func devNATSOptions(cfg devConfig) *server.Options {
	return &server.Options{
		ServerName: "invoicehub-dev", Host: "127.0.0.1", Port: cfg.natsPort,
		JetStream: true, StoreDir: filepath.Join(cfg.dataDir, "nats"), NoSigs: true,
		SyncAlways: true,
	}
}

// durabilityPolicy is how the banner states it.
const durabilityPolicy = "sync_interval: always, every write fsynced before its ack"

func startNATS(cfg devConfig) (*server.Server, error) {
	srv, err := server.NewServer(devNATSOptions(cfg))
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("nats server on port %d did not start (port in use? try -nats-port -1)", cfg.natsPort)
	}
	return srv, nil
}

// sinkSpecs are dev mode's sinks: a JSON-lines file and an SQLite database.
func (d *dev) sinkSpecs() []sinks.Spec {
	grace := d.cfg.grace
	return []sinks.Spec{
		{ID: "file", Type: "file", DrainTimeout: grace, Options: sinks.Options{"path": d.sinkFile, "fsync": "always"}},
		{ID: "sqlite", Type: "sql", DrainTimeout: grace, Options: sinks.Options{"driver": "sqlite", "dsn": d.sinkDB}},
	}
}

// startConsumers runs the normalizer and the sinks as their binaries do.
func (d *dev) startConsumers(ctx context.Context, js jetstream.JetStream, ncfg normalizer.Config, specs []sinks.Spec, reg prometheus.Registerer, obs *observe.Stage) error {
	n, err := normalizer.New(ctx, js, ncfg, d.log)
	if err != nil {
		return err
	}
	d.goConsume(func() error { return n.Run(ctx, ncfg) })
	deps := sinks.Deps{Log: d.log, Metrics: reg, Secrets: stage.Secrets{Getenv: os.Getenv, ReadFile: os.ReadFile}, Hooks: obs.Hooks}
	d.goConsume(func() error { return sinks.Serve(ctx, js, specs, builtin.Registry(), deps) })
	return nil
}

func (d *dev) goConsume(run func() error) {
	d.consumers.Go(func() {
		if err := run(); err != nil {
			d.errs <- err
		}
	})
}

// startIngress serves the demo sources, and the metrics beside them, as
// the ingress binary serves its sources.
func (d *dev) startIngress(ctx context.Context, js jetstream.JetStream, reg *prometheus.Registry, obs *observe.Stage) error {
	var sources []ingress.Source
	for _, name := range provider.Names() {
		p, _ := provider.Lookup(name)
		sources = append(sources, ingress.Source{Provider: name, ID: DevSource, Credentials: devCredentials(p)})
	}
	srv, err := ingress.New(d.nc, js, sources, ingress.Options{Registerer: reg}, d.log)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", srv.Handler())
	ops := stage.MetricsHandler(reg, func() error { return errors.Join(srv.Ready(), obs.Ready()) })
	for _, path := range []string{"GET /metrics", "GET /readyz"} {
		mux.Handle(path, ops)
	}
	ln, err := stage.Listen(d.cfg.httpAddr, 4096, time.Second)
	if err != nil {
		return fmt.Errorf("ingress: %w", err)
	}
	d.httpURL = "http://" + ln.Addr().String()
	httpCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	d.stopHTTP = stop
	d.http.Go(func() {
		if err := stage.Serve(httpCtx, ln, mux, d.cfg.grace, d.log); err != nil {
			d.errs <- err
		}
	})
	return nil
}

func (d *dev) printBanner(env Env) {
	fmt.Fprintf(env.Stdout, `
invoicehub dev is running.

  send webhooks to   %s/webhooks/<provider>/%s   (providers: %v)
  dev secret         %s   (dev only: anyone can sign with it)
  try it             invoicehub send qonto   (or %s; rillet -entity BILL; or: make demo)
  canonical events   %s   (JSON lines)
                     %s   (SQLite: sqlite3 %s 'select id, status, total, due from invoices')
  NATS / JetStream   %s   (subjects invoices.v1.>, store in %s; %s)
  metrics            %s/metrics
  operate            invoicehub status | trace <invoice id or number> | tail | dlq ls   (-nats %s)

Ctrl-C stops it gracefully.
`, d.httpURL, DevSource, provider.Names(), DevSecret, strings.Join(slices.DeleteFunc(samplers(), func(n string) bool { return n == "qonto" }), ", "), d.sinkFile, d.sinkDB, d.sinkDB, d.nats.ClientURL(), filepath.Join(d.cfg.dataDir, "nats"), durabilityPolicy, d.httpURL, d.nats.ClientURL())
}

// shutdown drains in order: HTTP (requests in flight finish with their
// PubAck) → the normalizer and the sinks (deliveries in flight settle,
// the sinks close) → NATS.
func (d *dev) shutdown() error {
	if d.stopHTTP != nil {
		d.stopHTTP()
	}
	d.http.Wait()
	if d.stopWork != nil {
		d.stopWork()
	}
	d.consumers.Wait()
	var errs []error
	for drained := false; !drained; {
		select {
		case err := <-d.errs:
			errs = append(errs, err)
		default:
			drained = true
		}
	}
	if d.obs != nil {
		d.obs.Finish()
	}
	if d.nc != nil {
		stage.Drain(d.nc, stage.DrainTimeout)
	}
	if d.nats != nil {
		d.nats.Shutdown()
		d.nats.WaitForShutdown()
	}
	return errors.Join(errs...)
}
