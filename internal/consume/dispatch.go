package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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

	slots   chan struct{}      // one per handler running
	alone   sync.RWMutex       // held for writing by an attempt that runs alone (poison.go)
	tokens  chan struct{}      // one per delivery held (MaxPending)
	stop    <-chan struct{}    // closed at shutdown: stopped.Done()
	stopped context.Context    // ends at shutdown, for reads that must not hold it up
	stopNow context.CancelFunc // begins shutdown
	hard    context.Context
	cancel  context.CancelFunc // ends handlers at the drain deadline
	conn    *connEpoch         // with CancelOnDisconnect: while the NATS connection lasts
	workers sync.WaitGroup
	jobs    chan func()  // to the runners waiting (start)
	idle    atomic.Int32 // runners waiting and not yet claimed by a job

	jc           jetstream.Consumer
	lastReceived atomic.Int64 // when a delivery last arrived, in Unix nanoseconds
	inNext       atomic.Bool  // the pull loop waits for a delivery
	pinID        atomic.Value // the priority group's pin id this client last received with
	renewing     atomic.Bool  // the iterator was stopped as stalled: pull anew (stall.go)
	itMu         sync.Mutex   // guards it, and closing stop against replacing it
	it           jetstream.MessagesContext

	mu    sync.Mutex
	lanes map[string]*lane
	held  map[*Delivery]time.Time // every delivery held, and its last sign of life
	order orderFence              // with Config.Key: what is pending beyond the lanes (order.go)
	// unflushed holds when each key was last acked, within AckWait, unless
	// the connection was flushed for it since: its next delivery flushes
	// first (flushAcks).
	unflushed map[string]time.Time
}

// lane holds one key's deliveries not yet started, in stream order. It
// runs one at a time (running), and is parked (not running) while a
// message of its key older than the first is awaited.
type lane struct {
	queue   []*Delivery
	running bool
}

// insert puts d in stream order.
func (l *lane) insert(d *Delivery) {
	i := len(l.queue)
	for i > 0 && l.queue[i-1].Sequence > d.Sequence {
		i--
	}
	l.queue = slices.Insert(l.queue, i, d)
}

func newConsumer(js jetstream.JetStream, cfg Config, h Handler, log *slog.Logger) *consumer {
	hard, cancel := context.WithCancel(context.Background())
	stopped, stopNow := context.WithCancel(context.Background())
	return &consumer{
		js: js, cfg: cfg, handler: h, log: log, stop: stopped.Done(), stopped: stopped, stopNow: stopNow,
		slots: make(chan struct{}, cfg.Concurrency), tokens: make(chan struct{}, cfg.MaxPending),
		hard: hard, cancel: cancel, jobs: make(chan func(), cfg.MaxPending), lanes: map[string]*lane{}, held: map[*Delivery]time.Time{},
		order: newOrderFence(), unflushed: map[string]time.Time{},
	}
}

// run pulls until ctx ends, then drains.
//
// The pull's buffer holds MaxPending messages, the consumer's
// MaxAckPending: the server never has more outstanding, so the client
// cannot overflow it and drop deliveries as a slow consumer.
func (c *consumer) run(ctx context.Context, jc jetstream.Consumer) error {
	c.jc = jc
	it, err := c.messages()
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	c.it = it
	defer c.cancel()
	defer c.unpin()
	if c.cfg.CancelOnDisconnect {
		c.conn = watchConnection(c.js.Conn(), c.hard.Done())
	}
	if c.cfg.Bound != nil {
		c.cfg.Bound()
	}
	go func() {
		<-ctx.Done()
		c.itMu.Lock()
		c.stopNow()
		c.it.Drain() // Next returns what is buffered, then ErrMsgIteratorClosed
		c.itMu.Unlock()
	}()
	heartbeats, floors := make(chan struct{}), make(chan struct{})
	go func() { defer close(heartbeats); c.heartbeat() }()
	go c.watchStall()
	go func() {
		defer close(floors)
		if c.cfg.Key != nil {
			c.watchFloor()
		}
	}()
	c.pull(it)
	<-floors // nothing wakes a lane after this
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
		c.inNext.Store(true)
		jm, err := it.Next()
		c.inNext.Store(false)
		if err != nil {
			<-c.tokens
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				if it = c.renewed(); it != nil {
					continue
				}
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
		c.lastReceived.Store(time.Now().UnixNano())
		if pin := jm.Headers().Get(pinHeader); pin != "" {
			c.pinID.Store(pin)
		}
		d := c.delivery(jm)
		if c.cfg.Key == nil {
			c.dispatch(d)
		} else if !c.admit(d) {
			c.giveBackBuffered(it)
			return
		}
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
		d.deliverySeq, d.delivered, d.firstDelivery = meta.Sequence.Consumer, meta.NumDelivered, meta.NumDelivered == 1
	}
	if c.cfg.Key != nil {
		d.Key = c.cfg.Key(d)
	}
	return d
}

