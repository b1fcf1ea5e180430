// Package provider holds the webhook providers ingress accepts: how each
// one's webhooks are authenticated and identified. A provider is one file
// and one entry in the table below.
//
// Verification works on the raw body bytes, compares in constant time, and
// accepts any of a source's secrets (rotation) and, where a provider's
// documentation allows several readings of its scheme, any of those
// (README, "Providers"). Errors wrap ErrUnauthorized (answer 401) or
// ErrMalformed (answer 400) with a short reason that never contains a
// secret.
package provider

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"
)

var (
	// ErrUnauthorized means the webhook is not proven genuine: a missing or
	// wrong signature, or a timestamp outside the tolerance.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrMalformed means the request cannot be read as this provider's webhook.
	ErrMalformed = errors.New("malformed")
)

func unauthorized(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnauthorized, fmt.Sprintf(format, args...))
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Request is what a provider sees of a webhook delivery.
type Request struct {
	Header   http.Header
	Body     []byte
	Received time.Time
}

// Credentials are what a source verifies with.
type Credentials struct {
	// Secrets, any of which may have signed the webhook (rotation), each
	// with the keys it stands for (see Provider.Secret).
	Secrets []Secret
	// Tolerance bounds |signed timestamp − arrival| for timestamped schemes.
	Tolerance time.Duration
	// Mode picks one of the provider's Modes; empty means the first.
	Mode string
	// Header names the header holding the secret in mode "header".
	Header string
	// User is the expected user name in mode "basic".
	User string
}

// modeOr returns the credentials' mode, or def when none is set.
func (c Credentials) modeOr(def string) string {
	if c.Mode == "" {
		return def
	}
	return c.Mode
}

// Evidence records how a webhook was verified.
type Evidence struct {
	// KeyIndex is the index in Credentials.Secrets of the secret that matched.
	KeyIndex int
	// SignedAt is the signed timestamp; zero for unsigned schemes.
	SignedAt time.Time
}

// ClockSkew is the signed timestamp minus the arrival time, or zero.
func (e Evidence) ClockSkew(received time.Time) time.Duration {
	if e.SignedAt.IsZero() {
		return 0
	}
	return e.SignedAt.Sub(received)
}

// Identity is what a webhook says about itself.
type Identity struct {
	// ID is the provider's event id; empty where the provider has none.
	ID string
	// Type is the CloudEvent type of the raw event, e.g.
	// com.qonto.v1/client-invoices.
	Type string
	// Time is when the provider says the event happened; zero if unknown.
	Time time.Time
}

// Message is what a provider would send, for Sign: the body, when, and the
// event id and type where the provider carries them in headers.
type Message struct {
	Body []byte
	At   time.Time
	ID   string
	Type string
}

// Provider authenticates and identifies one provider's webhooks.
type Provider struct {
	Name string
	// Modes lists the authentication modes a source may pick; the first is
	// the default. A provider with one scheme has one mode.
	Modes []string
	// Secret turns a configured secret into the keys Verify tries (its
	// text, its base64 decoding, the key of a whsec_ secret...); it fails
	// on a secret the mode cannot use or that is too short to be one.
	Secret func(mode string, raw []byte) (Secret, error)
	// Verify proves the request genuine with the source's credentials.
	Verify func(req Request, creds Credentials) (Evidence, error)
	// Identify reads the event's id, type and time from a verified request.
	// An empty ID means the provider sends none: ingress derives one.
	Identify func(req Request) (Identity, error)
	// Sign returns the headers that authenticate m as the provider would
	// send it, with the canonical reading of creds.Secrets[0]; for
	// `invoicehub send` and tests.
	Sign func(creds Credentials, m Message) http.Header
	// Headers lists the request headers with meaning that the raw event
	// keeps beside the body.
	Headers []string
}

// table is the one list of providers: a provider is one file and one line.
var table = map[string]Provider{
	mercoa.Name:           mercoa,
	moxie.Name:            moxie,
	qonto.Name:            qonto,
	rillet.Name:           rillet,
	standardWebhooks.Name: standardWebhooks,
}

// Lookup returns the provider called name.
func Lookup(name string) (Provider, bool) {
	p, ok := table[name]
	return p, ok
}

// HasMode reports whether mode is one of the provider's modes.
func (p Provider) HasMode(mode string) bool {
	return mode == "" || slices.Contains(p.Modes, mode)
}

// Names lists the providers, sorted.
func Names() []string {
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
