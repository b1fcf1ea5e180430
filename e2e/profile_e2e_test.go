//go:build benche2e

package e2e

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/internal/jstest"
)

// TestProfileE2E runs the benchmark's pipeline at 500 webhooks/s (or
// INVOICEHUB_BENCH_PROFILE_RATE) for 12 s and saves an 8-second CPU
// profile of each stage and of nats-server, taken meanwhile, in
// INVOICEHUB_BENCH_PROFILE (go tool pprof
// <process>.pprof): where the benchmark's CPU goes. Then, as the bench's
// capacity step does, it drives ingress alone closed-loop, then the bare
// forwarder, and saves capacity-<target>.pprof and
// capacity-<target>-nats-server.pprof. Skipped without the variable.
//
//	INVOICEHUB_BENCH_PROFILE=/tmp/prof go test -tags benche2e -run TestProfileE2E ./e2e
func TestProfileE2E(t *testing.T) {
	dir := os.Getenv("INVOICEHUB_BENCH_PROFILE")
	if dir == "" {
		t.Skip("INVOICEHUB_BENCH_PROFILE not set")
	}
	rate := 500
	if v := os.Getenv("INVOICEHUB_BENCH_PROFILE_RATE"); v != "" {
		var err error
		if rate, err = strconv.Atoi(v); err != nil || rate <= 0 {
			t.Fatalf("INVOICEHUB_BENCH_PROFILE_RATE=%q: want webhooks per second", v)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bins := benchBins(t)
	hook := newHookReceiver(t)
	natsProf := strconv.Itoa(freePort(t)) // nats-server's profiler
	p := startPipeline(t, pipelineOptions{metrics: true, env: []string{"INVOICEHUB_PPROF=on"}, natsArgs: []string{"--profile", natsProf},
		sinks: fmt.Sprintf("sinks:\n  - {id: hook, type: http, kinds: [created], options: {url: %q, allow_private: true, timeout: 2s}}\n", hook.srv.URL+"/hook")})
	p.normalizer.stop()
	p.normalizer.path = filepath.Join(bins, "normalizer")
	p.normalizer.start()
	profilers := maps.Clone(p.metrics) // each stage serves its profiler beside its metrics
	profilers["nats-server"] = "http://127.0.0.1:" + natsProf
	js := p.connect()
	lg := newLoadGen(p.secret)
	tck := clockTicks()
	runStep(t, lg, hook, js, p.sweepTarget(), tck, "warmup", 200, time.Second)
	wg := profile(t, dir, "", profilers)
	r := runStep(t, lg, hook, js, p.sweepTarget(), tck, fmt.Sprintf("r%d", rate), rate, 12*time.Second)
	wg.Wait()
	t.Logf("%d/s: p50 %v p99 %v, lost %d; profiles in %s", rate, r.p50, r.p99, r.lost, dir)

	// Capacity, as TestBenchE2E measures it: normalizer and sinks stopped,
	// ingress and then the bare forwarder driven closed-loop by the bench's
	// largest client count.
	p.normalizer.stop()
	p.sinks.stop()
	fwdProf := "127.0.0.1:" + strconv.Itoa(freePort(t))
	fwd, fwdURL := startForwarder(t, bins, p, lg, "-pprof", fwdProf)
	jstest.Eventually(t, 10*time.Second, "forwarder's profiler up", func() bool {
		resp, err := http.Get("http://" + fwdProf + "/debug/pprof/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for _, target := range []struct {
		name, url, profiler string
		pr                  *proc
	}{{"ingress", p.httpURL, profilers["ingress"], p.ingress}, {"forwarder", fwdURL, "http://" + fwdProf, fwd}} {
		wg = profile(t, dir, "capacity-", map[string]string{target.name: target.profiler, target.name + "-nats-server": profilers["nats-server"]})
		c := closedLoopFor(lg, target.name, target.url, target.pr, p.nats, tck, benchClients[len(benchClients)-1], 2*time.Second, 8*time.Second)
		wg.Wait()
		t.Logf("capacity of %s: %.0f/s, %v of its CPU and %v of nats-server's per webhook; profiles in %s",
			target.name, c.perSec(), c.cpu/time.Duration(max(c.ok, 1)), c.natsCPU/time.Duration(max(c.ok, 1)), dir)
	}
}

// profile takes, 2 s from now, an 8-second CPU profile of each process
// (name → profiler base URL) into dir/<prefix><name>.pprof.
func profile(t *testing.T, dir, prefix string, profilers map[string]string) *sync.WaitGroup {
	var wg sync.WaitGroup
	for process, base := range profilers {
		wg.Go(func() {
			time.Sleep(2 * time.Second) // into the step: pacing a measurement, not waiting for a result
			resp, err := http.Get(base + "/debug/pprof/profile?seconds=8")
			if err != nil {
				t.Errorf("%s: %v", process, err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: profile: %s", process, resp.Status)
				return
			}
			f, err := os.Create(filepath.Join(dir, prefix+process+".pprof"))
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			io.Copy(f, resp.Body)
		})
	}
	return &wg
}
