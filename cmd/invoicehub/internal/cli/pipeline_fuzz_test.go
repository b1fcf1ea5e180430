package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/normalizer"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// FuzzPipeline posts webhook bodies, signed with the dev key, through the
// whole pipeline in one process (invoicehub dev: ingress, the normalizer,
// the file and SQLite sinks, on an embedded JetStream), each followed by
// an ordinary invoice (the control), and asserts after each:
//
//   - the control reaches both sinks: no input halts the pipeline;
//   - every stored webhook is settled by the normalizer, as canonical
//     events, a dead letter with its reason, or a documented no-op
//     (not about an invoice, a repeat, a stale version);
//   - no sink dead-letters anything, and both sinks hold exactly the
//     canonical events INVOICES holds: no sink rejects what another stored.
//
// Its seeds are the providers' documented fixtures
// (normalizer/testdata/raw) and the samples of `invoicehub send`.
func FuzzPipeline(f *testing.F) {
	for _, s := range pipelineSeeds(f) {
		f.Add(s.provider, s.eventType, s.body)
	}
	p := startFuzzPipeline(f)
	f.Fuzz(func(t *testing.T, providerName, eventType string, body []byte) {
		if _, ok := provider.Lookup(providerName); !ok {
			providerName = "qonto"
		}
		if strings.ContainsFunc(eventType, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return // no HTTP client sends such a header
		}
		p.post(t, providerName, eventType, body)
		p.post(t, "qonto", "", p.control(t))
		p.check(t)
	})
}

type pipelineSeed struct {
	provider, eventType string
	body                []byte
}

// pipelineSeeds are the documented fixtures of every provider with the
// event type their headers carry, and the send samples.
func pipelineSeeds(f *testing.F) []pipelineSeed {
	var seeds []pipelineSeed
	files, _ := filepath.Glob("../../../../normalizer/testdata/raw/*/*.json")
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		headers := map[string]string{}
		if side, err := os.ReadFile(strings.TrimSuffix(file, ".json") + ".headers"); err == nil {
			json.Unmarshal(side, &headers)
		}
		typ := headers["X-Event-Type"]
		if e := headers["X-Rillet-Entity"]; e != "" {
			typ = e + "." + headers["X-Rillet-Event"]
		}
		seeds = append(seeds, pipelineSeed{filepath.Base(filepath.Dir(file)), typ, body})
	}
	if len(seeds) < 40 {
		f.Fatalf("only %d documented fixtures found", len(seeds))
	}
	seeds = append(seeds, hostileSeeds(f)...)
	for _, name := range samplers() {
		body, typ, err := samples[name](sampleParams{EventID: uuid.NewString(), InvoiceID: uuid.NewString(), At: time.Now().UTC()})
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, pipelineSeed{name, typ, body})
	}
	return seeds
}

// hostileSeeds are the send samples made hostile as issue 32 found them:
// each once halted, split or altered the pipeline.
func hostileSeeds(f *testing.F) []pipelineSeed {
	at := time.Now().UTC()
	var seeds []pipelineSeed
	for _, h := range []struct {
		provider string
		mutate   func(data map[string]any)
	}{
		{"standardwebhooks", func(d map[string]any) { d["remote_id"] = strings.Repeat("r", 4200) }},
		{"standardwebhooks", func(d map[string]any) { d["memo"] = "a\x00b" }},
		{"standardwebhooks", func(d map[string]any) { d["due_date"] = "2026-02-30" }},
		{"standardwebhooks", func(d map[string]any) { d["memo"] = strings.Repeat("<", 201_000) }},
		{"standardwebhooks", func(d map[string]any) { d["remote_id"] = "F-1\r\nX: 1" }},
		{"qonto", func(d map[string]any) { d["total_amount"] = map[string]string{"value": "1440.001", "currency": "EUR"} }},
		{"qonto", func(d map[string]any) { d["id"] = strings.Repeat("q", 4200) }},
		{"qonto", func(d map[string]any) { d["items"] = slices.Repeat([]any{map[string]any{}}, 20_000) }},
	} {
		body, _, err := samples[h.provider](sampleParams{EventID: uuid.NewString(), InvoiceID: uuid.NewString(), At: at})
		if err != nil {
			f.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			f.Fatal(err)
		}
		h.mutate(doc["data"].(map[string]any))
		b, err := schemas.EncodeJSON(doc)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, pipelineSeed{h.provider, "", b})
	}
	return seeds
}

// fuzzPipeline is a running dev pipeline and what the checks read.
type fuzzPipeline struct {
	d  *dev
	js jetstream.JetStream
	db *sql.DB
}

