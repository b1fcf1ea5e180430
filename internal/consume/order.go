package consume

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// The order fence: a delivery of a key is never handed to the handler
// while an earlier message of the same key (by stream sequence) is
// pending anywhere: held by this process, held or dropped by another, lost
// in flight, or waiting for its redelivery. The lanes keep the order of
// what this process holds; the fence knows the rest.
//
// It keeps a frontier: every message of the consumer's filter whose
// stream sequence is at most the frontier is known here, as held
// (c.bySeq), awaited (c.awaited: pending elsewhere, with its key), or
// settled (neither). JetStream delivers a consumer's new messages in
// stream order, one delivery sequence each, redeliveries included; so
// while the delivery sequences this process receives follow each other,
// a first delivery moves the frontier to its stream sequence and nothing
// was missed. Anything else (the first delivery after start, a gap in the
// delivery sequences: a message dropped in flight or handed to another
// client) is resynchronised: the consumer's ack floor and last delivered
// sequences are read, and every message of the filter between the
// frontier and the last delivered one that is not held here is read from
// the stream (direct get) and awaited under its key. An awaited message is
// no longer awaited once it is delivered here, or once the ack floor
// passes it (read every floorPoll while any is awaited).
//
// A redelivery of a message held here is the server's copy of work in
// hand (an InProgress lost in a stall): dropped. A redelivery of a message
// known settled here is an ack that was lost: acknowledged again, not
// handled twice.

// orderFence is the consumer's knowledge beyond its lanes; c.mu guards it.
type orderFence struct {
	frontier     uint64            // stream sequence up to which every message of the filter is known
	lastDelivery uint64            // highest delivery (consumer) sequence received
	awaited      map[uint64]string // stream sequence → key of a message pending elsewhere
	bySeq        map[uint64]*Delivery
	resyncing    bool
	settledNow   map[uint64]bool // settled here while a resynchronisation read the stream
}

func newOrderFence() orderFence {
	return orderFence{awaited: map[uint64]string{}, bySeq: map[uint64]*Delivery{}, settledNow: map[uint64]bool{}}
}

// admission is what the fence makes of a delivery.
type admission int

const (
	admitNew      admission = iota // new work: dispatch it
	admitHeld                      // a copy of a delivery held here: drop it
	admitSettled                   // settled here already, its ack lost: ack it again
	admitResync                    // the fence must read the consumer and the stream first
	admitUnsorted                  // no stream sequence: dispatch it without the fence
)

// classify places d against the fence and, when it follows the chain of
// deliveries, moves the frontier. c.mu is held.
func (c *consumer) classify(d *Delivery) admission {
	f := &c.order
	switch {
	case d.Sequence == 0 || d.deliverySeq == 0:
		return admitUnsorted
	case f.bySeq[d.Sequence] != nil:
		if d.deliverySeq <= f.lastDelivery+1 { // past a gap, the gap must stay seen
			f.lastDelivery = max(f.lastDelivery, d.deliverySeq)
		}
		return admitHeld
	}
	known := d.Sequence <= f.frontier
	switch {
	case f.lastDelivery != 0 && d.deliverySeq == f.lastDelivery+1 && (d.firstDelivery || known):
		f.lastDelivery = d.deliverySeq
	case f.lastDelivery != 0 && d.deliverySeq <= f.lastDelivery && known:
		// in flight while a resynchronisation read the consumer
	default:
		return admitResync
	}
	if f.settledHere(d.Sequence) {
		return admitSettled
	}
	f.frontier = max(f.frontier, d.Sequence)
	c.arrived(d)
	return admitNew
}

// settledHere reports whether the message at seq, known not held here,
// was settled here: known (at most the frontier) and not awaited.
func (f *orderFence) settledHere(seq uint64) bool {
	_, awaited := f.awaited[seq]
	return seq <= f.frontier && !awaited
}

// arrived ends the wait for d, if it was awaited. c.mu is held, and the
// caller dispatches d before letting it go: d wakes its lane.
func (c *consumer) arrived(d *Delivery) { delete(c.order.awaited, d.Sequence) }

// blocked reports whether a message of key older than seq is awaited.
// c.mu is held.
func (c *consumer) blocked(key string, seq uint64) bool {
	for s, k := range c.order.awaited {
		if k == key && s < seq {
			return true
		}
	}
	return false
}

// resync reads the consumer's ack floor and last delivery, awaits every
// message of the filter above the frontier that is not held here, and
// dispatches d, unless d was known settled here (admitSettled: a lost ack,
// redelivered past a gap). It retries until it succeeds or shutdown
// begins.
func (c *consumer) resync(d *Delivery) (admission, error) {
	c.mu.Lock()
	c.order.resyncing = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.order.resyncing = false
		clear(c.order.settledNow)
		c.mu.Unlock()
	}()
	for attempt := uint64(1); ; attempt++ {
		a, err := c.tryResync(d)
		if err == nil {
			return a, nil
		}
		c.log.Warn("order: resynchronisation failed, retrying", "seq", d.Sequence, "err", err)
		if _, waited := c.wait(c.cfg.Backoff.Delay(attempt, 0)); !waited {
			return admitResync, errStopping
		}
	}
}

