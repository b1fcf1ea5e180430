package e2e

import (
	"bytes"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/standardwebhooks"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

var updateGolden = flag.Bool("update", false, "rewrite e2e/testdata's golden files")

// opsReceiver is the http sink's and the notifier's target: per invoice
// (data.invoice.remote_id) it answers the statuses it is told, in turn,
// then 200; it keeps the notifications it gets.
type opsReceiver struct {
	srv       *httptest.Server
	key       []byte // verifies the notifications' signatures
	mu        sync.Mutex
	plans     map[string][]int
	delivered map[string]int
	notices   []map[string]any
}

func newOpsReceiver(t *testing.T, key []byte) *opsReceiver {
	r := &opsReceiver{key: key, plans: map[string][]int{}, delivered: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", func(w http.ResponseWriter, req *http.Request) {
		var ev struct {
			Data struct {
				Invoice struct {
					RemoteID string `json:"remote_id"`
				} `json:"invoice"`
			} `json:"data"`
		}
		json.NewDecoder(req.Body).Decode(&ev)
		id := ev.Data.Invoice.RemoteID
		r.mu.Lock()
		defer r.mu.Unlock()
		if plan := r.plans[id]; len(plan) > 0 {
			r.plans[id] = plan[1:]
			w.WriteHeader(plan[0])
			return
		}
		r.delivered[id]++
	})
	mux.HandleFunc("POST /notify", func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		want := standardwebhooks.Signature(r.key, req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), body)
		got, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(req.Header.Get("webhook-signature"), "v1,"))
		if !hmac.Equal(got, want) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var n map[string]any
		json.Unmarshal(body, &n)
		r.mu.Lock()
		r.notices = append(r.notices, n)
		r.mu.Unlock()
	})
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *opsReceiver) plan(invoice string, statuses ...int) {
	r.mu.Lock()
	r.plans[invoice] = statuses
	r.mu.Unlock()
}

func (r *opsReceiver) deliveries(invoice string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delivered[invoice]
}

func (r *opsReceiver) noticesSeen() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.notices)
}

const notifySecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestOperatingInvoicehub runs the stages as processes and plays what an
// operator watches: an invoice delivered at once, one delivered after two
// 503s, one dead-lettered (the receiver answers 400), notified, then
// replayed and delivered; and a forged webhook. It checks the values of
// the new metrics on each stage, what `invoicehub trace` prints (golden
// files), `status` and `tail`, and that every metric the alert rules and
// the dashboard use is exported by some stage.
func TestOperatingInvoicehub(t *testing.T) {
	key, _ := standardwebhooks.DecodeSecret(notifySecret)
	recv := newOpsReceiver(t, key)
	dir := t.TempDir()
	sinksFile := fmt.Sprintf("sinks:\n"+
		"  - {id: archive, type: file, options: {path: %q, fsync: never}}\n"+
		"  - {id: hook, type: http, kinds: [created], backoff: {base: 50ms, max: 200ms}, options: {url: %q, allow_private: true, timeout: 2s}}\n"+
		"notify:\n"+
		"  - {id: oncall, options: {url: %q, allow_private: true, secret_env: NOTIFY_WHSEC}}\n",
		filepath.Join(dir, "archive.jsonl"), recv.srv.URL+"/hook", recv.srv.URL+"/notify")
	p := startPipeline(t, pipelineOptions{sinks: sinksFile, metrics: true, env: []string{"NOTIFY_WHSEC=" + notifySecret}})
	js := p.connect()
	d := p.driver(30 * time.Second)
	version := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	send := func(invoice string) {
		t.Helper()
		before := jstest.Count(t, js, subject.InvoicesStream)
		if !d.deliver(invoiceWebhook("evt-"+invoice, invoice, "unpaid", version)) {
			t.Fatalf("%s not accepted", invoice)
		}
		// one at a time, so that stream sequences, and the golden files, are stable
		jstest.Eventually(t, 10*time.Second, invoice+" normalized", func() bool { return jstest.Count(t, js, subject.InvoicesStream) >= before+3 })
	}

	send("inv-ok")
	jstest.Eventually(t, 10*time.Second, "inv-ok delivered", func() bool { return recv.deliveries("inv-ok") == 1 })
	recv.plan("inv-retry", 503, 503)
	send("inv-retry")
	jstest.Eventually(t, 10*time.Second, "inv-retry delivered after two 503s", func() bool { return recv.deliveries("inv-retry") == 1 })
	recv.plan("inv-dead", 400)
	send("inv-dead")
	jstest.Eventually(t, 10*time.Second, "inv-dead dead-lettered and notified", func() bool {
		return jstest.Count(t, js, subject.DLQStream) == 1 && len(recv.noticesSeen()) == 1
	})
	notice := recv.noticesSeen()[0]
	if data, _ := notice["data"].(map[string]any); notice["type"] != "invoicehub.dead_letter" || data["consumer"] != "sink-hook" ||
		data["class"] != "http_400" || data["invoice"] != "qonto:acme:inv-dead" {
		t.Fatalf("notice %v", notice)
	}
	scrapeUntil(t, p.metrics["sinks"], `invoicehub_dlq_messages{consumer="sink-hook"}`, 1)

	if out := p.cli(t, "dlq", "-nats", p.natsURL, "replay", "-all", "sink.hook"); !strings.Contains(out, "replayed 1 dead letters") {
		t.Fatalf("dlq replay: %s", out)
	}
	jstest.Eventually(t, 10*time.Second, "inv-dead delivered after the replay", func() bool { return recv.deliveries("inv-dead") == 1 })
	forged := invoiceWebhook("evt-forged", "inv-forged", "unpaid", version)
	if code, _ := newDriver(p.httpURL, "not the secret of this source at all", time.Second).post(forged); code != http.StatusUnauthorized {
		t.Fatalf("forged webhook: %d", code)
	}
	settled(t, js)

	t.Run("metrics", func(t *testing.T) { checkOperatingMetrics(t, p) })
	t.Run("trace", func(t *testing.T) {
		golden(t, "trace-retried.golden", p.cli(t, "trace", "-nats", p.natsURL, "qonto:acme:inv-retry"))
		golden(t, "trace-dead-lettered-and-replayed.golden", p.cli(t, "trace", "-nats", p.natsURL, "F-inv-dead")) // by number
		var j []struct {
			Invoice  string
			Attempts []struct{ Result string }
		}
		if err := json.Unmarshal([]byte(p.cli(t, "trace", "-nats", p.natsURL, "-o", "json", "inv-ok")), &j); err != nil || len(j) != 1 || j[0].Invoice != "qonto:acme:inv-ok" {
			t.Fatalf("trace -o json: %v %+v", err, j)
		}
	})
	t.Run("status", func(t *testing.T) {
		out := p.cli(t, "status", "-nats", p.natsURL, "-ingress-metrics", p.metrics["ingress"]+"/metrics")
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^WEBHOOKS\s+3\s`),
			regexp.MustCompile(`(?m)^sink-hook\s+INVOICES\s+0\s+0\s`),
			regexp.MustCompile(`(?m)^sink-hook\s+3\s+2\s+1\s+1\s*$`), // delivered, retrying, dead-lettered, replayed
			regexp.MustCompile(`(?m)^normalizer-default\s+3\s+0\s+0\s+0\s*$`),
			regexp.MustCompile(`(?m)^none\s+0\s*$`), // no dead letter left
			regexp.MustCompile(`(?m)^qonto/acme\s+3\s+\S+ \S+ \(.* ago\)\s+4\s+1 \(25%\)\s*$`),
		} {
			if !want.MatchString(out) {
				t.Errorf("status does not match %s:\n%s", want, out)
			}
		}
	})
	t.Run("tail", func(t *testing.T) {
		out := p.cli(t, "tail", "-nats", p.natsURL, "-since", "1h", "-kind", "created", "-n", "3")
		for _, inv := range []string{"inv-ok", "inv-retry", "inv-dead"} {
			if !strings.Contains(out, "created  qonto:acme:"+inv+"  number F-"+inv+"  status open  total 120.00 EUR  due 120.00") {
				t.Errorf("tail has no line for %s:\n%s", inv, out)
			}
		}
	})
	t.Run("alerts and dashboard", func(t *testing.T) { checkRulesUseExportedMetrics(t, p) })
}

// cli runs the invoicehub binary and returns its standard output.
func (p *pipeline) cli(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(stageBins(t), "invoicehub"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("invoicehub %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

// volatile is what changes from run to run in trace's output.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`), "<time>"},
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:<port>"},
	{regexp.MustCompile(`clock skew -?\d+ ms`), "clock skew <n> ms"},
}

// golden compares out, its volatile parts replaced, with testdata/name.
func golden(t *testing.T, name, out string) {
	t.Helper()
	for _, v := range volatile {
		out = v.re.ReplaceAllString(out, v.with)
	}
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if out != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, out, want)
	}
}

// scrape reads a stage's metrics.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return families
}

