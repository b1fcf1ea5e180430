//go:build benche2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/ingress/provider"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// The end-to-end benchmark (make bench-e2e) measures the pipeline as a
// user runs it: nats-server with file storage, ingress, normalizer and
// sinks as separate processes built without test tags, default
// configuration, info-level logs, one http sink subscribed to `created`
// delivering to a receiver in this process. Three phases:
//
//  1. Rate sweep. An open-loop driver sends distinct signed Qonto webhooks
//     (each a new invoice) at a fixed rate for benchStep, one attempt
//     each; the receiver timestamps each invoice's `created` event. Per
//     step: webhook → sink latency over the invoices (p50, p99, max), lost
//     (answered 2xx, not delivered within benchDrain), duplicates, and
//     each process's CPU (utime+stime from /proc/<pid>/stat, from the
//     step's start until every consumer has settled) per webhook answered
//     2xx, its context switches per webhook (how often it slept or was
//     put off the CPU) and its peak VmRSS. The sweep goes on while p99 ≤ 50 ms,
//     nothing is lost or refused and the driver keeps the rate (500/s and
//     1000/s always run), then bisects benchBisect times between the last
//     good rate (or 0) and the first bad one.
//  2. The bare pipeline. Normalizer and sinks stopped, the same steps at
//     benchBareRates through three processes of e2e/internal/bare on the
//     same nats-server: forward (read the body, synchronous JetStream
//     publish, 200 after the PubAck), relay (consume WEBHOOKS, publish the
//     body to INVOICES, ack after the PubAck) and deliver (consume
//     INVOICES, POST the body to the receiver, ack after the 2xx). One
//     stored message per hop and nothing else: what the machine charges
//     any pipeline of this shape, the floor the stages are read against.
//  3. Capacity. Closed loop (N clients, each posting as soon as it is
//     answered) against ingress (verification on) and against the bare
//     forwarder on the same nats-server, with the same client, in short
//     rounds that alternate the two: the highest 2xx/s of each, their
//     ratio, and the CPU per webhook of the target, nats-server and the
//     clients.
//
// It is a measurement: it fails only when the harness breaks (a process
// does not start, a webhook answered 2xx is never delivered).

const (
	benchStep     = 6 * time.Second  // sending time per rate
	benchDrain    = 60 * time.Second // deadline for every 2xx'd invoice to reach the receiver
	benchP99Limit = 50 * time.Millisecond
	benchWarm     = 250 * time.Millisecond // closed loop: not counted, per round
	benchWindow   = time.Second            // closed loop: counted, per round
	benchRounds   = 4                      // closed loop: rounds per target and client count, alternating the targets
	benchBisect   = 2                      // extra steps between the last good rate and the first bad one
)

var (
	benchRates = []int{500, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000}
	// benchBareRates are the bare pipeline's steps: the rates.
	benchBareRates = []int{500, 1000, 2500}
	benchClients   = []int{8, 32, 128}
)

