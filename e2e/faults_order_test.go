//go:build faults

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// The order scenarios of the fault suite: each invoice is sent twice,
// unpaid then paid, the paid webhook only once the unpaid one was
// answered 2xx (a provider's two events of one invoice), while a fault is
// injected. Besides what is lost or doubled, they count what moves an
// invoice back: a consumer that handles an invoice's later message before
// an earlier one drops the earlier as stale, or delivers an older state
// after a newer one. Each row:
//
//	sent, 2xx       webhooks sent and answered 2xx
//	stored          2xx'd webhooks in WEBHOOKS
//	canonical       2xx'd webhooks with canonical events in INVOICES
//	stale           2xx'd webhooks stored with none: dropped as stale
//	delivered       2xx'd webhooks whose every event reached the http
//	                receiver, the file sink and SQL
//	lost            2xx'd webhooks not delivered
//	dup             event ids stored twice (INVOICES, file, SQL)
//	http again      events the receiver answered 2xx more than once
//	order: stream   invoices whose events INVOICES holds out of order
//	                (created not first, or the paid webhook's events before
//	                the unpaid one's)
//	order: receiver, file
//	                deliveries of an event older (in INVOICES) than one of
//	                the same invoice delivered before
//	dlq             dead letters
//	recovery        from the end of the fault to full delivery

// load is how many two-step invoices a scenario sends, and how many it
// starts per second.
type load struct{ invoices, rate int }

var (
	// shortLoad: 150 invoices in 3 s, the fault coming within it.
	shortLoad = load{invoices: 150, rate: 50}
	// steadyLoad: 200 invoices over 20 s, so that a fault of a few seconds
	// falls inside the load and each stage's stall shows as a gap in what
	// it produced.
	steadyLoad = load{invoices: 200, rate: 10}
)

type orderRow struct {
	scenario                                                  string
	sent, accepted, stored, canonical, stale, delivered, lost int
	duplicated, httpAgain                                     int
	streamOrder, receiverOrder, fileOrder, deadLetters        int
	recovery                                                  time.Duration
	stalls                                                    string
	examples                                                  []string // of order violations, and what each sink misses
}

var (
	orderRowsMu sync.Mutex
	orderRows   []orderRow
)

func TestFaultsOrder(t *testing.T) {
	for run := 1; run <= 2; run++ {
		t.Run(fmt.Sprintf("run %d", run), func(t *testing.T) {
			t.Run("nats-server SIGSTOP 10 s", func(t *testing.T) {
				runTwoStep(t, "nats-server SIGSTOP 10 s", pipelineOptions{}, shortLoad, func(p *pipeline, progress func() int) time.Time {
					waitProgress(p.t, progress, shortLoad.invoices/3)
					p.nats.pause()
					time.Sleep(10 * time.Second) // the server frozen
					p.nats.resume()
					return time.Now()
				})
			})
			t.Run("sinks SIGKILL, receiver 20 ms", func(t *testing.T) {
				runTwoStep(t, "sinks SIGKILL ×2, receiver 20 ms", pipelineOptions{}, shortLoad, func(p *pipeline, progress func() int) time.Time {
					p.receiver.mu.Lock()
					p.receiver.delay = 20 * time.Millisecond
					p.receiver.mu.Unlock()
					for _, at := range []int{shortLoad.invoices / 3, 2 * shortLoad.invoices / 3} {
						waitProgress(p.t, progress, at)
						p.sinks.kill()
						p.sinks.start()
					}
					return time.Now()
				})
			})
			t.Run("normalizer ×3, sinks ×2", func(t *testing.T) {
				o := pipelineOptions{normalizers: 3, sinkReplicas: 2}
				runTwoStep(t, "normalizer ×3, sinks ×2, one of each SIGKILLed", o, shortLoad, func(p *pipeline, progress func() int) time.Time {
					waitProgress(p.t, progress, shortLoad.invoices/2)
					p.normalizer.kill()
					p.sinks.kill()
					return time.Now()
				})
			})
			t.Run("receiver 500 with Retry-After 1 for 60 s", func(t *testing.T) {
				runTwoStep(t, "receiver 500 + Retry-After: 1 for 60 s", pipelineOptions{}, shortLoad, func(p *pipeline, progress func() int) time.Time {
					waitProgress(p.t, progress, shortLoad.invoices/4)
					p.receiver.answerWith(http.StatusInternalServerError, "1")
					time.Sleep(time.Minute) // the receiver's outage
					p.receiver.answer(http.StatusOK)
					return time.Now()
				})
			})
		})
	}
	reportOrder(t)
}

