//go:build faults

package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// The fault suite (make test-faults): each scenario runs the real binaries
// as separate processes (nats-server with file storage, ingress,
// normalizer, sinks with a file, an SQLite and an http sink), sends
// distinct signed webhooks at a steady rate with a driver that retries
// what is not answered 2xx, injects its fault, and then counts exactly:
//
//	sent        webhooks the driver sent
//	2xx         webhooks answered 2xx (the driver retries the others)
//	lost        webhooks answered 2xx whose canonical events are missing
//	            from INVOICES, the file sink, the SQL sink or the receiver
//	duplicated  canonical event ids stored twice in INVOICES, lines twice
//	            in the file sink, rows twice in SQL
//	extra       canonical events no 2xx'd webhook accounts for
//	http again  webhook-ids the receiver answered 2xx more than once
//	            (reported apart: only a sink killed between the receiver's
//	            2xx and its ack may cause one)
//	recovery    from the end of the fault to full delivery

const (
	faultWebhooks = 400
	faultRate     = 100 // webhooks per second
)

type faultRow struct {
	scenario                                           string
	sent, accepted, lost, duplicated, extra, httpAgain int
	recovery                                           time.Duration
}

var (
	faultRowsMu sync.Mutex
	faultRows   []faultRow
)

func recordRow(r faultRow) {
	faultRowsMu.Lock()
	faultRows = append(faultRows, r)
	faultRowsMu.Unlock()
}

func TestFaults(t *testing.T) {
	t.Run("baseline", func(t *testing.T) { runBasic(t, "baseline", pipelineOptions{}, nil) })
	t.Run("normalizer kill -9, at the crash point and 3 times mid-load", testNormalizerKills)
	t.Run("sinks kill -9 twice mid-load", func(t *testing.T) {
		runBasic(t, "sinks kill -9 ×2", pipelineOptions{}, func(p *pipeline, progress func() int) time.Time {
			return killTwice(p, p.sinks, progress)
		})
	})
	t.Run("ingress kill -9 twice mid-load", func(t *testing.T) {
		runBasic(t, "ingress kill -9 ×2", pipelineOptions{}, func(p *pipeline, progress func() int) time.Time {
			return killTwice(p, p.ingress, progress)
		})
	})
	t.Run("nats-server killed and restarted mid-load", func(t *testing.T) {
		runBasic(t, "nats-server restart", pipelineOptions{}, func(p *pipeline, progress func() int) time.Time {
			waitProgress(p.t, progress, faultWebhooks/3)
			p.nats.kill()
			time.Sleep(2 * time.Second) // NATS down for two seconds: the provider's retries meet 503s
			p.nats.start()
			return time.Now()
		})
	})
	t.Run("http receiver failing for 3 s", func(t *testing.T) {
		runBasic(t, "http receiver 503 for 3 s", pipelineOptions{}, func(p *pipeline, progress func() int) time.Time {
			waitProgress(p.t, progress, faultWebhooks/4)
			p.receiver.answer(http.StatusServiceUnavailable)
			time.Sleep(3 * time.Second) // the receiver's outage
			p.receiver.answer(http.StatusOK)
			return time.Now()
		})
	})
	t.Run("every webhook resent after the duplicate window", testResendAfterWindow)
	t.Run("newer and older versions interleaved", testInterleavedVersions)
	t.Run("permanent 4xx, then dlq replay -all", testDeadLetterReplay)
	reportFaults(t)
}

// reportFaults prints the table, and writes it to INVOICEHUB_FAULTS_REPORT
// when set.
func reportFaults(t *testing.T) {
	faultRowsMu.Lock()
	defer faultRowsMu.Unlock()
	var rows []string
	for _, r := range faultRows {
		rows = append(rows, fmt.Sprintf("%s | %d | %d | %d | %d | %d | %d | %s", r.scenario, r.sent, r.accepted, r.lost, r.duplicated, r.extra, r.httpAgain, r.recovery.Round(10*time.Millisecond)))
	}
	printReport("", []string{"scenario", "sent", "2xx", "lost", "duplicated", "extra", "http again", "recovery"}, rows)
}

// printReport prints a Markdown table after lead, and appends it to
// INVOICEHUB_FAULTS_REPORT when set; a row's cells are joined by " | ".
func printReport(lead string, columns, rows []string) {
	var b strings.Builder
	b.WriteString(lead)
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(columns, " | "), strings.Repeat("---|", len(columns)))
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |\n", r)
	}
	fmt.Print(b.String())
	appendReport(b.String())
}

