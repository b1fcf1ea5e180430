package consume

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers a dead letter carries beside the original message's own headers.
const (
	HeaderReason       = "Dlq-Reason"        // the error, as text
	HeaderErrorClass   = "Dlq-Error-Class"   // ClassExhausted, ClassPermanent or the class given to PermanentClass
	HeaderAttempts     = "Dlq-Attempts"      // deliveries made, the last included
	HeaderFirstFailure = "Dlq-First-Failure" // RFC 3339, first failure seen by this process
	HeaderLastFailure  = "Dlq-Last-Failure"  // RFC 3339
	HeaderStream       = "Dlq-Stream"        // the original stream
	HeaderStreamSeq    = "Dlq-Stream-Seq"    // the original stream sequence
	HeaderSubject      = "Dlq-Subject"       // the original subject
	HeaderConsumer     = "Dlq-Consumer"      // the durable consumer that gave up
)

// Error classes of a dead letter.
const (
	ClassPermanent = "permanent" // the handler said retrying cannot help
	ClassExhausted = "exhausted" // every allowed attempt failed
)

// deadLetterError tells PoisonQueue to publish the delivery to the DLQ.
type deadLetterError struct{ err error }

func (e *deadLetterError) Error() string { return e.err.Error() }
func (e *deadLetterError) Unwrap() error { return e.err }

func isDeadLetter(err error) bool {
	var d *deadLetterError
	return errors.As(err, &d)
}

// failures remembers when each failing stream sequence first failed. It is
// per process: after a restart, the first failure is the first one seen
// since.
type failures struct {
	mu    sync.Mutex
	first map[uint64]time.Time
}

func (f *failures) record(seq uint64, now time.Time) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.first == nil {
		f.first = map[uint64]time.Time{}
	}
	if t, ok := f.first[seq]; ok {
		return t
	}
	f.first[seq] = now
	return now
}

func (f *failures) forget(seq uint64) {
	f.mu.Lock()
	delete(f.first, seq)
	f.mu.Unlock()
}

// classify is the middleware that decides what a handler error means:
// permanent, or the last allowed attempt → dead letter (annotated for the
// DLQ); otherwise → retry after the backoff or the Retry-After hint.
func (c *consumer) classify(h message.HandlerFunc) message.HandlerFunc {
	return func(m *message.Message) ([]*message.Message, error) {
		out, err := h(m)
		jm, ok := jetStreamMsg(m)
		if !ok {
			return out, err
		}
		meta, metaErr := jm.Metadata()
		if metaErr != nil {
			return out, errors.Join(err, fmt.Errorf("consume: metadata: %w", metaErr))
		}
		seq := meta.Sequence.Stream
		if err == nil {
			c.failures.forget(seq)
			return out, nil
		}
		now := time.Now().UTC()
		first := c.failures.record(seq, now)
		hint, _ := RetryAfterHint(err)
		m.Metadata.Set(mdNakDelay, c.cfg.Backoff.Delay(meta.NumDelivered, hint).String())
		class, permanent := PermanentClassOf(err)
		switch {
		case permanent:
		case meta.NumDelivered >= uint64(c.cfg.MaxAttempts):
			class = ClassExhausted
		default:
			c.log.Info("delivery failed, will retry", "seq", seq, "attempt", meta.NumDelivered, "err", err)
			return nil, err
		}
		c.failures.forget(seq)
		for k, v := range map[string]string{
			HeaderReason: err.Error(), HeaderErrorClass: class,
			HeaderAttempts:     strconv.FormatUint(meta.NumDelivered, 10),
			HeaderFirstFailure: first.Format(time.RFC3339Nano), HeaderLastFailure: now.Format(time.RFC3339Nano),
			HeaderStream: meta.Stream, HeaderStreamSeq: strconv.FormatUint(seq, 10),
			HeaderSubject: jm.Subject(), HeaderConsumer: meta.Consumer,
		} {
			m.Metadata.Set(k, v)
		}
		m.Metadata.Set(mdDeadLettered, class)
		c.log.Error("delivery dead-lettered", "seq", seq, "class", class, "attempt", meta.NumDelivered, "err", err)
		return nil, &deadLetterError{err: err}
	}
}

// deadLetterPublisher is the message.Publisher PoisonQueue publishes with:
// the original body and headers plus the Dlq-* headers, deduplicated per
// consumer and stream sequence so a crash between publish and Term does not
// dead-letter twice.
type deadLetterPublisher struct {
	js      jetstream.JetStream
	timeout time.Duration
}

var _ message.Publisher = (*deadLetterPublisher)(nil)

func (p *deadLetterPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		jm, ok := jetStreamMsg(m)
		if !ok {
			return errors.New("consume: dead letter without its JetStream message")
		}
		header := nats.Header{}
		for k, v := range jm.Headers() {
			if !strings.HasPrefix(k, "Nats-") {
				header[k] = append([]string(nil), v...)
			}
		}
		for k, v := range m.Metadata {
			if strings.HasPrefix(k, "Dlq-") {
				header.Set(k, v)
			}
		}
		header.Set(jetstream.MsgIDHeader, "dlq:"+m.Metadata.Get(HeaderConsumer)+":"+m.Metadata.Get(HeaderStream)+":"+m.Metadata.Get(HeaderStreamSeq))
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		_, err := p.js.PublishMsg(ctx, &nats.Msg{Subject: topic, Header: header, Data: jm.Data()})
		cancel()
		if err != nil {
			return fmt.Errorf("consume: publish dead letter to %s: %w", topic, err)
		}
	}
	return nil
}

func (p *deadLetterPublisher) Close() error { return nil }
