package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite" // the sql sink's SQLite file, read back

	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// The harness runs invoicehub as an operator does: nats-server with file
// storage and each stage its own process, the real binaries; a receiver
// for the http sink; a driver that sends signed webhooks and retries what
// is not answered 2xx, as a provider does. The fault suite and the
// end-to-end benchmark use it. Everything listens on 127.0.0.1.

var (
	stageBinsOnce sync.Once
	stageBinsDir  string
	stageBinsErr  error
)

// stageBins builds, once per test binary, nats-server (from its module),
// the stage binaries (the normalizer with the fault suite's crash point,
// -tags faultinject) and invoicehub.
func stageBins(t testing.TB) string {
	t.Helper()
	stageBinsOnce.Do(func() {
		stageBinsDir, stageBinsErr = os.MkdirTemp("", "invoicehub-stage-bins")
		if stageBinsErr != nil {
			return
		}
		builds := [][]string{
			{"-o", stageBinsDir, "github.com/nats-io/nats-server/v2", "github.com/invoicehub/invoicehub/ingress/cmd/ingress",
				"github.com/invoicehub/invoicehub/sinks/cmd/sinks", "github.com/invoicehub/invoicehub/cmd/invoicehub"},
			{"-tags", "faultinject", "-o", stageBinsDir, "github.com/invoicehub/invoicehub/normalizer/cmd/normalizer"},
		}
		for _, args := range builds {
			cmd := exec.Command("go", append([]string{"build"}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				stageBinsErr = fmt.Errorf("build %v: %v\n%s", args, err, out)
				return
			}
		}
	})
	if stageBinsErr != nil {
		t.Fatal(stageBinsErr)
	}
	return stageBinsDir
}

// freePort returns a free TCP port on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is one process of the pipeline, restartable, its output in a file.
type proc struct {
	t      testing.TB
	name   string
	path   string
	args   []string
	env    []string
	logDir string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starts++
	logFile, err := os.Create(filepath.Join(p.logDir, fmt.Sprintf("%s-%d.log", p.name, p.starts)))
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logFile.Close(); close(exited) }()
	p.cmd, p.exited = cmd, exited
}

// signal sends sig and waits for the process to exit.
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// kill is kill -9.
func (p *proc) kill() { p.signal(syscall.SIGKILL) }

// pause stops the process (SIGSTOP) without ending it: a frozen server,
// as its peers and clients see it; resume lets it go on (SIGCONT).
func (p *proc) pause()  { p.send(syscall.SIGSTOP) }
func (p *proc) resume() { p.send(syscall.SIGCONT) }

func (p *proc) send(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.cmd.Process.Signal(sig)
	}
}

// stop is a graceful stop (SIGTERM).
func (p *proc) stop() { p.signal(syscall.SIGTERM) }

// running reports whether the process is alive.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
		return false
	default:
		return p.cmd != nil
	}
}

// pipeline is nats-server, ingress, normalizer and sinks as processes.
type pipeline struct {
	t                                testing.TB
	dir                              string
	natsPort, httpPort               int
	natsURL, httpURL                 string
	nats, ingress, normalizer, sinks *proc
	// nodes are the NATS servers (nats is the first), with their
	// monitoring URLs; normalizers and sinkReplicas every replica of a
	// stage (normalizer and sinks are the first).
	nodes                     []*proc
	monitors                  []string
	normalizers, sinkReplicas []*proc
	receiver                  *receiver
	fileSink, sqlSink         string
	secret                    string
	// metrics is each stage's metrics base URL, with pipelineOptions.metrics.
	metrics map[string]string
}

// pipelineOptions adjust a pipeline.
type pipelineOptions struct {
	// env is added to every stage's environment.
	env []string
	// normalizerEnv is added to the normalizer's.
	normalizerEnv []string
	// httpKinds filters the http sink (all kinds when empty).
	httpKinds []string
	// sinks replaces the default sinks file (file, sql, http to the receiver).
	sinks string
	// sources is added to the sources file, after qonto/acme.
	sources string
	// natsArgs are added to nats-server's arguments.
	natsArgs []string
	// metrics serves each stage's /metrics, /healthz and /readyz on a port
	// of its own (pipeline.metrics).
	metrics bool
	// nodes > 1 runs a NATS cluster of that many servers on loopback,
	// streams with as many replicas.
	nodes int
	// normalizers and sinkReplicas run that many replicas of the stage
	// (default 1).
	normalizers, sinkReplicas int
	// syncDefault runs nats-server with NATS's default sync (every two
	// minutes) instead of the project's durability policy
	// (deploy/nats/durability.conf): to show what the policy prevents.
	syncDefault bool
	// storeDir, when set, gives each nats-server's store directory by the
	// server's name ("nats", or n1, n2... in a cluster).
	storeDir func(name string) string
}

