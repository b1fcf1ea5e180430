package normalizer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/invoicehub/invoicehub/schemas/subject"
)

// lookBack widens the span of INVOICES that unpublished reads, for the
// clocks of the normalizer and of the server to differ.
const lookBack = time.Minute

// attemptSpan bounds how long after writing its announcement a flush
// publishes: the adapter's attempt timeout.
const attemptSpan = 30 * time.Second

// unpublished returns the events of an announcement written (or renewed)
// at since that INVOICES does not hold: a flush that published them did
// so within an attempt of since, so only that span of the invoice's
// provider and source subjects is read, with direct gets (read-only: the
// normalizer's user may not create consumers on INVOICES). It is the rare
// path: a crash between publishing and clearing, and no reader again
// within the duplicate window.
func (n *Normalizer) unpublished(ctx context.Context, events []Canonical, since time.Time) ([]Canonical, error) {
	if len(events) == 0 {
		return nil, nil
	}
	missing := map[string]bool{}
	for _, c := range events {
		missing[c.ID()] = true
	}
	inv := events[0].Data.Invoice
	filter := subject.InvoiceFilter("", inv.Provider, inv.Source)
	until := since.Add(lookBack + attemptSpan)
	opt := jetstreamext.GetBatchStartTime(since.Add(-lookBack))
	for len(missing) > 0 {
		msgs, err := jetstreamext.GetBatch(ctx, n.js, subject.InvoicesStream, 256, opt, jetstreamext.GetBatchSubject(filter))
		if err != nil {
			return nil, fmt.Errorf("normalizer: check announced events: %w", err)
		}
		var last uint64
		for m, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("normalizer: check announced events: %w", err)
			}
			if m.Time.After(until) {
				return keep(events, missing), nil
			}
			delete(missing, m.Header.Get(jetstream.MsgIDHeader))
			last = m.Sequence
		}
		if last == 0 { // nothing more in the stream
			break
		}
		opt = jetstreamext.GetBatchSeq(last + 1)
	}
	return keep(events, missing), nil
}

// keep returns the events whose ids are in missing, in order.
func keep(events []Canonical, missing map[string]bool) []Canonical {
	var out []Canonical
	for _, c := range events {
		if missing[c.ID()] {
			out = append(out, c)
		}
	}
	return out
}