func TestBenchE2E(t *testing.T) {
	began := time.Now()
	bins := benchBins(t)
	hook := newHookReceiver(t)
	p := startPipeline(t, pipelineOptions{sinks: fmt.Sprintf("sinks:\n  - {id: hook, type: http, kinds: [created], options: {url: %q, allow_private: true, timeout: 2s}}\n", hook.srv.URL+"/hook")})
	// startPipeline runs the normalizer built for the fault suite (-tags
	// faultinject); users run the untagged one.
	p.normalizer.stop()
	p.normalizer.path = filepath.Join(bins, "normalizer")
	p.normalizer.start()
	js := p.connect()
	tck := clockTicks()
	lg := newLoadGen(p.secret)
	pipe := p.sweepTarget()

	// Warm-up, not reported: the untagged normalizer comes up, connections open.
	warm := runStep(t, lg, hook, js, pipe, tck, "warmup", 200, time.Second)
	if warm.lost > 0 {
		t.Errorf("warm-up: %d webhooks answered 2xx never delivered (logs in %s)", warm.lost, p.dir)
	}
	rows := sweep(t, lg, hook, js, pipe, tck)

	// The bare pipeline, normalizer and sinks stopped: the same driver,
	// receiver and nats-server, one message per hop.
	p.normalizer.stop()
	p.sinks.stop()
	bare := startBare(t, bins, p, lg, hook)
	runStep(t, lg, hook, js, bare.sweepTarget, tck, "bare-warmup", 200, time.Second)
	var floor []stepResult
	for _, rate := range benchBareRates {
		floor = append(floor, logStep(t, bare.sweepTarget, runStep(t, lg, hook, js, bare.sweepTarget, tck, fmt.Sprintf("bare%d", rate), rate, benchStep)))
	}
	bare.relay.stop()
	bare.deliver.stop()

	// Capacity: ingress alone and the bare forwarder, on the same nats-server.
	var caps []capResult
	for _, n := range benchClients {
		// Alternated in short rounds, each pair in the other order than the
		// last (ABBA), so that the machine's drift (its speed varies by a
		// fifth within minutes) weighs on both alike.
		in, out := capResult{target: "ingress", clients: n}, capResult{target: "forwarder", clients: n}
		for round := range benchRounds {
			runs := []func(){
				func() { in.add(closedLoop(lg, "ingress", p.httpURL, p.ingress, p.nats, tck, n)) },
				func() { out.add(closedLoop(lg, "forwarder", bare.url, bare.forward, p.nats, tck, n)) },
			}
			if round%2 == 1 {
				slices.Reverse(runs)
			}
			for _, run := range runs {
				run()
			}
		}
		caps = append(caps, in, out)
	}
	fmt.Print(benchReport(rows, floor, caps, tck, time.Since(began)))
}

// sweep runs tgt at benchRates while it keeps p99 ≤ benchP99Limit (500/s
// and 1000/s always), then bisects benchBisect times between the last
// good rate (or 0) and the first bad one, to the nearest 50/s; it returns
// the steps by rate.
func sweep(t *testing.T, lg *loadGen, hook *hookReceiver, js jetstream.JetStream, tgt sweepTarget, tck int64) []stepResult {
	var rows []stepResult
	step := func(rate int) stepResult {
		r := logStep(t, tgt, runStep(t, lg, hook, js, tgt, tck, fmt.Sprintf("r%d", rate), rate, benchStep))
		rows = append(rows, r)
		return r
	}
	good, bad := 0, 0 // the highest good rate below the first bad one
	for i, rate := range benchRates {
		if r := step(rate); r.good() {
			if bad == 0 {
				good = rate
			}
		} else if bad == 0 {
			bad = rate
		}
		if i >= 1 && bad != 0 {
			break
		}
	}
	for range benchBisect {
		mid := (good + bad) / 2 / 50 * 50
		if bad == 0 || mid <= good || mid >= bad {
			break
		}
		if step(mid).good() {
			good = mid
		} else {
			bad = mid
		}
	}
	slices.SortStableFunc(rows, func(a, b stepResult) int { return a.rate - b.rate })
	return rows
}

// logStep logs r and fails the test on a webhook lost.
func logStep(t *testing.T, tgt sweepTarget, r stepResult) stepResult {
	t.Helper()
	t.Logf("%s %d/s: sent %d, 2xx %d, lost %d, dup %d, p50 %v, p99 %v, achieved %.0f/s, lag p99 %v", tgt.name, r.rate, r.sent, r.ok, r.lost, r.dup, r.p50, r.p99, r.achieved, r.lagP99)
	if r.lost > 0 {
		t.Errorf("%s %d/s: %d webhooks answered 2xx never delivered within %v (logs in %s)", tgt.name, r.rate, r.lost, benchDrain, tgt.logs)
	}
	return r
}

// sweepTarget is what a rate step drives and measures: a base URL taking
// webhooks, the four processes of the path (the ones in the three
// stages' places, then nats-server) and the consumers that settle.
type sweepTarget struct {
	name      string
	base      string
	procs     [4]*proc
	consumers [][2]string // stream, durable
	logs      string
}