const pipelineSecret = "qonto-acme-secret-of-the-fault-suite-0123"

// startPipeline starts nats-server and the three stages, and waits until
// ingress answers.
func startPipeline(t testing.TB, o pipelineOptions) *pipeline {
	t.Helper()
	bins := stageBins(t)
	dir := t.TempDir()
	p := &pipeline{t: t, dir: dir, natsPort: freePort(t), httpPort: freePort(t), receiver: newReceiver(t), secret: pipelineSecret}
	p.natsURL = "nats://127.0.0.1:" + strconv.Itoa(p.natsPort)
	p.httpURL = "http://127.0.0.1:" + strconv.Itoa(p.httpPort)
	if o.nodes > 1 {
		o.env = append(o.env, "INVOICEHUB_STREAM_REPLICAS="+strconv.Itoa(o.nodes))
	}
	p.fileSink, p.sqlSink = filepath.Join(dir, "invoices.jsonl"), filepath.Join(dir, "invoices.db")
	sources := filepath.Join(dir, "sources.yaml")
	os.WriteFile(sources, []byte("sources:\n  - {provider: qonto, id: acme, secrets: [{env: QONTO_ACME_SECRET}]}\n"+o.sources), 0o644)
	sinks := o.sinks
	if sinks == "" {
		kinds := ""
		if len(o.httpKinds) > 0 {
			kinds = ", kinds: [" + strings.Join(o.httpKinds, ", ") + "]"
		}
		sinks = fmt.Sprintf("sinks:\n  - {id: archive, type: file, options: {path: %q, fsync: never}}\n  - {id: ledger, type: sql, options: {driver: sqlite, dsn: %q}}\n  - {id: hook, type: http%s, backoff: {base: 100ms, max: 1s}, options: {url: %q, allow_private: true, timeout: 2s}}\n",
			p.fileSink, p.sqlSink, kinds, p.receiver.URL()+"/hook")
	}
	sinksFile := filepath.Join(dir, "sinks.yaml")
	os.WriteFile(sinksFile, []byte(sinks), 0o644)
	common := append([]string{"INVOICEHUB_NATS_URL=" + p.natsURL, "INVOICEHUB_LOG_LEVEL=info", "INVOICEHUB_METRICS_ADDR=off"}, o.env...)
	mk := func(name string, args []string, env ...string) *proc {
		return &proc{t: t, name: name, path: filepath.Join(bins, name), args: args, env: env, logDir: dir}
	}
	if o.storeDir == nil {
		o.storeDir = func(name string) string { return filepath.Join(dir, name) }
	}
	p.nats = mk("nats-server", append([]string{"-c", natsConf(t, dir, o, ""), "-a", "127.0.0.1", "-p", strconv.Itoa(p.natsPort), "-js", "-sd", o.storeDir("nats")}, o.natsArgs...))
	p.nodes = []*proc{p.nats}
	if o.nodes > 1 {
		p.startCluster(mk, o)
		common[0] = "INVOICEHUB_NATS_URL=" + p.natsURL
	}
	metricsEnv := func(stageName string) []string {
		if !o.metrics {
			return nil
		}
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		p.metrics[stageName] = "http://" + addr
		return []string{"INVOICEHUB_METRICS_ADDR=" + addr} // the last value of a variable wins
	}
	p.metrics = map[string]string{}
	p.ingress = mk("ingress", nil, slices.Concat(common, []string{"INVOICEHUB_HTTP_ADDR=127.0.0.1:" + strconv.Itoa(p.httpPort),
		"INVOICEHUB_SOURCES_FILE=" + sources, "QONTO_ACME_SECRET=" + p.secret}, metricsEnv("ingress"))...)
	p.normalizer = mk("normalizer", nil, slices.Concat(common, o.normalizerEnv, metricsEnv("normalizer"))...)
	p.sinks = mk("sinks", nil, slices.Concat(common, []string{"INVOICEHUB_SINKS_FILE=" + sinksFile}, metricsEnv("sinks"))...)
	p.normalizers, p.sinkReplicas = replicas(p.normalizer, o.normalizers), replicas(p.sinks, o.sinkReplicas)
	t.Cleanup(func() {
		for _, pr := range slices.Concat([]*proc{p.ingress}, p.normalizers, p.sinkReplicas, p.nodes) {
			pr.kill()
		}
	})
	for _, node := range p.nodes {
		node.start()
	}
	p.waitNATS()
	setup := exec.Command(filepath.Join(bins, "invoicehub"), "setup")
	setup.Env = append(os.Environ(), append(common, "INVOICEHUB_SINKS_FILE="+sinksFile)...)
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("invoicehub setup: %v\n%s", err, out)
	}
	for _, pr := range slices.Concat([]*proc{p.ingress}, p.normalizers, p.sinkReplicas) {
		pr.start()
	}
	p.waitIngress()
	return p
}

