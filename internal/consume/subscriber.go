package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"
)

// Metadata keys the middleware sets to tell the subscriber how to settle a
// delivery. They never leave the process.
const (
	mdNakDelay     = "invoicehub_nak_delay"
	mdDeadLettered = "invoicehub_dead_lettered"
)

// pullRetry is the pause after a failed pull.
const pullRetry = 200 * time.Millisecond

type jsMsgKey struct{}

// jetStreamMsg returns the JetStream message behind a Watermill message.
func jetStreamMsg(m *message.Message) (jetstream.Msg, bool) {
	jm, ok := m.Context().Value(jsMsgKey{}).(jetstream.Msg)
	return jm, ok
}

// subscriber is a Watermill message.Subscriber over one durable JetStream
// pull consumer. It exists because watermill-nats' JetStream subscriber
// (v2.1.3) cannot: honour a per-message Retry-After (its Delay sees only the
// retry count), send InProgress for slow handlers (it stops waiting at its
// ack timeout and leaves the message to time out), Term after dead-lettering
// (PoisonQueue acks), or close without draining a shared connection; and it
// dereferences a nil message when its unmarshaler fails.
//
// It keeps at most inflight deliveries unsettled; each gets InProgress every
// progressEvery until the Router acks or nacks it, and is then settled:
// ack → DoubleAck, or Term if the middleware dead-lettered it; nack →
// NakWithDelay with the delay the middleware chose (the backoff if none).
type subscriber struct {
	consumer      jetstream.Consumer
	inflight      int
	progressEvery time.Duration
	backoff       Backoff
	log           *slog.Logger

	closeOnce sync.Once
	closing   chan struct{}
	settling  sync.WaitGroup
	mu        sync.Mutex
	iters     []jetstream.MessagesContext
}

var _ message.Subscriber = (*subscriber)(nil)

func newSubscriber(c jetstream.Consumer, inflight int, progressEvery time.Duration, b Backoff, log *slog.Logger) *subscriber {
	return &subscriber{consumer: c, inflight: inflight, progressEvery: progressEvery, backoff: b, log: log, closing: make(chan struct{})}
}

// Subscribe starts pulling from the consumer; topic is only a label, the
// consumer's filter decides what arrives.
func (s *subscriber) Subscribe(ctx context.Context, _ string) (<-chan *message.Message, error) {
	it, err := s.consumer.Messages(jetstream.PullMaxMessages(s.inflight))
	if err != nil {
		return nil, fmt.Errorf("consume: pull: %w", err)
	}
	s.mu.Lock()
	s.iters = append(s.iters, it)
	s.mu.Unlock()

	out := make(chan *message.Message)
	s.settling.Add(1) // held by pull until it returns
	go s.pull(ctx, it, out)
	return out, nil
}

func (s *subscriber) pull(ctx context.Context, it jetstream.MessagesContext, out chan<- *message.Message) {
	defer s.settling.Done()
	defer close(out)
	slots := make(chan struct{}, s.inflight)
	go func() {
		select {
		case <-ctx.Done():
			it.Drain() // unblocks Next
		case <-s.closing:
		}
	}()
	for {
		select {
		case slots <- struct{}{}:
		case <-s.closing:
			s.releaseBuffered(it)
			return
		case <-ctx.Done():
			s.releaseBuffered(it)
			return
		}
		jm, err := it.Next()
		if err != nil {
			<-slots
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			s.log.Warn("pull failed", "err", err)
			select { // a lost connection fails every pull: do not spin
			case <-time.After(pullRetry):
			case <-s.closing:
			case <-ctx.Done():
			}
			continue
		}
		wm := message.NewMessage(watermill.NewUUID(), jm.Data())
		// The settle context is detached from shutdown: a delivery in flight
		// when the process stops still finishes and settles.
		wm.SetContext(context.WithValue(context.WithoutCancel(ctx), jsMsgKey{}, jm))
		s.settling.Add(1)
		go s.settle(jm, wm, slots)
		out <- wm
	}
}

// releaseBuffered naks what the drained iterator still holds, so another
// replica gets it now instead of after AckWait.
func (s *subscriber) releaseBuffered(it jetstream.MessagesContext) {
	for {
		jm, err := it.Next()
		if err != nil {
			return
		}
		if err := jm.Nak(); err != nil {
			s.log.Warn("release failed", "err", err)
		}
	}
}

func (s *subscriber) settle(jm jetstream.Msg, wm *message.Message, slots <-chan struct{}) {
	defer s.settling.Done()
	defer func() { <-slots }()
	progress := time.NewTicker(s.progressEvery)
	defer progress.Stop()
	for {
		select {
		case <-progress.C:
			if err := jm.InProgress(); err != nil {
				s.log.Warn("in-progress failed", "err", err)
			}
		case <-wm.Acked():
			s.ack(jm, wm)
			return
		case <-wm.Nacked():
			s.nak(jm, wm)
			return
		}
	}
}

func (s *subscriber) ack(jm jetstream.Msg, wm *message.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if wm.Metadata.Get(mdDeadLettered) != "" {
		err = jm.Term()
	} else {
		err = jm.DoubleAck(ctx)
	}
	if err != nil {
		// Unacknowledged, the message is redelivered after AckWait; the
		// effect is idempotent by event id, so nothing is lost or doubled.
		s.log.Warn("ack failed", "err", err)
	}
}

func (s *subscriber) nak(jm jetstream.Msg, wm *message.Message) {
	delay, err := time.ParseDuration(wm.Metadata.Get(mdNakDelay))
	if err != nil { // a nack the middleware did not see (a Router-level panic)
		attempt := uint64(1)
		if meta, err := jm.Metadata(); err == nil {
			attempt = meta.NumDelivered
		}
		delay = s.backoff.Delay(attempt, 0)
	}
	if err := jm.NakWithDelay(delay); err != nil {
		s.log.Warn("nak failed", "err", err, "delay", delay)
	}
}

// Close stops pulling and waits for the deliveries in flight to settle. It
// is safe to call more than once.
func (s *subscriber) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.mu.Lock()
		for _, it := range s.iters {
			it.Drain()
		}
		s.mu.Unlock()
	})
	s.settling.Wait()
	return nil
}