func (c *consumer) tryResync(d *Delivery) (admission, error) {
	ctx, cancel := context.WithTimeout(c.hard, c.cfg.AttemptTimeout)
	defer cancel()
	info, err := c.jc.Info(ctx)
	if err != nil {
		return admitResync, fmt.Errorf("consumer info: %w", err)
	}
	floor, last := info.AckFloor.Stream, max(info.Delivered.Stream, d.Sequence)
	c.mu.Lock()
	from := max(c.order.frontier, floor)
	c.mu.Unlock()
	keys, err := c.keysBetween(ctx, from, last)
	if err != nil {
		return admitResync, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f := &c.order
	settled := f.settledHere(d.Sequence) // not held: classify saw to it
	for seq, key := range keys {
		if seq == d.Sequence || f.bySeq[seq] != nil || f.settledNow[seq] {
			continue
		}
		f.awaited[seq] = key
	}
	c.passFloor(floor)
	f.frontier = max(f.frontier, last)
	f.lastDelivery = max(f.lastDelivery, info.Delivered.Consumer, d.deliverySeq)
	if len(keys) > 0 {
		c.log.Info("order: resynchronised", "seq", d.Sequence, "ack_floor", floor, "last_delivered", last, "read", len(keys), "awaited", len(f.awaited))
	}
	if settled {
		return admitSettled, nil
	}
	c.arrived(d)
	c.dispatchLocked(d)
	return admitNew, nil
}

// keysBetween reads the messages of the consumer's filter with stream
// sequences in (from, to] and returns their keys.
//
// A direct get is answered by any replica, and a replica that lags
// answers with what it has: a node back from a stall (SIGSTOP in the
// fault suite) served a read that ended four messages short, and those
// four were then taken for settled and acked unhandled. So a read that
// ends before to is checked with the stream leader, and is an error
// (the resynchronisation is tried again) if the leader has a message of
// the filter the read did not reach.
func (c *consumer) keysBetween(ctx context.Context, from, to uint64) (map[uint64]string, error) {
	keys := map[uint64]string{}
	next := from + 1
	for next <= to {
		read, err := c.readBatch(ctx, next, to, keys)
		if err != nil {
			return nil, err
		}
		if read == next {
			break
		}
		next = read
	}
	if err := c.readWhole(ctx, next, to); err != nil {
		return nil, fmt.Errorf("read %s from %d to %d: %w", c.cfg.Stream, from+1, to, err)
	}
	return keys, nil
}

// filter is the consumer's one filter subject, or "" for several or none.
func (c *consumer) filter() string {
	if len(c.cfg.FilterSubjects) == 1 {
		return c.cfg.FilterSubjects[0]
	}
	return ""
}

// readBatch reads one batch of the stream from next, adds the keys of the
// consumer's messages up to to, and returns the sequence after the last
// one read (next when the replica had none).
func (c *consumer) readBatch(ctx context.Context, next, to uint64, keys map[uint64]string) (uint64, error) {
	opts := []jetstreamext.GetBatchOpt{jetstreamext.GetBatchSeq(next)}
	if f := c.filter(); f != "" {
		opts = append(opts, jetstreamext.GetBatchSubject(f))
	}
	msgs, err := getBatch(ctx, c.js, c.cfg.Stream, int(min(to-next+1, 256)), opts...)
	if err != nil {
		return 0, fmt.Errorf("read %s from %d: %w", c.cfg.Stream, next, err)
	}
	read := next
	for m, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return read, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read %s from %d: %w", c.cfg.Stream, next, err)
		}
		read = m.Sequence + 1
		if m.Sequence > to {
			return read, nil
		}
		if c.ours(m.Subject) {
			keys[m.Sequence] = c.cfg.Key(&Delivery{Stage: c.cfg.Stage, ConsumerID: c.cfg.ID, Subject: m.Subject, Header: m.Header,
				Data: m.Data, Stream: c.cfg.Stream, Sequence: m.Sequence, Stored: m.Time})
		}
	}
	return read, nil
}

// getBatch is the fence's direct get (a test makes it lag).
var getBatch = jetstreamext.GetBatch

// errShortRead is a read of the stream that ended before a message the
// stream leader has: the replica that answered lags.
var errShortRead = errors.New("the replica that answered lags the stream leader")

// readWhole checks with the stream leader that no message of the
// consumer's filter lies in [next, to]: what a read that stopped at next
// did not reach.
func (c *consumer) readWhole(ctx context.Context, next, to uint64) error {
	for next <= to {
		subj, seq, err := c.leaderNext(ctx, next)
		switch {
		case err != nil:
			return err
		case seq == 0 || seq > to:
			return nil
		case c.ours(subj):
			return fmt.Errorf("%w: it has %d", errShortRead, seq)
		}
		next = seq + 1
	}
	return nil
}

