package consume

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers a dead letter carries beside the original message's own headers.
const (
	HeaderReason       = "Dlq-Reason"        // the error, as text
	HeaderErrorClass   = "Dlq-Error-Class"   // ClassExhausted, ClassPermanent or the class given to PermanentClass
	HeaderAttempts     = "Dlq-Attempts"      // attempts made, the last included
	HeaderFirstFailure = "Dlq-First-Failure" // RFC 3339, the first failure this process saw
	HeaderLastFailure  = "Dlq-Last-Failure"  // RFC 3339
	HeaderStream       = "Dlq-Stream"        // the original stream
	HeaderStreamSeq    = "Dlq-Stream-Seq"    // the original stream sequence
	HeaderSubject      = "Dlq-Subject"       // the original subject
	HeaderConsumer     = "Dlq-Consumer"      // the durable consumer that gave up
	HeaderKey          = "Dlq-Key"           // the delivery's ordering key (the invoice), if any
)

// Error classes of a dead letter.
const (
	ClassPermanent = "permanent" // the handler said retrying cannot help
	ClassExhausted = "exhausted" // every allowed attempt failed
)

// errStopping ends an attempt that shutdown overtook before it started.
var errStopping = errors.New("consume: shutting down")

// process handles d until it is settled (acked or dead-lettered), retrying
// in place. It reports back when shutdown gave d back instead, and after
// how long it is redelivered.
func (c *consumer) process(d *Delivery) (back bool, after time.Duration) {
	for {
		started := time.Now()
		err := c.attempt(d)
		if errors.Is(err, errStopping) {
			c.giveBack(d, 0)
			return true, 0
		}
		o := c.decide(d, err, time.Since(started))
		switch o.Result {
		case ResultDelivered:
			c.cfg.Observer.Observe(d, o)
			c.ack(d)
			return false, 0
		case ResultDeadLettered:
			if c.deadLetter(d, o) {
				c.cfg.Observer.Observe(d, o)
				return false, 0
			}
			return true, 0 // given back at shutdown: its redelivery decides again
		}
		c.cfg.Observer.Observe(d, o)
		if left, waited := c.wait(o.NextRetry); !waited {
			c.giveBack(d, left)
			return true, left
		}
		d.Attempt++
	}
}

// attempt runs the handler once, with a free slot and the attempt timeout
// (and, with CancelOnDisconnect, until the NATS connection is lost); a
// panic is an error like any other. A delivery the server closed the
// connection over twice is not run: its attempt is a permanent error, so
// decide dead-letters it (poison.go).
func (c *consumer) attempt(d *Delivery) (err error) {
	s := c.strikesOf(d)
	if s.n >= 2 { // not handled again: dead-lettered (poison.go)
		return PermanentClass(ClassConnectionClosed, errPoison(s))
	}
	select {
	case c.slots <- struct{}{}:
	case <-c.stop:
		return errStopping
	}
	defer func() { <-c.slots }()
	if s.n > 0 { // alone: a second close is its own doing
		c.alone.Lock()
		defer c.alone.Unlock()
	} else {
		c.alone.RLock()
		defer c.alone.RUnlock()
	}
	defer func() { c.strikeIfClosed(d, err) }()
	ctx, cancel := context.WithTimeout(c.hard, c.cfg.AttemptTimeout)
	defer cancel()
	if c.conn != nil {
		var unbind func()
		ctx, unbind = c.conn.bind(ctx)
		defer unbind()
		defer func() {
			if err != nil && errors.Is(context.Cause(ctx), ErrConnectionLost) {
				err = fmt.Errorf("%w: %w", ErrConnectionLost, err)
			}
		}()
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("consume: handler panicked: %v", r)
		}
	}()
	return c.handler(ctx, d)
}

// decide is the one place where an attempt's error becomes an outcome:
// delivered; dead-lettered (permanent, or the last attempt allowed); or
// retried after the backoff or the Retry-After hint.
func (c *consumer) decide(d *Delivery, err error, took time.Duration) Outcome {
	o := Outcome{Err: err, Attempt: d.Attempt, Took: took}
	if err == nil {
		o.Result = ResultDelivered
		return o
	}
	if d.firstFailure.IsZero() {
		d.firstFailure = time.Now().UTC()
	}
	if class, permanent := PermanentClassOf(err); permanent {
		o.Result, o.Class = ResultDeadLettered, class
		return o
	}
	if c.exhausted(d) {
		o.Result, o.Class = ResultDeadLettered, ClassExhausted
		return o
	}
	hint, _ := RetryAfterHint(err)
	o.Result, o.Class, o.NextRetry = ResultRetrying, ClassTransient, c.cfg.Backoff.Delay(d.Attempt, hint)
	c.log.Info("delivery failed, will retry", "seq", d.Sequence, "attempt", d.Attempt, "in", o.NextRetry, "err", err)
	return o
}

// exhausted reports whether a failed delivery is retried no more: it has
// failed MaxAttempts times and for MaxAge, or the server will not
// deliver it again (MaxDeliver) should this process stop.
func (c *consumer) exhausted(d *Delivery) bool {
	lastDelivery := d.delivered >= uint64(c.cfg.MaxAttempts+DeadLetterRetries)
	return lastDelivery || d.Attempt >= uint64(c.cfg.MaxAttempts) && time.Since(d.firstFailure) >= c.cfg.MaxAge
}