// sweepTarget is the pipeline as a sweep target: the created event of
// each webhook reaches the receiver through the http sink "hook".
func (p *pipeline) sweepTarget() sweepTarget {
	return sweepTarget{name: "pipeline", base: p.httpURL, procs: [4]*proc{p.ingress, p.normalizer, p.sinks, p.nats},
		consumers: [][2]string{{subject.WebhooksStream, "normalizer-default"}, {subject.InvoicesStream, "sink-hook"}}, logs: p.dir}
}

// bareProcs is the bare pipeline on a pipeline's nats-server: forward in
// ingress's place, relay (WEBHOOKS → INVOICES) in the normalizer's,
// deliver (INVOICES → the receiver's /bare) in the sinks'.
type bareProcs struct {
	sweepTarget
	forward, relay, deliver *proc
	url                     string // forward's base URL
}

// startBare starts the bare pipeline's three processes (e2e/internal/bare)
// on p's nats-server and returns once the forwarder answers and both
// consumers exist.
func startBare(t *testing.T, bins string, p *pipeline, lg *loadGen, hook *hookReceiver) *bareProcs {
	t.Helper()
	b := &bareProcs{}
	b.forward, b.url = startForwarder(t, bins, p, lg)
	mk := func(name string, args ...string) *proc {
		pr := &proc{t: t, name: name, path: filepath.Join(bins, "bare"), logDir: p.dir, args: append([]string{"-nats", p.natsURL}, args...)}
		pr.start()
		t.Cleanup(pr.kill)
		return pr
	}
	const relayed = "invoices.v1.created.qonto.acme" // a subject of INVOICES
	b.relay = mk("bare-relay", "-mode", "relay", "-durable", "bare-relay", "-stream", subject.WebhooksStream, "-from", "webhooks.qonto.acme", "-subject", relayed)
	b.deliver = mk("bare-deliver", "-mode", "deliver", "-durable", "bare-deliver", "-stream", subject.InvoicesStream, "-from", relayed, "-url", hook.srv.URL+"/bare")
	b.sweepTarget = sweepTarget{name: "bare", base: b.url, procs: [4]*proc{b.forward, b.relay, b.deliver, p.nats},
		consumers: [][2]string{{subject.WebhooksStream, "bare-relay"}, {subject.InvoicesStream, "bare-deliver"}}, logs: p.dir}
	js := p.connect()
	jstest.Eventually(t, 30*time.Second, "bare consumers bound", func() bool {
		for _, c := range b.consumers {
			if _, err := js.Consumer(t.Context(), c[0], c[1]); err != nil {
				return false
			}
		}
		return true
	})
	return b
}

