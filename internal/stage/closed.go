package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrClosedByServer is the cause of a stage's context when the NATS server
// closed its connection: nats.go reconnects after a lost connection, but
// not after some server errors (a protocol line over max_control_line,
// for one), and a stage left with a closed connection would stall for
// good, not ready, every webhook answered 503.
var ErrClosedByServer = errors.New("stage: the NATS server closed the connection")

// CodeReconnect is the exit code of a stage's run function whose
// connection the server closed: Main runs it again, on a new connection.
const CodeReconnect = 75 // EX_TEMPFAIL

// ReconnectDelay is how long Main waits before running a stage again.
const ReconnectDelay = time.Second

// WatchClosed returns ctx, ended with cause ErrClosedByServer (wrapping
// the server's error) once nc is closed while it is alive; stop ends the
// watch and must be called before the stage closes nc itself.
func WatchClosed(ctx context.Context, nc *nats.Conn) (watched context.Context, stop func()) {
	watched, cancel := context.WithCancelCause(ctx)
	closed := nc.StatusChanged(nats.CLOSED)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case s, ok := <-closed:
			if ok && s == nats.CLOSED {
				cancel(fmt.Errorf("%w: %v", ErrClosedByServer, nc.LastError()))
			}
		case <-done:
		}
	}()
	if nc.IsClosed() {
		cancel(fmt.Errorf("%w: %v", ErrClosedByServer, nc.LastError()))
	}
	return watched, func() {
		close(done)
		<-exited
		nc.RemoveStatusListener(closed)
		cancel(context.Canceled)
	}
}

// ClosedByServer reports whether ctx (from WatchClosed) ended because the
// server closed the connection.
func ClosedByServer(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), ErrClosedByServer)
}

// Rerun calls run until it returns something other than CodeReconnect,
// or ctx ends, ReconnectDelay apart, and returns its last code (0 when ctx
// ended while it waited to run again).
func Rerun(ctx context.Context, stderr io.Writer, run func() int) int {
	for {
		code := run()
		if code != CodeReconnect {
			return code
		}
		fmt.Fprintf(stderr, "the NATS server closed the connection: running again on a new one in %s\n", ReconnectDelay)
		t := time.NewTimer(ReconnectDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0
		case <-t.C:
		}
	}
}

// ExitCode is a stage's exit code once its work returned err: 1 on an
// error, CodeReconnect when the server closed the connection (ctx from
// WatchClosed), 0 after a clean shutdown.
func ExitCode(ctx context.Context, err error, log *slog.Logger) int {
	switch {
	case ClosedByServer(ctx):
		log.Error("the NATS server closed the connection: running again on a new one", "err", context.Cause(ctx))
		return CodeReconnect
	case err != nil:
		log.Error("run", "err", err)
		return 1
	}
	return 0
}