// appendReport appends a table to INVOICEHUB_FAULTS_REPORT, when set.
func appendReport(table string) {
	if path := os.Getenv("INVOICEHUB_FAULTS_REPORT"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err == nil {
			f.WriteString(table)
			f.Close()
		}
	}
}

// fault injects a scenario's fault while the driver sends; progress
// returns how many webhooks were answered 2xx so far. It returns when the
// fault is over.
type fault func(p *pipeline, progress func() int) time.Time

func distinctWebhooks(prefix string, n int) []webhook {
	at := time.Now().Add(-time.Hour)
	ws := make([]webhook, n)
	for i := range ws {
		ws[i] = invoiceWebhook(fmt.Sprintf("%s-evt-%04d", prefix, i), fmt.Sprintf("%s-inv-%04d", prefix, i), "unpaid", at)
	}
	return ws
}

// runBasic sends faultWebhooks distinct webhooks, each a new unpaid
// invoice (created, updated, sent), through the pipeline with f injected,
// and accounts for them.
func runBasic(t *testing.T, name string, o pipelineOptions, f fault) {
	o.httpKinds = []string{"created"}
	p := startPipeline(t, o)
	ws := distinctWebhooks(strings.ReplaceAll(t.Name(), "/", "-"), faultWebhooks)
	d := p.driver(3 * time.Minute)
	sent := make(chan struct{})
	go func() { d.send(ws, faultRate); close(sent) }()
	recovered := time.Now()
	if f != nil {
		recovered = f(p, func() int { return len(d.acceptedIDs()) })
	}
	<-sent
	if f == nil {
		recovered = time.Now()
	}
	js := p.connect()
	want := map[schemas.Kind]bool{schemas.KindCreated: true, schemas.KindUpdated: true, schemas.KindSent: true}
	r := faultRow{scenario: name, sent: len(ws), accepted: len(d.acceptedIDs())}
	r.recovery = waitDelivered(t, p, js, recovered, func() bool {
		r.lost, _, _, _ = account(t, p, js, d.acceptedIDs(), want)
		return r.lost == 0
	})
	settled(t, js)
	r.lost, r.duplicated, r.extra, r.httpAgain = account(t, p, js, d.acceptedIDs(), want)
	finish(t, r)
}

func finish(t *testing.T, r faultRow) {
	t.Helper()
	recordRow(r)
	t.Logf("%+v", r)
	if r.lost != 0 || r.duplicated != 0 || r.extra != 0 || r.accepted != r.sent {
		t.Errorf("%s: sent %d, 2xx %d, lost %d, duplicated %d, extra %d", r.scenario, r.sent, r.accepted, r.lost, r.duplicated, r.extra)
	}
}

// waitDelivered polls delivered (it reports whether nothing is lost)
// until it holds, for up to two minutes, and returns how long after
// recovered it first held.
func waitDelivered(t *testing.T, p *pipeline, js jetstream.JetStream, recovered time.Time, delivered func() bool) time.Duration {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !delivered() {
		if time.Now().After(deadline) {
			t.Errorf("not fully delivered two minutes after the fault (logs kept in %s)", keepLogs(t, p))
			return time.Since(recovered)
		}
		time.Sleep(20 * time.Millisecond) // polling the outputs
	}
	return time.Since(recovered)
}

// account counts what became of the accepted webhooks: each must have
// one canonical event of each wanted kind in INVOICES, the file sink and
// SQL, and its created event delivered to the receiver.
func account(t *testing.T, p *pipeline, js jetstream.JetStream, accepted map[string]bool, want map[schemas.Kind]bool) (lost, duplicated, extra, httpAgain int) {
	t.Helper()
	events := invoicesStream(t, js)
	byID := map[string]int{}
	have := map[string]map[schemas.Kind]string{} // raw id → kind → event id
	for _, e := range events {
		byID[e.ID]++
		if !accepted[e.RawID] || !want[e.Kind] {
			extra++
			continue
		}
		if have[e.RawID] == nil {
			have[e.RawID] = map[schemas.Kind]string{}
		}
		have[e.RawID][e.Kind] = e.ID
	}
	for _, n := range byID {
		duplicated += n - 1
	}
	files := fileSinkIDs(t, p.fileSink)
	rows, _ := sqlRows(t, p.sqlSink)
	for _, n := range files {
		duplicated += n - 1
	}
	for _, n := range rows {
		duplicated += n - 1
	}
	hooked := p.receiver.delivered()
	for _, n := range hooked {
		httpAgain += max(n-1, 0)
	}
	for raw := range accepted {
		ok := len(have[raw]) == len(want)
		for _, id := range have[raw] {
			ok = ok && files[id] > 0 && rows[id] > 0
		}
		ok = ok && hooked[have[raw][schemas.KindCreated]] > 0
		if !ok {
			lost++
		}
	}
	return lost, duplicated, extra, httpAgain
}

