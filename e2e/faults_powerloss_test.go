//go:build faults

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/e2e/internal/lossyfs"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// The power-loss tier (make test-powerloss; part of make test-faults):
// the NATS stores on lossyfs (e2e/internal/lossyfs), a filesystem that
// forgets at a simulated power cut every write no fsync covered, as a
// machine losing power forgets its page cache. Each scenario sends
// distinct signed Qonto webhooks, one attempt each (a provider resends
// only what it was not answered 2xx), cuts the power mid-stream, restarts
// on what reached the disks, and counts:
//
//	sent       webhooks posted until the cut
//	2xx        of those, answered 2xx
//	present    answered 2xx and in WEBHOOKS after the restart
//	lost       answered 2xx and not present
//	unsynced   files and bytes the cut took back (written, never fsynced)
//	canonical  distinct canonical events INVOICES holds
//	dup        canonical event ids INVOICES stores twice
//	caught up  every present webhook normalized, and every canonical
//	           event in the file and SQL sinks (file lines repeated by a
//	           redelivery are counted apart), and how long after the
//	           restart; or why not
//
// Each scenario runs under the project's durability policy
// (deploy/nats/durability.conf) and with NATS's default sync. Under the
// policy nothing may be lost; with the default, one server and three cut
// at once must lose webhooks: the tier sees what the policy prevents
// (the frozen-node case loses only with some timings).

const (
	powerMaxWebhooks = 20000
	powerRate        = 100                    // webhooks per second, offered: what three servers on FUSE in the test process take
	powerCutAt       = 600                    // answered 2xx before the cut
	powerPauseAt     = 200                    // cut while paused: the pause begins here
	powerPoll        = 200 * time.Millisecond // between two counts: a count reads whole streams
)

type powerRow struct {
	scenario, policy              string
	sent, accepted, present, lost int
	unsynced                      lossyfs.Lost
	canonical, dup, fileRepeats   int
	caughtUp                      string
}

var (
	powerRowsMu sync.Mutex
	powerRows   []powerRow
)

func TestFaultsPowerLoss(t *testing.T) {
	if err := lossyfs.Available(); err != nil {
		t.Skipf("power-loss tier skipped: it mounts a FUSE filesystem, which needs /dev/fuse and root or fusermount3: %v", err)
	}
	for _, policy := range []bool{true, false} {
		t.Run("single/"+policyName(policy), func(t *testing.T) {
			powerCutAll(t, "one nats-server, power cut mid-stream", 1, policy)
		})
		t.Run("cluster/"+policyName(policy), func(t *testing.T) {
			powerCutAll(t, "3 nodes, all three cut at once", 3, policy)
		})
		t.Run("cutpaused/"+policyName(policy), func(t *testing.T) { powerCutWhilePaused(t, policy) })
	}
	t.Run("dev", testDevPowerCut)
	reportPower(t)
}

// lossyStores mounts a lossy disk per store name; storeDir gives a
// store's directory on its disk.
func lossyStores(t *testing.T, names ...string) (storeDir func(string) string, disks map[string]*lossyfs.Disk) {
	t.Helper()
	root := t.TempDir()
	storeDir = func(name string) string { return filepath.Join(root, "mnt", name) }
	disks = map[string]*lossyfs.Disk{}
	for _, name := range names {
		backing := filepath.Join(root, "disk", name)
		for _, dir := range []string{storeDir(name), backing} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		d, err := lossyfs.Mount(storeDir(name), backing)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() }) // after the processes' cleanup: registered before them
		disks[name] = d
	}
	return storeDir, disks
}

// storeNames are the store names of a pipeline with nodes servers.
func storeNames(nodes int) []string {
	if nodes <= 1 {
		return []string{"nats"}
	}
	var out []string
	for i := 1; i <= nodes; i++ {
		out = append(out, fmt.Sprintf("n%d", i))
	}
	return out
}