// dispatch hands d to its key's lane (woken if parked or idle), or to a
// worker of its own when it has no key.
func (c *consumer) dispatch(d *Delivery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dispatchLocked(d)
}

// dispatchLocked is dispatch with c.mu held.
func (c *consumer) dispatchLocked(d *Delivery) {
	c.held[d] = time.Now()
	if d.Sequence != 0 {
		c.order.bySeq[d.Sequence] = d
	}
	if d.Key == "" {
		c.start(func() { c.process(d) })
		return
	}
	l, ok := c.lanes[d.Key]
	if !ok {
		l = &lane{}
		c.lanes[d.Key] = l
	}
	l.insert(d)
	c.wake(d.Key)
}

// wake runs key's lane unless it runs already, is empty, or waits for an
// older message of its key. c.mu is held.
func (c *consumer) wake(key string) {
	l, ok := c.lanes[key]
	if !ok || l.running || len(l.queue) == 0 || c.blocked(key, l.queue[0].Sequence) {
		return
	}
	l.running = true
	c.start(func() { c.runLane(key, l) })
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
// left, an older message of the key is awaited (the lane parks: wake
// resumes it), or shutdown gives the rest back. A delivery leaves the
// queue when it starts, in the same hold as the check that nothing older
// is awaited: one that arrives meanwhile is inserted before the rest.
func (c *consumer) runLane(key string, l *lane) {
	for {
		c.mu.Lock()
		if len(l.queue) == 0 {
			delete(c.lanes, key)
			l.running = false
			c.mu.Unlock()
			return
		}
		d := l.queue[0]
		stopping := c.stopping()
		if c.blocked(key, d.Sequence) && !stopping {
			l.running = false // parked; a lane parked before shutdown is given back by drain
			c.mu.Unlock()
			return
		}
		if stopping {
			c.mu.Unlock()
			c.giveBackLane(key, l, 0)
			return
		}
		l.queue = l.queue[1:]
		c.mu.Unlock()
		c.flushAcks(key)
		if back, after := c.process(d); back {
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
	l.queue, l.running = nil, false
	delete(c.lanes, key)
	c.mu.Unlock()
	for i, d := range queued {
		c.giveBack(d, after+time.Duration(i+1)*time.Millisecond)
	}
}

// giveBackParked gives back the lanes that wait for an older message of
// their key: no runner holds them.
func (c *consumer) giveBackParked() {
	c.mu.Lock()
	parked := map[string]*lane{}
	for key, l := range c.lanes {
		if !l.running {
			parked[key] = l
		}
	}
	c.mu.Unlock()
	for key, l := range parked {
		c.giveBackLane(key, l, 0)
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
		for key, acked := range c.unflushed { // past AckWait, flushAcks skips them
			if now.Sub(acked) > c.cfg.AckWait {
				delete(c.unflushed, key)
			}
		}
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
	c.giveBackParked()
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

// forget drops a delivery no longer held: settled here, or given back
// (then awaited: it comes back).
func (c *consumer) forget(d *Delivery, settled bool) {
	c.mu.Lock()
	delete(c.held, d)
	if c.order.bySeq[d.Sequence] == d {
		delete(c.order.bySeq, d.Sequence)
		switch {
		case !settled && c.cfg.Key != nil:
			c.order.awaited[d.Sequence] = d.Key
		case settled && c.order.resyncing:
			c.order.settledNow[d.Sequence] = true
		}
	}
	c.mu.Unlock()
	<-c.tokens
}

// giveBack naks a held delivery (redelivered after delay) and forgets it.
func (c *consumer) giveBack(d *Delivery, delay time.Duration) {
	c.nak(d.msg, delay)
	c.forget(d, false)
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