func waitProgress(t testing.TB, progress func() int, n int) {
	t.Helper()
	jstest.Eventually(t, time.Minute, fmt.Sprintf("%d webhooks accepted", n), func() bool { return progress() >= n })
}

// killTwice kills pr with SIGKILL at a third and two thirds of the load,
// restarting it at once each time.
func killTwice(p *pipeline, pr *proc, progress func() int) time.Time {
	for _, at := range []int{faultWebhooks / 3, 2 * faultWebhooks / 3} {
		waitProgress(p.t, progress, at)
		pr.kill()
		pr.start()
	}
	return time.Now()
}

// testNormalizerKills: the first normalizer crashes by itself right after
// its 60th state write, before publishing (the crash point); the next ones
// are killed with SIGKILL three times mid-load; each is restarted at once.
func testNormalizerKills(t *testing.T) {
	o := pipelineOptions{normalizerEnv: []string{"INVOICEHUB_FAULT_CRASH=after-state-write:60"}}
	runBasic(t, "normalizer kill -9 ×3 + crash point", o, func(p *pipeline, progress func() int) time.Time {
		jstest.Eventually(p.t, time.Minute, "the crash point hit", func() bool { return !p.normalizer.running() })
		p.normalizer.env = slices.DeleteFunc(p.normalizer.env, func(e string) bool { return strings.HasPrefix(e, "INVOICEHUB_FAULT_CRASH=") })
		p.normalizer.start()
		for _, at := range []int{faultWebhooks / 4, faultWebhooks / 2, 3 * faultWebhooks / 4} {
			waitProgress(p.t, progress, at)
			p.normalizer.kill()
			p.normalizer.start()
		}
		return time.Now()
	})
}

// probeWindow polls until INVOICES has forgotten a message id published
// now: the duplicate window passed.
func probeWindow(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	probe := &nats.Msg{Subject: subject.Replay("sink", "probe"), Header: nats.Header{jetstream.MsgIDHeader: {"probe"}}}
	js.PublishMsg(t.Context(), probe)
	jstest.Eventually(t, time.Minute, "the duplicate window passed", func() bool {
		ack, err := js.PublishMsg(t.Context(), probe)
		return err == nil && !ack.Duplicate
	})
}

// testResendAfterWindow: every accepted webhook is resent, with a fresh
// signature, once the duplicate window (5 s here) has passed: ingress
// stores them again (an archive), no canonical event is published twice.
func testResendAfterWindow(t *testing.T) {
	p := startPipeline(t, pipelineOptions{env: []string{"INVOICEHUB_DUPLICATE_WINDOW=5s"}, httpKinds: []string{"created"}})
	ws := distinctWebhooks("resend", faultWebhooks)
	d := p.driver(3 * time.Minute)
	d.send(ws, faultRate)
	js := p.connect()
	want := map[schemas.Kind]bool{schemas.KindCreated: true, schemas.KindUpdated: true, schemas.KindSent: true}
	waitDelivered(t, p, js, time.Now(), func() bool { lost, _, _, _ := account(t, p, js, d.acceptedIDs(), want); return lost == 0 })
	settled(t, js)
	probeWindow(t, js)
	resent := time.Now()
	again := p.driver(3 * time.Minute)
	again.send(ws, faultRate)
	settled(t, js)
	r := faultRow{scenario: "every webhook resent after the duplicate window", sent: 2 * len(ws), accepted: len(d.acceptedIDs()) + len(again.acceptedIDs()), recovery: time.Since(resent)}
	r.lost, r.duplicated, r.extra, r.httpAgain = account(t, p, js, d.acceptedIDs(), want)
	recordRow(r)
	if r.lost != 0 || r.duplicated != 0 || r.extra != 0 || r.httpAgain != 0 || r.accepted != r.sent {
		t.Errorf("%+v", r)
	}
}