// wait waits out a retry delay; shutdown ends it early, with what was left.
func (c *consumer) wait(delay time.Duration) (left time.Duration, waited bool) {
	until := time.Now().Add(delay)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return 0, true
	case <-c.stop:
		return max(time.Until(until), 0), false
	}
}

// ack acks d. The ack leaves asynchronously, so the next message of d's
// key flushes the connection before it starts (flushAcks): an ack still
// in the client's buffer when the process dies (SIGKILL) would bring d
// back after its successor was delivered, an older state after a newer
// one. Unacknowledged, d is redelivered after AckWait; a copy that comes
// back here is acked again, not handled twice.
func (c *consumer) ack(d *Delivery) {
	c.sendAck(d)
	c.clearStrikes(d)
	c.forget(d, true)
}

// sendAck acks d and notes its key for flushAcks.
func (c *consumer) sendAck(d *Delivery) {
	if err := d.msg.Ack(); err != nil {
		c.log.Warn("ack failed", "seq", d.Sequence, "err", err)
	}
	if d.Key != "" {
		c.mu.Lock()
		c.unflushed[d.Key] = time.Now()
		c.mu.Unlock()
	}
}

// flushAcks waits, before a delivery of key starts, until the server has
// read the acks of key's earlier deliveries (a round trip on the
// connection, after them): tried again until AckWait has passed since the
// ack (by then an ack lost is a redelivery anyway, which this process
// acks again) or the consumer stops.
func (c *consumer) flushAcks(key string) {
	c.mu.Lock()
	acked, pending := c.unflushed[key]
	delete(c.unflushed, key)
	c.mu.Unlock()
	deadline := acked.Add(c.cfg.AckWait)
	if !pending || time.Now().After(deadline) {
		return
	}
	for attempt := uint64(1); ; attempt++ {
		err := c.js.Conn().FlushTimeout(time.Until(deadline))
		if err == nil {
			return
		}
		c.log.Warn("acks not flushed", "key", key, "attempt", attempt, "err", err)
		delay := c.cfg.Backoff.Delay(attempt, 0)
		if time.Now().Add(delay).After(deadline) {
			return
		}
		if _, waited := c.wait(delay); !waited {
			return
		}
	}
}

// deadLetter publishes d to the consumer's DLQ subject and Terms it. A
// publish that fails is retried after the backoff, and given back at
// shutdown (its next delivery dead-letters it again). It reports whether d
// was settled.
func (c *consumer) deadLetter(d *Delivery, o Outcome) bool {
	msg := c.deadLetterMsg(d, o)
	for attempt := uint64(1); ; attempt++ {
		ctx, cancel := context.WithTimeout(c.hard, 5*time.Second)
		_, err := c.js.PublishMsg(ctx, msg)
		cancel()
		if err == nil {
			break
		}
		c.log.Warn("dead-letter publish failed", "seq", d.Sequence, "err", err)
		if _, waited := c.wait(c.cfg.Backoff.Delay(attempt, 0)); !waited {
			c.giveBack(d, 0)
			return false
		}
	}
	c.log.Error("delivery dead-lettered", "seq", d.Sequence, "class", o.Class, "attempt", d.Attempt, "err", o.Err)
	if err := d.msg.Term(); err != nil {
		c.log.Warn("term failed", "seq", d.Sequence, "err", err)
	}
	c.clearStrikes(d)
	c.forget(d, true)
	return true
}

// deadLetterMsg is the original body and headers (but Nats-*) plus the
// Dlq-* headers, deduplicated per consumer and stream sequence so that a
// crash between the publish and the Term does not dead-letter twice.
func (c *consumer) deadLetterMsg(d *Delivery, o Outcome) *nats.Msg {
	header := nats.Header{}
	for k, v := range d.Header {
		if !strings.HasPrefix(k, "Nats-") {
			header[k] = append([]string(nil), v...)
		}
	}
	seq := strconv.FormatUint(d.Sequence, 10)
	for k, v := range map[string]string{
		HeaderReason: headerValue(o.Err.Error()), HeaderErrorClass: o.Class, HeaderAttempts: strconv.FormatUint(d.Attempt, 10),
		HeaderFirstFailure: d.firstFailure.Format(time.RFC3339Nano), HeaderLastFailure: time.Now().UTC().Format(time.RFC3339Nano),
		HeaderStream: d.Stream, HeaderStreamSeq: seq, HeaderSubject: d.Subject, HeaderConsumer: c.cfg.Durable(), HeaderKey: d.Key,
	} {
		if v == "" {
			continue
		}
		header.Set(k, v)
	}
	header.Set(jetstream.MsgIDHeader, "dlq:"+c.cfg.Durable()+":"+d.Stream+":"+seq)
	return &nats.Msg{Subject: c.cfg.DeadLetterSubject(), Header: header, Data: d.Data}
}

// maxReason bounds a Dlq-Reason: a dead letter must fit the server's
// max_payload.
const maxReason = 1024

// DeadLetterRoom is the most the Dlq-* headers add to a message: a message
// larger than max_payload − DeadLetterRoom could not be dead-lettered.
const DeadLetterRoom = 2 << 10

// headerValue makes an error text a header value: one line (a joined
// error's lines separated by "; "), at most maxReason bytes, cut on a
// character boundary.
func headerValue(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
