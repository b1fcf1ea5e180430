package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/invoicehub/invoicehub/schemas/subject"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/streams"
)

var testLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

type fixture struct {
	js  jetstream.JetStream
	srv *jstest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := jstest.Run(t)
	_, js := srv.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	return &fixture{js: js, srv: srv}
}

func (f *fixture) publish(t *testing.T, id string) uint64 {
	t.Helper()
	return f.publishKeyed(t, id, "")
}

// publishKeyed publishes a message whose ce-partitionkey is key.
func (f *fixture) publishKeyed(t *testing.T, id, key string) uint64 {
	t.Helper()
	msg := &nats.Msg{Subject: "invoices.v1.paid.qonto.acme", Header: nats.Header{"ce-id": {id}, "ce-partitionkey": {key}, jetstream.MsgIDHeader: {id}}, Data: []byte(id)}
	ack, err := f.js.PublishMsg(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func testConfig(id string) Config {
	return Config{
		Stage: "sink", ID: id, Stream: subject.InvoicesStream, Concurrency: 2, MaxAttempts: 3, MaxAge: time.Millisecond,
		AckWait: 2 * time.Second, AttemptTimeout: 5 * time.Second,
		Backoff: Backoff{Base: 10 * time.Millisecond, Max: 40 * time.Millisecond},
	}
}

// start runs the adapter until the test ends, or until stop is called.
func (f *fixture) start(t *testing.T, cfg Config, h Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, f.js, cfg, h, testLog) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	jstest.Eventually(t, 5*time.Second, "consumer created", func() bool {
		_, err := f.js.Consumer(t.Context(), cfg.Stream, cfg.Durable())
		return err == nil
	})
	return stop
}

func (f *fixture) deadLetters(t *testing.T, subj string) []*jetstream.RawStreamMsg {
	t.Helper()
	var out []*jetstream.RawStreamMsg
	for _, m := range jstest.Messages(t, f.js, subject.DLQStream) {
		if m.Subject == subj {
			out = append(out, m)
		}
	}
	return out
}

func (f *fixture) pending(t *testing.T, durable string) (ackPending int, numPending uint64) {
	t.Helper()
	c, err := f.js.Consumer(t.Context(), subject.InvoicesStream, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumAckPending, info.NumPending
}

func TestSuccessAcks(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int32
	cfg := testConfig("ok")
	f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		if string(d.Data) != d.Header.Get("ce-id") || d.Stream != subject.InvoicesStream || d.Attempt != 1 {
			return Permanent(fmt.Errorf("bad delivery %+v", d))
		}
		calls.Add(1)
		return nil
	})
	for i := range 20 {
		f.publish(t, "ok-"+strconv.Itoa(i))
	}
	jstest.Eventually(t, 5*time.Second, "20 deliveries acked", func() bool {
		ack, pending := f.pending(t, cfg.Durable())
		return calls.Load() == 20 && ack == 0 && pending == 0
	})
	if n := len(f.deadLetters(t, cfg.DeadLetterSubject())); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

func TestTransientRetriesHonourRetryAfter(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var attempts []time.Time
	const wait = 300 * time.Millisecond
	cfg := testConfig("retry")
	f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, time.Now())
		if d.Attempt < 3 {
			return RetryAfter(errors.New("busy"), wait)
		}
		return nil
	})
	f.publish(t, "r-1")
	jstest.Eventually(t, 5*time.Second, "third attempt succeeds", func() bool {
		ack, pending := f.pending(t, cfg.Durable())
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) == 3 && ack == 0 && pending == 0
	})
	for i := 1; i < 3; i++ {
		if gap := attempts[i].Sub(attempts[i-1]); gap < wait {
			t.Errorf("retry %d came after %v, before the Retry-After of %v", i, gap, wait)
		}
	}
}

