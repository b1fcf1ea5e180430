package stage

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/invoicehub/invoicehub/internal/jstest"
)

// TestWatchClosedEndsTheStageWhenTheServerClosesTheConnection: a protocol
// line over max_control_line makes the server close the connection and
// nats.go give it up for good; the watched context ends with
// ErrClosedByServer, so that the stage runs again on a new connection.
func TestWatchClosedEndsTheStageWhenTheServerClosesTheConnection(t *testing.T) {
	srv := jstest.RunWith(t, func(o *server.Options) { o.MaxControlLine = 512 })
	nc, err := nats.Connect(srv.ClientURL(), ConnectOptions("closed-test", slog.New(slog.DiscardHandler))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, stop := WatchClosed(t.Context(), nc)
	defer stop()
	if err := nc.Publish("a."+strings.Repeat("x", 1000), nil); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the watched context did not end")
	}
	if !ClosedByServer(ctx) || !nc.IsClosed() {
		t.Fatalf("cause %v, connection closed %v", context.Cause(ctx), nc.IsClosed())
	}
}

// TestWatchClosedStopIsNotAClose: a stage that stops watching and closes
// its own connection did not have it closed by the server.
func TestWatchClosedStopIsNotAClose(t *testing.T) {
	srv := jstest.Run(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := WatchClosed(t.Context(), nc)
	stop()
	nc.Close()
	<-ctx.Done()
	if ClosedByServer(ctx) {
		t.Fatal("a stage's own close taken for the server's")
	}
}

func TestRerunRunsAgainWhileAskedTo(t *testing.T) {
	codes := []int{CodeReconnect, CodeReconnect, 3}
	runs := 0
	got := Rerun(t.Context(), io.Discard, func() int { runs++; return codes[runs-1] })
	if got != 3 || runs != 3 {
		t.Fatalf("code %d after %d runs, want 3 after 3", got, runs)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if got := Rerun(ctx, io.Discard, func() int { return CodeReconnect }); got != 0 {
		t.Fatalf("code %d once the context ended, want 0", got)
	}
}