// startForwarder starts the bare forwarder on p's nats-server and returns
// it with its base URL once it answers; extra are more of its flags.
func startForwarder(t *testing.T, bins string, p *pipeline, lg *loadGen, extra ...string) (*proc, string) {
	t.Helper()
	port := strconv.Itoa(freePort(t))
	fwd := &proc{t: t, name: "forwarder", path: filepath.Join(bins, "bare"), logDir: p.dir,
		args: append([]string{"-mode", "forward", "-addr", "127.0.0.1:" + port, "-nats", p.natsURL, "-subject", "webhooks.qonto.acme"}, extra...)}
	fwd.start()
	t.Cleanup(fwd.kill)
	url := "http://127.0.0.1:" + port
	jstest.Eventually(t, 30*time.Second, "forwarder up", func() bool {
		resp, err := lg.client.Get(url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return fwd, url
}

// benchBins builds, without test tags, the normalizer (stageBins builds it
// with -tags faultinject) and the bare pipeline's binary.
func benchBins(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir, "github.com/invoicehub/invoicehub/normalizer/cmd/normalizer", "github.com/invoicehub/invoicehub/e2e/internal/bare")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return dir
}

// hookReceiver is the http sink's target, and the bare pipeline's (on
// /bare): per invoice (invoiceOf), the arrival of its first delivery and
// how many arrived.
type hookReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	first map[string]time.Time
	count map[string]int
	other int // not a created event, or unreadable
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{first: map[string]time.Time{}, count: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		at := time.Now()
		body, _ := io.ReadAll(req.Body)
		inv, ok := invoiceOf(req.URL.Path, body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if !ok {
			h.other++
			return
		}
		if h.count[inv] == 0 {
			h.first[inv] = at
		}
		h.count[inv]++
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// invoiceOf reads the invoice a delivery announces: on /bare, the Qonto
// webhook the bare pipeline passed on unchanged (its data.id); elsewhere
// a structured created event (its data.invoice.remote_id).
func invoiceOf(path string, body []byte) (string, bool) {
	if path == "/bare" {
		var raw struct {
			Type string `json:"type"`
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		err := json.Unmarshal(body, &raw)
		return raw.Data.ID, err == nil && raw.Type == provider.QontoInvoiceTopic && raw.Data.ID != ""
	}
	var ce struct {
		Type string `json:"type"`
		Data struct {
			Invoice struct {
				RemoteID string `json:"remote_id"`
			} `json:"invoice"`
		} `json:"data"`
	}
	err := json.Unmarshal(body, &ce)
	return ce.Data.Invoice.RemoteID, err == nil && ce.Type == "com.invoicehub.invoice.created.v1" && ce.Data.Invoice.RemoteID != ""
}

// arrived returns the first arrival of each invoice asked, and whether all
// have arrived.
func (h *hookReceiver) arrived(invoices []string) (map[string]time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]time.Time, len(invoices))
	for _, inv := range invoices {
		if at, ok := h.first[inv]; ok {
			out[inv] = at
		}
	}
	return out, len(out) == len(invoices)
}

// duplicates counts the extra created events of the invoices asked.
func (h *hookReceiver) duplicates(invoices []string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, inv := range invoices {
		n += max(h.count[inv]-1, 0)
	}
	return n
}

// loadGen is the client of both phases: one http.Client, webhooks signed
// as Qonto does, afresh for each request.
type loadGen struct {
	client *http.Client
	sign   func(body []byte) http.Header
}

func newLoadGen(secret string) *loadGen {
	qonto, _ := provider.Lookup("qonto")
	creds := provider.Credentials{Secrets: []provider.Secret{provider.NewSecret([]byte(secret))}}
	return &loadGen{
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			Proxy: nil, MaxIdleConns: 8192, MaxIdleConnsPerHost: 8192, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
		}},
		sign: func(body []byte) http.Header {
			return qonto.Sign(creds, provider.Message{Body: body, At: time.Now()})
		},
	}
}

// post sends one attempt of w to base's qonto/acme path; 0 is no answer.
func (lg *loadGen) post(base string, w webhook) int {
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/qonto/acme", bytes.NewReader(w.body))
	req.Header = lg.sign(w.body)
	resp, err := lg.client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// sendRec is one webhook of the open-loop driver.
type sendRec struct {
	invoice     string
	sched, sent time.Time // when it was due, when the request started
	status      int
}

// openLoop sends ws at rate per second, each when due (not when the
// previous one is answered), each once, and returns when all are answered
// or timed out.
func (lg *loadGen) openLoop(base string, ws []webhook, rate int) []sendRec {
	recs := make([]sendRec, len(ws))
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Millisecond) // pacing: each tick sends what is due
	defer tick.Stop()
	start := time.Now()
	for i := 0; i < len(ws); {
		due := min(int(time.Since(start)*time.Duration(rate)/time.Second)+1, len(ws))
		for ; i < due; i++ {
			j := i
			recs[j] = sendRec{invoice: ws[j].invoice, sched: start.Add(time.Duration(j) * time.Second / time.Duration(rate))}
			wg.Go(func() {
				recs[j].sent = time.Now()
				recs[j].status = lg.post(base, ws[j])
			})
		}
		if i < len(ws) {
			<-tick.C
		}
	}
	wg.Wait()
	return recs
}

// stepResult is one rate of the sweep.
type stepResult struct {
	rate, sent, ok, lost, dup, other int
	p50, p99, pmax, lagP99           time.Duration
	achieved                         float64 // requests started per second
	drained                          bool    // every consumer settled before the deadline
	elapsed                          time.Duration
	cpu                              [5]time.Duration // ingress, normalizer, sinks, nats, this process (driver + receiver)
	rss                              [4]uint64        // peak VmRSS, KiB
	switches                         [4]int64         // context switches (voluntary and not) of the four processes
}

// kept reports whether the driver kept the rate.
func (r stepResult) kept() bool {
	return r.achieved >= 0.95*float64(r.rate) && r.lagP99 <= 20*time.Millisecond
}

// good reports whether the sweep goes on after r.
func (r stepResult) good() bool {
	return r.lost == 0 && r.ok == r.sent && r.p99 <= benchP99Limit && r.kept()
}

// runStep sends rate webhooks per second for d to tgt, waits until every
// one answered 2xx reached the receiver and tgt's consumers settled, and
// measures.
func runStep(t *testing.T, lg *loadGen, hook *hookReceiver, js jetstream.JetStream, tgt sweepTarget, tck int64, prefix string, rate int, d time.Duration) stepResult {
	t.Helper()
	n := int(int64(rate) * int64(d) / int64(time.Second))
	at := time.Now().Add(-time.Hour)
	ws := make([]webhook, n)
	for i := range ws {
		ws[i] = invoiceWebhook(fmt.Sprintf("bench-%s-evt-%06d", prefix, i), fmt.Sprintf("bench-%s-inv-%06d", prefix, i), "unpaid", at)
	}
	pids := make([]int, len(tgt.procs))
	for i, pr := range tgt.procs {
		pids[i] = pidOf(pr)
	}
	mem := newRSSWatch(pids)
	began := time.Now()
	cpu0 := cpuOf(append(pids, os.Getpid()), tck)
	sw0 := switchesOf(pids)

	recs := lg.openLoop(tgt.base, ws, rate)

	r := stepResult{rate: rate, sent: n}
	var okInv []string
	var lags []time.Duration
	for _, rec := range recs {
		lags = append(lags, rec.sent.Sub(rec.sched))
		if rec.status/100 == 2 {
			okInv = append(okInv, rec.invoice)
		}
	}
	r.ok = len(okInv)
	if n > 1 {
		first, last := recs[0].sent, recs[0].sent
		for _, rec := range recs {
			first, last = minTime(first, rec.sent), maxTime(last, rec.sent)
		}
		r.achieved = float64(n-1) / last.Sub(first).Seconds()
	}
	r.lagP99 = percentile(lags, 0.99)

	// Drain: poll the receiver until every 2xx'd invoice arrived, or the deadline.
	arrivals, all := hook.arrived(okInv)
	for deadline := time.Now().Add(benchDrain); !all && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // polling the receiver
		arrivals, all = hook.arrived(okInv)
	}
	r.lost = len(okInv) - len(arrivals)
	r.drained = settle(t, js, tgt.consumers, 30*time.Second)
	cpu1 := cpuOf(append(pids, os.Getpid()), tck)
	sw1 := switchesOf(pids)
	r.elapsed = time.Since(began)
	r.rss = mem.stop()
	for i := range r.cpu {
		r.cpu[i] = cpu1[i] - cpu0[i]
	}
	for i := range r.switches {
		r.switches[i] = sw1[i] - sw0[i]
	}
	r.dup = hook.duplicates(okInv)

	var lat []time.Duration
	for _, rec := range recs {
		if a, ok := arrivals[rec.invoice]; ok && rec.status/100 == 2 {
			lat = append(lat, a.Sub(rec.sent))
		}
	}
	r.p50, r.p99, r.pmax = percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 1)
	return r
}