// testInterleavedVersions: each invoice gets its open version and its paid
// version, a minute apart by created_at, sent in random order. Every
// invoice ends paid, none regresses, none is created twice.
func testInterleavedVersions(t *testing.T) {
	p := startPipeline(t, pipelineOptions{})
	at := time.Now().Add(-time.Hour)
	var ws []webhook
	for i := range faultWebhooks / 2 {
		inv := fmt.Sprintf("versions-inv-%04d", i)
		older := invoiceWebhook(inv+"-v1", inv, "unpaid", at)
		newer := invoiceWebhook(inv+"-v2", inv, "paid", at.Add(time.Minute))
		if rand.IntN(2) == 0 {
			older, newer = newer, older
		}
		ws = append(ws, older, newer)
	}
	d := p.driver(3 * time.Minute)
	d.send(ws, faultRate)
	sent := time.Now()
	js := p.connect()
	r := faultRow{scenario: "newer and older versions interleaved", sent: len(ws), accepted: len(d.acceptedIDs())}
	invoices := faultWebhooks / 2
	check := func() (lost, duplicated, extra int) {
		events := invoicesStream(t, js)
		byID := map[string]int{}
		created := map[string]int{}
		paidAt := map[string]uint64{}
		for _, e := range events {
			byID[e.ID]++
			if !d.acceptedIDs()[e.RawID] {
				extra++
			}
			if e.Kind == schemas.KindCreated {
				created[e.Invoice]++
			}
			if e.Status == schemas.StatusPaid && paidAt[e.Invoice] == 0 {
				paidAt[e.Invoice] = e.Seq
			}
		}
		for _, e := range events { // a state never regresses: nothing unpaid after paid
			if e.Status != schemas.StatusPaid && paidAt[e.Invoice] != 0 && e.Seq > paidAt[e.Invoice] {
				extra++
			}
		}
		for _, n := range byID {
			duplicated += n - 1
		}
		for _, n := range created {
			duplicated += n - 1
		}
		_, status := sqlRows(t, p.sqlSink)
		for i := range invoices {
			inv := fmt.Sprintf("versions-inv-%04d", i)
			if created[inv] == 0 || status[inv] != string(schemas.StatusPaid) {
				lost++
			}
		}
		return lost, duplicated, extra
	}
	r.recovery = waitDelivered(t, p, js, sent, func() bool { r.lost, _, _ = check(); return r.lost == 0 })
	settled(t, js)
	r.lost, r.duplicated, r.extra = check()
	finish(t, r)
}

// testDeadLetterReplay: the receiver answers 400 (permanent) to every
// delivery, each is dead-lettered at once; the receiver is fixed and
// `invoicehub dlq replay -all sink.hook` sends them back: each is then
// delivered exactly once and the DLQ is empty.
func testDeadLetterReplay(t *testing.T) {
	p := startPipeline(t, pipelineOptions{httpKinds: []string{"created"}})
	p.receiver.answer(http.StatusBadRequest)
	n := faultWebhooks / 2
	ws := distinctWebhooks("dlq", n)
	d := p.driver(3 * time.Minute)
	d.send(ws, faultRate)
	js := p.connect()
	jstest.Eventually(t, time.Minute, "every created event dead-lettered by the http sink", func() bool {
		return jstest.Count(t, js, subject.DLQStream) == uint64(n)
	})
	p.receiver.answer(http.StatusOK)
	replayed := time.Now()
	out, err := exec.Command(filepath.Join(stageBins(t), "invoicehub"), "dlq", "-nats", p.natsURL, "replay", "-all", "sink.hook").CombinedOutput()
	if err != nil {
		t.Fatalf("dlq replay: %v\n%s", err, out)
	}
	want := map[schemas.Kind]bool{schemas.KindCreated: true, schemas.KindUpdated: true, schemas.KindSent: true}
	r := faultRow{scenario: "permanent 4xx, then dlq replay -all", sent: n, accepted: len(d.acceptedIDs())}
	r.recovery = waitDelivered(t, p, js, replayed, func() bool { r.lost, _, _, _ = account(t, p, js, d.acceptedIDs(), want); return r.lost == 0 })
	settled(t, js)
	r.lost, r.duplicated, r.extra, r.httpAgain = account(t, p, js, d.acceptedIDs(), want)
	if dl := jstest.Count(t, js, subject.DLQStream); dl != 0 {
		t.Errorf("DLQ holds %d after the replay", dl)
	}
	finish(t, r)
}
