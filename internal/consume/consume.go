// Package consume is invoicehub's one consume adapter: every stage that
// reads a stream (the normalizer and every sink) runs its handler through
// it, so acknowledgement, ordering, retries and dead-lettering exist in one
// place.
//
// A handler returns nil (done), an error (transient: retried), an error
// wrapped by Permanent (never retried) or by RetryAfter (retried no sooner
// than asked). Handlers never ack. The adapter:
//
//   - reads a durable JetStream pull consumer; at most Concurrency handlers
//     run at a time, and at most MaxPending deliveries are outstanding;
//   - keeps each key's deliveries in stream order (Config.Key: the invoice),
//     while different keys run concurrently: a delivery is never handled
//     while an earlier message of its key is pending anywhere, held here,
//     by another replica, or lost in flight (the order fence, order.go);
//   - pulls as the pinned client of a priority group, so one replica of a
//     durable receives at a time and the others take over within AckWait
//     when it stops;
//   - on success, acks, and starts the key's next delivery only once the
//     server has read the ack (a flush of the connection: an ack lost with
//     a killed process would bring an older message back after a newer
//     one);
//   - a message over which the server closed the connection twice (the
//     second time handled alone) is dead-lettered without being handled
//     again (poison.go);
//   - on a transient error, retries in place after exponential backoff with
//     full jitter, at least the Retry-After hint, holding the delivery (and its
//     key's later deliveries) with InProgress meanwhile, so the order holds;
//   - on a permanent error, or once retries are exhausted (MaxAttempts
//     and MaxAge), publishes the original message with Dlq-* headers to
//     dlq.<stage>.<id>, then Terms it;
//   - sends InProgress every AckWait/3 for every delivery it holds, so a
//     crashed process's deliveries reach another replica within AckWait;
//   - on shutdown, stops pulling, gives back what it holds and has not
//     started (Nak, in order; a waiting retry with its remaining delay), and
//     waits up to DrainTimeout for the handlers in flight.
package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/schemas/subject"
)

// Delivery is one message handed to a Handler.
type Delivery struct {
	// Stage and ConsumerID name the consumer it came through (Config).
	Stage, ConsumerID string
	Subject           string
	Header            nats.Header
	Data              []byte
	// Stream and Sequence locate the message in its stream.
	Stream   string
	Sequence uint64
	// Attempt is 1 on the first delivery and counts every attempt since:
	// the server's redeliveries and the adapter's retries in place.
	Attempt uint64
	// Stored is when the stream stored the message.
	Stored time.Time
	// Key is the ordering key Config.Key gave ("" for none).
	Key string
	// Prepared is what Config.Key left for the handler (the normalizer
	// maps a raw event once, to find its invoice, and hands the result on).
	Prepared any

	msg           jetstream.Msg
	firstFailure  time.Time
	deliverySeq   uint64 // the consumer's sequence of this delivery
	delivered     uint64 // how many times the server delivered it
	firstDelivery bool
}

// Msg returns the delivery as a NATS message, for decoding.
func (d *Delivery) Msg() *nats.Msg {
	return &nats.Msg{Subject: d.Subject, Header: d.Header, Data: d.Data}
}

// Handler processes one delivery. See the package comment for what its
// error means. ctx ends at the attempt timeout (and, with
// CancelOnDisconnect, when the NATS connection is lost).
type Handler func(ctx context.Context, d *Delivery) error

