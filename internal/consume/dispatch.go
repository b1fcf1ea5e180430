package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// pullRetry is the pause after a failed pull, so a lost connection does not
// spin.
const pullRetry = 200 * time.Millisecond

// consumer runs one durable consumer: it pulls, dispatches each delivery
// to its key's lane, and holds every delivery it has not settled.
type consumer struct {
	js      jetstream.JetStream
	cfg     Config
	handler Handler
	log     *slog.Logger

	slots   chan struct{} // one per handler running
	tokens  chan struct{} // one per delivery held (MaxPending)
	stop    chan struct{} // closed at shutdown
	hard    context.Context
	cancel  context.CancelFunc // ends handlers at the drain deadline
	conn    *connEpoch         // with CancelOnDisconnect: while the NATS connection lasts
	workers sync.WaitGroup
	jobs    chan func()  // to the runners waiting (start)
	idle    atomic.Int32 // runners waiting and not yet claimed by a job

	mu    sync.Mutex
	lanes map[string]*lane
	held  map[*Delivery]time.Time // every delivery held, and its last sign of life
}

// lane holds one key's deliveries in stream order; the first is the one
// being handled.
type lane struct{ queue []*Delivery }

func newConsumer(js jetstream.JetStream, cfg Config, h Handler, log *slog.Logger) *consumer {
	hard, cancel := context.WithCancel(context.Background())
	return &consumer{
		js: js, cfg: cfg, handler: h, log: log,
		slots: make(chan struct{}, cfg.Concurrency), tokens: make(chan struct{}, cfg.MaxPending), stop: make(chan struct{}),
		hard: hard, cancel: cancel, jobs: make(chan func(), cfg.MaxPending), lanes: map[string]*lane{}, held: map[*Delivery]time.Time{},
	}
}

// run pulls until ctx ends, then drains.
func (c *consumer) run(ctx context.Context, jc jetstream.Consumer) error {
	it, err := jc.Messages(jetstream.PullMaxMessages(min(c.cfg.MaxPending, max(2*c.cfg.Concurrency, 16))), jetstream.PullHeartbeat(c.cfg.Heartbeat))
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	defer c.cancel()
	if c.cfg.CancelOnDisconnect {
		c.conn = watchConnection(c.js.Conn(), c.hard.Done())
	}
	if c.cfg.Bound != nil {
		c.cfg.Bound()
	}
	go func() {
		<-ctx.Done()
		close(c.stop)
		it.Drain() // Next returns what is buffered, then ErrMsgIteratorClosed
	}()
	heartbeats := make(chan struct{})
	go func() { defer close(heartbeats); c.heartbeat() }()
	c.pull(it)
	c.drain()
	<-heartbeats
	return nil
}

// pull takes deliveries from the iterator until it is closed; after
// shutdown began, what it still returns is given back.
func (c *consumer) pull(it jetstream.MessagesContext) {
	for {
		select {
		case c.tokens <- struct{}{}:
		case <-c.stop:
			c.giveBackBuffered(it)
			return
		}
		jm, err := it.Next()
		if err != nil {
			<-c.tokens
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			c.log.Warn("pull failed", "err", err)
			select {
			case <-time.After(pullRetry):
			case <-c.stop:
			}
			continue
		}
		if c.stopping() {
			<-c.tokens
			c.nak(jm, 0)
			continue
		}
		c.dispatch(c.delivery(jm))
	}
}

// giveBackBuffered naks what the drained iterator still holds, so another
// replica gets it now instead of after AckWait.
func (c *consumer) giveBackBuffered(it jetstream.MessagesContext) {
	for {
		jm, err := it.Next()
		if err != nil {
			return
		}
		c.nak(jm, 0)
	}
}

func (c *consumer) delivery(jm jetstream.Msg) *Delivery {
	d := &Delivery{Subject: jm.Subject(), Header: jm.Headers(), Data: jm.Data(), Attempt: 1, Stage: c.cfg.Stage, ConsumerID: c.cfg.ID, msg: jm}
	if meta, err := jm.Metadata(); err == nil {
		d.Stream, d.Sequence, d.Attempt, d.Stored = meta.Stream, meta.Sequence.Stream, meta.NumDelivered, meta.Timestamp
	}
	if c.cfg.Key != nil {
		d.Key = c.cfg.Key(d)
	}
	return d
}

// dispatch hands d to its key's lane (started if idle), or to a worker of
// its own when it has no key.
func (c *consumer) dispatch(d *Delivery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held[d] = time.Now()
	if d.Key == "" {
		c.start(func() { c.process(d) })
		return
	}
	if l, busy := c.lanes[d.Key]; busy {
		l.queue = append(l.queue, d)
		return
	}
	l := &lane{queue: []*Delivery{d}}
	c.lanes[d.Key] = l
	c.start(func() { c.runLane(d.Key, l) })
}

