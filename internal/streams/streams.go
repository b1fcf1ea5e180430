// Package streams configures invoicehub's JetStream streams (named in the
// contract, package subject) and creates or updates them idempotently.
//
//	WEBHOOKS  webhooks.>     raw webhooks, body byte-for-byte (the archive)
//	          replay.normalizer.>  dead letters sent back to the normalizer
//	INVOICES  invoices.v1.>  canonical invoice events
//	          replay.sink.>  dead letters sent back to one sink
//	DLQ       dlq.>          dead letters with their reason
//	LEDGER    ledger.>       every delivery attempt (bounded: 7 days, 256 MiB)
//
// All four use file storage and limits retention; WEBHOOKS and INVOICES
// drop a repeated Nats-Msg-Id inside the duplicate window. The servers
// fsync every write before acknowledging it (deploy/nats/durability.conf)
// but for a single server's LEDGER (ledgerPersistMode).
package streams

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/schemas/subject"
)

// Config sizes the streams. The zero value of a field means its default.
type Config struct {
	// Replicas per stream: 1 on a single server, 3 in a cluster. Default 1.
	Replicas int
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id. Default 2m.
	DuplicateWindow time.Duration
	// WebhooksMaxAge keeps raw webhooks long enough to re-normalize history. Default 30 days.
	WebhooksMaxAge time.Duration
	// InvoicesMaxAge keeps canonical events. Default 30 days.
	InvoicesMaxAge time.Duration
	// DLQMaxAge keeps dead letters. Default 90 days.
	DLQMaxAge time.Duration
	// LedgerMaxAge and LedgerMaxBytes bound the delivery ledger; the
	// oldest entries go first. Defaults 7 days and 256 MiB (an entry is
	// about 400 bytes: some 670,000 attempts). JetStream reserves
	// MaxBytes when the stream is created, so the default fits a laptop's
	// store; a larger one is set with INVOICEHUB_LEDGER_MAX_BYTES.
	LedgerMaxAge   time.Duration
	LedgerMaxBytes int64
	// Memory stores streams in memory instead of files; for tests only.
	Memory bool
}

const day = 24 * time.Hour

// noRoom are the errors of a store that cannot reserve a stream's
// MaxBytes: insufficient resources (10023), storage resources exceeded
// (10047).
var noRoom = []jetstream.ErrorCode{10023, 10047}

// DefaultLedgerMaxBytes is the delivery ledger's default size (Config).
const DefaultLedgerMaxBytes = 256 << 20

func (c Config) withDefaults() Config {
	c.Replicas = cmp.Or(c.Replicas, 1)
	c.DuplicateWindow = cmp.Or(c.DuplicateWindow, 2*time.Minute)
	c.WebhooksMaxAge = cmp.Or(c.WebhooksMaxAge, 30*day)
	c.InvoicesMaxAge = cmp.Or(c.InvoicesMaxAge, 30*day)
	c.DLQMaxAge = cmp.Or(c.DLQMaxAge, 90*day)
	c.LedgerMaxAge = cmp.Or(c.LedgerMaxAge, 7*day)
	c.LedgerMaxBytes = cmp.Or(c.LedgerMaxBytes, DefaultLedgerMaxBytes)
	return c
}