// TestRetriesLastMaxAge: a receiver that keeps answering Retry-After: 1 ms
// during an outage does not use up the retries: the delivery is
// dead-lettered only once it has failed MaxAttempts times and for MaxAge.
func TestRetriesLastMaxAge(t *testing.T) {
	f := newFixture(t)
	cfg := testConfig("maxage")
	cfg.MaxAttempts, cfg.MaxAge = 2, 700*time.Millisecond
	var mu sync.Mutex
	var attempts []time.Time
	f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, time.Now())
		return RetryAfter(errors.New("down"), time.Millisecond)
	})
	f.publish(t, "age-1")
	jstest.Eventually(t, 5*time.Second, "dead-lettered", func() bool { return len(f.deadLetters(t, cfg.DeadLetterSubject())) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if span := attempts[len(attempts)-1].Sub(attempts[0]); span < cfg.MaxAge || len(attempts) <= cfg.MaxAttempts {
		t.Fatalf("dead-lettered after %d attempts over %v: MaxAttempts is %d and MaxAge %v", len(attempts), span, cfg.MaxAttempts, cfg.MaxAge)
	}
}

func TestPermanentGoesToDLQAndStreamFlows(t *testing.T) {
	f := newFixture(t)
	var good atomic.Int32
	cfg := testConfig("perm")
	f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		if string(d.Data) == "bad" {
			return Permanent(errors.New("cannot map"))
		}
		good.Add(1)
		return nil
	})
	badSeq := f.publish(t, "bad")
	f.publish(t, "good-1")
	f.publish(t, "good-2")
	jstest.Eventually(t, 5*time.Second, "dead letter and both good messages", func() bool {
		return len(f.deadLetters(t, cfg.DeadLetterSubject())) == 1 && good.Load() == 2
	})
	dl := f.deadLetters(t, cfg.DeadLetterSubject())[0]
	want := map[string]string{
		HeaderErrorClass: ClassPermanent, HeaderAttempts: "1", HeaderStream: subject.InvoicesStream,
		HeaderStreamSeq: strconv.FormatUint(badSeq, 10), HeaderSubject: "invoices.v1.paid.qonto.acme",
		HeaderConsumer: "sink-perm", "ce-id": "bad",
	}
	for k, v := range want {
		if got := dl.Header.Get(k); got != v {
			t.Errorf("dead letter header %s = %q, want %q", k, got, v)
		}
	}
	if string(dl.Data) != "bad" || dl.Header.Get(HeaderReason) == "" || dl.Header.Get(HeaderFirstFailure) == "" {
		t.Errorf("dead letter: %q %v", dl.Data, dl.Header)
	}
	jstest.Eventually(t, 5*time.Second, "bad message terminated", func() bool {
		ack, _ := f.pending(t, cfg.Durable())
		return ack == 0
	})
}

func TestExhaustedAfterMaxAttempts(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int32
	cfg := testConfig("exhaust")
	f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		calls.Add(1)
		return errors.New("downstream down")
	})
	f.publish(t, "x")
	jstest.Eventually(t, 5*time.Second, "dead-lettered as exhausted", func() bool {
		return len(f.deadLetters(t, cfg.DeadLetterSubject())) == 1
	})
	dl := f.deadLetters(t, cfg.DeadLetterSubject())[0]
	if dl.Header.Get(HeaderErrorClass) != ClassExhausted || dl.Header.Get(HeaderAttempts) != "3" {
		t.Fatalf("headers %v", dl.Header)
	}
	first, _ := time.Parse(time.RFC3339Nano, dl.Header.Get(HeaderFirstFailure))
	last, _ := time.Parse(time.RFC3339Nano, dl.Header.Get(HeaderLastFailure))
	if !first.Before(last) {
		t.Errorf("first failure %v not before last %v", first, last)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d attempts, want 3", calls.Load())
	}
}

func TestPanicIsRecoveredAndRetried(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int32
	cfg := testConfig("panic")
	f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return nil
	})
	f.publish(t, "p")
	jstest.Eventually(t, 5*time.Second, "retried after panic", func() bool {
		ack, pending := f.pending(t, cfg.Durable())
		return calls.Load() == 2 && ack == 0 && pending == 0
	})
}

func TestRetrySurvivesRestart(t *testing.T) {
	f := newFixture(t)
	cfg := testConfig("restart")
	var first atomic.Int32
	stop := f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		first.Add(1)
		return RetryAfter(errors.New("come back later"), 700*time.Millisecond)
	})
	f.publish(t, "later")
	jstest.Eventually(t, 5*time.Second, "first attempt failed", func() bool { return first.Load() == 1 })
	stop() // the process dies while the message waits out its delay

	delivered := make(chan uint64, 1)
	f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		delivered <- d.Attempt
		return nil
	})
	select {
	case attempt := <-delivered:
		if attempt != 2 {
			t.Fatalf("redelivered as attempt %d, want 2", attempt)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message not redelivered after restart")
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	f := newFixture(t)
	cfg := testConfig("bounded")
	cfg.Concurrency = 3
	var cur, peak, done atomic.Int32
	release := make(chan struct{})
	f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		n := cur.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		cur.Add(-1)
		done.Add(1)
		return nil
	})
	for i := range 10 {
		f.publish(t, "c-"+strconv.Itoa(i))
	}
	jstest.Eventually(t, 5*time.Second, "three deliveries in flight", func() bool { return cur.Load() == 3 })
	close(release)
	jstest.Eventually(t, 5*time.Second, "all delivered", func() bool { return done.Load() == 10 })
	if peak.Load() != 3 {
		t.Fatalf("peak concurrency %d, want 3", peak.Load())
	}
}

