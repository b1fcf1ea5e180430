package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"time"

	"github.com/invoicehub/invoicehub/normalizer"
)

// runReplay re-normalizes a range of WEBHOOKS into INVOICES without
// duplicates: invoicehub replay --since 24h.
func runReplay(ctx context.Context, args []string, env Env) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	url := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	since := fs.Duration("since", 0, "replay raw webhooks received in the last `duration` (24h...)")
	from := fs.Uint64("from-seq", 0, "replay from this WEBHOOKS stream sequence")
	to := fs.Uint64("to-seq", 0, "replay up to this stream sequence (default: the last)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*since == 0) == (*from == 0) {
		return errors.New("give one of -since or -from-seq")
	}
	r := normalizer.ReplayRange{FromSeq: *from, ToSeq: *to}
	if *since > 0 {
		r.Since = time.Now().Add(-*since)
	}
	nc, js, err := connect(*url, "replay")
	if err != nil {
		return err
	}
	defer nc.Close()
	n, err := normalizer.New(ctx, js, normalizer.Config{}, logger(env))
	if err != nil {
		return err
	}
	stats, err := n.Replay(ctx, r)
	fmt.Fprintf(env.Stdout, "replayed %d raw webhooks\n", stats.Read)
	outcomes := make([]string, 0, len(stats.Outcomes))
	for o := range stats.Outcomes {
		outcomes = append(outcomes, o)
	}
	sort.Strings(outcomes)
	for _, o := range outcomes {
		fmt.Fprintf(env.Stdout, "  %-18s %d\n", o, stats.Outcomes[o])
	}
	return err
}