// TestFaultsOrderCluster is the cluster tier of the order scenarios, on
// processes on loopback: three nats-servers, streams with three replicas,
// the stages connected to all three; a steady load of two-step invoices
// while a node fails. Each row also gives each stage's longest stall.
func TestFaultsOrderCluster(t *testing.T) {
	o := pipelineOptions{nodes: 3}
	t.Run("INVOICES leader SIGKILLed, back after 5 s", func(t *testing.T) {
		runTwoStep(t, "cluster: INVOICES leader SIGKILLed, back after 5 s", o, steadyLoad, func(p *pipeline, progress func() int) time.Time {
			waitProgress(p.t, progress, steadyLoad.invoices/4)
			leader := p.leaderOf(subject.InvoicesStream)
			leader.kill()
			time.Sleep(5 * time.Second) // the node away
			leader.start()
			return time.Now()
		})
	})
	t.Run("two of three nodes SIGKILLed for 5 s", func(t *testing.T) {
		runTwoStep(t, "cluster: two of three nodes SIGKILLed for 5 s", o, steadyLoad, func(p *pipeline, progress func() int) time.Time {
			waitProgress(p.t, progress, steadyLoad.invoices/4)
			p.nodes[1].kill()
			p.nodes[2].kill()
			time.Sleep(5 * time.Second) // no quorum
			p.nodes[1].start()
			p.nodes[2].start()
			return time.Now()
		})
	})
	t.Run("the sinks' node SIGSTOPped 15 s", func(t *testing.T) {
		runTwoStep(t, "cluster: the node the sinks use SIGSTOPped 15 s", o, steadyLoad, func(p *pipeline, progress func() int) time.Time {
			waitProgress(p.t, progress, steadyLoad.invoices/4)
			node := p.nodeOf("invoicehub-sinks")
			node.pause()
			time.Sleep(15 * time.Second) // frozen
			node.resume()
			return time.Now()
		})
	})
	reportOrder(t)
}

// leaderOf returns the node that leads stream.
func (p *pipeline) leaderOf(stream string) *proc {
	p.t.Helper()
	js := p.connect()
	var leader string
	jstest.Eventually(p.t, 30*time.Second, stream+"'s leader", func() bool {
		s, err := js.Stream(p.t.Context(), stream)
		if err != nil || s.CachedInfo().Cluster == nil {
			return false
		}
		leader = s.CachedInfo().Cluster.Leader
		return leader != ""
	})
	return p.nodeNamed(leader)
}

// nodeOf returns the node a client (by its connection name) is connected
// to, from the nodes' monitoring endpoints.
func (p *pipeline) nodeOf(client string) *proc {
	p.t.Helper()
	var found *proc
	jstest.Eventually(p.t, 30*time.Second, client+"'s node", func() bool {
		for i, m := range p.monitors {
			resp, err := http.Get(m + "/connz")
			if err != nil {
				continue
			}
			var connz struct{ Connections []struct{ Name string } }
			json.NewDecoder(resp.Body).Decode(&connz)
			resp.Body.Close()
			for _, c := range connz.Connections {
				if c.Name == client {
					found = p.nodes[i]
					return true
				}
			}
		}
		return false
	})
	return found
}

// nodeNamed returns the node whose server name (-n) is name.
func (p *pipeline) nodeNamed(name string) *proc {
	p.t.Helper()
	for _, n := range p.nodes {
		if n.name == "nats-"+name {
			return n
		}
	}
	p.t.Fatalf("no node named %q", name)
	return nil
}

// twoStep is one invoice's two webhooks, sent one after the other.
type twoStep struct{ unpaid, paid webhook }

func twoStepInvoices(prefix string, n int) []twoStep {
	at := time.Now().Add(-time.Hour)
	out := make([]twoStep, n)
	for i := range out {
		inv := fmt.Sprintf("%s-inv-%04d", prefix, i)
		out[i] = twoStep{unpaid: invoiceWebhook(inv+"-v1", inv, "unpaid", at), paid: invoiceWebhook(inv+"-v2", inv, "paid", at.Add(time.Minute))}
	}
	return out
}

// sendTwoStep starts rate invoices per second; each sends its unpaid
// webhook until answered 2xx, then its paid one.
func (d *driver) sendTwoStep(invoices []twoStep, rate int) {
	paced(len(invoices), rate, func(i int) {
		if d.deliver(invoices[i].unpaid) {
			d.deliver(invoices[i].paid)
		}
	})
}