func TestSlowHandlerKeptAliveWithInProgress(t *testing.T) {
	f := newFixture(t)
	cfg := testConfig("slow")
	cfg.AckWait = 600 * time.Millisecond
	var calls atomic.Int32
	f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		calls.Add(1)
		select { // three AckWaits of work
		case <-time.After(3 * cfg.AckWait):
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	})
	f.publish(t, "slow")
	jstest.Eventually(t, 10*time.Second, "slow delivery acked", func() bool {
		ack, pending := f.pending(t, cfg.Durable())
		return calls.Load() >= 1 && ack == 0 && pending == 0
	})
	if calls.Load() != 1 {
		t.Fatalf("redelivered while in progress: %d calls", calls.Load())
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	f := newFixture(t)
	cfg := testConfig("drain")
	started := make(chan struct{})
	var finished atomic.Bool
	stop := f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		close(started)
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		finished.Store(true)
		return nil
	})
	f.publish(t, "d")
	<-started
	stop()
	if !finished.Load() {
		t.Fatal("shutdown did not wait for the delivery in flight")
	}
	if ack, pending := f.pending(t, cfg.Durable()); ack != 0 || pending != 0 {
		t.Fatalf("after drain: %d unacked, %d pending", ack, pending)
	}
}

func TestConfigValidation(t *testing.T) {
	err := Run(t.Context(), nil, Config{}, nil, testLog)
	if err == nil {
		t.Fatal("empty config accepted")
	}
	cc := testConfig("x").ConsumerConfig()
	if cc.MaxDeliver != 3+DeadLetterRetries || cc.Durable != "sink-x" || cc.AckPolicy != jetstream.AckExplicitPolicy || cc.AckWait != 2*time.Second || cc.MaxAckPending != 256 {
		t.Fatalf("consumer config %+v", cc)
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second, MaxRetryAfter: 5 * time.Second}
	tests := []struct {
		attempt        uint64
		hint           time.Duration
		floor, ceiling time.Duration
	}{
		{1, 0, 0, 100 * time.Millisecond},
		{2, 0, 0, 200 * time.Millisecond},
		{4, 0, 0, 800 * time.Millisecond},
		{5, 0, 0, time.Second},
		{200, 0, 0, time.Second},
		{1, 2 * time.Second, 2 * time.Second, 2 * time.Second},         // the hint is longer than the backoff
		{1, time.Hour, 5 * time.Second, 5 * time.Second},               // capped at MaxRetryAfter
		{5, 10 * time.Millisecond, 10 * time.Millisecond, time.Second}, // a floor, not a replacement
	}
	for _, tt := range tests {
		var longest time.Duration
		for range 200 {
			d := b.Delay(tt.attempt, tt.hint)
			if d < tt.floor || d > tt.ceiling {
				t.Fatalf("Delay(%d, %v) = %v, want within [%v, %v]", tt.attempt, tt.hint, d, tt.floor, tt.ceiling)
			}
			longest = max(longest, d)
		}
		if tt.floor < tt.ceiling && longest < tt.ceiling/2 {
			t.Fatalf("Delay(%d, %v): at most %v in 200 draws, the backoff up to %v was replaced", tt.attempt, tt.hint, longest, tt.ceiling)
		}
	}
}

