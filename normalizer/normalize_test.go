package normalizer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/invoicehub/invoicehub/normalizer/mapper"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// received is when the test pretends ingress received every fixture.
var received = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// rawEvent builds the raw CloudEvent ingress would archive for a fixture,
// identified as ingress identifies each provider's webhooks (package
// ingress/provider): the body, and the provider headers of its optional
// .headers sidecar.
func rawEvent(t testing.TB, providerName string, body []byte, headers map[string]string) (*event.Event, nats.Header) {
	t.Helper()
	r := ce.Raw{Provider: providerName, Source: "acme", Body: body, Time: received}
	var env struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		CreatedAt string          `json:"created_at"`
		Timestamp string          `json:"timestamp"`
		EventType string          `json:"eventType"`
		Data      json.RawMessage `json:"data"`
	}
	json.Unmarshal(body, &env)
	bodyTime := func(s string) {
		if at, err := time.Parse(time.RFC3339Nano, s); err == nil {
			r.Time = at
		}
	}
	switch providerName {
	case "qonto":
		r.ID, r.Type = env.ID, "com.qonto."+env.Type
		if env.Type == "" && env.Data == nil { // the bare client invoice: no id, topic or time
			r.ID, r.Type = "", "com.qonto.v1/client-invoices"
			break
		}
		bodyTime(env.CreatedAt)
	case "rillet":
		word := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
		r.ID = headers["X-Rillet-Id"]
		r.Type = "com.rillet." + word(headers["X-Rillet-Entity"]) + "." + word(headers["X-Rillet-Event"])
		bodyTime(headers["X-Rillet-Timestamp"])
	case "mercoa":
		r.ID, r.Type = headers["Webhook-Id"], "com.mercoa."+env.EventType
	case "moxie":
		r.Type = "com.moxie." + ce.DottedName(headers["X-Event-Type"])
	case "standardwebhooks":
		r.ID, r.Type = headers["Webhook-Id"], "com.standardwebhooks."+env.Type
		bodyTime(env.Timestamp)
	default:
		t.Fatalf("no fixture reader for %s", providerName)
	}
	if r.ID == "" { // as ingress derives it: from the content
		sum := sha256.Sum256(append([]byte(r.Type), body...))
		r.ID = hex.EncodeToString(sum[:])
	}
	if r.Type == "" || strings.HasSuffix(r.Type, ".") {
		r.Type = "com." + providerName + ".unknown"
	}
	e, err := ce.NewRaw(r)
	if err != nil {
		t.Fatal(err)
	}
	h := nats.Header{}
	for k, v := range headers {
		h.Set(ce.ProviderHeaderPrefix+strings.ToLower(k), v)
	}
	return &e, h
}

// fixture reads a fixture body and its optional headers sidecar.
func fixture(t testing.TB, path string) (providerName string, body []byte, headers map[string]string) {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if sidecar, err := os.ReadFile(strings.TrimSuffix(path, ".json") + ".headers"); err == nil {
		if err := json.Unmarshal(sidecar, &headers); err != nil {
			t.Fatalf("%s.headers: %v", path, err)
		}
	}
	return filepath.Base(filepath.Dir(path)), body, headers
}

// normalizeFixture normalizes a fixture as a first sighting (no state).
func normalizeFixture(t testing.TB, path string, seq uint64) (Output, error) {
	t.Helper()
	p, body, headers := fixture(t, path)
	raw, h := rawEvent(t, p, body, headers)
	return Normalize(raw, h, schemas.RawRef{Stream: "WEBHOOKS", Sequence: seq}, nil, Options{})
}

// fixtureSeq is the WEBHOOKS sequence a golden fixture is read at: stable
// per fixture, so adding one does not rewrite the others.
func fixtureSeq(name string) uint64 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return uint64(h.Sum32()%1_000_000) + 1
}

type goldenEvent struct {
	Subject string          `json:"nats_subject"`
	Event   json.RawMessage `json:"cloudevent"`
}