// runTwoStep sends l's two-step invoices with f injected, waits for every
// 2xx'd webhook to be delivered (or two minutes), and records the row.
// Every row must show 0 lost, 0 stale, 0 out of order.
func runTwoStep(t *testing.T, name string, o pipelineOptions, l load, f fault) {
	p := startPipeline(t, o)
	runTwoStepOn(t, p, name, l, f)
}

func runTwoStepOn(t *testing.T, p *pipeline, name string, l load, f fault) {
	invoices := twoStepInvoices(strings.ReplaceAll(t.Name(), "/", "-"), l.invoices)
	d := p.driver(4 * time.Minute)
	sent := make(chan struct{})
	start := time.Now()
	go func() { d.sendTwoStep(invoices, l.rate); close(sent) }()
	recovered := f(p, func() int { return len(d.acceptedIDs()) / 2 })
	<-sent
	js := p.connect()
	r := orderRow{scenario: name}
	r.recovery = waitDelivered(t, p, js, recovered, func() bool {
		r = accountOrder(t, p, js, d, name, 2*l.invoices)
		return r.lost == 0
	})
	settled(t, js)
	recovery := r.recovery
	r = accountOrder(t, p, js, d, name, 2*l.invoices)
	r.recovery = recovery
	r.stalls = stalls(t, p, js, d, start)
	orderRowsMu.Lock()
	orderRows = append(orderRows, r)
	orderRowsMu.Unlock()
	t.Logf("%+v", r)
	if r.accepted != r.sent || r.lost != 0 || r.stale != 0 || r.duplicated != 0 || r.streamOrder != 0 || r.receiverOrder != 0 || r.fileOrder != 0 || r.deadLetters != 0 {
		t.Errorf("%s: %+v (logs kept in %s)", name, r, keepLogs(t, p))
	}
}

// keepLogs copies the pipeline's logs out of its temporary folder, which
// the test removes, and returns where.
func keepLogs(t *testing.T, p *pipeline) string {
	dir, err := os.MkdirTemp("", "invoicehub-fault-logs-")
	if err != nil {
		return p.dir
	}
	logs, _ := filepath.Glob(filepath.Join(p.dir, "*.log"))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			os.WriteFile(filepath.Join(dir, filepath.Base(l)), b, 0o644)
		}
	}
	return dir
}

// accountOrder counts what became of the driver's 2xx'd webhooks.
func accountOrder(t *testing.T, p *pipeline, js jetstream.JetStream, d *driver, name string, sent int) orderRow {
	t.Helper()
	accepted := d.acceptedIDs()
	r := orderRow{scenario: name, sent: sent, accepted: len(accepted)}
	stored := storedWebhooks(t, js)
	events, err := readInvoices(js)
	if err != nil {
		r.lost = len(accepted)
		return r
	}
	byRaw := map[string][]canonicalEvent{}
	byID := map[string]canonicalEvent{}
	perInvoice := map[string][]canonicalEvent{}
	copies := map[string]int{}
	for _, e := range events {
		copies[e.ID]++
		byID[e.ID] = e
		byRaw[e.RawID] = append(byRaw[e.RawID], e)
		perInvoice[e.Invoice] = append(perInvoice[e.Invoice], e)
	}
	files := fileSinkIDs(t, p.fileSink)
	rows, _ := sqlRows(t, p.sqlSink)
	hooked := p.receiver.delivered()
	missing := map[string]int{}
	var missed []string
	for raw := range accepted {
		if stored[raw] {
			r.stored++
		}
		evs := byRaw[raw]
		switch {
		case len(evs) > 0:
			r.canonical++
		case stored[raw]:
			r.stale++
		}
		ok := len(evs) > 0
		for _, e := range evs {
			for sink, n := range map[string]int{"receiver": hooked[e.ID], "file": files[e.ID], "sql": rows[e.ID]} {
				if n == 0 {
					missing[sink]++
					ok = false
					if len(missed) < 12 {
						missed = append(missed, fmt.Sprintf("%s:%d", sink, e.Seq))
					}
				}
			}
		}
		if ok {
			r.delivered++
		}
	}
	r.lost = r.accepted - r.delivered
	for _, counts := range []map[string]int{copies, files, rows} {
		for _, n := range counts {
			r.duplicated += max(n-1, 0)
		}
	}
	for _, n := range hooked {
		r.httpAgain += max(n-1, 0)
	}
	for _, evs := range perInvoice {
		if !inDerivedOrder(evs) {
			r.streamOrder++
		}
	}
	var receiverExamples, fileExamples []string
	r.receiverOrder, receiverExamples = backwards("receiver", p.receiver.answered(), byID)
	var lines []string
	for _, l := range sinkLines(t, p.fileSink) {
		lines = append(lines, l.ID)
	}
	r.fileOrder, fileExamples = backwards("file", lines, byID)
	r.examples = append(receiverExamples, fileExamples...)
	if len(missing) > 0 {
		r.examples = append(r.examples, fmt.Sprintf("events missing per sink: %v (%s)", missing, strings.Join(missed, " ")))
	}
	r.deadLetters = int(jstest.Count(t, js, subject.DLQStream))
	return r
}