// start runs job on a waiting runner, or on a new one. Runners outlive
// their job, until shutdown: a goroutine's stack grows as a handler runs
// (JSON, schema validation, the NATS client), and a fresh goroutine per
// delivery grew and copied it again every time, 6–8 % of the normalizer's
// and the sinks' CPU. A runner is only started when no runner waits, so
// there are about as many as deliveries held at the busiest (MaxPending,
// and a few more when deliveries arrive while runners that have just
// finished a job are not yet waiting); the stacks of those waiting shrink
// at each GC.
func (c *consumer) start(job func()) {
	for {
		n := c.idle.Load()
		if n <= 0 {
			c.workers.Go(func() { c.runner(job) })
			return
		}
		if c.idle.CompareAndSwap(n, n-1) { // claimed: a waiting runner takes it
			c.jobs <- job
			return
		}
	}
}

// runner runs its job, then every job it is handed, until shutdown.
func (c *consumer) runner(job func()) {
	for ok := true; ok; job, ok = c.next() {
		job()
	}
}

// next waits for a job: false at shutdown, unless a job claimed the
// runner first. The runners waiting, idle, are always at least the jobs
// queued.
func (c *consumer) next() (func(), bool) {
	c.idle.Add(1)
	select {
	case job := <-c.jobs:
		return job, true
	case <-c.stop:
		for {
			n := c.idle.Load()
			if n <= 0 { // every waiting runner is claimed: a job is on its way
				return <-c.jobs, true
			}
			if c.idle.CompareAndSwap(n, n-1) {
				return nil, false
			}
		}
	}
}

// runLane handles a key's deliveries one after the other, until none is
// left or shutdown gives the rest back.
func (c *consumer) runLane(key string, l *lane) {
	for {
		c.mu.Lock()
		if len(l.queue) == 0 {
			delete(c.lanes, key)
			c.mu.Unlock()
			return
		}
		d := l.queue[0]
		c.mu.Unlock()
		if c.stopping() {
			c.giveBackLane(key, l, 0)
			return
		}
		back, after := c.process(d)
		c.mu.Lock()
		l.queue = l.queue[1:]
		c.mu.Unlock()
		if back {
			c.giveBackLane(key, l, after)
			return
		}
	}
}

// giveBackLane naks a lane's queued deliveries in order, each redelivered
// no sooner than the one before: after the head's remaining retry delay
// when it was given back waiting.
func (c *consumer) giveBackLane(key string, l *lane, after time.Duration) {
	c.mu.Lock()
	queued := l.queue
	l.queue = nil
	delete(c.lanes, key)
	c.mu.Unlock()
	for i, d := range queued {
		c.giveBack(d, after+time.Duration(i+1)*time.Millisecond)
	}
}

func (c *consumer) stopping() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// heartbeat sends InProgress for every delivery held without a sign of
// life for AckWait/3, until every delivery is settled after shutdown.
func (c *consumer) heartbeat() {
	every := c.cfg.AckWait / 3
	tick := time.NewTicker(every)
	defer tick.Stop()
	for range tick.C {
		c.mu.Lock()
		if c.stopping() && len(c.held) == 0 && len(c.lanes) == 0 {
			c.mu.Unlock()
			return
		}
		now := time.Now()
		var due []*Delivery
		for d, last := range c.held {
			if now.Sub(last) >= every {
				due = append(due, d)
				c.held[d] = now
			}
		}
		c.mu.Unlock()
		for _, d := range due {
			if err := d.msg.InProgress(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
				c.log.Warn("in-progress failed", "seq", d.Sequence, "err", err)
			}
		}
	}
}

// drain waits for the workers to settle or give back what they hold; past
// DrainTimeout their handlers are cancelled.
func (c *consumer) drain() {
	done := make(chan struct{})
	go func() { c.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.cfg.DrainTimeout):
		c.log.Warn("drain timeout: cancelling handlers in flight", "timeout", c.cfg.DrainTimeout)
		c.cancel()
		<-done
	}
}

// forget drops a settled delivery.
func (c *consumer) forget(d *Delivery) {
	c.mu.Lock()
	delete(c.held, d)
	c.mu.Unlock()
	<-c.tokens
}

// giveBack naks a held delivery (redelivered after delay) and forgets it.
func (c *consumer) giveBack(d *Delivery, delay time.Duration) {
	c.nak(d.msg, delay)
	c.forget(d)
}

func (c *consumer) nak(jm jetstream.Msg, delay time.Duration) {
	var err error
	if delay > 0 {
		err = jm.NakWithDelay(delay)
	} else {
		err = jm.Nak()
	}
	if err != nil {
		c.log.Warn("nak failed", "err", err)
	}
}