// Config describes one durable consumer. Zero values mean the defaults.
type Config struct {
	// Stage and ID name the consumer: its durable name is <stage>-<id> and
	// its dead letters go to dlq.<stage>.<id>. Stage is "normalizer" or "sink".
	Stage, ID string
	// Stream is the stream to read.
	Stream string
	// FilterSubjects limits what the consumer reads; empty reads all.
	FilterSubjects []string
	// Concurrency bounds the handlers running at once. Default 4.
	Concurrency int
	// MaxPending bounds the deliveries held at once: running, waiting to
	// retry, or queued behind their key (the consumer's MaxAckPending).
	// Default 256.
	MaxPending int
	// MaxAttempts and MaxAge bound the retries of a failing delivery: it
	// is dead-lettered as exhausted once it has failed MaxAttempts times
	// and for MaxAge (since its first failure in this process), so a long
	// outage downstream dead-letters nothing before MaxAge whatever its
	// Retry-After says. Defaults 10 and 1h. The server's MaxDeliver, which
	// only crashes and give-backs use up (retries are in place), is set
	// explicitly to MaxAttempts+DeadLetterRetries; a delivery's last one
	// is dead-lettered at its first failure.
	MaxAttempts int
	MaxAge      time.Duration
	// AckWait is how long the server waits for an ack, or an InProgress,
	// before redelivering: how long a crashed process's deliveries wait
	// before another replica gets them. Default 5s.
	AckWait time.Duration
	// Heartbeat is the idle heartbeat of pull requests, by which a lost
	// server is noticed. Default 5s, and at most a quarter of AckWait (a
	// pull lasts AckWait/2: the pinned client renews it within AckWait).
	Heartbeat time.Duration
	// AttemptTimeout bounds one handler call. Default 30s.
	AttemptTimeout time.Duration
	// CancelOnDisconnect ends the attempts in flight when the NATS
	// connection is lost (their error wraps ErrConnectionLost), for a
	// handler whose work is round trips to NATS: the replies they wait for
	// were lost with the connection, and they are retried after the
	// backoff instead of waited out to AttemptTimeout.
	CancelOnDisconnect bool
	// Backoff spaces retries.
	Backoff Backoff
	// DrainTimeout bounds how long shutdown waits for handlers in flight. Default 30s.
	DrainTimeout time.Duration
	// Key returns a delivery's ordering key: deliveries of one key are
	// handled one at a time, in stream order. Nil, or "", means none. It
	// may set Delivery.Prepared for the handler.
	Key func(d *Delivery) string
	Hooks
}

// Hooks tell the stage running a consumer what it does.
type Hooks struct {
	// Bound, if set, is called once the consumer is bound and pulling: the
	// stage is ready.
	Bound func()
	// Observer is told the outcome of every attempt; nil tells nobody.
	Observer Observer
}

// DeadLetterRetries is how many deliveries beyond MaxAttempts the server
// allows, so that a dead-letter publish that failed before a crash is
// tried again.
const DeadLetterRetries = 5

// PriorityGroup is the priority group every consumer's clients pull in:
// the consumers are pinned (PriorityPolicyPinned), so one client of a
// durable, the pinned one, receives its deliveries at a time, and the
// other replicas take over when it stops pulling for PinnedTTL.
const PriorityGroup = "invoicehub"

// pinHeader carries the pinned client's id on each delivery.
const pinHeader = "Nats-Pin-Id"

// pinnedTTL is how long a pinned client that stopped pulling (crashed,
// frozen, cut off) keeps the pin before another replica gets it: AckWait,
// so that a crashed client's deliveries reach another replica when their
// AckWait runs out, as without pinning; longer only where AckWait is
// shorter than a pull's renewal.
func (c Config) pinnedTTL() time.Duration { return max(c.AckWait, c.pullExpiry()+c.pullHeartbeat()) }

// pullExpiry is how long a pull request lasts: the pinned client renews
// its pull within it, so within pinnedTTL.
func (c Config) pullExpiry() time.Duration { return max(c.AckWait/2, time.Second) }

// pullHeartbeat is Heartbeat, at most half a pull's expiry.
func (c Config) pullHeartbeat() time.Duration { return min(c.Heartbeat, c.pullExpiry()/2) }

// Durable returns the consumer's durable name.
func (c Config) Durable() string { return c.Stage + "-" + c.ID }

// DeadLetterSubject returns dlq.<stage>.<id>.
func (c Config) DeadLetterSubject() string { return subject.DeadLetter(c.Stage, c.ID) }

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 256
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.MaxAge <= 0 {
		c.MaxAge = time.Hour
	}
	if c.AckWait <= 0 {
		c.AckWait = 5 * time.Second
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 30 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	c.Backoff = c.Backoff.withDefaults()
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Stage == "" || c.ID == "" {
		errs = append(errs, errors.New("consume: Stage and ID are required"))
	}
	if c.Stream == "" {
		errs = append(errs, errors.New("consume: Stream is required"))
	}
	if c.AckWait < 3*time.Millisecond {
		errs = append(errs, fmt.Errorf("consume: AckWait %v is too short", c.AckWait))
	}
	return errors.Join(errs...)
}