func startFuzzPipeline(f *testing.F) *fuzzPipeline {
	cfg := devConfig{dataDir: f.TempDir(), httpAddr: "127.0.0.1:0", natsPort: -1, grace: 5 * time.Second}
	d, err := startDev(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.shutdown() })
	js, err := jetstream.New(d.nc)
	if err != nil {
		f.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+d.sinkDB+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	return &fuzzPipeline{d: d, js: js, db: db}
}

// post signs body as the provider's demo source would send it, with a new
// event id, and posts it; any answer is fine (a refusal stores nothing).
func (p *fuzzPipeline) post(t *testing.T, providerName, eventType string, body []byte) {
	t.Helper()
	prov, _ := provider.Lookup(providerName)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, p.d.httpURL+"/webhooks/"+providerName+"/"+DevSource, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = prov.Sign(devCredentials(prov), provider.Message{Body: body, At: time.Now(), ID: uuid.NewString(), Type: eventType})
	resp, err := fuzzClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		t.Fatalf("ingress answered %d: the pipeline is not taking webhooks", resp.StatusCode)
	}
}

var fuzzClient = &http.Client{Timeout: 10 * time.Second}

// control is an ordinary Qonto invoice, new each time.
func (p *fuzzPipeline) control(t *testing.T) []byte {
	body, _, err := qontoSample(sampleParams{EventID: uuid.NewString(), InvoiceID: uuid.NewString(), At: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// check waits, at most 20 s, until the normalizer has settled every stored
// webhook and both sinks hold what INVOICES holds, then checks the dead
// letters.
func (p *fuzzPipeline) check(t *testing.T) {
	t.Helper()
	var why string
	jstest.Eventually(t, 20*time.Second, "the pipeline settled, both sinks holding INVOICES", func() bool {
		why = p.settled(t)
		return why == ""
	})
	dls, err := jstest.ReadAll(t.Context(), p.js, subject.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range dls {
		if strings.HasPrefix(m.Subject, "dlq.sink.") {
			t.Fatalf("a sink dead-lettered %s: %s (%s)", m.Header.Get(consume.HeaderKey), m.Header.Get(consume.HeaderReason), m.Subject)
		}
		if m.Header.Get(consume.HeaderReason) == "" || m.Header.Get(consume.HeaderErrorClass) == "" {
			t.Fatalf("a dead letter without its reason: %v", m.Header)
		}
	}
}

// settled says what is not settled yet ("" when all is).
func (p *fuzzPipeline) settled(t *testing.T) string {
	c, err := p.js.Consumer(t.Context(), subject.WebhooksStream, normalizer.Config{}.ConsumeConfig().Durable())
	if err != nil {
		return err.Error()
	}
	info, err := c.Info(t.Context())
	if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
		return fmt.Sprintf("normalizer: %v pending", info)
	}
	stream, err := p.js.Stream(t.Context(), subject.InvoicesStream)
	if err != nil {
		return err.Error()
	}
	stored := int(stream.CachedInfo().State.Msgs)
	if n, err := p.count(); err != nil || n != [2]int{stored, stored} {
		return fmt.Sprintf("INVOICES holds %d events, the file and SQLite sinks %v (%v)", stored, n, err)
	}
	events, err := jstest.ReadAll(t.Context(), p.js, subject.InvoicesStream)
	if err != nil {
		return err.Error()
	}
	var want []string
	for _, m := range events {
		want = append(want, m.Header.Get(jetstream.MsgIDHeader))
	}
	slices.Sort(want)
	file, err := p.fileIDs()
	if err != nil || !slices.Equal(file, want) {
		return fmt.Sprintf("file sink: %d events, INVOICES %d (%v)", len(file), len(want), err)
	}
	rows, err := p.sqliteIDs()
	if err != nil || !slices.Equal(rows, want) {
		return fmt.Sprintf("sqlite sink: %d events, INVOICES %d (%v)", len(rows), len(want), err)
	}
	return ""
}

// count is how many events the file and the SQLite sinks hold.
func (p *fuzzPipeline) count() (n [2]int, err error) {
	data, err := os.ReadFile(p.d.sinkFile)
	if err != nil {
		return n, err
	}
	n[0] = bytes.Count(data, []byte("\n"))
	err = p.db.QueryRow(`SELECT count(*) FROM invoice_events`).Scan(&n[1])
	return n, err
}

func (p *fuzzPipeline) fileIDs() ([]string, error) {
	data, err := os.ReadFile(p.d.sinkFile)
	if err != nil {
		return nil, err
	}
	var ids []string
	for line := range bytes.Lines(data) {
		var e struct{ ID string }
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("a line of the file sink: %w", err)
		}
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	return ids, nil
}

func (p *fuzzPipeline) sqliteIDs() ([]string, error) {
	rows, err := p.db.Query(`SELECT event_id FROM invoice_events ORDER BY event_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