// settle polls until consumers (stream, durable) have nothing pending
// nor unacked, for up to timeout.
func settle(t *testing.T, js jetstream.JetStream, consumers [][2]string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) { // polling consumer info
		done := true
		for _, c := range consumers {
			cons, err := js.Consumer(t.Context(), c[0], c[1])
			if err != nil {
				done = false
				break
			}
			info, err := cons.Info(t.Context())
			if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
				done = false
				break
			}
		}
		if done {
			return true
		}
	}
	return false
}

// capResult is one closed-loop measure, or the sum of its rounds.
type capResult struct {
	target       string
	clients      int
	ok, refused  int
	counted      time.Duration // the windows' length
	cpu, natsCPU time.Duration // the target's and nats-server's, over the windows
	driverCPU    time.Duration // this process's (the clients'), over the windows
}

// perSec is the webhooks answered 2xx per second of the windows.
func (c capResult) perSec() float64 {
	if c.counted <= 0 {
		return 0
	}
	return float64(c.ok) / c.counted.Seconds()
}

// add sums round r into c.
func (c *capResult) add(r capResult) {
	c.ok += r.ok
	c.refused += r.refused
	c.counted += r.counted
	c.cpu += r.cpu
	c.natsCPU += r.natsCPU
	c.driverCPU += r.driverCPU
}