// replicas returns first and n-1 more processes like it (n ≤ 1: first
// alone), each logging under its own name.
func replicas(first *proc, n int) []*proc {
	out := []*proc{first}
	for i := 2; i <= n; i++ {
		r := &proc{t: first.t, name: fmt.Sprintf("%s-%d", first.name, i), path: first.path, args: first.args, env: first.env, logDir: first.logDir}
		out = append(out, r)
	}
	return out
}

// startCluster makes p.nodes a cluster of o.nodes nats-servers on
// loopback, each with its store, routes to the others (pinged as
// deploy/nats/node.conf's), a monitoring port (p.monitors), and
// p.natsURL the list of their client URLs.
func (p *pipeline) startCluster(mk func(string, []string, ...string) *proc, o pipelineOptions) {
	clients, routes, monitors := make([]int, o.nodes), make([]string, o.nodes), make([]int, o.nodes)
	var urls []string
	for i := range o.nodes {
		clients[i], monitors[i] = freePort(p.t), freePort(p.t)
		routes[i] = "nats://127.0.0.1:" + strconv.Itoa(freePort(p.t))
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(clients[i]))
		p.monitors = append(p.monitors, "http://127.0.0.1:"+strconv.Itoa(monitors[i]))
	}
	pings, err := os.ReadFile("../deploy/nats/route-pings.conf")
	if err != nil {
		p.t.Fatal(err)
	}
	conf := natsConf(p.t, p.dir, o, fmt.Sprintf("cluster {\n%s}\n", pings))
	p.nodes = nil
	for i := range o.nodes {
		name := "n" + strconv.Itoa(i+1)
		node := mk("nats-server", append([]string{"-c", conf, "-a", "127.0.0.1", "-p", strconv.Itoa(clients[i]), "-js", "-sd", o.storeDir(name),
			"-n", name, "--cluster_name", "invoicehub", "--cluster", routes[i], "--routes", strings.Join(routes, ","),
			"-m", strconv.Itoa(monitors[i])}, o.natsArgs...))
		node.name = "nats-" + name
		p.nodes = append(p.nodes, node)
	}
	p.nats, p.natsPort, p.natsURL = p.nodes[0], clients[0], strings.Join(urls, ",")
}

// policyName names a durability policy in reports: the project's, or
// NATS's default (pipelineOptions.syncDefault).
func policyName(policy bool) string {
	if policy {
		return "sync-always"
	}
	return "nats-default"
}

