//go:build benche2e

package e2e

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestBenchE2EDurability (make bench-e2e) measures what the durability
// policy (deploy/nats/durability.conf: every write fsynced before its
// acknowledgement) costs against NATS's default (fsync every two
// minutes): two pipelines of real processes, one under each, stepped at
// benchBareRates as the pipeline, then as the bare pipeline on the same
// nats-server, the two policies alternating step by step and each pair
// in the other order than the last, so that the machine's drift weighs
// on both alike. Same driver, receiver, steps and measures as
// TestBenchE2E.
func TestBenchE2EDurability(t *testing.T) {
	began := time.Now()
	bins := benchBins(t)
	type side struct {
		name string
		p    *pipeline
		hook *hookReceiver
		js   jetstream.JetStream
		lg   *loadGen
		tgt  sweepTarget
		rows []stepResult
		bare []stepResult
	}
	tck := clockTicks()
	var sides []*side
	for _, policy := range []bool{true, false} {
		s := &side{name: policyName(policy), hook: newHookReceiver(t)}
		s.p = startPipeline(t, pipelineOptions{syncDefault: !policy,
			sinks: fmt.Sprintf("sinks:\n  - {id: hook, type: http, kinds: [created], options: {url: %q, allow_private: true, timeout: 2s}}\n", s.hook.srv.URL+"/hook")})
		s.p.normalizer.stop() // the untagged normalizer, as users run it
		s.p.normalizer.path = filepath.Join(bins, "normalizer")
		s.p.normalizer.start()
		s.js, s.lg, s.tgt = s.p.connect(), newLoadGen(s.p.secret), s.p.sweepTarget()
		runStep(t, s.lg, s.hook, s.js, s.tgt, tck, s.name+"-warmup", 200, time.Second)
		sides = append(sides, s)
	}
	// alternate runs each side's step at every rate, A B then B A.
	alternate := func(step func(s *side, rate int)) {
		for i, rate := range benchBareRates {
			order := []*side{sides[0], sides[1]}
			if i%2 == 1 {
				order = []*side{sides[1], sides[0]}
			}
			for _, s := range order {
				step(s, rate)
			}
		}
	}
	alternate(func(s *side, rate int) {
		s.rows = append(s.rows, logStep(t, s.tgt, runStep(t, s.lg, s.hook, s.js, s.tgt, tck, fmt.Sprintf("%s-r%d", s.name, rate), rate, benchStep)))
	})
	bares := map[*side]*bareProcs{}
	for _, s := range sides {
		s.p.normalizer.stop()
		s.p.sinks.stop()
		bares[s] = startBare(t, bins, s.p, s.lg, s.hook)
		runStep(t, s.lg, s.hook, s.js, bares[s].sweepTarget, tck, s.name+"-bare-warmup", 200, time.Second)
	}
	alternate(func(s *side, rate int) {
		tgt := bares[s].sweepTarget
		s.bare = append(s.bare, logStep(t, tgt, runStep(t, s.lg, s.hook, s.js, tgt, tck, fmt.Sprintf("%s-bare%d", s.name, rate), rate, benchStep)))
	})

	var b strings.Builder
	fmt.Fprintf(&b, "\n== bench-e2e durability: %d CPUs, %s, %v per rate; %s = every write fsynced before its ack, %s = fsync every 2 min; same measures as bench-e2e\n",
		runtime.NumCPU(), runtime.Version(), benchStep, sides[0].name, sides[1].name)
	for _, s := range sides {
		fmt.Fprintf(&b, "\npipeline, %s\n\n", s.name)
		stepTable(&b, s.rows, [4]string{"ingress", "normalizer", "sinks", "nats"})
		fmt.Fprintf(&b, "\nbare pipeline, %s\n\n", s.name)
		stepTable(&b, s.bare, [4]string{"forward", "relay", "deliver", "nats"})
	}
	fmt.Fprintf(&b, "\n| rate/s | what | 2xx/sent %[1]s | %[2]s | p99 %[1]s | %[2]s | CPU µs/webhook %[1]s | %[2]s | ratio | nats µs/webhook %[1]s | %[2]s |\n|---|---|---|---|---|---|---|---|---|---|---|\n", sides[0].name, sides[1].name)
	for i, rate := range benchBareRates {
		for _, what := range []string{"pipeline", "bare"} {
			a, d := sides[0].rows[i], sides[1].rows[i]
			if what == "bare" {
				a, d = sides[0].bare[i], sides[1].bare[i]
			}
			ratio := "-"
			if a.ok > 0 && d.ok > 0 {
				ratio = fmt.Sprintf("%.2f×", float64(a.total())/float64(d.total()))
			}
			fmt.Fprintf(&b, "| %d | %s | %d / %d | %d / %d | %s | %s | %s | %s | %s | %s | %s |\n", rate, what, a.ok, a.sent, d.ok, d.sent, millis(a.p99), millis(d.p99),
				micros(a.total()), micros(d.total()), ratio, perOK(a.cpu[3], a.ok), perOK(d.cpu[3], d.ok))
		}
	}
	fmt.Fprintf(&b, "run took %v\n", time.Since(began).Round(time.Second))
	fmt.Print(b.String())
}

// perOK is d per webhook answered 2xx, in µs.
func perOK(d time.Duration, ok int) string {
	if ok == 0 {
		return "-"
	}
	return fmt.Sprint(int64(d/time.Microsecond) / int64(ok))
}

// micros is a per-webhook cost in µs.
func micros(d time.Duration) string { return fmt.Sprint(int64(d / time.Microsecond)) }
