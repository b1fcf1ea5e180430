package consume

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/internal/streams"
)

// TestAMessageOverWhichTheServerClosesTheConnectionIsDeadLettered: one
// message's handling makes the server close the connection (a protocol
// line over max_control_line), each time it is handled. The stage runs
// again on a new connection (stage.Rerun); the message is handled alone
// the next time, dead-lettered after the second close with its reason,
// and every other message, before and after it, is handled: a poison
// message does not halt the stage.
func TestAMessageOverWhichTheServerClosesTheConnectionIsDeadLettered(t *testing.T) {
	srv := jstest.RunWith(t, func(o *server.Options) { o.MaxControlLine = 1024 })
	_, js := srv.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{js: js, srv: srv}
	for i := range 12 {
		id := "inv-" + strconv.Itoa(i)
		if i == 5 {
			id = "poison"
		}
		f.publishKeyed(t, id, id)
	}
	cfg := testConfig("poison")
	cfg.Concurrency, cfg.Key, cfg.MaxAttempts, cfg.MaxAge = 4, byPartitionKey, 100, time.Hour
	var mu sync.Mutex
	handled := map[string]int{}
	rounds := 0
	for ; rounds < 6; rounds++ {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		rjs, _ := jetstream.New(nc)
		ctx, stopWatch := stage.WatchClosed(t.Context(), nc)
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, rjs, cfg, func(ctx context.Context, d *Delivery) error {
				if d.Key == "poison" { // the protocol line the server refuses
					nc.Publish("poison."+strings.Repeat("x", 2048), nil)
					return nc.FlushTimeout(5 * time.Second)
				}
				mu.Lock()
				handled[d.Key]++
				mu.Unlock()
				return nil
			}, testLog)
		}()
		jstest.Eventually(t, 30*time.Second, "every other message handled and the poison dead-lettered, or the connection closed", func() bool {
			mu.Lock()
			n := len(handled)
			mu.Unlock()
			return n == 11 && len(f.deadLetters(t, cfg.DeadLetterSubject())) == 1 || ctx.Err() != nil
		})
		closed := stage.ClosedByServer(ctx)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("round %d: %v", rounds, err)
		}
		stopWatch()
		nc.Close()
		if !closed {
			break
		}
	}
	if rounds != 2 {
		t.Errorf("the server closed the connection %d times, want 2 (handled with others, then alone)", rounds)
	}
	dls := f.deadLetters(t, cfg.DeadLetterSubject())
	if len(dls) != 1 || dls[0].Header.Get(HeaderKey) != "poison" || dls[0].Header.Get(HeaderErrorClass) != ClassConnectionClosed {
		t.Fatalf("dead letters %v", dls)
	}
	t.Logf("reason: %s", dls[0].Header.Get(HeaderReason))
}
