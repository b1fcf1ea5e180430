package consume

import (
	"context"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A pull can stall where the client sees nothing wrong: its pull request
// waits at a consumer leader that froze, or a status answer keeps the
// client's heartbeat check satisfied while no request stands at the new
// leader. Seen in the fault suite's cluster tier: after the node holding
// a sink's consumer leader was stopped, that sink delivered nothing for
// the whole 15 s, or ever again, although the cluster elected a new
// leader within 4–9 s. The consumer watches for it: a client that waits
// for deliveries, has received nothing for two pull expiries, and whose
// consumer has messages for it (undelivered, or delivered and not held
// here: due for redelivery) while no other client is pinned, drops its
// iterator and pulls anew. What the old iterator had buffered comes back
// after AckWait; the order fence covers the gap.

// messages opens a pull iterator on the consumer: a buffer of MaxPending,
// the consumer's priority group when it has one (else setup has yet to
// be run again).
func (c *consumer) messages() (jetstream.MessagesContext, error) {
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(c.cfg.MaxPending), jetstream.PullHeartbeat(c.cfg.pullHeartbeat()),
		jetstream.PullExpiry(c.cfg.pullExpiry())}
	if slices.Contains(c.jc.CachedInfo().Config.PriorityGroups, PriorityGroup) {
		opts = append(opts, jetstream.PullPriorityGroup(PriorityGroup))
	}
	return c.jc.Messages(opts...)
}

// watchStall checks every pull expiry, until shutdown, whether the pull
// stalled, and stops a stalled iterator for the pull loop to renew.
func (c *consumer) watchStall() {
	every := c.cfg.pullExpiry()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-c.stop:
			return
		}
		idle := time.Since(time.Unix(0, c.lastReceived.Load()))
		if !c.inNext.Load() || idle < 2*every || !c.waitedFor() {
			continue
		}
		c.log.Warn("pull stalled: nothing delivered while messages wait; pulling anew", "idle", idle.Round(time.Millisecond))
		c.itMu.Lock()
		c.renewing.Store(true)
		c.it.Stop()
		c.itMu.Unlock()
	}
}

// waitedFor reports whether the consumer has messages for this client:
// undelivered, or delivered and not held here (due for redelivery), while
// no other client of the priority group is pinned.
func (c *consumer) waitedFor() bool {
	ctx, cancel := context.WithTimeout(c.hard, c.cfg.pullExpiry())
	defer cancel()
	info, err := c.jc.Info(ctx)
	if err != nil {
		return false
	}
	for _, g := range info.PriorityGroups {
		if pinned, _ := c.pinID.Load().(string); g.PinnedClientID != "" && g.PinnedClientID != pinned {
			return false // a standby: another client delivers
		}
	}
	c.mu.Lock()
	held := len(c.held)
	c.mu.Unlock()
	return info.NumPending > 0 || info.NumAckPending > held
}

// renewed replaces an iterator stopped as stalled, retrying until it
// succeeds or shutdown begins; nil when the iterator ended otherwise.
func (c *consumer) renewed() jetstream.MessagesContext {
	if !c.renewing.Swap(false) {
		return nil
	}
	for attempt := uint64(1); ; attempt++ {
		c.itMu.Lock()
		if c.stopping() {
			c.itMu.Unlock()
			return nil
		}
		it, err := c.messages()
		if err == nil {
			c.it = it
			c.itMu.Unlock()
			return it
		}
		c.itMu.Unlock()
		c.log.Warn("pull anew failed, retrying", "err", err)
		if _, waited := c.wait(c.cfg.Backoff.Delay(attempt, 0)); !waited {
			return nil
		}
	}
}
