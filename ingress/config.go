package ingress

import (
	"errors"
	"io"
	"time"

	"github.com/invoicehub/invoicehub/internal/stage"
)

// Config is the ingress binary's configuration. Besides the common stage
// variables (package stage) it reads:
//
//	INVOICEHUB_HTTP_ADDR        where webhooks are received [:8080]
//	INVOICEHUB_SOURCES_FILE     the sources file (required; see ParseSources)
//	INVOICEHUB_PUBLISH_TIMEOUT  PubAck deadline before answering 503 [750ms]
//	INVOICEHUB_RETRY_AFTER      Retry-After sent with a 503 or 429 [1s]
//	INVOICEHUB_MAX_CONNECTIONS  connections served at once; more are answered 503 [4096]
//	INVOICEHUB_MAX_IN_FLIGHT_PER_SOURCE  one source's requests at once; more get 503 [256]
//
// /metrics, /healthz and /readyz are served on INVOICEHUB_METRICS_ADDR,
// apart from the webhook port.
type Config struct {
	Stage          stage.Config
	HTTPAddr       string
	MaxConnections int
	Sources        []Source
	Options        Options
}

// LoadConfig reads the configuration and the sources file, returning every
// problem at once.
func LoadConfig(getenv stage.Env, readFile stage.ReadFile) (Config, error) {
	common, commonErr := stage.Load(getenv, readFile)
	p := &stage.Parser{Getenv: getenv}
	c := Config{
		Stage:          common,
		HTTPAddr:       p.String("INVOICEHUB_HTTP_ADDR", ":8080"),
		MaxConnections: p.Int("INVOICEHUB_MAX_CONNECTIONS", 4096, 16, 1<<20),
		Options: Options{
			PublishTimeout:       p.Duration("INVOICEHUB_PUBLISH_TIMEOUT", 750*time.Millisecond),
			RetryAfter:           p.Duration("INVOICEHUB_RETRY_AFTER", time.Second),
			MaxInFlightPerSource: p.Int("INVOICEHUB_MAX_IN_FLIGHT_PER_SOURCE", 256, 1, 1<<16),
		},
	}
	errs := []error{commonErr, p.Err()}
	sources, err := stage.ParseFile(getenv, readFile, "INVOICEHUB_SOURCES_FILE", func(r io.Reader) ([]Source, error) { return ParseSources(r, common.Secrets) })
	c.Sources = sources
	errs = append(errs, err)
	return c, errors.Join(errs...)
}