// powerSender posts distinct webhooks at powerRate, one attempt each,
// until stopped (or powerMaxWebhooks, a bound the cut comes long before).
type powerSender struct {
	d       *driver
	stopped atomic.Bool
	sent    atomic.Int64
	done    chan struct{}
}

func startSending(d *driver, prefix string) *powerSender {
	s := &powerSender{d: d, done: make(chan struct{})}
	at := time.Now().Add(-time.Hour)
	go func() {
		defer close(s.done)
		var posts sync.WaitGroup
		tick := time.NewTicker(time.Second / powerRate)
		defer tick.Stop()
		for i := 0; i < powerMaxWebhooks && !s.stopped.Load(); i++ {
			<-tick.C
			w := invoiceWebhook(fmt.Sprintf("%s-evt-%05d", prefix, i), fmt.Sprintf("%s-inv-%05d", prefix, i), "unpaid", at)
			s.sent.Add(1)
			posts.Go(func() {
				if status, _ := d.post(w); status/100 == 2 {
					d.mu.Lock()
					d.accepted[w.id] = true
					d.mu.Unlock()
				}
			})
		}
		posts.Wait()
	}()
	return s
}

// waitAccepted waits until n webhooks were answered 2xx; p's logs are
// kept if they never are.
func (s *powerSender) waitAccepted(t *testing.T, p *pipeline, n int) {
	t.Helper()
	if !jstest.Poll(3*time.Minute, powerPoll, func() bool { return s.accepted() >= n }) {
		logs := "-"
		if p != nil {
			logs = keepLogs(t, p)
		}
		t.Fatalf("%d of %d webhooks sent answered 2xx in 3 minutes, waiting for %d (logs in %s)", s.accepted(), s.sent.Load(), n, logs)
	}
}

func (s *powerSender) accepted() int { return len(s.d.acceptedIDs()) }

// stop ends the sending, and waits for the posts in flight.
func (s *powerSender) stop() {
	s.stopped.Store(true)
	<-s.done
}

// powerCutAll cuts the power of every node at once mid-stream: the
// nats-servers are killed together, their disks lose what was not
// synced, the stages die with them; then everything restarts.
func powerCutAll(t *testing.T, scenario string, nodes int, policy bool) {
	storeDir, disks := lossyStores(t, storeNames(nodes)...)
	p := startPipeline(t, pipelineOptions{nodes: nodes, syncDefault: !policy, storeDir: storeDir})
	s := startSending(p.driver(time.Minute), "pw")
	s.waitAccepted(t, p, powerCutAt)
	for _, n := range p.nodes {
		n.send(syscall.SIGKILL) // all at once, before any is waited for
	}
	for _, n := range p.nodes {
		n.kill()
	}
	s.stopped.Store(true)
	var unsynced lossyfs.Lost
	for _, name := range storeNames(nodes) {
		l := cut(t, disks[name])
		unsynced.Files, unsynced.Bytes = unsynced.Files+l.Files, unsynced.Bytes+l.Bytes
	}
	for _, pr := range p.stages() {
		pr.kill()
	}
	s.stop()
	for _, name := range storeNames(nodes) {
		remount(t, disks[name])
	}
	restarted := time.Now()
	p.restart(p.nodes...)
	recordPower(t, p, p.connect(), powerRow{scenario: scenario, policy: policyName(policy), unsynced: unsynced}, s, restarted, policy, p.fileSink, p.sqlSink)
}