// inDerivedOrder reports whether one invoice's events, in stream order,
// begin with created and hold the unpaid webhook's events before the paid
// one's.
func inDerivedOrder(evs []canonicalEvent) bool {
	if len(evs) == 0 || evs[0].Kind != "created" {
		return false
	}
	paidSeen := false
	for _, e := range evs {
		v2 := strings.HasSuffix(e.RawID, "-v2")
		if paidSeen && !v2 {
			return false
		}
		paidSeen = paidSeen || v2
	}
	return true
}

// backwards counts, in a sink's deliveries (event ids in the order
// delivered), those of an event older in INVOICES than one of the same
// invoice delivered before it, and describes the first few.
func backwards(sink string, delivered []string, byID map[string]canonicalEvent) (n int, examples []string) {
	newest := map[string]canonicalEvent{}
	for i, id := range delivered {
		e, ok := byID[id]
		if !ok {
			continue
		}
		if before := newest[e.Invoice]; e.Seq < before.Seq {
			n++
			if len(examples) < 3 {
				examples = append(examples, fmt.Sprintf("%s delivery %d: %s %s (seq %d) after %s (seq %d)", sink, i, e.Invoice, e.Kind, e.Seq, before.Kind, before.Seq))
			}
			continue
		}
		newest[e.Invoice] = e
	}
	return n, examples
}

// stalls describes, for each stage, the longest time from the start of
// the load to its last 2xx in which the stage produced nothing: ingress
// no 2xx, the normalizer no canonical event, the sinks no delivery to the
// receiver.
func stalls(t *testing.T, p *pipeline, js jetstream.JetStream, d *driver, from time.Time) string {
	d.mu.Lock()
	answered := slices.Clone(d.acceptedAt)
	d.mu.Unlock()
	to := slices.MaxFunc(answered, func(a, b time.Time) int { return a.Compare(b) })
	var stored []time.Time
	if events, err := readInvoices(js); err == nil {
		for _, e := range events {
			stored = append(stored, e.Stored)
		}
	}
	p.receiver.mu.Lock()
	delivered := slices.Clone(p.receiver.times)
	p.receiver.mu.Unlock()
	return fmt.Sprintf("ingress %s, normalizer %s, sinks %s", longestGap(answered, from, to), longestGap(stored, from, to), longestGap(delivered, from, to))
}

// longestGap is the longest interval within [from, to] with none of ts.
func longestGap(ts []time.Time, from, to time.Time) time.Duration {
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	longest, last := time.Duration(0), from
	for _, at := range ts {
		if at.Before(from) || at.After(to) {
			continue
		}
		longest, last = max(longest, at.Sub(last)), at
	}
	return max(longest, to.Sub(last)).Round(100 * time.Millisecond)
}

// storedWebhooks returns the provider event ids WEBHOOKS holds.
func storedWebhooks(t *testing.T, js jetstream.JetStream) map[string]bool {
	t.Helper()
	msgs, err := jstest.ReadAll(t.Context(), js, subject.WebhooksStream)
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, m := range msgs {
		var envelope struct{ ID string }
		if json.Unmarshal(m.Data, &envelope) == nil {
			out[envelope.ID] = true
		}
	}
	return out
}

// reportOrder prints the order rows recorded since the last report, and
// appends them to INVOICEHUB_FAULTS_REPORT when set.
func reportOrder(t *testing.T) {
	orderRowsMu.Lock()
	defer orderRowsMu.Unlock()
	defer func() { orderRows = nil }()
	var rows []string
	for _, r := range orderRows {
		rows = append(rows, fmt.Sprintf("%s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d / %d / %d | %d | %s | %s", r.scenario, r.sent, r.accepted, r.stored, r.canonical,
			r.stale, r.delivered, r.lost, r.duplicated, r.httpAgain, r.streamOrder, r.receiverOrder, r.fileOrder, r.deadLetters, r.recovery.Round(10*time.Millisecond), r.stalls))
	}
	printReport("\n", []string{"scenario (two-step invoices)", "sent", "2xx", "stored", "canonical", "stale", "delivered", "lost", "dup", "http again",
		"order: stream / receiver / file", "dlq", "recovery", "stalls"}, rows)
}