// ConsumerConfig returns the JetStream consumer configuration for c.
func (c Config) ConsumerConfig() jetstream.ConsumerConfig {
	c = c.withDefaults()
	return jetstream.ConsumerConfig{
		Durable:        c.Durable(),
		Description:    "invoicehub " + c.Stage + " " + c.ID,
		FilterSubjects: c.FilterSubjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.AckWait,
		MaxDeliver:     c.MaxAttempts + DeadLetterRetries,
		MaxAckPending:  c.MaxPending,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{PriorityGroup},
		PinnedTTL:      c.pinnedTTL(),
	}
}

// Ensure creates the durable consumer of cfg, or updates it to cfg: the
// setup step's work (`invoicehub setup`), done with an administrator's
// rights.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, cfg.ConsumerConfig()); err != nil {
		return fmt.Errorf("consume: ensure %s on %s: %w", cfg.Durable(), cfg.Stream, err)
	}
	return nil
}

// ReadyWait bounds how long a stage waits for JetStream at start: a
// cluster that just started, or restarted after losing power, recovers
// its stores and elects its leaders first.
const ReadyWait = time.Minute

// UntilReady calls try until it succeeds, ctx ends or ReadyWait passes,
// a second apart, logging each failure as what not being ready.
func UntilReady(ctx context.Context, log *slog.Logger, what string, try func() error) error {
	deadline := time.Now().Add(ReadyWait)
	for {
		err := try()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		log.Warn(what+" not ready, retrying", "err", err)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// bind returns the durable consumer: the one setup created, updated to cfg
// where this process may (the stages' users may not: a difference is
// logged, for setup to be run again), or created where it does not exist
// yet and this process may create it (dev mode, tests).
func bind(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger) (jetstream.Consumer, error) {
	want := cfg.ConsumerConfig()
	var bound jetstream.Consumer
	err := UntilReady(ctx, log, "consumer", func() error {
		jc, err := js.Consumer(ctx, cfg.Stream, cfg.Durable())
		switch {
		case err == nil && sameConsumer(jc.CachedInfo().Config, want):
			bound = jc
			return nil
		case err == nil || errors.Is(err, jetstream.ErrConsumerNotFound):
			created, cerr := js.CreateOrUpdateConsumer(ctx, cfg.Stream, want)
			if cerr == nil {
				bound = created
				return nil
			}
			if err == nil { // it exists: run it as it is
				log.Warn("consumer differs from this version's and cannot be updated here: run `invoicehub setup`", "err", cerr)
				bound = jc
				return nil
			}
			return fmt.Errorf("consume: consumer %s on %s does not exist and cannot be created here (run `invoicehub setup`): %w", cfg.Durable(), cfg.Stream, cerr)
		default:
			return fmt.Errorf("consume: consumer %s on %s: %w", cfg.Durable(), cfg.Stream, err)
		}
	})
	return bound, err
}

// sameConsumer compares what setup and this version configure.
func sameConsumer(have, want jetstream.ConsumerConfig) bool {
	return slices.Equal(have.FilterSubjects, want.FilterSubjects) && have.AckWait == want.AckWait &&
		have.MaxDeliver == want.MaxDeliver && have.MaxAckPending == want.MaxAckPending && have.AckPolicy == want.AckPolicy &&
		have.PriorityPolicy == want.PriorityPolicy && slices.Equal(have.PriorityGroups, want.PriorityGroups) && have.PinnedTTL == want.PinnedTTL
}

// Run binds the durable consumer (see Ensure) and processes deliveries
// until ctx ends, then stops pulling, gives back what it holds, and waits
// (up to DrainTimeout) for the handlers in flight to finish and settle. It
// returns nil after a clean shutdown.
func Run(ctx context.Context, js jetstream.JetStream, cfg Config, h Handler, log *slog.Logger) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	if h == nil {
		return errors.New("consume: nil handler")
	}
	log = log.With("consumer", cfg.Durable())
	jc, err := bind(ctx, js, cfg, log)
	if err != nil {
		return err
	}
	c := newConsumer(js, cfg, h, log)
	if err := c.run(ctx, jc); err != nil {
		return fmt.Errorf("consume: %s: %w", cfg.Durable(), err)
	}
	return nil
}