func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/raw/*/*.json") // .headers sidecars are not .json
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, file := range files {
		providerName := filepath.Base(filepath.Dir(file))
		name := providerName + "/" + strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			out, err := normalizeFixture(t, file, fixtureSeq(name))
			if err != nil {
				t.Fatal(err)
			}
			got := []goldenEvent{}
			for _, c := range out.Events {
				if err := schemas.Validate(c.Msg.Data); err != nil {
					t.Fatalf("%s: %v", c.ID(), err)
				}
				e, err := ce.FromMsg(t.Context(), c.Msg) // the event as subscribers read it
				if err != nil {
					t.Fatal(err)
				}
				enc, err := json.Marshal(e)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, goldenEvent{Subject: c.Msg.Subject, Event: enc})
			}
			gotJSON, _ := json.MarshalIndent(got, "", "  ")
			gotJSON = append(gotJSON, '\n')
			goldenPath := filepath.Join("testdata", "golden", name+".json")
			if *update {
				os.MkdirAll(filepath.Dir(goldenPath), 0o755)
				if err := os.WriteFile(goldenPath, gotJSON, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(gotJSON, want) {
				t.Fatalf("canonical events differ from %s (go test -update rewrites it):\n%s", goldenPath, gotJSON)
			}
		})
	}
}

func TestBadPayloadsAreClassified(t *testing.T) {
	want := map[string]error{
		"qonto/malformed-json":                   mapper.ErrMalformedJSON,
		"qonto/unknown-event-type":               mapper.ErrUnknownEventType,
		"qonto/currency-mismatch":                mapper.ErrUnmappable,
		"qonto/amount-as-float-garbage":          mapper.ErrUnmappable,
		"qonto/unknown-currency":                 mapper.ErrUnmappable,
		"qonto/no-invoice":                       mapper.ErrUnmappable,
		"rillet/amount-mixed-currency":           mapper.ErrUnmappable,
		"rillet/bill-mixed-currency":             mapper.ErrUnmappable,
		"rillet/invoice-unknown-event":           mapper.ErrUnknownEventType,
		"mercoa/amount-out-of-range":             mapper.ErrUnmappable,
		"mercoa/invoice-unknown-event":           mapper.ErrUnknownEventType,
		"moxie/payment-without-settled-payment":  mapper.ErrUnmappable,
		"moxie/unknown-event":                    mapper.ErrUnknownEventType,
		"standardwebhooks/money-as-number":       mapper.ErrUnmappable,
		"standardwebhooks/total-off-scale":       mapper.ErrUnmappable,
		"standardwebhooks/no-remote-id":          mapper.ErrUnmappable,
		"standardwebhooks/unknown-invoice-event": mapper.ErrUnknownEventType,
	}
	files, _ := filepath.Glob("testdata/bad/*/*.json")
	if len(files) != len(want) {
		t.Fatalf("%d bad fixtures, %d expectations", len(files), len(want))
	}
	for _, file := range files {
		name := filepath.Base(filepath.Dir(file)) + "/" + strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			_, err := normalizeFixture(t, file, 1)
			if !errors.Is(err, want[name]) {
				t.Fatalf("got %v, want class %v", err, want[name])
			}
		})
	}
}

// TestGenuineEventsNotAboutInvoicesAreSkipped: every fixture under
// testdata/skip (a provider's documented event about a client, a
// transaction, a vendor...) is skipped: no event, no state, no error.
func TestGenuineEventsNotAboutInvoicesAreSkipped(t *testing.T) {
	files, _ := filepath.Glob("testdata/skip/*/*.json")
	if len(files) < 40 {
		t.Fatalf("only %d skip fixtures", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimPrefix(file, "testdata/skip/"), func(t *testing.T) {
			out, err := normalizeFixture(t, file, 1)
			if err != nil || out.Outcome != OutcomeSkipped || len(out.Events) != 0 || out.State != nil {
				t.Fatalf("outcome %s, %d events, state %v, err %v", out.Outcome, len(out.Events), out.State != nil, err)
			}
		})
	}
}

func TestUnknownProvider(t *testing.T) {
	e, _ := ce.NewRaw(ce.Raw{Provider: "nobody", Source: "x", Type: "com.nobody.x", ID: "1", Time: received, Body: []byte("{}")})
	if _, err := Normalize(&e, nil, schemas.RawRef{Stream: "WEBHOOKS", Sequence: 1}, nil, Options{}); !errors.Is(err, ErrUnknownProvider) {
		t.Fatalf("got %v", err)
	}
}

func TestNormalizeIsDeterministic(t *testing.T) {
	a, err := normalizeFixture(t, "testdata/raw/qonto/updated-paid.json", 3)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := normalizeFixture(t, "testdata/raw/qonto/updated-paid.json", 3)
	if a.Events[0].ID() != b.Events[0].ID() || !bytes.Equal(a.Events[0].Msg.Data, b.Events[0].Msg.Data) {
		t.Fatal("the same raw event gave different canonical events")
	}
}

// fuzzMapper feeds one provider's mapper arbitrary bodies, seeded with its
// fixtures: no panic, and the output is schema-valid or a classified error.
func fuzzMapper(f *testing.F, providerName string) {
	files, _ := filepath.Glob("testdata/*/" + providerName + "/*.json")
	var headers map[string]string
	for _, file := range files {
		_, body, h := fixture(f, file)
		f.Add(body)
		if h != nil {
			headers = h
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		raw, h := rawEvent(t, providerName, body, headers)
		out, err := Normalize(raw, h, schemas.RawRef{Stream: "WEBHOOKS", Sequence: 1}, nil, Options{})
		if err != nil {
			if Class(err) == "internal" {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		for _, c := range out.Events {
			if err := schemas.Validate(c.Msg.Data); err != nil {
				t.Fatalf("schema-invalid output: %v", err)
			}
		}
	})
}

func FuzzMapQonto(f *testing.F)            { fuzzMapper(f, "qonto") }
func FuzzMapRillet(f *testing.F)           { fuzzMapper(f, "rillet") }
func FuzzMapMercoa(f *testing.F)           { fuzzMapper(f, "mercoa") }
func FuzzMapMoxie(f *testing.F)            { fuzzMapper(f, "moxie") }
func FuzzMapStandardWebhooks(f *testing.F) { fuzzMapper(f, "standardwebhooks") }