// series is `name{label="value",...}`: the value of that one series, or -1.
func series(families map[string]*dto.MetricFamily, sel string) float64 {
	name, labels, _ := strings.Cut(strings.TrimSuffix(sel, "}"), "{")
	f, ok := families[name]
	if !ok {
		return -1
	}
	want := map[string]string{}
	for _, kv := range strings.Split(labels, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			want[k] = strings.Trim(v, `"`)
		}
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// scrapeUntil polls a stage's metrics until sel has value v.
func scrapeUntil(t *testing.T, base, sel string, v float64) {
	t.Helper()
	jstest.Eventually(t, 10*time.Second, sel+" = "+fmt.Sprint(v), func() bool { return series(scrape(t, base), sel) == v })
}

func checkOperatingMetrics(t *testing.T, p *pipeline) {
	for stageName, want := range map[string]map[string]float64{
		"ingress": {
			`invoicehub_ingress_requests_total{provider="qonto",source="acme",outcome="accepted"}`:     3,
			`invoicehub_ingress_requests_total{provider="qonto",source="acme",outcome="unauthorized"}`: 1,
		},
		"normalizer": {
			`invoicehub_normalizer_raw_events_total{provider="qonto",outcome="published"}`:         3,
			`invoicehub_normalizer_published_events_total{kind="created",provider="qonto"}`:        3,
			`invoicehub_consumer_attempts_total{consumer="normalizer-default",result="delivered"}`: 3,
			`invoicehub_consumer_pending_messages{consumer="normalizer-default"}`:                  0,
			`invoicehub_dlq_messages{consumer="normalizer-default"}`:                               0,
		},
		"sinks": {
			`invoicehub_consumer_attempts_total{consumer="sink-hook",result="delivered"}`:                      3,
			`invoicehub_consumer_attempts_total{consumer="sink-hook",result="retrying",class="transient"}`:     2,
			`invoicehub_consumer_attempts_total{consumer="sink-hook",result="dead_lettered",class="http_400"}`: 1,
			`invoicehub_consumer_attempts_total{consumer="sink-archive",result="delivered"}`:                   9,
			`invoicehub_consumer_attempts_total{consumer="notify-oncall",result="delivered"}`:                  1,
			`invoicehub_consumer_delivery_latency_seconds{consumer="sink-hook"}`:                               3,
			`invoicehub_consumer_pending_messages{consumer="sink-hook"}`:                                       0,
			`invoicehub_consumer_ack_pending_messages{consumer="sink-hook"}`:                                   0,
			`invoicehub_dlq_messages{consumer="sink-hook"}`:                                                    0,
			`invoicehub_sink_http_responses_total{sink="hook",code="503"}`:                                     2,
			`invoicehub_sink_http_responses_total{sink="hook",code="400"}`:                                     1,
			`invoicehub_sink_http_responses_total{sink="hook",code="200"}`:                                     3,
			`invoicehub_sink_http_responses_total{sink="notify-oncall",code="200"}`:                            1,
		},
	} {
		families := scrape(t, p.metrics[stageName])
		for sel, v := range want {
			if got := series(families, sel); got != v {
				t.Errorf("%s: %s = %v, want %v", stageName, sel, got, v)
			}
		}
	}
	if seen := series(scrape(t, p.metrics["ingress"]), `invoicehub_ingress_source_last_seen_timestamp_seconds{provider="qonto",source="acme"}`); seen < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("source last seen %v", seen)
	}
	for _, stageName := range []string{"ingress", "normalizer", "sinks"} {
		for _, path := range []string{"/healthz", "/readyz"} {
			resp, err := http.Get(p.metrics[stageName] + path)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("%s %s: %v %v", stageName, path, resp, err)
				continue
			}
			resp.Body.Close()
		}
	}
}

// metricName matches the invoicehub series a PromQL expression names.
var metricName = regexp.MustCompile(`invoicehub_[a-z_]+`)

// checkRulesUseExportedMetrics parses the alert rules and the dashboard,
// and fails for any metric they use that no stage exports.
func checkRulesUseExportedMetrics(t *testing.T, p *pipeline) {
	exported := map[string]bool{}
	for _, base := range p.metrics {
		for name, f := range scrape(t, base) {
			exported[name] = true
			if f.GetType() == dto.MetricType_HISTOGRAM {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					exported[name+suffix] = true
				}
			}
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr, For string
				Annotations      map[string]string
			}
		}
	}
	b, err := os.ReadFile("../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: alert, expr and a summary are required", r)
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("rule %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			exprs = append(exprs, r.Expr)
		}
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	b, err = os.ReadFile("../deploy/grafana/invoicehub.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil || len(dash.Panels) == 0 {
		t.Fatalf("invoicehub.json: %v (%d panels)", err, len(dash.Panels))
	}
	for _, panel := range dash.Panels {
		for _, target := range panel.Targets {
			exprs = append(exprs, target.Expr)
		}
	}
	used := 0
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			used++
			if !exported[name] {
				t.Errorf("%q uses %s, which no stage exports", e, name)
			}
		}
	}
	t.Logf("%d rules and %d panels use %d metric references, all exported", len(rules.Groups[0].Rules), len(dash.Panels), used)
}
