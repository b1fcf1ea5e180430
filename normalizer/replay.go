package normalizer

import (
	"context"
	"fmt"
	"time"

	"github.com/invoicehub/invoicehub/schemas/subject"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/streams"
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
// same state and the same steps as the live normalizer: what the state
// already holds is left (applied, stale), what it does not (raw events
// dead-lettered by a mapper since fixed, or never consumed) is normalized
// and published. It publishes nothing twice: a raw event whose change was
// announced is never announced again. Raw events that still fail are
// counted by class and left where they are (the DLQ holds them from the
// live run).
func (n *Normalizer) Replay(ctx context.Context, r ReplayRange) (ReplayStats, error) {
	stats := ReplayStats{Outcomes: map[string]int{}}
	s, err := n.js.Stream(ctx, subject.WebhooksStream)
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
	err = streams.Read(ctx, n.js, subject.WebhooksStream, cfg, func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if meta.Sequence.Stream > last {
			return false, nil
		}
		stats.Read++
		d := &consume.Delivery{Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Stream: meta.Stream, Sequence: meta.Sequence.Stream, Attempt: 1, Stored: meta.Timestamp}
		outcome, err := n.process(ctx, d)
		if err != nil {
			class, permanent := consume.PermanentClassOf(err)
			if !permanent {
				return false, fmt.Errorf("normalizer: replay at sequence %d: %w", meta.Sequence.Stream, err)
			}
			stats.Outcomes[class]++
			return meta.Sequence.Stream < last, nil
		}
		stats.Outcomes[string(outcome)]++
		return meta.Sequence.Stream < last, nil
	})
	return stats, err
}