// closedLoop runs one round: n clients against base, each posting a new
// webhook as soon as the previous one is answered, for benchWarm +
// benchWindow, and counts the answers completed within the window.
func closedLoop(lg *loadGen, target, base string, pr, natsProc *proc, tck int64, n int) capResult {
	return closedLoopFor(lg, target, base, pr, natsProc, tck, n, benchWarm, benchWindow)
}

// closedLoopFor is closedLoop with its warm-up and window.
func closedLoopFor(lg *loadGen, target, base string, pr, natsProc *proc, tck int64, n int, warm, window time.Duration) capResult {
	pids := []int{pidOf(pr), pidOf(natsProc), os.Getpid()}
	at := time.Now().Add(-time.Hour)
	t0 := time.Now()
	from, to := t0.Add(warm), t0.Add(warm+window)
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for c := range n {
		wg.Go(func() {
			for i := 0; time.Now().Before(to); i++ {
				id := fmt.Sprintf("cap-%s-%d-%d-%03d-%07d", target, n, t0.UnixNano(), c, i) // new in every round
				status := lg.post(base, invoiceWebhook(id+"-evt", id+"-inv", "unpaid", at))
				if done := time.Now(); done.After(from) && !done.After(to) {
					if status/100 == 2 {
						ok.Add(1)
					} else {
						refused.Add(1)
					}
				}
			}
		})
	}
	<-time.After(time.Until(from)) // the measurement window: a pace, not a wait for a result
	cpu0 := cpuOf(pids, tck)
	<-time.After(time.Until(to))
	cpu1 := cpuOf(pids, tck)
	wg.Wait()
	return capResult{target: target, clients: n, ok: int(ok.Load()), refused: int(refused.Load()),
		counted: window, cpu: cpu1[0] - cpu0[0], natsCPU: cpu1[1] - cpu0[1], driverCPU: cpu1[2] - cpu0[2]}
}

func pidOf(pr *proc) int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.cmd == nil || pr.cmd.Process == nil {
		return 0
	}
	return pr.cmd.Process.Pid
}

// clockTicks is the kernel's USER_HZ (getconf CLK_TCK), 100 when getconf
// is missing; a negative value records that it was assumed.
func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return -100
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || n <= 0 {
		return -100
	}
	return n
}

// cpuOf returns each process's utime+stime (/proc/<pid>/stat), 0 for
// one that cannot be read.
func cpuOf(pids []int, tck int64) []time.Duration {
	hz := max(tck, -tck)
	out := make([]time.Duration, len(pids))
	for i, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // fields from 3 (state) on
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
		stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
		out[i] = time.Duration((utime + stime) * int64(time.Second) / hz)
	}
	return out
}