func TestErrorClassification(t *testing.T) {
	base := errors.New("x")
	if !IsPermanent(fmt.Errorf("wrapped: %w", Permanent(base))) || IsPermanent(base) {
		t.Fatal("IsPermanent")
	}
	if Permanent(nil) != nil || RetryAfter(nil, time.Second) != nil {
		t.Fatal("nil errors must stay nil")
	}
	if c, ok := PermanentClassOf(fmt.Errorf("w: %w", PermanentClass("malformed_json", base))); !ok || c != "malformed_json" {
		t.Fatalf("class %q", c)
	}
	if d, ok := RetryAfterHint(fmt.Errorf("w: %w", RetryAfter(base, 3*time.Second))); !ok || d != 3*time.Second {
		t.Fatal("RetryAfterHint")
	}
	if !errors.Is(Permanent(base), base) || !errors.Is(RetryAfter(base, 1), base) {
		t.Fatal("wrappers must unwrap")
	}
}

// byPartitionKey orders deliveries by their ce-partitionkey, as sinks do.
func byPartitionKey(d *Delivery) string { return d.Header.Get("ce-partitionkey") }

// TestPerKeyOrder: with concurrency 4, the deliveries of one key are
// handled one at a time and in stream order, a failing one holding back
// the rest of its key (retried in place) while other keys go on.
func TestPerKeyOrder(t *testing.T) {
	f := newFixture(t)
	cfg := testConfig("order")
	cfg.Concurrency, cfg.MaxAttempts, cfg.Key = 4, 10, byPartitionKey
	const keys, perKey = 8, 12
	var mu sync.Mutex
	got := map[string][]int{}
	running := map[string]bool{}
	failedOnce := map[string]bool{}
	var overlap atomic.Bool
	f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		key := d.Key
		var n int
		fmt.Sscanf(string(d.Data), key+"-%d", &n)
		mu.Lock()
		if running[key] {
			overlap.Store(true)
		}
		running[key] = true
		fail := n%5 == 2 && !failedOnce[d.Header.Get("ce-id")]
		if fail {
			failedOnce[d.Header.Get("ce-id")] = true
		}
		mu.Unlock()
		time.Sleep(time.Millisecond) // work: gives other keys the chance to interleave
		mu.Lock()
		defer mu.Unlock()
		running[key] = false
		if fail {
			return errors.New("transient")
		}
		got[key] = append(got[key], n)
		return nil
	})
	for i := range perKey {
		for k := range keys {
			key := "inv-" + strconv.Itoa(k)
			f.publishKeyed(t, key+"-"+strconv.Itoa(i), key)
		}
	}
	jstest.Eventually(t, 10*time.Second, "every delivery handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for _, ns := range got {
			total += len(ns)
		}
		return total == keys*perKey
	})
	if overlap.Load() {
		t.Fatal("two deliveries of one key ran at once")
	}
	for key, ns := range got {
		for i, n := range ns {
			if n != i {
				t.Fatalf("key %s handled in the order %v", key, ns)
			}
		}
	}
}

// TestCrashedDeliveriesComeBackWithinAckWait: a process dies (its
// connection closed, nothing settled) holding deliveries; another replica
// gets them once AckWait has passed since the last InProgress and the
// crashed client's pin has lapsed (pinnedTTL: AckWait, or a pull's renewal
// where AckWait is shorter).
func TestCrashedDeliveriesComeBackWithinAckWait(t *testing.T) {
	f := newFixture(t)
	cfg := testConfig("crash")
	cfg.AckWait, cfg.Concurrency = 900*time.Millisecond, 3
	nc, err := nats.Connect(f.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var held atomic.Int32
	go Run(ctx, js, cfg, func(ctx context.Context, d *Delivery) error {
		held.Add(1)
		<-ctx.Done() // never finishes: the process dies first
		return ctx.Err()
	}, testLog)
	for i := range 3 {
		f.publish(t, "c-"+strconv.Itoa(i))
	}
	jstest.Eventually(t, 5*time.Second, "deliveries held by the first replica", func() bool { return held.Load() == 3 })
	nc.Close() // the crash
	crashed := time.Now()
	var redelivered atomic.Int32
	f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		if d.Attempt == 2 {
			redelivered.Add(1)
		}
		return nil
	})
	jstest.Eventually(t, 5*time.Second, "redelivered to the second replica", func() bool { return redelivered.Load() == 3 })
	if took, bound := time.Since(crashed), cfg.withDefaults().pinnedTTL()+cfg.AckWait; took > bound {
		t.Fatalf("redelivered %v after the crash, AckWait is %v and the pin's TTL %v", took, cfg.AckWait, cfg.withDefaults().pinnedTTL())
	}
}