// powerCutWhilePaused is Jepsen's OS crash with a process pause: one
// node frozen (SIGSTOP) while the two others go on committing, then the
// leader of WEBHOOKS loses power; it comes back on what its disk holds,
// and the frozen node resumes.
func powerCutWhilePaused(t *testing.T, policy bool) {
	storeDir, disks := lossyStores(t, storeNames(3)...)
	p := startPipeline(t, pipelineOptions{nodes: 3, syncDefault: !policy, storeDir: storeDir})
	s := startSending(p.driver(time.Minute), "pp")
	s.waitAccepted(t, p, powerPauseAt)
	crashed := p.leaderOf(subject.WebhooksStream)
	var paused *proc
	for _, n := range p.nodes {
		if n != crashed {
			paused = n
			break
		}
	}
	paused.pause()
	s.waitAccepted(t, p, powerCutAt)
	crashed.kill()
	s.stopped.Store(true)
	disk := disks[strings.TrimPrefix(crashed.name, "nats-")]
	unsynced := cut(t, disk)
	s.stop()
	remount(t, disk)
	restarted := time.Now()
	paused.resume()
	p.restart(crashed)
	row := powerRow{scenario: fmt.Sprintf("3 nodes, %s paused, leader %s cut", paused.name, crashed.name), policy: policyName(policy), unsynced: unsynced}
	recordPower(t, p, p.connect(), row, s, restarted, policy, p.fileSink, p.sqlSink)
}

// testDevPowerCut is `make run` on a laptop that loses power: invoicehub
// dev with its embedded server's store (data/nats) on a lossy disk. The
// sinks' files stay on the real disk, where this process can read them:
// the FUSE server must never itself use its mount (a thread of it
// waiting on its own mount, SQLite's shared memory there, hangs it for
// good).
func testDevPowerCut(t *testing.T) {
	storeDir, disks := lossyStores(t, "dev")
	data := t.TempDir()
	if err := os.Symlink(storeDir("dev"), filepath.Join(data, "nats")); err != nil {
		t.Fatal(err)
	}
	dev := startDev(t, data)
	d := newDriver(dev.httpURL, devSecret, time.Minute)
	d.source = "/webhooks/qonto/demo"
	s := startSending(d, "pd")
	s.waitAccepted(t, nil, powerCutAt)
	dev.kill()
	s.stopped.Store(true)
	unsynced := cut(t, disks["dev"])
	s.stop()
	remount(t, disks["dev"])
	restarted := time.Now()
	dev = startDev(t, data)
	row := powerRow{scenario: "invoicehub dev (make run), its NATS store on the cut disk", policy: policyName(true), unsynced: unsynced}
	recordPower(t, nil, dev.connect(t), row, s, restarted, true, dev.sinkFile, filepath.Join(data, "invoices.db"))
}

func cut(t *testing.T, d *lossyfs.Disk) lossyfs.Lost {
	t.Helper()
	lost, err := d.PowerCut()
	if err != nil {
		t.Fatal(err)
	}
	return lost
}

func remount(t *testing.T, d *lossyfs.Disk) {
	t.Helper()
	if err := d.Remount(); err != nil {
		t.Fatal(err)
	}
}

// recordPower counts what came back, waits for the normalizer and the
// sinks to catch up (required under the policy), and records the row.
func recordPower(t *testing.T, p *pipeline, js jetstream.JetStream, row powerRow, s *powerSender, restarted time.Time, policy bool, fileSink, sqlSink string) {
	t.Helper()
	accepted := s.d.acceptedIDs()
	row.sent, row.accepted = int(s.sent.Load()), len(accepted)
	var stored map[string]bool
	jstest.Poll(30*time.Second, powerPoll, func() bool { stored = storedWebhooks(t, js); return stored != nil })
	for id := range accepted {
		if stored[id] {
			row.present++
		}
	}
	row.lost = row.accepted - row.present
	wait := 120 * time.Second
	if !policy {
		wait = 30 * time.Second // what the default lost may never settle
	}
	why := "nothing read yet"
	caughtUp := jstest.Poll(wait, powerPoll, func() bool {
		why = catchUp(t, js, accepted, stored, fileSink, sqlSink, &row)
		return why == ""
	})
	row.caughtUp = "yes, in " + time.Since(restarted).Round(100*time.Millisecond).String()
	if !caughtUp {
		row.caughtUp = "no: " + why
	}
	powerRowsMu.Lock()
	powerRows = append(powerRows, row)
	powerRowsMu.Unlock()
	t.Logf("%s (%s): sent %d, 2xx %d, present %d, lost %d, unsynced %d files %d bytes, canonical %d, dup %d, caught up %s",
		row.scenario, row.policy, row.sent, row.accepted, row.present, row.lost, row.unsynced.Files, row.unsynced.Bytes, row.canonical, row.dup, row.caughtUp)
	logs := ""
	if p != nil {
		logs = " (logs in " + keepLogs(t, p) + ")"
	}
	switch {
	case row.accepted < powerCutAt:
		t.Errorf("only %d webhooks answered 2xx before the cut", row.accepted)
	case policy && (row.lost > 0 || row.dup > 0 || !caughtUp):
		t.Errorf("under the durability policy: %d of %d acknowledged webhooks lost, %d canonical events stored twice, caught up: %s%s", row.lost, row.accepted, row.dup, row.caughtUp, logs)
	case !policy && !strings.Contains(row.scenario, "paused") && row.lost == 0:
		t.Errorf("NATS's default sync lost nothing: the power-loss filesystem did not take back unsynced writes (%+v)%s", row.unsynced, logs)
	}
}

