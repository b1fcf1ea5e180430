package normalizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/invoicehub/invoicehub/normalizer/mapper"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// received is when the test pretends ingress received every fixture.
var received = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// rawEvent builds the raw CloudEvent ingress would archive for a fixture.
func rawEvent(t testing.TB, providerName string, body []byte) *event.Event {
	t.Helper()
	r := ce.Raw{Provider: providerName, Source: "acme", Body: body, Time: received}
	switch providerName {
	case "qonto":
		var env struct{ ID, EventType, CreatedAt string }
		json.Unmarshal(body, &struct {
			ID        *string `json:"id"`
			EventType *string `json:"event_type"`
			CreatedAt *string `json:"created_at"`
		}{&env.ID, &env.EventType, &env.CreatedAt})
		r.ID, r.Type = env.ID, "com.qonto."+env.EventType
		if at, err := time.Parse(time.RFC3339, env.CreatedAt); err == nil {
			r.Time = at
		}
	default:
		t.Fatalf("no fixture reader for %s", providerName)
	}
	if r.ID == "" {
		r.ID = "fixture-without-id"
	}
	if r.Type == "" || strings.HasSuffix(r.Type, ".") {
		r.Type = "com." + providerName + ".unknown"
	}
	e, err := ce.NewRaw(r)
	if err != nil {
		t.Fatal(err)
	}
	return &e
}

type goldenEvent struct {
	Subject string          `json:"nats_subject"`
	Event   json.RawMessage `json:"cloudevent"`
}

func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/raw/*/*.json")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for i, file := range files {
		providerName := filepath.Base(filepath.Dir(file))
		name := providerName + "/" + strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Normalize(rawEvent(t, providerName, body), nil, schemas.RawRef{Stream: "WEBHOOKS", Sequence: uint64(i + 1)})
			if err != nil {
				t.Fatal(err)
			}
			var got []goldenEvent
			for _, c := range out {
				if err := schemas.Validate(c.Event.Data()); err != nil {
					t.Fatalf("%s: %v", c.Event.ID(), err)
				}
				enc, err := json.Marshal(c.Event)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, goldenEvent{Subject: c.Subject, Event: enc})
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
		"malformed-json":          mapper.ErrMalformedJSON,
		"unknown-event-type":      mapper.ErrUnknownEventType,
		"currency-mismatch":       mapper.ErrUnmappable,
		"amount-as-float-garbage": mapper.ErrUnmappable,
		"unknown-currency":        mapper.ErrUnmappable,
		"no-invoice":              mapper.ErrUnmappable,
	}
	files, _ := filepath.Glob("testdata/bad/*/*.json")
	if len(files) != len(want) {
		t.Fatalf("%d bad fixtures, %d expectations", len(files), len(want))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			body, _ := os.ReadFile(file)
			_, err := Normalize(rawEvent(t, filepath.Base(filepath.Dir(file)), body), nil, schemas.RawRef{Stream: "WEBHOOKS", Sequence: 1})
			if !errors.Is(err, want[name]) {
				t.Fatalf("got %v, want class %v", err, want[name])
			}
		})
	}
}

func TestUnknownProvider(t *testing.T) {
	e, _ := ce.NewRaw(ce.Raw{Provider: "nobody", Source: "x", Type: "com.nobody.x", ID: "1", Time: received, Body: []byte("{}")})
	if _, err := Normalize(&e, nil, schemas.RawRef{Stream: "WEBHOOKS", Sequence: 1}); !errors.Is(err, ErrUnknownProvider) {
		t.Fatalf("got %v", err)
	}
}

func TestNormalizeIsDeterministic(t *testing.T) {
	body, _ := os.ReadFile("testdata/raw/qonto/updated-paid.json")
	a, err := Normalize(rawEvent(t, "qonto", body), nil, schemas.RawRef{Stream: "WEBHOOKS", Sequence: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Normalize(rawEvent(t, "qonto", body), nil, schemas.RawRef{Stream: "WEBHOOKS", Sequence: 3})
	if a[0].Event.ID() != b[0].Event.ID() || !bytes.Equal(a[0].Event.Data(), b[0].Event.Data()) {
		t.Fatal("the same raw event gave different canonical events")
	}
}

func FuzzNormalizeQonto(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/qonto/*.json")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := Normalize(rawEvent(t, "qonto", body), nil, schemas.RawRef{Stream: "WEBHOOKS", Sequence: 1})
		if err != nil {
			if mapper.Class(err) == "internal" {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		for _, c := range out {
			if err := schemas.Validate(c.Event.Data()); err != nil {
				t.Fatalf("schema-invalid output: %v", err)
			}
		}
	})
}
