package normalizer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/schemas/stream"
	"github.com/invoicehub/invoicehub/sinks/consume"
)

// ReplayRange selects raw events in WEBHOOKS: from a time or a stream
// sequence (one of them), up to a sequence (0: the last one when the replay
// starts).
type ReplayRange struct {
	Since   time.Time
	FromSeq uint64
	ToSeq   uint64
}

// ReplayStats counts what a replay did, by outcome or error class.
type ReplayStats struct {
	Read     int
	Outcomes map[string]int
}

// Replay re-normalizes the raw events of r, in stream order, through the
// same state as the live normalizer: what the state already reflects is
// skipped (stale or applied), what it does not (raw events dead-lettered by
// a mapper since fixed, or never consumed) is normalized and published. It
// publishes no duplicates: canonical ids are deterministic and a raw event
// whose events were published is never published again. Raw events that
// still fail are counted by class and left where they are (the DLQ holds
// them from the live run).
func (n *Normalizer) Replay(ctx context.Context, r ReplayRange) (ReplayStats, error) {
	stats := ReplayStats{Outcomes: map[string]int{}}
	s, err := n.js.Stream(ctx, stream.Webhooks)
	if err != nil {
		return stats, fmt.Errorf("normalizer: replay: %w", err)
	}
	last := r.ToSeq
	if last == 0 {
		last = s.CachedInfo().State.LastSeq
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case !r.Since.IsZero():
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &r.Since
	case r.FromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.FromSeq
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return stats, fmt.Errorf("normalizer: replay: %w", err)
	}
	for {
		info, err := c.Info(ctx)
		if err != nil {
			return stats, fmt.Errorf("normalizer: replay: %w", err)
		}
		if info.NumPending == 0 || info.Delivered.Stream >= last {
			return stats, nil
		}
		batch, err := c.FetchNoWait(100)
		if err != nil {
			return stats, fmt.Errorf("normalizer: replay: %w", err)
		}
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				return stats, fmt.Errorf("normalizer: replay: %w", err)
			}
			if meta.Sequence.Stream > last {
				return stats, nil
			}
			stats.Read++
			d := consume.Delivery{Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Stream: meta.Stream, Sequence: meta.Sequence.Stream, Attempt: 1, Stored: meta.Timestamp}
			outcome, err := n.process(ctx, d, true)
			switch {
			case err == nil:
				stats.Outcomes[string(outcome)]++
			default:
				if class, permanent := consume.PermanentClassOf(err); permanent {
					stats.Outcomes[class]++
					continue
				}
				return stats, fmt.Errorf("normalizer: replay at sequence %d: %w", meta.Sequence.Stream, err)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return stats, fmt.Errorf("normalizer: replay: %w", err)
		}
	}
}