// leaderNext asks the stream leader (the JetStream API's message get, not
// a direct get) for the first message of the consumer's filter at or
// after seq: its subject and sequence, or 0 when there is none.
func (c *consumer) leaderNext(ctx context.Context, seq uint64) (string, uint64, error) {
	req, err := json.Marshal(struct {
		Seq  uint64 `json:"seq"`
		Next string `json:"next_by_subj"`
	}{seq, cmp.Or(c.filter(), ">")})
	if err != nil {
		return "", 0, err
	}
	resp, err := c.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+c.cfg.Stream, req)
	if err != nil {
		return "", 0, fmt.Errorf("ask the stream leader: %w", err)
	}
	var answer struct {
		Message *struct {
			Subject string `json:"subject"`
			Seq     uint64 `json:"seq"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &answer); err != nil {
		return "", 0, fmt.Errorf("ask the stream leader: %w", err)
	}
	switch {
	case answer.Error != nil && answer.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return "", 0, nil
	case answer.Error != nil:
		return "", 0, fmt.Errorf("ask the stream leader: %w", answer.Error)
	case answer.Message == nil:
		return "", 0, fmt.Errorf("ask the stream leader: no message in %q", resp.Data)
	}
	return answer.Message.Subject, answer.Message.Seq, nil
}

// ours reports whether subj is one the consumer reads.
func (c *consumer) ours(subj string) bool {
	if len(c.cfg.FilterSubjects) == 0 {
		return true
	}
	for _, f := range c.cfg.FilterSubjects {
		if subjectMatches(f, subj) {
			return true
		}
	}
	return false
}

// subjectMatches reports whether the NATS subject subj matches filter,
// with its * and > wildcards.
func subjectMatches(filter, subj string) bool {
	fs, ss := strings.Split(filter, "."), strings.Split(subj, ".")
	for i, f := range fs {
		switch {
		case f == ">":
			return len(ss) > i
		case i >= len(ss):
			return false
		case f != "*" && f != ss[i]:
			return false
		}
	}
	return len(fs) == len(ss)
}

// passFloor stops awaiting what the ack floor has passed (settled by
// another client) and wakes the lanes that waited for it. c.mu is held.
func (c *consumer) passFloor(floor uint64) {
	for seq, key := range c.order.awaited {
		if seq <= floor {
			delete(c.order.awaited, seq)
			c.wake(key)
		}
	}
}

// floorPoll is how often the ack floor is read while a message is
// awaited: what another client acked is known that much later at most.
const floorPoll = 250 * time.Millisecond

// watchFloor reads the ack floor every floorPoll while a message is
// awaited, until shutdown.
func (c *consumer) watchFloor() {
	tick := time.NewTicker(min(floorPoll, c.cfg.AckWait/3))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			c.pollFloor()
		case <-c.stop:
			return
		}
	}
}

// pollFloor reads the ack floor while a message is awaited.
func (c *consumer) pollFloor() {
	c.mu.Lock()
	waiting := len(c.order.awaited) > 0
	c.mu.Unlock()
	if !waiting {
		return
	}
	ctx, cancel := context.WithTimeout(c.stopped, c.cfg.AckWait) // drain waits for watchFloor
	defer cancel()
	info, err := c.jc.Info(ctx)
	if err != nil {
		if !c.stopping() {
			c.log.Warn("order: reading the ack floor", "err", err)
		}
		return
	}
	c.mu.Lock()
	c.passFloor(info.AckFloor.Stream)
	c.mu.Unlock()
}

// admit places a pulled delivery: new work is dispatched, a copy of one
// held is dropped, a redelivery of one settled is acked again. It returns
// false when shutdown overtook a resynchronisation.
func (c *consumer) admit(d *Delivery) bool {
	c.mu.Lock()
	a := c.classify(d)
	if a == admitNew || a == admitUnsorted {
		// In the same hold as classify's arrived: a delivery that is no
		// longer awaited is already in its lane, or a lane behind it could
		// run first.
		c.dispatchLocked(d)
	}
	c.mu.Unlock()
	if a == admitResync {
		var err error
		if a, err = c.resync(d); err != nil {
			<-c.tokens
			c.nak(d.msg, 0)
			return false
		}
	}
	switch a {
	case admitHeld:
		<-c.tokens
		c.log.Debug("order: a copy of a delivery held here dropped", "seq", d.Sequence, "delivered", d.Attempt)
	case admitSettled:
		<-c.tokens
		c.sendAck(d)
		c.log.Info("order: a delivery settled here came back (its ack was lost): acked again", "seq", d.Sequence)
	}
	return true
}

// unpin lets another client of the priority group take over at once,
// instead of after PinnedTTL, when this one stops after receiving
// deliveries lately.
func (c *consumer) unpin() {
	if time.Since(time.Unix(0, c.lastReceived.Load())) > c.cfg.pinnedTTL() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req := fmt.Appendf(nil, `{"group":%q}`, PriorityGroup)
	subj := fmt.Sprintf("$JS.API.CONSUMER.UNPIN.%s.%s", c.cfg.Stream, c.cfg.Durable())
	if _, err := c.js.Conn().RequestMsgWithContext(ctx, &nats.Msg{Subject: subj, Data: req}); err != nil {
		c.log.Debug("unpin at shutdown", "err", err)
	}
}
