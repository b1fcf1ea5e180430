// Package sqlsink is the sql sink: canonical events into a relational
// database, PostgreSQL (jackc/pgx/v5) or SQLite (modernc.org/sqlite), with
// one implementation and two dialects.
//
//   - invoice_events is append-only and unique on the event id: a
//     redelivered event has no second effect.
//   - invoices holds each invoice's current state, replaced only by an
//     event with a higher sequence, so out-of-order delivery never
//     regresses it.
//
// Both happen in one transaction. Migrations are embedded and applied at
// start; sinks starting at once take turns (a PostgreSQL advisory lock,
// SQLite's write lock taken at BEGIN IMMEDIATE). Options: see Options.
//
// Errors: data and constraint errors are permanent (dead-lettered); a lost
// connection, a lock or a timeout is retried.
package sqlsink

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/sinks"
)

//go:embed migrations
var migrations embed.FS

// Sink writes events to a database.
type Sink struct {
	db        *sql.DB
	d         dialect
	closeOnce sync.Once
	closeErr  error
}

var _ sinks.Sink = (*Sink)(nil)

// Options are the sql sink's options: the driver, and the DSN inline
// (dsn) or, for DSNs with passwords, from a variable or a file (dsn_env,
// dsn_file; stage.Secrets.Resolve reads them).
type Options struct {
	Driver  string `yaml:"driver"`
	DSN     string `yaml:"dsn"`
	DSNEnv  string `yaml:"dsn_env"`
	DSNFile string `yaml:"dsn_file"`
}

// Factory builds an sql sink from its options.
func Factory(ctx context.Context, b sinks.Build) (sinks.Sink, error) {
	var o Options
	if err := b.Options.Decode(&o); err != nil {
		return nil, fmt.Errorf("sqlsink: %w", err)
	}
	dsn := o.DSN
	if ref := (stage.SecretRef{Env: o.DSNEnv, File: o.DSNFile}); !ref.IsZero() {
		if dsn != "" {
			return nil, errors.New("sqlsink: set dsn, or dsn_env or dsn_file, not both")
		}
		v, err := b.Secrets.Resolve(ref)
		if err != nil {
			return nil, fmt.Errorf("sqlsink: dsn: %w", err)
		}
		dsn = string(v)
	}
	return Open(ctx, o.Driver, dsn)
}

// Open connects, applies the migrations, and returns the sink.
func Open(ctx context.Context, driver, dsn string) (*Sink, error) {
	d, ok := dialects[driver]
	if !ok {
		return nil, fmt.Errorf("sqlsink: driver %q: want postgres or sqlite", driver)
	}
	if dsn == "" {
		return nil, errors.New("sqlsink: dsn is required")
	}
	db, err := d.open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlsink: open %s: %w", driver, err)
	}
	s := &Sink{db: db, d: d}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// createMigrationsTable records the migrations applied.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`

// migrate applies the dialect's migrations not applied yet, in order, each
// in its own transaction, on one connection holding the dialect's
// migration lock from before the first DDL (the migrations table's) to
// the end: sinks starting at once on a fresh database take turns.
func (s *Sink) migrate(ctx context.Context) error {
	files, err := migrationFiles(s.d.name)
	if err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlsink: migrate: %w", err)
	}
	defer conn.Close()
	unlock, err := s.d.lockMigrations(ctx, conn)
	if err != nil {
		return fmt.Errorf("sqlsink: migration lock: %w", err)
	}
	defer unlock(ctx)
	if err := inTx(ctx, conn, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, createMigrationsTable)
		return err
	}); err != nil {
		return fmt.Errorf("sqlsink: migrations table: %w", err)
	}
	for _, f := range files {
		if err := s.applyMigration(ctx, conn, f); err != nil {
			return err
		}
	}
	return nil
}

// migration is one embedded migration file.
type migration struct {
	file    string
	version int
}

