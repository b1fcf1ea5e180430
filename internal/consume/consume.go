// Package consume is invoicehub's one consume adapter: every stage that
// reads a stream (the normalizer and every sink) runs its handler through it,
// so acknowledgement, retries and dead-lettering exist in one place.
//
// A handler returns nil (done), an error (transient: retried later), an
// error wrapped by Permanent (never retried) or by RetryAfter (retried no
// sooner than asked). Handlers never ack. The adapter:
//
//   - reads a durable JetStream pull consumer, at most Concurrency
//     deliveries at a time, sending InProgress while a handler works;
//   - on success, acks (DoubleAck: the ack is confirmed by the server);
//   - on a transient error, NakWithDelay with exponential backoff and full
//     jitter, or the Retry-After hint; the delay is kept by the server, so
//     it survives a restart of the process;
//   - on a permanent error, or when the last of MaxAttempts fails, publishes
//     the original message with Dlq-* headers to dlq.<stage>.<id>, then Terms.
//
// It is built on Watermill's Router with its Recoverer and
// PoisonQueueWithFilter middleware; the JetStream side is this package's own
// message.Subscriber and message.Publisher (see subscriber.go for why
// watermill-nats' JetStream subscriber is not used).
package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/schemas/subject"
)

// Delivery is one message handed to a Handler.
type Delivery struct {
	Subject string
	Header  nats.Header
	Data    []byte
	// Stream and Sequence locate the message in its stream.
	Stream   string
	Sequence uint64
	// Attempt is 1 on the first delivery and counts redeliveries.
	Attempt uint64
	// Stored is when the stream stored the message.
	Stored time.Time
}

// Msg returns the delivery as a NATS message, for decoding.
func (d Delivery) Msg() *nats.Msg {
	return &nats.Msg{Subject: d.Subject, Header: d.Header, Data: d.Data}
}

// Handler processes one delivery. See the package comment for what its
// error means. ctx ends at the attempt timeout.
type Handler func(ctx context.Context, d Delivery) error

// Config describes one durable consumer.
type Config struct {
	// Stage and ID name the consumer: its durable name is <stage>-<id> and
	// its dead letters go to dlq.<stage>.<id>. Stage is "normalizer" or "sink".
	Stage, ID string
	// Stream is the stream to read.
	Stream string
	// FilterSubjects limits what the consumer reads; empty reads all.
	FilterSubjects []string
	// Concurrency bounds deliveries in flight. Default 4.
	Concurrency int
	// MaxAttempts is how many deliveries a message gets before it is
	// dead-lettered as exhausted. Default 10. The server's MaxDeliver is set
	// explicitly to MaxAttempts+5, so a failed dead-letter publish is retried.
	MaxAttempts int
	// AckWait is how long the server waits for an ack before redelivering;
	// InProgress is sent every AckWait/3. Default 30s.
	AckWait time.Duration
	// AttemptTimeout bounds one handler call. Default 30s.
	AttemptTimeout time.Duration
	// Backoff spaces retries.
	Backoff Backoff
	// DrainTimeout bounds how long shutdown waits for deliveries in flight. Default 30s.
	DrainTimeout time.Duration
}

// DeadLetterRetries is how many deliveries beyond MaxAttempts the server
// allows, so that a dead-letter publish that failed is tried again.
const DeadLetterRetries = 5

// Durable returns the consumer's durable name.
func (c Config) Durable() string { return c.Stage + "-" + c.ID }

// DeadLetterSubject returns dlq.<stage>.<id>.
func (c Config) DeadLetterSubject() string { return subject.DeadLetter(c.Stage, c.ID) }

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 30 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
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
		MaxAckPending:  max(1000, c.Concurrency*4),
	}
}

type consumer struct {
	cfg      Config
	handler  Handler
	log      *slog.Logger
	failures failures
}

// Run creates or updates the durable consumer and processes deliveries
// until ctx ends, then stops pulling and waits (up to DrainTimeout) for the
// deliveries in flight to finish and settle. It returns nil after a clean
// shutdown.
func Run(ctx context.Context, js jetstream.JetStream, cfg Config, h Handler, log *slog.Logger) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	log = log.With("consumer", cfg.Durable())
	jc, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, cfg.ConsumerConfig())
	if err != nil {
		return fmt.Errorf("consume: consumer %s on %s: %w", cfg.Durable(), cfg.Stream, err)
	}
	c := &consumer{cfg: cfg, handler: h, log: log}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.DrainTimeout}, routerLogger(log))
	if err != nil {
		return fmt.Errorf("consume: router: %w", err)
	}
	poison, err := middleware.PoisonQueueWithFilter(&deadLetterPublisher{js: js, timeout: 5 * time.Second}, cfg.DeadLetterSubject(), isDeadLetter)
	if err != nil {
		return fmt.Errorf("consume: poison queue: %w", err)
	}
	// Outermost first: a panic becomes an error, classify decides retry or
	// dead letter, PoisonQueue publishes the dead letters.
	router.AddMiddleware(poison, c.classify, middleware.Recoverer)
	sub := newSubscriber(jc, cfg.Concurrency, cfg.AckWait/3, cfg.Backoff, log)
	router.AddConsumerHandler(cfg.Durable(), cfg.Stream, sub, c.handle)
	runErr := router.Run(ctx)
	// The Router may return before the subscriber has settled its last
	// deliveries; Close waits for them.
	closeErr := sub.Close()
	if err := errors.Join(runErr, closeErr); err != nil {
		return fmt.Errorf("consume: %s: %w", cfg.Durable(), err)
	}
	return nil
}

// routerLogger adapts slog for Watermill one level down: the Router logs
// every handler error at ERROR, but a retried delivery is routine, and
// classify already logs each failure with its sequence and attempt.
func routerLogger(log *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(log, map[slog.Level]slog.Level{
		slog.LevelError: slog.LevelWarn,
		slog.LevelInfo:  slog.LevelDebug,
	})
}

func (c *consumer) handle(m *message.Message) error {
	jm, ok := jetStreamMsg(m)
	if !ok {
		return Permanent(errors.New("consume: message without its JetStream delivery"))
	}
	meta, err := jm.Metadata()
	if err != nil {
		return fmt.Errorf("consume: metadata: %w", err)
	}
	ctx, cancel := context.WithTimeout(m.Context(), c.cfg.AttemptTimeout)
	defer cancel()
	return c.handler(ctx, Delivery{
		Subject: jm.Subject(), Header: jm.Headers(), Data: jm.Data(),
		Stream: meta.Stream, Sequence: meta.Sequence.Stream, Attempt: meta.NumDelivered, Stored: meta.Timestamp,
	})
}