// catchUp returns what is still missing: a present webhook without its
// canonical events, a canonical event a sink lacks; "" once caught up.
// It fills row's canonical counts.
func catchUp(t *testing.T, js jetstream.JetStream, accepted, stored map[string]bool, fileSink, sqlSink string, row *powerRow) string {
	evs, err := readInvoices(js)
	if err != nil {
		return "INVOICES unreadable: " + err.Error()
	}
	normalized, ids := map[string]bool{}, map[string]int{}
	for _, e := range evs {
		normalized[e.RawID] = true
		ids[e.ID]++
	}
	row.canonical, row.dup = len(ids), 0
	for _, n := range ids {
		if n > 1 {
			row.dup++
		}
	}
	missing := 0
	for id := range accepted {
		if stored[id] && !normalized[id] {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Sprintf("%d present webhooks not normalized", missing)
	}
	file := fileSinkIDs(t, fileSink)
	sqlEvents, _ := sqlRows(t, sqlSink)
	row.fileRepeats = 0
	var noFile, noSQL int
	for id := range ids {
		if file[id] == 0 {
			noFile++
		}
		if sqlEvents[id] == 0 {
			noSQL++
		}
		if file[id] > 1 {
			row.fileRepeats += file[id] - 1
		}
	}
	if noFile > 0 || noSQL > 0 {
		return fmt.Sprintf("%d canonical events not in the file sink, %d not in the SQL sink", noFile, noSQL)
	}
	return ""
}

// stages are the pipeline's stage processes.
func (p *pipeline) stages() []*proc {
	return slices.Concat([]*proc{p.ingress}, p.normalizers, p.sinkReplicas)
}

// restart starts nodes again, waits for NATS, and starts again every
// stage that is not running.
func (p *pipeline) restart(nodes ...*proc) {
	p.t.Helper()
	for _, n := range nodes {
		n.start()
	}
	p.waitNATS()
	for _, pr := range p.stages() {
		if !pr.running() {
			pr.start()
		}
	}
	p.waitIngress()
}

// reportPower prints the power-loss table.
func reportPower(t *testing.T) {
	powerRowsMu.Lock()
	defer powerRowsMu.Unlock()
	var rows []string
	for _, r := range powerRows {
		rows = append(rows, fmt.Sprintf("%s | %s | %d | %d | %d | %d | %d files, %d KiB | %d | %d | %d | %s",
			r.scenario, r.policy, r.sent, r.accepted, r.present, r.lost, r.unsynced.Files, r.unsynced.Bytes/1024, r.canonical, r.dup, r.fileRepeats, r.caughtUp))
	}
	printReport("\nPower loss (NATS stores on a disk that forgets unsynced writes):\n",
		[]string{"scenario", "sync", "sent", "2xx", "present", "lost", "unsynced at the cut", "canonical", "dup", "file repeats", "caught up"}, rows)
	powerRows = nil
}