// rssOf returns VmRSS in KiB (/proc/<pid>/status), 0 when unreadable.
func rssOf(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// switchesOf returns each process's context switches, voluntary and
// not, summed over its threads (/proc/<pid>/task/*/status): how often it
// went to sleep or was put off the CPU, 0 for one that cannot be read.
func switchesOf(pids []int) []int64 {
	out := make([]int64, len(pids))
	for i, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			if err != nil {
				continue // the thread has exited
			}
			for line := range strings.SplitSeq(string(b), "\n") {
				name, v, ok := strings.Cut(line, ":")
				if ok && (name == "voluntary_ctxt_switches" || name == "nonvoluntary_ctxt_switches") {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					out[i] += n
				}
			}
		}
	}
	return out
}

// rssWatch samples the VmRSS of pids every 100 ms until stopped, and keeps
// each one's peak.
type rssWatch struct {
	pids []int
	peak []uint64
	quit chan struct{}
	done chan struct{}
}

func newRSSWatch(pids []int) *rssWatch {
	w := &rssWatch{pids: pids, peak: make([]uint64, len(pids)), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			w.sample()
			select {
			case <-w.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *rssWatch) sample() {
	for i, pid := range w.pids {
		w.peak[i] = max(w.peak[i], rssOf(pid))
	}
}

// stop takes a last sample and returns the peaks.
func (w *rssWatch) stop() [4]uint64 {
	close(w.quit)
	<-w.done
	w.sample()
	var out [4]uint64
	copy(out[:], w.peak)
	return out
}

// percentile is the nearest-rank q-quantile of ds (0 when empty).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// total is the four processes' CPU per webhook answered 2xx.
func (r stepResult) total() time.Duration {
	if r.ok == 0 {
		return 0
	}
	return (r.cpu[0] + r.cpu[1] + r.cpu[2] + r.cpu[3]) / time.Duration(r.ok)
}

// why says what made r not good.
func (r stepResult) why() string {
	var why []string
	if r.p99 > benchP99Limit {
		why = append(why, "p99 "+millis(r.p99))
	}
	if r.ok != r.sent {
		why = append(why, fmt.Sprintf("%d not 2xx", r.sent-r.ok))
	}
	if r.lost > 0 {
		why = append(why, fmt.Sprintf("%d lost", r.lost))
	}
	if !r.kept() {
		why = append(why, fmt.Sprintf("driver sent %.0f/s, lag p99 %s", r.achieved, millis(r.lagP99)))
	}
	return strings.Join(why, ", ")
}

func millis(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// stepTable writes rows as a table, the four processes named by names.
func stepTable(b *strings.Builder, rows []stepResult, names [4]string) {
	fmt.Fprintf(b, "| rate/s | sent | 2xx | lost | dup | p50 | p99 | max | sent/s | driver lag p99 | CPU µs/webhook %s | %s | %s | %s | total | driver | max RSS MiB %s | %s | %s | %s | context switches/webhook %s | %s | %s | %s |\n",
		names[0], names[1], names[2], names[3], names[0], names[1], names[2], names[3], names[0], names[1], names[2], names[3])
	fmt.Fprintln(b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		per := func(d time.Duration) string {
			if r.ok == 0 {
				return "-"
			}
			return strconv.FormatInt(int64(d/time.Microsecond)/int64(r.ok), 10)
		}
		note := ""
		if !r.drained {
			note = " (consumers not settled)"
		}
		switches := func(n int64) string {
			if r.ok == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f", float64(n)/float64(r.ok))
		}
		fmt.Fprintf(b, "| %d | %d | %d | %d | %d | %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s |%s\n",
			r.rate, r.sent, r.ok, r.lost, r.dup, millis(r.p50), millis(r.p99), millis(r.pmax), r.achieved, millis(r.lagP99),
			per(r.cpu[0]), per(r.cpu[1]), per(r.cpu[2]), per(r.cpu[3]), per(r.cpu[0]+r.cpu[1]+r.cpu[2]+r.cpu[3]), per(r.cpu[4]),
			float64(r.rss[0])/1024, float64(r.rss[1])/1024, float64(r.rss[2])/1024, float64(r.rss[3])/1024,
			switches(r.switches[0]), switches(r.switches[1]), switches(r.switches[2]), switches(r.switches[3]), note)
	}
}

func benchReport(rows, floor []stepResult, caps []capResult, tck int64, took time.Duration) string {
	var b strings.Builder
	hz := fmt.Sprintf("CLK_TCK %d (getconf)", tck)
	if tck < 0 {
		hz = "CLK_TCK assumed 100 (getconf failed)"
	}
	fmt.Fprintf(&b, "\n== bench-e2e: %d CPUs, %s, %s, %v per rate, one attempt per webhook; latency = webhook sent → its created event at the http sink's receiver\n", runtime.NumCPU(), runtime.Version(), hz, benchStep)
	fmt.Fprintf(&b, "   CPU = utime+stime per webhook answered 2xx, from the step's start until every consumer settled; driver = this test process (load generator + receiver), on the same CPUs\n\n")
	stepTable(&b, rows, [4]string{"ingress", "normalizer", "sinks", "nats"})
	best := 0
	for _, r := range rows {
		if r.good() {
			best = max(best, r.rate)
		}
	}
	if best > 0 {
		fmt.Fprintf(&b, "\nhighest rate with p99 ≤ %v (all 2xx, none lost, rate kept): %d/s\n", benchP99Limit, best)
	} else {
		fmt.Fprintf(&b, "\nhighest rate with p99 ≤ %v (all 2xx, none lost, rate kept): none of the rates tried\n", benchP99Limit)
	}
	for _, last := range rows {
		if !last.good() {
			fmt.Fprintf(&b, "%d/s beyond: %s\n", last.rate, last.why())
		}
	}

	fmt.Fprintf(&b, "\nbare pipeline, normalizer and sinks stopped: forward (HTTP → JetStream publish, 200 after the PubAck) → relay (consume, publish, ack after the PubAck) → deliver (consume, POST to the receiver, ack after the 2xx); one stored message per hop, nothing verified, decoded or kept\n\n")
	stepTable(&b, floor, [4]string{"forward", "relay", "deliver", "nats"})
	for _, f := range floor {
		for _, r := range rows {
			if r.rate == f.rate && r.ok > 0 && f.ok > 0 {
				fmt.Fprintf(&b, "%d/s: CPU per webhook, pipeline %d µs, bare pipeline %d µs (%.1f×)\n", r.rate, r.total()/time.Microsecond, f.total()/time.Microsecond, float64(r.total())/float64(f.total()))
			}
		}
	}

	fmt.Fprintf(&b, "\ncapacity, normalizer and sinks stopped: closed loop, N clients, 2xx/s over %d rounds of %v (each after %v of warm-up), alternating ingress and forwarder\n\n", benchRounds, benchWindow, benchWarm)
	fmt.Fprintln(&b, "| target | clients | 2xx/s | not 2xx | CPU µs/webhook target | nats | driver |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|")
	bestOf := map[string]float64{}
	for _, c := range caps {
		per := func(d time.Duration) string {
			if c.ok == 0 {
				return "-"
			}
			return strconv.FormatInt(int64(d/time.Microsecond)/int64(c.ok), 10)
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %d | %s | %s | %s |\n", c.target, c.clients, c.perSec(), c.refused, per(c.cpu), per(c.natsCPU), per(c.driverCPU))
		bestOf[c.target] = max(bestOf[c.target], c.perSec())
	}
	ratio := "-"
	if bestOf["forwarder"] > 0 {
		ratio = fmt.Sprintf("%.2f", bestOf["ingress"]/bestOf["forwarder"])
	}
	fmt.Fprintf(&b, "\ningress alone: %.0f/s, bare forwarder: %.0f/s, ratio %s (best of %v clients each)\n", bestOf["ingress"], bestOf["forwarder"], ratio, benchClients)
	fmt.Fprintf(&b, "run took %v\n", took.Round(time.Second))
	return b.String()
}
