// Package stage is what every invoicehub stage binary (ingress, normalizer,
// sinks) shares: configuration from the environment, the logger, the NATS
// connection, the streams, the metrics endpoint, and shutdown.
//
// Environment (defaults in brackets):
//
//	INVOICEHUB_NATS_URL           NATS servers, comma-separated [nats://127.0.0.1:4222]
//	INVOICEHUB_NATS_CREDS         a NATS credentials file (optional)
//	INVOICEHUB_NATS_USER          user name (optional, with INVOICEHUB_NATS_PASSWORD_FILE)
//	INVOICEHUB_NATS_PASSWORD_FILE file holding the password (see Secrets.Resolve)
//	INVOICEHUB_LOG_LEVEL          debug, info, warn, error [info]
//	INVOICEHUB_LOG_FORMAT         text or json [json]
//	INVOICEHUB_METRICS_ADDR       where /metrics is served; "off" disables [:9090]
//	INVOICEHUB_STREAM_REPLICAS    replicas per stream [1]
//	INVOICEHUB_DUPLICATE_WINDOW   JetStream duplicate window [2m]
//	INVOICEHUB_LEDGER_MAX_BYTES   the delivery ledger's size, reserved in the
//	                              JetStream store at setup [268435456: 256 MiB]
//	INVOICEHUB_LEDGER_MAX_AGE     how long ledger entries are kept [168h]
//	INVOICEHUB_SHUTDOWN_GRACE     how long shutdown waits for work in flight [25s]
//	INVOICEHUB_ACK_WAIT           consumers: how long JetStream waits for an ack or an
//	                              InProgress before redelivering; how soon a crashed
//	                              replica's deliveries reach another [5s]
//	INVOICEHUB_PULL_HEARTBEAT     consumers: idle heartbeat of pull requests [5s]
//	INVOICEHUB_PPROF              "on": Go's profiler at /debug/pprof/ on the metrics
//	                              listener, for finding where time goes [off]
package stage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/internal/tracing"
)

// Config is the environment every stage reads.
type Config struct {
	NATSURL          string
	NATSCreds        string
	NATSUser         string
	NATSPasswordFile string
	LogLevel         slog.Level
	LogJSON          bool
	MetricsAddr      string
	// Pprof serves net/http/pprof beside the metrics.
	Pprof         bool
	Streams       streams.Config
	ShutdownGrace time.Duration
	// AckWait and PullHeartbeat tune the durable consumers (package consume).
	AckWait, PullHeartbeat time.Duration
	// Secrets resolves the secret references of the stage's configuration.
	Secrets Secrets

	natsPassword string
}

// Env reads a configuration value; Load is given os.Getenv in main and a
// map in tests.
type Env func(string) string

// Load reads the common configuration, the NATS password included. It
// returns every problem at once.
func Load(getenv Env, readFile ReadFile) (Config, error) {
	p := &Parser{Getenv: getenv}
	c := Config{
		NATSURL:          p.String("INVOICEHUB_NATS_URL", "nats://127.0.0.1:4222"),
		NATSCreds:        p.String("INVOICEHUB_NATS_CREDS", ""),
		NATSUser:         p.String("INVOICEHUB_NATS_USER", ""),
		NATSPasswordFile: p.String("INVOICEHUB_NATS_PASSWORD_FILE", ""),
		MetricsAddr:      p.String("INVOICEHUB_METRICS_ADDR", ":9090"),
		Streams: streams.Config{
			Replicas:        p.Int("INVOICEHUB_STREAM_REPLICAS", 1, 1, 5),
			DuplicateWindow: p.Duration("INVOICEHUB_DUPLICATE_WINDOW", 2*time.Minute),
			LedgerMaxBytes:  int64(p.Int("INVOICEHUB_LEDGER_MAX_BYTES", streams.DefaultLedgerMaxBytes, 1<<20, 1<<40)),
			LedgerMaxAge:    p.Duration("INVOICEHUB_LEDGER_MAX_AGE", 7*24*time.Hour),
		},
		ShutdownGrace: p.Duration("INVOICEHUB_SHUTDOWN_GRACE", 25*time.Second),
		AckWait:       p.Duration("INVOICEHUB_ACK_WAIT", 5*time.Second),
		PullHeartbeat: p.Duration("INVOICEHUB_PULL_HEARTBEAT", 5*time.Second),
		Secrets:       Secrets{Getenv: getenv, ReadFile: readFile},
	}
	switch v := p.String("INVOICEHUB_PPROF", "off"); v {
	case "on":
		c.Pprof = true
	case "off":
	default:
		p.Fail("INVOICEHUB_PPROF %q: want on or off", v)
	}
	if err := c.LogLevel.UnmarshalText([]byte(p.String("INVOICEHUB_LOG_LEVEL", "info"))); err != nil {
		p.Fail("INVOICEHUB_LOG_LEVEL: want debug, info, warn or error")
	}
	switch f := p.String("INVOICEHUB_LOG_FORMAT", "json"); f {
	case "json":
		c.LogJSON = true
	case "text":
	default:
		p.Fail("INVOICEHUB_LOG_FORMAT %q: want text or json", f)
	}
	switch {
	case (c.NATSUser == "") != (c.NATSPasswordFile == ""):
		p.Fail("INVOICEHUB_NATS_USER and INVOICEHUB_NATS_PASSWORD_FILE go together")
	case c.NATSUser != "":
		pw, err := c.Secrets.Resolve(SecretRef{File: c.NATSPasswordFile})
		if err != nil {
			p.Fail("INVOICEHUB_NATS_PASSWORD_FILE: %v", err)
		}
		c.natsPassword = string(pw)
	}
	return c, p.Err()
}