// migrationFiles lists dialect's embedded migrations in version order.
func migrationFiles(dialect string) ([]migration, error) {
	files, err := fs.Glob(migrations, "migrations/"+dialect+"/*.sql")
	if err != nil {
		return nil, fmt.Errorf("sqlsink: migrations: %w", err)
	}
	sort.Strings(files)
	ms := make([]migration, 0, len(files))
	for _, f := range files {
		version, err := strconv.Atoi(strings.SplitN(f[strings.LastIndex(f, "/")+1:], "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("sqlsink: migration %s: name must start with its version", f)
		}
		ms = append(ms, migration{file: f, version: version})
	}
	return ms, nil
}

// applyMigration applies m unless schema_migrations records it.
func (s *Sink) applyMigration(ctx context.Context, conn *sql.Conn, m migration) error {
	err := inTx(ctx, conn, func(tx *sql.Tx) error {
		var applied int
		if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT count(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&applied); err != nil {
			return err
		}
		if applied > 0 {
			return nil
		}
		body, err := migrations.ReadFile(m.file)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.d.rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), m.version, time.Now().UTC().Format(time.RFC3339))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlsink: migration %s: %w", m.file, err)
	}
	return nil
}

// inTx runs fn in a transaction on conn and commits it if fn succeeds.
func inTx(ctx context.Context, conn *sql.Conn, fn func(*sql.Tx) error) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

const insertEvent = `INSERT INTO invoice_events (event_id, invoice_id, kind, sequence, occurred_at, stream_sequence, event)
VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`

const upsertInvoice = `INSERT INTO invoices (id, provider, source, remote_id, number, direction, document_type, status,
  provider_status, is_overdue, deleted, currency, total, paid, due, issue_date, due_date, sequence, last_event_id, updated_at, invoice)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET number = excluded.number, direction = excluded.direction,
  document_type = excluded.document_type, status = excluded.status, provider_status = excluded.provider_status,
  is_overdue = excluded.is_overdue, deleted = excluded.deleted, currency = excluded.currency, total = excluded.total,
  paid = excluded.paid, due = excluded.due, issue_date = excluded.issue_date, due_date = excluded.due_date,
  sequence = excluded.sequence, last_event_id = excluded.last_event_id, updated_at = excluded.updated_at,
  invoice = excluded.invoice
WHERE invoices.sequence < excluded.sequence`

// Deliver records the event and, if it is newer, the invoice's state, in
// one transaction. A redelivered event changes nothing.
func (s *Sink) Deliver(ctx context.Context, e sinks.Event) error {
	event, err := json.Marshal(e.CloudEvent)
	if err != nil {
		return consume.Permanent(fmt.Errorf("sqlsink: encode %s: %w", e.ID(), err))
	}
	data, err := e.Data()
	if err != nil {
		return err
	}
	inv := data.Invoice
	invoice, err := json.Marshal(inv)
	if err != nil {
		return consume.Permanent(fmt.Errorf("sqlsink: encode %s: %w", e.ID(), err))
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.d.classify(fmt.Errorf("sqlsink: begin: %w", err))
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.d.rebind(insertEvent), e.ID(), inv.ID, string(data.Event.Kind), e.Version,
		s.d.timestamp(data.Event.OccurredAt), int64(e.StreamSequence), s.d.json(event))
	if err != nil {
		return s.d.classify(fmt.Errorf("sqlsink: insert event %s: %w", e.ID(), err))
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return s.d.classify(errors.Join(err, tx.Commit())) // seen before: no second effect
	}
	t := inv.Totals
	_, err = tx.ExecContext(ctx, s.d.rebind(upsertInvoice), inv.ID, inv.Provider, inv.Source, inv.RemoteID, nullable(inv.Number),
		string(inv.Direction), string(inv.DocumentType), string(inv.Status), inv.ProviderStatus, s.d.boolean(inv.IsOverdue),
		s.d.boolean(data.Event.Kind == schemas.KindDeleted), inv.Currency, t.Total.String(), t.Paid.String(), t.Due.String(),
		s.d.date(inv.IssueDate), s.d.date(inv.DueDate), e.Version, e.ID(), s.d.timestamp(data.Event.OccurredAt), s.d.json(invoice))
	if err != nil {
		return s.d.classify(fmt.Errorf("sqlsink: upsert invoice %s: %w", inv.ID, err))
	}
	if err := tx.Commit(); err != nil {
		return s.d.classify(fmt.Errorf("sqlsink: commit %s: %w", e.ID(), err))
	}
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Close closes the database; later calls return the first result.
func (s *Sink) Close(context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.db.Close() })
	return s.closeErr
}