// natsConf writes the nats-server configuration the flags do not carry:
// deploy/nats's durability policy (unless o.syncDefault), then extra.
func natsConf(t testing.TB, dir string, o pipelineOptions, extra string) string {
	t.Helper()
	conf := filepath.Join(dir, "nats.conf")
	policy, err := filepath.Abs("../deploy/nats/durability.conf")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, policy) // nats-server includes relative paths only
	if err != nil {
		t.Fatal(err)
	}
	text := "jetstream {\n  include \"" + rel + "\"\n}\n"
	if o.syncDefault {
		text = "# NATS's default sync: every two minutes\n"
	}
	if err := os.WriteFile(conf, []byte(text+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

// waitNATS waits until nats-server accepts connections.
func (p *pipeline) waitNATS() {
	p.t.Helper()
	jstest.Eventually(p.t, 30*time.Second, "nats-server up", func() bool {
		nc, err := nats.Connect(p.natsURL)
		if err != nil {
			return false
		}
		nc.Close()
		return true
	})
}

// waitIngress waits until ingress is ready (connected to NATS).
func (p *pipeline) waitIngress() {
	p.t.Helper()
	jstest.Eventually(p.t, 60*time.Second, "ingress ready", func() bool {
		resp, err := http.Get(p.httpURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// connect opens an administrator's connection to the pipeline's NATS.
func (p *pipeline) connect() jetstream.JetStream {
	p.t.Helper()
	nc, err := nats.Connect(p.natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		p.t.Fatal(err)
	}
	return js
}

// settled waits until every consumer has nothing pending nor unacked.
func settled(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	jstest.Eventually(t, time.Minute, "every consumer settled", func() bool {
		for _, c := range [][2]string{{subject.WebhooksStream, "normalizer-default"}, {subject.InvoicesStream, "sink-archive"},
			{subject.InvoicesStream, "sink-ledger"}, {subject.InvoicesStream, "sink-hook"}, {subject.DLQStream, "notify-oncall"}} {
			cons, err := js.Consumer(t.Context(), c[0], c[1])
			if err != nil {
				continue // a sink this scenario does not run
			}
			info, err := cons.Info(t.Context())
			if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
				return false
			}
		}
		return true
	})
}

// receiver is the http sink's target: it counts, per webhook-id, the
// deliveries it answered 2xx, keeps their order, and answers as told,
// after its delay.
type receiver struct {
	srv        *httptest.Server
	mu         sync.Mutex
	status     int    // what it answers; 0 means 200
	retryAfter string // its Retry-After when it fails
	delay      time.Duration
	ok         map[string]int
	order      []string    // the webhook-ids answered 2xx, in the order answered
	times      []time.Time // when each was answered
	calls      int
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{ok: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		delay := r.delay
		r.mu.Unlock()
		if delay > 0 {
			time.Sleep(delay) // the receiver's own work
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls++
		if r.status != 0 && r.status != http.StatusOK {
			if r.retryAfter != "" {
				w.Header().Set("Retry-After", r.retryAfter)
			}
			w.WriteHeader(r.status)
			return
		}
		id := req.Header.Get("webhook-id")
		r.ok[id]++
		r.order, r.times = append(r.order, id), append(r.times, time.Now())
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// answerWith sets the status the receiver answers and its Retry-After.
func (r *receiver) answerWith(status int, retryAfter string) {
	r.mu.Lock()
	r.status, r.retryAfter = status, retryAfter
	r.mu.Unlock()
}

// answered returns the webhook-ids answered 2xx, in order.
func (r *receiver) answered() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

// URL is the receiver's base URL.
func (r *receiver) URL() string { return r.srv.URL }

// answer sets the status the receiver answers; a 503 asks to retry after
// a second.
func (r *receiver) answer(status int) {
	retryAfter := ""
	if status == http.StatusServiceUnavailable {
		retryAfter = "1"
	}
	r.answerWith(status, retryAfter)
}

// delivered returns, per webhook-id, how many deliveries were answered 2xx.
func (r *receiver) delivered() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.ok))
	for k, v := range r.ok {
		out[k] = v
	}
	return out
}

// webhook is one Qonto client-invoice webhook of the driver.
type webhook struct {
	id, invoice string
	body        []byte
}

// invoiceWebhook is a client invoice in Qonto's documented envelope:
// status unpaid (finalized: sent) or paid, created_at its version.
func invoiceWebhook(id, invoice, status string, at time.Time) webhook {
	stamp := at.UTC().Format(time.RFC3339)
	body := fmt.Sprintf(`{"id":%q,"subscription_id":"5b0c7e4c-1b1d-4c8e-9f3a-6d2e1c0b9a87","organization_id":"8f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b","membership_id":"2a3b4c5d-6e7f-4081-92a3-b4c5d6e7f809","type":"v1/client-invoices","created_at":%q,"data":{"id":%q,"number":"F-%s","status":%q,"currency":"EUR","total_amount":{"value":"120.00","currency":"EUR"},"vat_amount":{"value":"20.00","currency":"EUR"},"issue_date":"2024-03-01","due_date":"2099-03-31","finalized_at":"2024-03-01T10:00:00Z"}}`,
		id, stamp, invoice, invoice, status)
	return webhook{id: id, invoice: invoice, body: []byte(body)}
}

// driver sends webhooks as a provider does: signed afresh each attempt,
// retried with backoff (honouring Retry-After) until answered 2xx or the
// deadline; it records which were answered 2xx and how.
type driver struct {
	url        string // ingress's base URL
	source     string // the qonto source's path
	secret     string // its secret
	client     *http.Client
	mu         sync.Mutex
	accepted   map[string]bool
	acceptedAt []time.Time // when each 2xx came
	refused    int         // answers that were not 2xx, and connection errors
	deadline   time.Time
}

func (p *pipeline) driver(deadline time.Duration) *driver {
	return newDriver(p.httpURL, p.secret, deadline)
}

func newDriver(url, secret string, deadline time.Duration) *driver {
	return &driver{url: url, source: "/webhooks/qonto/acme", secret: secret, client: &http.Client{Timeout: 5 * time.Second}, accepted: map[string]bool{}, deadline: time.Now().Add(deadline)}
}

// post sends one attempt of w and returns the status (0: no answer) and
// the Retry-After asked.
func (d *driver) post(w webhook) (int, time.Duration) {
	qonto, _ := provider.Lookup("qonto")
	req, _ := http.NewRequest(http.MethodPost, d.url+d.source, bytes.NewReader(w.body))
	req.Header = qonto.Sign(provider.Credentials{Secrets: []provider.Secret{provider.NewSecret([]byte(d.secret))}}, provider.Message{Body: w.body, At: time.Now()})
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	after, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	return resp.StatusCode, time.Duration(after) * time.Second
}

// deliver sends w until it is answered 2xx (true) or the deadline passes.
func (d *driver) deliver(w webhook) bool {
	wait := 50 * time.Millisecond
	for time.Now().Before(d.deadline) {
		status, after := d.post(w)
		if status/100 == 2 {
			d.mu.Lock()
			d.accepted[w.id] = true
			d.acceptedAt = append(d.acceptedAt, time.Now())
			d.mu.Unlock()
			return true
		}
		d.mu.Lock()
		d.refused++
		d.mu.Unlock()
		time.Sleep(max(wait, after)) // the provider's backoff: a rate, not a wait for a result
		wait = min(2*wait, time.Second)
	}
	return false
}

// send delivers ws at rate per second, concurrently, each retried as a
// provider would, and returns when every one is answered or given up.
func (d *driver) send(ws []webhook, rate int) {
	paced(len(ws), rate, func(i int) { d.deliver(ws[i]) })
}

// paced starts each(0) to each(n-1) at rate per second, each in its own
// goroutine, and returns when all have returned.
func paced(n, rate int, each func(i int)) {
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := range n {
		<-tick.C
		wg.Go(func() { each(i) })
	}
	wg.Wait()
}

func (d *driver) acceptedIDs() map[string]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]bool, len(d.accepted))
	for k := range d.accepted {
		out[k] = true
	}
	return out
}

// canonicalEvent is what the accounting reads of a canonical event.
type canonicalEvent struct {
	ID      string
	Kind    schemas.Kind
	RawID   string // the provider's event id
	Invoice string
	Status  schemas.Status
	Seq     uint64    // in INVOICES
	Stored  time.Time // when INVOICES stored it
}

// invoicesStream reads every canonical event of INVOICES.
func invoicesStream(t testing.TB, js jetstream.JetStream) []canonicalEvent {
	t.Helper()
	out, err := readInvoices(js)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readInvoices reads every canonical event of INVOICES, or fails.
func readInvoices(js jetstream.JetStream) ([]canonicalEvent, error) {
	msgs, err := jstest.ReadAll(context.Background(), js, subject.InvoicesStream)
	if err != nil {
		return nil, err
	}
	var out []canonicalEvent
	for _, m := range msgs {
		if !strings.HasPrefix(m.Subject, subject.InvoicesRoot+".") {
			continue
		}
		var d schemas.EventData
		json.Unmarshal(m.Data, &d)
		out = append(out, canonicalEvent{ID: m.Header.Get("ce-id"), Kind: d.Event.Kind, RawID: d.Event.ProviderEventID, Invoice: d.Invoice.RemoteID, Status: d.Invoice.Status, Seq: m.Sequence, Stored: m.Time})
	}
	return out, nil
}

// fileSinkIDs counts the file sink's lines per event id.
func fileSinkIDs(t testing.TB, path string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, e := range sinkLines(t, path) {
		out[e.ID]++
	}
	return out
}

// sinkLines reads the file sink's whole lines.
func sinkLines(t testing.TB, path string) []struct {
	ID   string
	Data schemas.EventData
} {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	lines := bytes.Split(b, []byte("\n"))
	var out []struct {
		ID   string
		Data schemas.EventData
	}
	for _, line := range lines[:len(lines)-1] {
		var e struct {
			ID   string
			Data schemas.EventData
		}
		if json.Unmarshal(line, &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// sqlRows counts the sql sink's invoice_events rows per event id, and
// returns each invoice's current status.
func sqlRows(t testing.TB, path string) (events map[string]int, status map[string]string) {
	t.Helper()
	events, status = map[string]int{}, map[string]string{}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return events, status
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if rows, err := db.QueryContext(ctx, `SELECT event_id FROM invoice_events`); err == nil {
		for rows.Next() {
			var id string
			rows.Scan(&id)
			events[id]++
		}
		rows.Close()
	}
	if rows, err := db.QueryContext(ctx, `SELECT remote_id, status FROM invoices`); err == nil {
		for rows.Next() {
			var id, st string
			rows.Scan(&id, &st)
			status[id] = st
		}
		rows.Close()
	}
	return events, status
}