// ParseFile reads the file the required variable name names and parses
// it; its problems come prefixed with the variable or the file's name.
func ParseFile[T any](getenv Env, readFile ReadFile, name string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	file := getenv(name)
	if file == "" {
		return zero, fmt.Errorf("%s is required", name)
	}
	body, err := readFile(file)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", name, err)
	}
	v, err := parse(bytes.NewReader(body))
	if err != nil {
		return zero, fmt.Errorf("%s: %w", file, err)
	}
	return v, nil
}

// Parser reads typed environment values and collects every problem.
type Parser struct {
	Getenv Env
	errs   []error
}

// Fail records a problem.
func (p *Parser) Fail(format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf(format, args...))
}

// Err returns every recorded problem, joined, or nil.
func (p *Parser) Err() error { return errors.Join(p.errs...) }

// String returns the variable or def when it is unset.
func (p *Parser) String(name, def string) string {
	if v := strings.TrimSpace(p.Getenv(name)); v != "" {
		return v
	}
	return def
}

// Int returns the variable as an integer in [lo, hi], or def when unset.
func (p *Parser) Int(name string, def, lo, hi int) int {
	v := p.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.Fail("%s=%q: want an integer from %d to %d", name, v, lo, hi)
		return def
	}
	return n
}

// Duration returns the variable as a positive duration, or def when unset.
func (p *Parser) Duration(name string, def time.Duration) time.Duration {
	v := p.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.Fail("%s=%q: want a positive duration such as 500ms or 2m", name, v)
		return def
	}
	return d
}

// quoted matches what YAML errors quote of a document: `value` (cut to
// seven characters and "..." when longer), the widest match on a line
// first, so that a backtick inside the value does not end it.
var quoted = regexp.MustCompile("`.*`|`[^`]*`")

// YAMLError returns a YAML decoding error without the values it quotes: a
// configuration file may hold a secret where a reference was expected,
// and an error is logged and printed.
func YAMLError(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(quoted.ReplaceAllString(err.Error(), "`…`"))
}

// Logger returns the stage's logger writing to w.
func (c Config) Logger(w io.Writer, stageName string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.LogJSON {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("stage", stageName)
}

// Connect connects to NATS (reconnecting forever, see ConnectOptions).
// Streams and consumers are the setup step's (`invoicehub setup`): a
// stage's user may not create them.
func (c Config) Connect(ctx context.Context, name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := ConnectOptions(name, log)
	if c.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(c.NATSCreds))
	}
	if c.NATSUser != "" {
		opts = append(opts, nats.UserInfo(c.NATSUser, c.natsPassword))
	}
	nc, err := nats.Connect(c.NATSURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("stage: connect %s: %w", RedactURLs(c.NATSURL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("stage: jetstream: %w", err)
	}
	return nc, js, nil
}

// RedactURL renders u without what may carry a credential, for every
// log line, error, ledger entry, dead letter, notification and command
// output that names a URL: the password of its user info, every path
// segment (Slack-style webhook URLs carry their secret in the path) and
// every query value become placeholders, and the fragment goes; scheme,
// user, host and port stay, enough to tell targets apart.
func RedactURL(u *url.URL) string {
	c := *u
	c.Fragment, c.RawFragment = "", ""
	if len(c.RawQuery) > 0 {
		q := c.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		c.RawQuery = q.Encode()
	}
	if c.Path != "" || c.RawPath != "" {
		segments := strings.Split(strings.TrimPrefix(c.EscapedPath(), "/"), "/")
		for i, seg := range segments {
			if seg != "" {
				segments[i] = "REDACTED"
			}
		}
		c.Path, c.RawPath = "/"+strings.Join(segments, "/"), ""
	}
	c.Opaque = ""
	return c.Redacted()
}

// RedactURLs renders a comma-separated list of NATS URLs with RedactURL
// (nats://admin:xxxxx@host), for errors and logs.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = RedactURL(u)
		} else {
			parts[i] = "(a URL that does not parse)"
		}
	}
	return strings.Join(parts, ",")
}