func (c Config) storage() jetstream.StorageType {
	if c.Memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// Configs returns the four stream configurations.
func (c Config) Configs() []jetstream.StreamConfig {
	c = c.withDefaults()
	return []jetstream.StreamConfig{
		{
			Name:        subject.WebhooksStream,
			Description: "invoicehub raw webhooks, body byte-for-byte as received",
			Subjects:    []string{subject.WebhooksRoot + ".>", subject.ReplayRoot + ".normalizer.>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     c.storage(),
			Replicas:    c.Replicas,
			MaxAge:      c.WebhooksMaxAge,
			Duplicates:  c.DuplicateWindow,
			Discard:     jetstream.DiscardOld,
			AllowDirect: true,
		},
		{
			Name:        subject.InvoicesStream,
			Description: "invoicehub canonical invoice events",
			Subjects:    []string{subject.InvoicesRoot + ".>", subject.ReplayRoot + ".sink.>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     c.storage(),
			Replicas:    c.Replicas,
			MaxAge:      c.InvoicesMaxAge,
			Duplicates:  c.DuplicateWindow,
			Discard:     jetstream.DiscardOld,
			AllowDirect: true,
		},
		{
			Name:        subject.DLQStream,
			Description: "invoicehub dead letters: the original message and why it failed",
			Subjects:    []string{subject.DLQRoot + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     c.storage(),
			Replicas:    c.Replicas,
			MaxAge:      c.DLQMaxAge,
			Duplicates:  c.DuplicateWindow,
			Discard:     jetstream.DiscardOld,
			AllowDirect: true,
		},
		{
			Name:        subject.LedgerStream,
			Description: "invoicehub delivery ledger: every attempt of every consumer",
			Subjects:    []string{subject.LedgerRoot + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     c.storage(),
			Replicas:    c.Replicas,
			MaxAge:      c.LedgerMaxAge,
			MaxBytes:    c.LedgerMaxBytes,
			Discard:     jetstream.DiscardOld,
			AllowDirect: true,
			PersistMode: c.ledgerPersistMode(),
		},
	}
}

// ledgerPersistMode relaxes the server's fsync-before-ack for LEDGER
// where NATS allows it (file storage, one replica): its entries are
// published asynchronously and nothing waits for them, so no 2xx and no
// ack depends on them; a power cut may take its last entries (the
// server's sync interval), never an invoice. It spares a single server
// two of the eight fsyncs a webhook costs. Replicated streams sync their
// Raft log, which amortises the fsyncs, and may not be async.
func (c Config) ledgerPersistMode() jetstream.PersistModeType {
	if c.Replicas == 1 && !c.Memory {
		return jetstream.AsyncPersistMode
	}
	return jetstream.DefaultPersistMode
}

// Ensure creates the streams or updates them to cfg. It is idempotent; it
// returns the joined errors of the streams it could not create or update.
// Streams allow direct gets (read-only lookups by sequence, subject or
// time), which the normalizer and the operators' tools use. In production
// only the setup step (`invoicehub setup`, an administrator) calls it; the
// stages' users may not manage streams.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	var errs []error
	for _, sc := range cfg.Configs() {
		if s, err := js.Stream(ctx, sc.Name); err == nil {
			sc.PersistMode = s.CachedInfo().Config.PersistMode // fixed at creation: NATS refuses to change it
		}
		_, err := js.CreateOrUpdateStream(ctx, sc)
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
		case errors.As(err, &apiErr) && slices.Contains(noRoom, apiErr.ErrorCode) && sc.MaxBytes > 0:
			errs = append(errs, fmt.Errorf("stream: ensure %s: %w (it reserves %d bytes: free space in the JetStream store, or set a smaller size, e.g. INVOICEHUB_LEDGER_MAX_BYTES for LEDGER)", sc.Name, err, sc.MaxBytes))
		default:
			errs = append(errs, fmt.Errorf("stream: ensure %s: %w", sc.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Read passes the messages of stream name, from where cfg starts, to fn in
// order, until none is pending or fn returns false. It reads with an
// ordered consumer, which leaves nothing behind on the server.
func Read(ctx context.Context, js jetstream.JetStream, name string, cfg jetstream.OrderedConsumerConfig,
	fn func(m jetstream.Msg, meta *jetstream.MsgMetadata) (more bool, err error)) error {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("stream: read %s: %w", name, err)
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("stream: read %s: %w", name, err)
	}
	for {
		info, err := c.Info(ctx)
		if err != nil {
			return fmt.Errorf("stream: read %s: %w", name, err)
		}
		if info.NumPending == 0 {
			return nil
		}
		batch, err := c.FetchNoWait(256)
		if err != nil {
			return fmt.Errorf("stream: read %s: %w", name, err)
		}
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("stream: read %s: %w", name, err)
			}
			if more, err := fn(m, meta); err != nil || !more {
				return err
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("stream: read %s: %w", name, err)
		}
	}
}
