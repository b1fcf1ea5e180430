package consume

import (
	"context"
	"fmt"
	"iter"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/schemas/subject"
)

// handled records, per key, the order in which deliveries were handled
// across every replica, and whether two of one key ever ran at once.
type handled struct {
	mu      sync.Mutex
	order   map[string][]int
	running map[string]bool
	overlap []string
}

func newHandled() *handled { return &handled{order: map[string][]int{}, running: map[string]bool{}} }

// handler records d's number (its data is "<key>-<n>") and takes work.
func (h *handled) handler(work time.Duration) Handler {
	return func(ctx context.Context, d *Delivery) error {
		var n int
		fmt.Sscanf(string(d.Data), d.Key+"-%d", &n)
		h.mu.Lock()
		if h.running[d.Key] {
			h.overlap = append(h.overlap, string(d.Data))
		}
		h.running[d.Key] = true
		h.mu.Unlock()
		select {
		case <-time.After(work):
		case <-ctx.Done():
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.running[d.Key] = false
		h.order[d.Key] = append(h.order[d.Key], n)
		return nil
	}
}

// count is how many of key's messages were handled, a repeat counted
// once (a crashed replica's delivery is handled again).
func (h *handled) count(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[int]bool{}
	for _, n := range h.order[key] {
		seen[n] = true
	}
	return len(seen)
}

// check fails the test unless every key was handled 0..perKey-1 in order
// (a repeat of the number just handled, an allowed redelivery, aside)
// and no two deliveries of a key overlapped.
func (h *handled) check(t *testing.T, perKey int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.overlap) > 0 {
		t.Errorf("deliveries of one key ran at once: %v", h.overlap)
	}
	for key, ns := range h.order {
		next := 0
		for i, n := range ns {
			switch {
			case n == next:
				next++
			case i > 0 && n == ns[i-1]: // redelivered after its ack was lost
			default:
				t.Errorf("key %s handled out of order: %v", key, ns)
			}
		}
		if next != perKey {
			t.Errorf("key %s: %d of %d handled: %v", key, next, perKey, ns)
		}
	}
}

// TestOrderHoldsWhileAnotherClientHoldsAnEarlierMessage: another client of
// the durable took an invoice's first message and went silent (a crashed
// replica, a delivery dropped in flight). The replica that gets the
// invoice's later messages must not handle them before that first one,
// which comes back only after AckWait; other invoices go on meanwhile.
func TestOrderHoldsWhileAnotherClientHoldsAnEarlierMessage(t *testing.T) {
	f := newFixture(t)
	cfg := testConfig("fence")
	cfg.Key, cfg.Concurrency, cfg.AckWait = byPartitionKey, 4, 2*time.Second
	if err := Ensure(t.Context(), f.js, cfg); err != nil {
		t.Fatal(err)
	}
	f.publishKeyed(t, "held-0", "held")

	// The other client: pinned by its fetch, it takes held-0 and is never
	// heard of again.
	if got := takeAndVanish(t, f, cfg, 1); got[0] != "held-0" {
		t.Fatalf("the other client got %q", got[0])
	}
	taken := time.Now()

	const perKey = 6
	for i := 1; i < perKey; i++ {
		f.publishKeyed(t, "held-"+strconv.Itoa(i), "held")
	}
	for i := range perKey {
		f.publishKeyed(t, "free-"+strconv.Itoa(i), "free")
	}
	h := newHandled()
	f.start(t, cfg, h.handler(0))
	jstest.Eventually(t, 10*time.Second, "both invoices handled", func() bool {
		return h.count("held") >= perKey && h.count("free") >= perKey
	})
	h.check(t, perKey)
	if since := time.Since(taken); since < cfg.AckWait {
		t.Fatalf("held-0 handled %v after the other client took it, before its AckWait (%v) ran out", since, cfg.AckWait)
	}
}

// TestOrderAcrossReplicasAndCrashes: three replicas on one durable, many
// invoices; one replica crashes (its connection closed) while it holds
// deliveries, another starts later. Every invoice's messages are handled
// once each, in stream order, never two at once, across the replicas.
func TestOrderAcrossReplicasAndCrashes(t *testing.T) {
	f := newFixture(t)
	cfg := testConfig("replicas")
	cfg.Key, cfg.Concurrency, cfg.AckWait, cfg.MaxAttempts = byPartitionKey, 8, 2*time.Second, 10
	if err := Ensure(t.Context(), f.js, cfg); err != nil {
		t.Fatal(err)
	}
	h := newHandled()
	replica := func() (crash func()) {
		nc, err := nats.Connect(f.srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); Run(ctx, js, cfg, h.handler(2*time.Millisecond), testLog) }()
		return func() { nc.Close(); cancel(); <-done }
	}
	first := replica()
	second := replica()
	defer second()
	const keys, perKey = 20, 15
	publishRound := func(i int) {
		for k := range keys {
			key := "inv-" + strconv.Itoa(k)
			f.publishKeyed(t, key+"-"+strconv.Itoa(i), key)
		}
	}
	for i := range 5 {
		publishRound(i)
	}
	jstest.Eventually(t, 10*time.Second, "the first rounds handled", func() bool { return h.count("inv-0") >= 3 })
	first() // crashes holding what it pulled
	third := replica()
	defer third()
	for i := 5; i < perKey; i++ {
		publishRound(i)
	}
	jstest.Eventually(t, 30*time.Second, "every invoice handled", func() bool {
		for k := range keys {
			if h.count("inv-"+strconv.Itoa(k)) < perKey {
				return false
			}
		}
		return true
	})
	h.check(t, perKey)
}