// DrainTimeout bounds how long a stage's exit waits for its connection to
// drain.
const DrainTimeout = 5 * time.Second

// Drain drains nc and waits, at most timeout, for it to close: what it
// still had to send (acks, ledger entries) leaves before the process
// exits. nats.Conn.Drain alone returns at once.
func Drain(nc *nats.Conn, timeout time.Duration) {
	closed := nc.StatusChanged(nats.CLOSED)
	defer nc.RemoveStatusListener(closed)
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
	}
}

// PingInterval and MaxPingsOutstanding bound how long a stage stays on a
// server that stopped answering (ConnectOptions).
const (
	PingInterval        = time.Second
	MaxPingsOutstanding = 2
)

// ConnectOptions are the options of every stage's NATS connection:
// reconnecting forever, every half second; a server that stops answering
// (frozen, cut off) noticed within PingInterval × (MaxPingsOutstanding+1),
// 3 s, and left for another node of the cluster (the client's default is
// 2 minutes, during which a stage connected to a frozen node stalls);
// keeping nothing published while disconnected to send later
// (ReconnectBufSize -1: a publish then fails at once, so ingress never
// stores later a webhook it answered 503); replies on the stage's own
// inbox prefix, _INBOX_<name>, the only replies its NATS user may read
// (deploy/nats/auth.conf).
func ConnectOptions(name string, log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.Name("invoicehub-" + name), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond), nats.ReconnectBufSize(-1),
		nats.PingInterval(PingInterval), nats.MaxPingsOutstanding(MaxPingsOutstanding),
		nats.CustomInboxPrefix(InboxPrefix(name)),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrl()) }),
	}
}

// InboxPrefix is the reply subject prefix of a stage's connection.
func InboxPrefix(name string) string { return "_INBOX_" + name }

// Registry returns a metrics registry with the Go and process collectors.
func Registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Main runs a stage's run function with a context that ends on SIGINT or
// SIGTERM, again while it returns CodeReconnect (Rerun), and exits with
// its code. Every binary's main is this one line.
func Main(run func(ctx context.Context, getenv Env, stderr io.Writer) int) {
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Rerun(ctx, os.Stderr, func() int { return run(ctx, os.Getenv, os.Stderr) })
	stop()
	os.Exit(code)
}

// GC defaults of the stages, unless GOGC or GOMEMLIMIT say otherwise: a
// stage's live heap is a few MiB of short-lived messages, so collecting
// at every doubling spends a tenth of its CPU on the collector. It
// collects at GCPercent (the heap five times the live one) and, before
// its heap reaches MemoryLimit, harder (ingress may hold 256 bodies of up
// to 1 MiB per source at once: a lower limit would have it collect
// without end under such a load).
const (
	GCPercent   = 400
	MemoryLimit = 256 << 20
)

func tuneGC(getenv Env) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(MemoryLimit)
	}
}

// Register registers collectors with reg; a nil reg registers nothing (a
// component built without metrics, as in tests).
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("stage: register metrics: %w", err)
		}
	}
	return nil
}

// Tracing sets up OpenTelemetry for the stage (see package tracing) and
// returns the function that flushes the spans at shutdown. A tracing
// problem is logged, never fatal.
func Tracing(ctx context.Context, name string, getenv Env, log *slog.Logger) (flush func()) {
	shutdown, err := tracing.Setup(ctx, name, getenv)
	if err != nil {
		log.Warn("tracing disabled", "err", err)
		return func() {}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("flushing spans", "err", err)
		}
	}
}
