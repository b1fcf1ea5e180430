package ingress

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/invoicehub/invoicehub/internal/stage"

	"gopkg.in/yaml.v3"

	"github.com/invoicehub/invoicehub/ingress/provider"
)

// Source is one account of one provider that may post webhooks, at
// POST /webhooks/<provider>/<id>.
type Source struct {
	Provider    string
	ID          string
	Credentials provider.Credentials
	// MaxBody caps the request body, in bytes; 0 means the largest that
	// fits NATS's max_payload, at most DefaultMaxBody (see New).
	MaxBody int64
}

// Defaults and bounds of a source.
const (
	DefaultTolerance = 5 * time.Minute
	DefaultMaxBody   = 1 << 20 // 1 MiB
	maxMaxBody       = 16 << 20
)

// sourcesFile is the YAML shape of the sources file:
//
//	sources:
//	  - provider: qonto
//	    id: acme
//	    secrets:                 # any of them verifies (rotation)
//	      - env: QONTO_ACME_SECRET
//	      - file: /run/secrets/qonto-acme-previous
//	    tolerance: 5m            # optional
//	    max_body: 1048576        # optional, bytes
//	    mode: hmac               # optional: the provider's authentication mode
//	    header: X-Webhook-Token  # mode header: the header carrying the secret
//	    user: moxie              # mode basic: the expected user name
//
// Modes: rillet auto (default: every reading of the token), base64 or raw;
// mercoa standardwebhooks (default), header or basic; moxie bearer
// (default), basic or header; the others have one. Secrets are
// references, never inline values.
type sourcesFile struct {
	Sources []struct {
		Provider  string `yaml:"provider"`
		ID        string `yaml:"id"`
		Secrets   []stage.SecretRef
		Tolerance string `yaml:"tolerance"`
		MaxBody   int64  `yaml:"max_body"`
		Mode      string `yaml:"mode"`
		Header    string `yaml:"header"`
		User      string `yaml:"user"`
	} `yaml:"sources"`
}

var (
	sourceIDSyntax = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	headerName     = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

// ParseSources reads a sources file, resolving its secret references with
// secrets. It returns every problem found, joined, and no sources if
// there is any.
func ParseSources(r io.Reader, secrets stage.Secrets) ([]Source, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var f sourcesFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("sources: %w", stage.YAMLError(err))
	}
	var errs []error
	var out []Source
	seen := map[string]bool{}
	for i, s := range f.Sources {
		where := fmt.Sprintf("sources[%d] (%s/%s)", i, s.Provider, s.ID)
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
		}
		p, known := provider.Lookup(s.Provider)
		if !known {
			fail("unknown provider %q (known: %s)", s.Provider, strings.Join(provider.Names(), ", "))
		}
		mode := s.Mode
		if known && mode == "" {
			mode = p.Modes[0]
		}
		if known && !p.HasMode(mode) {
			fail("mode %q: want one of %s", s.Mode, strings.Join(p.Modes, ", "))
		}
		switch {
		case mode == "header" && !headerName.MatchString(s.Header):
			fail("mode header needs header: the name of the header carrying the secret")
		case mode != "header" && s.Header != "":
			fail("header is only for mode header")
		case mode == "basic" && s.User == "":
			fail("mode basic needs user")
		case mode != "basic" && s.User != "":
			fail("user is only for mode basic")
		}
		if !sourceIDSyntax.MatchString(s.ID) {
			fail("id must be 1-64 of a-z, 0-9, '-', '_'")
		}
		if key := s.Provider + "/" + s.ID; seen[key] {
			fail("declared twice")
		} else {
			seen[key] = true
		}
		src := Source{Provider: s.Provider, ID: s.ID, MaxBody: s.MaxBody, Credentials: provider.Credentials{
			Tolerance: DefaultTolerance, Mode: mode, Header: s.Header, User: s.User,
		}}
		if s.Tolerance != "" {
			d, err := time.ParseDuration(s.Tolerance)
			if err != nil || d <= 0 || d > time.Hour {
				fail("tolerance %q: want a duration in (0, 1h]", s.Tolerance)
			}
			src.Credentials.Tolerance = d
		}
		if src.MaxBody < 0 || src.MaxBody > maxMaxBody {
			fail("max_body %d: want 1 to %d bytes", s.MaxBody, maxMaxBody)
		}
		if len(s.Secrets) == 0 {
			fail("no secrets")
		}
		for j, ref := range s.Secrets {
			raw, err := secrets.Resolve(ref)
			if err != nil {
				fail("secrets[%d]: %v", j, err)
				continue
			}
			if !known {
				continue
			}
			secret, err := p.Secret(mode, raw)
			if err != nil {
				fail("secrets[%d] (%s): %v", j, ref, err)
				continue
			}
			src.Credentials.Secrets = append(src.Credentials.Secrets, secret)
		}
		out = append(out, src)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
