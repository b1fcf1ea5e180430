package normalizer

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// lookBack widens the span of INVOICES that unpublished reads, for the
// clocks of the normalizer and of the server to differ.
const lookBack = time.Minute

// unpublished returns the events of an announcement written (or renewed)
// at since that INVOICES does not hold: a flush that published them did
// so within an attempt of since, so only that span of the events' subjects
// is read. It is the rare path: a crash between publishing and clearing,
// and no reader again within the duplicate window.
func (n *Normalizer) unpublished(ctx context.Context, events []Canonical, since time.Time) ([]Canonical, error) {
	missing := map[string]Canonical{}
	var subjects []string
	for _, c := range events {
		missing[c.Event.ID()] = c
		subjects = append(subjects, c.Subject)
	}
	start, until := since.Add(-lookBack), since.Add(lookBack+attemptSpan)
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: slices.Compact(slices.Sorted(slices.Values(subjects))), DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start}
	err := streams.Read(ctx, n.js, subject.InvoicesStream, cfg, func(m jetstream.Msg, meta *jetstream.MsgMetadata) (bool, error) {
		if meta.Timestamp.After(until) {
			return false, nil
		}
		delete(missing, m.Headers().Get(jetstream.MsgIDHeader))
		return len(missing) > 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("normalizer: check announced events: %w", err)
	}
	var out []Canonical
	for _, c := range events {
		if _, ok := missing[c.Event.ID()]; ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// attemptSpan bounds how long after writing its announcement a flush
// publishes: the adapter's attempt timeout.
const attemptSpan = 30 * time.Second