func TestHeaderValue(t *testing.T) {
	long := strings.Repeat("é", 600) // 1,200 bytes
	for _, tc := range []struct{ name, in, want string }{
		{"short", "mapper: bad total", "mapper: bad total"},
		{"joined errors on one line", "first\nsecond\r\nthird", "first; second; third"},
		{"cut on a character boundary", long, strings.Repeat("é", 510) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := headerValue(tc.in)
			if got != tc.want || len(got) > maxReason || !utf8.ValidString(got) {
				t.Fatalf("headerValue = %q (%d bytes)", got, len(got))
			}
		})
	}
}

// TestRunnersAreReused: deliveries run on goroutines that outlive them (a
// fresh goroutine per delivery grows its stack anew each time), about as
// many as the deliveries held at most, and none is left once Run has
// returned.
func TestRunnersAreReused(t *testing.T) {
	f := newFixture(t)
	cfg := testConfig("runners")
	cfg.Concurrency, cfg.MaxPending, cfg.Key = 2, 4, byPartitionKey
	const n = 200
	var mu sync.Mutex
	goroutines := map[string]bool{}
	var done atomic.Int32
	stop := f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
		mu.Lock()
		goroutines[goroutineID()] = true
		mu.Unlock()
		done.Add(1)
		return nil
	})
	for i := range n {
		id := "r-" + strconv.Itoa(i)
		f.publishKeyed(t, id, id) // every delivery its own key: its own lane
	}
	jstest.Eventually(t, 10*time.Second, "every delivery handled", func() bool { return done.Load() == n })
	if got, most := len(goroutines), 2*cfg.MaxPending; got > most {
		t.Fatalf("%d deliveries ran on %d goroutines, want at most %d", n, got, most)
	}
	stop()
	if stacks := allStacks(); strings.Contains(stacks, "(*consumer).next(") {
		t.Fatalf("a runner still waits for work after Run returned:\n%s", stacks)
	}
}

// allStacks is every goroutine's stack.
func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// goroutineID is the calling goroutine's number, from its stack header
// ("goroutine 42 [running]:").
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ")
	return id
}

// TestDisconnectCancelsAttemptsInFlight: with CancelOnDisconnect, an
// attempt waiting when the NATS connection is lost ends at once, with
// ErrConnectionLost as its context's cause, and the delivery is retried;
// without it, the attempt goes on through the reconnect.
func TestDisconnectCancelsAttemptsInFlight(t *testing.T) {
	for _, cancelOnDisconnect := range []bool{true, false} {
		t.Run(fmt.Sprintf("CancelOnDisconnect=%v", cancelOnDisconnect), func(t *testing.T) {
			f := newFixture(t)
			cfg := testConfig(fmt.Sprintf("disconnect-%v", cancelOnDisconnect))
			cfg.CancelOnDisconnect, cfg.AttemptTimeout = cancelOnDisconnect, time.Minute // waited out, it would outlast the test
			first := make(chan context.Context, 1)
			release := make(chan struct{})
			var causes sync.Map // attempt → context.Cause at the end
			var delivered atomic.Bool
			f.start(t, cfg, func(ctx context.Context, d *Delivery) error {
				if d.Attempt > 1 {
					delivered.Store(true)
					return nil
				}
				first <- ctx
				select {
				case <-ctx.Done():
				case <-release:
				}
				causes.Store(d.Attempt, context.Cause(ctx))
				return errors.New("attempt ended")
			})
			f.publish(t, "d-1")
			var ctx context.Context
			select {
			case ctx = <-first:
			case <-time.After(10 * time.Second):
				t.Fatal("the first attempt never started")
			}
			nc := f.js.Conn()
			if err := nc.ForceReconnect(); err != nil {
				t.Fatal(err)
			}
			if !cancelOnDisconnect {
				jstest.Eventually(t, 10*time.Second, "reconnected", func() bool { return nc.Status() == nats.CONNECTED })
				if err := ctx.Err(); err != nil {
					t.Fatalf("the attempt was cancelled by a reconnect without CancelOnDisconnect: %v", err)
				}
				close(release)
				jstest.Eventually(t, 10*time.Second, "retried and delivered", delivered.Load)
				return
			}
			jstest.Eventually(t, 10*time.Second, "the attempt in flight ended by the disconnect, then retried", delivered.Load)
			if cause, _ := causes.Load(uint64(1)); !errors.Is(cause.(error), ErrConnectionLost) {
				t.Fatalf("first attempt's cause %v, want ErrConnectionLost", cause)
			}
		})
	}
}
