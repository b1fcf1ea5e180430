package stage

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// Readiness is what a stage's /readyz reports: ready while its NATS
// connection is up and every consumer it runs has been bound.
type Readiness struct {
	nc      *nats.Conn
	waiting atomic.Int64
}

// NewReadiness waits for consumers consumers on nc.
func NewReadiness(nc *nats.Conn, consumers int) *Readiness {
	r := &Readiness{nc: nc}
	r.waiting.Store(int64(consumers))
	return r
}

// Bound records that one consumer is bound and pulling: pass it as
// consume.Hooks.Bound.
func (r *Readiness) Bound() { r.waiting.Add(-1) }

// Check returns nil when ready, or why not.
func (r *Readiness) Check() error {
	if r.nc == nil || r.nc.Status() != nats.CONNECTED {
		return errors.New("nats not connected")
	}
	if n := r.waiting.Load(); n > 0 {
		return fmt.Errorf("%d consumer(s) not bound yet", n)
	}
	return nil
}
