package consume

import "time"

// Result is what an attempt came to.
type Result string

// The results of an attempt.
const (
	ResultDelivered    Result = "delivered"
	ResultRetrying     Result = "retrying"
	ResultDeadLettered Result = "dead_lettered"
)

// ClassTransient is the class of an error that is retried.
const ClassTransient = "transient"

// Outcome is the adapter's decision on one attempt.
type Outcome struct {
	Result Result
	// Err is the handler's error; nil when delivered.
	Err error
	// Class is the error class: ClassTransient for a retry, the dead
	// letter's class otherwise.
	Class string
	// Attempt is the attempt's number, from 1.
	Attempt uint64
	// NextRetry is the wait before the next attempt, when retrying.
	NextRetry time.Duration
	// Took is how long the handler ran.
	Took time.Duration
}

// Observer is told the outcome of every attempt (the delivery ledger and
// the metrics watch through it): a delivery or a retry as it is carried
// out, a dead letter once it is published (a delivery given back at
// shutdown before that is not told: its redelivery is). It must not block
// for long: deliveries wait on it.
type Observer interface {
	Observe(d *Delivery, o Outcome)
}

type nopObserver struct{}

func (nopObserver) Observe(*Delivery, Outcome) {}

// Observers returns an Observer telling each of obs in turn; nil ones are
// left out.
func Observers(obs ...Observer) Observer {
	var all multiObserver
	for _, o := range obs {
		if o != nil {
			all = append(all, o)
		}
	}
	return all
}

type multiObserver []Observer

func (m multiObserver) Observe(d *Delivery, o Outcome) {
	for _, ob := range m {
		ob.Observe(d, o)
	}
}
