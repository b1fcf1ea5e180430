package consume

import (
	"errors"
	"fmt"
	"sync"
)

// ClassConnectionClosed is the class of a dead letter the server closed
// the connection over twice (see strikes).
const ClassConnectionClosed = "connection_closed"

// strikes remembers, for the life of the process, the messages whose
// handling the NATS server ended by closing the connection (nats.go does
// not reconnect after some server errors, such as a protocol line over
// max_control_line; the stage then runs again on a new connection, see
// stage.Rerun). A message struck once is handled alone on its next
// delivery, no other attempt running beside it, so that a second close
// can only be its own doing; struck twice, it is dead-lettered on its
// next delivery without being handled again, and the stage moves on.
// Settling a message clears its strikes.
var strikes = strikeBook{m: map[strikeKey]strike{}}

type strikeKey struct {
	durable, stream string
	seq             uint64
}

type strike struct {
	n   int
	err string // the last error the attempt ended with
}

type strikeBook struct {
	mu sync.Mutex
	m  map[strikeKey]strike
}

func (c *consumer) strikeKey(d *Delivery) strikeKey {
	return strikeKey{durable: c.cfg.Durable(), stream: d.Stream, seq: d.Sequence}
}

// strikesOf returns how many times the server closed the connection while
// d was handled, and the last error.
func (c *consumer) strikesOf(d *Delivery) strike {
	strikes.mu.Lock()
	defer strikes.mu.Unlock()
	return strikes.m[c.strikeKey(d)]
}

// strikeIfClosed strikes d if its attempt ended, with err, on a connection
// the server closed, with an error.
func (c *consumer) strikeIfClosed(d *Delivery, err error) {
	nc := c.js.Conn()
	if err == nil || !nc.IsClosed() || nc.LastError() == nil {
		return // not closed, or closed by this process (it closes only after Run)
	}
	strikes.mu.Lock()
	defer strikes.mu.Unlock()
	k := c.strikeKey(d)
	s := strikes.m[k]
	strikes.m[k] = strike{n: s.n + 1, err: fmt.Sprintf("%v; the server's: %v", err, nc.LastError())}
	c.log.Error("the NATS server closed the connection during an attempt", "seq", d.Sequence, "strikes", s.n+1, "err", err)
}

// clearStrikes forgets d's strikes once it is settled.
func (c *consumer) clearStrikes(d *Delivery) {
	strikes.mu.Lock()
	defer strikes.mu.Unlock()
	delete(strikes.m, c.strikeKey(d))
}

// errPoison is the reason of a message dead-lettered for its strikes.
func errPoison(s strike) error {
	return fmt.Errorf("%w: twice while this message was handled, the second time alone (last error: %s)", errClosedTwice, s.err)
}

var errClosedTwice = errors.New("consume: the NATS server closed the connection")
