package consume

import (
	"context"
	"errors"
	"sync"

	"github.com/nats-io/nats.go"
)

// ErrConnectionLost ends an attempt of a consumer with
// Config.CancelOnDisconnect whose NATS connection was lost while it ran.
var ErrConnectionLost = errors.New("consume: the NATS connection was lost during the attempt")

// connEpoch is a context that lives as long as the NATS connection does:
// cancelled when the connection is lost, renewed once it is back. A
// request sent before a disconnect has lost its reply with the old
// connection; its attempt ends at once and is retried after the backoff,
// instead of waiting for the reply to AttemptTimeout.
type connEpoch struct {
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
}

// watchConnection follows nc's status until done is closed.
func watchConnection(nc *nats.Conn, done <-chan struct{}) *connEpoch {
	e := &connEpoch{}
	changes := nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	e.renew()
	if nc.Status() != nats.CONNECTED {
		e.cut()
	}
	go func() {
		defer nc.RemoveStatusListener(changes)
		for {
			select {
			case s, ok := <-changes:
				if !ok {
					return
				}
				if s == nats.CONNECTED {
					e.renew()
				} else {
					e.cut()
				}
			case <-done:
				return
			}
		}
	}()
	return e
}

// current is the epoch's context now.
func (e *connEpoch) current() context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ctx
}

// renew starts an epoch unless one is running.
func (e *connEpoch) renew() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx == nil || e.ctx.Err() != nil {
		e.ctx, e.cancel = context.WithCancel(context.Background())
	}
}

// cut ends the running epoch.
func (e *connEpoch) cut() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cancel()
}

// bind returns ctx cancelled, with cause ErrConnectionLost, when the
// epoch running now ends; stop releases it.
func (e *connEpoch) bind(ctx context.Context) (bound context.Context, stop func()) {
	bound, cancel := context.WithCancelCause(ctx)
	unbind := context.AfterFunc(e.current(), func() { cancel(ErrConnectionLost) })
	return bound, func() { unbind(); cancel(nil) }
}