// TestOrderSurvivesAReplicaThatLags: the fence's direct gets are
// answered by any replica of the stream, and one back from a stall
// answers with the start of the stream only. Another client took an
// invoice's first four messages and went silent; the consumer's first
// read of the stream stops after two of them. The other two must still
// be awaited and handled when they come back, not taken for settled and
// acked unhandled (the replica catches up: only the first read is short).
func TestOrderSurvivesAReplicaThatLags(t *testing.T) {
	f := newFixture(t)
	cfg := testConfig("lagging")
	cfg.Key, cfg.Concurrency, cfg.AckWait = byPartitionKey, 4, time.Second
	if err := Ensure(t.Context(), f.js, cfg); err != nil {
		t.Fatal(err)
	}
	const perKey = 6
	var seqs []uint64
	for i := range perKey {
		seqs = append(seqs, f.publishKeyed(t, "inv-"+strconv.Itoa(i), "inv"))
	}
	takeAndVanish(t, f, cfg, 4)

	var calls atomic.Int32
	lagging := func(ctx context.Context, js jetstream.JetStream, stream string, batch int, opts ...jetstreamext.GetBatchOpt) (iter.Seq2[*jetstream.RawStreamMsg, error], error) {
		msgs, err := jetstreamext.GetBatch(ctx, js, stream, batch, opts...)
		if err != nil {
			return nil, err
		}
		upTo := uint64(math.MaxUint64)
		if calls.Add(1) <= 2 { // one read: its first batch, and the next that finds nothing more
			upTo = seqs[1] // the replica has the first two
		}
		return func(yield func(*jetstream.RawStreamMsg, error) bool) {
			for m, err := range msgs {
				if err == nil && m.Sequence > upTo {
					yield(nil, jetstreamext.ErrNoMessages)
					return
				}
				if !yield(m, err) {
					return
				}
			}
		}, nil
	}
	getBatch = lagging
	t.Cleanup(func() { getBatch = jetstreamext.GetBatch })

	h := newHandled()
	f.start(t, cfg, h.handler(0))
	jstest.Eventually(t, 15*time.Second, "the invoice handled", func() bool {
		ackPending, pending := f.pending(t, cfg.Durable())
		return ackPending == 0 && pending == 0
	})
	h.check(t, perKey)
}

// takeAndVanish has another client of cfg's durable take n messages
// (pinned by its fetch) and close its connection without settling them;
// it returns what it took.
func takeAndVanish(t *testing.T, f *fixture, cfg Config, n int) []string {
	t.Helper()
	nc, err := nats.Connect(f.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	jc, err := js.Consumer(t.Context(), subject.InvoicesStream, cfg.Durable())
	if err != nil {
		t.Fatal(err)
	}
	batch, err := jc.Fetch(n, jetstream.FetchPriorityGroup(PriorityGroup), jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var taken []string
	for m := range batch.Messages() {
		taken = append(taken, string(m.Data()))
	}
	if len(taken) != n {
		t.Fatalf("the other client took %d messages, want %d", len(taken), n)
	}
	return taken
}

func TestSubjectMatches(t *testing.T) {
	for _, tc := range []struct {
		filter, subj string
		want         bool
	}{
		{"invoices.v1.>", "invoices.v1.paid.qonto.acme", true},
		{"invoices.v1.>", "invoices.v1", false},
		{"invoices.v1.*.qonto.>", "invoices.v1.paid.qonto.acme", true},
		{"invoices.v1.*.qonto.>", "invoices.v1.paid.mercoa.acme", false},
		{"webhooks.*.*", "webhooks.qonto.acme", true},
		{"webhooks.*.*", "webhooks.qonto.acme.x", false},
		{"replay.normalizer.default", "replay.normalizer.default", true},
		{"replay.normalizer.default", "replay.normalizer", false},
	} {
		if got := subjectMatches(tc.filter, tc.subj); got != tc.want {
			t.Errorf("subjectMatches(%q, %q) = %v, want %v", tc.filter, tc.subj, got, tc.want)
		}
	}
}
