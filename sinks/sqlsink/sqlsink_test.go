package sqlsink

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invoicehub/invoicehub/schemas/subject"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/invoicehub/invoicehub/internal/consume"
	"github.com/invoicehub/invoicehub/internal/jstest"
	"github.com/invoicehub/invoicehub/internal/stage"
	"github.com/invoicehub/invoicehub/internal/streams"
	"github.com/invoicehub/invoicehub/schemas"
	"github.com/invoicehub/invoicehub/schemas/ce"
	"github.com/invoicehub/invoicehub/schemas/money"
	"github.com/invoicehub/invoicehub/sinks"
	"github.com/invoicehub/invoicehub/sinks/sinktest"
)

// postgresEnv names a real PostgreSQL server's DSN; .ci/run starts one.
const postgresEnv = "INVOICEHUB_TEST_POSTGRES_DSN"

// backend opens a fresh, empty database of one dialect.
type backend struct {
	name string
	open func(t *testing.T) (driver, dsn string)
}

func backends(t *testing.T) []backend {
	bs := []backend{{"sqlite", func(t *testing.T) (string, string) {
		return "sqlite", filepath.Join(t.TempDir(), "invoices.db")
	}}}
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		t.Logf("PostgreSQL tests skipped: set %s (e.g. postgres://user:pass@127.0.0.1:5432/db?sslmode=disable)", postgresEnv)
		return bs
	}
	return append(bs, backend{"postgres", func(t *testing.T) (string, string) {
		admin, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Close() })
		schema := fmt.Sprintf("t_%d_%d", time.Now().UnixNano(), rand.IntN(1e6))
		if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
			t.Fatalf("PostgreSQL at %s: %v", postgresEnv, err)
		}
		t.Cleanup(func() { admin.Exec("DROP SCHEMA " + schema + " CASCADE") })
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return "postgres", dsn + sep + "search_path=" + schema
	}})
}

func open(t *testing.T, b backend) *Sink {
	t.Helper()
	driver, dsn := b.open(t)
	s, err := Open(t.Context(), driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

type harness struct{ b backend }

func (h harness) New(t *testing.T) sinks.Sink { return open(t, h.b) }

func (h harness) Delivered(t *testing.T, s sinks.Sink) []string {
	rows, err := s.(*Sink).db.QueryContext(context.Background(), `SELECT event_id FROM invoice_events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	return ids
}

// Fail returns, on PostgreSQL, an event with a date the database refuses
// (permanent). SQLite stores dates as text and has no such failure; a
// transient one (a lost connection) cannot be made on demand here.
func (h harness) Fail(t *testing.T, s sinks.Sink, permanent bool) (sinks.Event, bool) {
	if !permanent || h.b.name != "postgres" {
		return sinks.Event{}, false
	}
	return badDate(t), true
}

func TestConformance(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { sinktest.Run(t, harness{b}) })
	}
}

// version returns an event for invoice inv at version v with total total.
func version(t testing.TB, inv string, v int, total string) sinks.Event {
	return versionWith(t, inv, v, total, func(*schemas.EventData) {})
}

// badDate is an event with an issue date PostgreSQL refuses: February
// 30th. The schema refuses it too, so the normalizer never publishes it;
// it is written into a valid event's data here, as a producer skipping
// validation would.
func badDate(t testing.TB) sinks.Event {
	e := versionWith(t, "bad-date", 1, "1.00", func(d *schemas.EventData) { d.Invoice.IssueDate = "2026-02-01" })
	valid, invalid := []byte(`"issue_date":"2026-02-01"`), []byte(`"issue_date":"2026-02-30"`)
	if !bytes.Contains(e.CloudEvent.DataEncoded, valid) {
		t.Fatalf("no issue date in %s", e.CloudEvent.DataEncoded)
	}
	e.CloudEvent.DataEncoded = bytes.Replace(e.CloudEvent.DataEncoded, valid, invalid, 1)
	return e
}

// versionWith is version with its data edited by edit.
func versionWith(t testing.TB, inv string, v int, total string, edit func(*schemas.EventData)) sinks.Event {
	e := sinktest.Event(t, fmt.Sprintf("raw-%s-%d", inv, v), schemas.KindUpdated)
	eur, _ := money.LookupCurrency("EUR")
	d, _ := money.Parse(total)
	data, err := e.Data()
	if err != nil {
		t.Fatal(err)
	}
	data.Invoice.ID, data.Invoice.RemoteID = "qonto:acme:"+inv, inv
	data.Invoice.Totals.Total, data.Invoice.Totals.Due = money.Total(d, eur), money.Total(d, eur)
	updated := time.Date(2024, 3, 1, 0, 0, v, 0, time.UTC)
	data.Invoice.RemoteUpdatedAt, data.Event.OccurredAt = &updated, updated
	edit(&data)
	ev, err := ce.NewCanonical(data, fmt.Sprintf("raw-%s-%d", inv, v), ce.InvoiceVersion(updated), "")
	if err != nil {
		t.Fatal(err)
	}
	return sinks.Event{CloudEvent: ev, Version: ce.InvoiceVersion(updated), StreamSequence: uint64(v)}
}

func state(t *testing.T, s *Sink, inv string) (total string, sequence int64) {
	t.Helper()
	err := s.db.QueryRowContext(t.Context(), s.d.rebind(`SELECT total, sequence FROM invoices WHERE id = ?`), "qonto:acme:"+inv).Scan(&total, &sequence)
	if err != nil {
		t.Fatal(err)
	}
	return total, sequence
}

func TestNewerVersionWinsWhateverTheOrder(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := open(t, b)
			for _, v := range []int{2, 1, 3, 1} {
				if err := s.Deliver(t.Context(), version(t, "a", v, fmt.Sprintf("%d00.10", v))); err != nil {
					t.Fatal(err)
				}
			}
			if total, _ := state(t, s, "a"); total != "300.10" {
				t.Fatalf("total %s, want version 3's 300.10 exactly", total)
			}
		})
	}
}

func TestMigrationsAreIdempotent(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			driver, dsn := b.open(t)
			for range 2 {
				s, err := Open(t.Context(), driver, dsn)
				if err != nil {
					t.Fatal(err)
				}
				var n int
				s.db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n)
				s.Close(t.Context())
				if n != 1 {
					t.Fatalf("%d migrations recorded", n)
				}
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	tests := []sinks.Options{{}, {"driver": "mysql", "dsn": "x"}, {"driver": "sqlite"}, {"driver": "sqlite", "dsn": "x", "dsn_env": "Y"},
		{"driver": "sqlite", "dsn_env": "INVOICEHUB_UNSET_VAR"}, {"driver": "sqlite", "dns": "x"}}
	secrets := stage.Secrets{Getenv: os.Getenv, ReadFile: os.ReadFile}
	for _, opts := range tests {
		if _, err := Factory(t.Context(), sinks.Build{Options: opts, Secrets: secrets}); err == nil {
			t.Errorf("options %v accepted", opts)
		}
	}
}

func TestPostgresDataErrorIsPermanent(t *testing.T) {
	for _, b := range backends(t) {
		if b.name != "postgres" {
			continue
		}
		s := open(t, b)
		err := s.Deliver(t.Context(), badDate(t))
		if class, ok := consume.PermanentClassOf(err); !ok || class != "sql_postgres" {
			t.Fatalf("got %v, want a permanent sql_postgres error", err)
		}
	}
}

// TestRedeliveriesThroughJetStream: 1,000 events, 10% of them delivered
// twice, through the consume adapter: exactly 1,000 event rows, and each
// invoice at its newest version.
func TestRedeliveriesThroughJetStream(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := open(t, b)
			_, js := jstest.Run(t).Connect(t)
			if err := streams.Ensure(t.Context(), js, streams.Config{}); err != nil {
				t.Fatal(err)
			}
			const invoices, versions = 100, 10
			var events []sinks.Event
			for i := range invoices {
				for v := 1; v <= versions; v++ {
					events = append(events, version(t, fmt.Sprintf("inv-%03d", i), v, fmt.Sprintf("%d.%02d", i, v)))
				}
			}
			rand.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
			publish := func(e sinks.Event, msgID string) {
				msg, err := ce.ToMsg(t.Context(), "invoices.v1.updated.qonto.acme", e.CloudEvent)
				if err != nil {
					t.Fatal(err)
				}
				msg.Header.Set(jetstream.MsgIDHeader, msgID) // a redelivery JetStream cannot dedup
				if _, err := js.PublishMsg(t.Context(), msg); err != nil {
					t.Fatal(err)
				}
			}
			for i, e := range events {
				publish(e, e.ID())
				if i%10 == 0 {
					publish(e, e.ID()+"-again")
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			spec := sinks.Spec{ID: "sql", Type: "sql", Concurrency: 8}
			go func() { done <- sinks.Run(ctx, js, spec, s, slog.New(slog.DiscardHandler)) }()
			t.Cleanup(func() { cancel(); <-done })
			jstest.Eventually(t, 60*time.Second, "all 1,100 deliveries settled", func() bool {
				c, err := js.Consumer(t.Context(), subject.InvoicesStream, "sink-sql")
				if err != nil {
					return false
				}
				info, err := c.Info(t.Context())
				return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream == 1100
			})
			var rows, current int
			s.db.QueryRow(`SELECT count(*) FROM invoice_events`).Scan(&rows)
			s.db.QueryRow(`SELECT count(*) FROM invoices`).Scan(&current)
			if rows != invoices*versions || current != invoices {
				t.Fatalf("%d event rows and %d invoices, want %d and %d", rows, current, invoices*versions, invoices)
			}
			for i := range invoices {
				if total, _ := state(t, s, fmt.Sprintf("inv-%03d", i)); total != fmt.Sprintf("%d.%02d", i, versions) {
					t.Fatalf("inv-%03d at total %s, want version %d", i, total, versions)
				}
			}
			if jstest.Count(t, js, subject.DLQStream) != 0 {
				t.Fatal("dead letters")
			}
		})
	}
}

// TestConcurrentStartsOnAFreshDatabase: two sinks, each with its own
// connection pool as two processes would have, start at the same instant
// on a fresh database, ten times: both start, the migrations table holds
// each version once, and both can write.
func TestConcurrentStartsOnAFreshDatabase(t *testing.T) {
	const runs = 10
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for run := range runs {
				t.Run(fmt.Sprintf("run-%02d", run), func(t *testing.T) {
					driver, dsn := b.open(t)
					opened := startTogether(t, driver, dsn, 2)
					checkMigrations(t, opened[0])
					for i, s := range opened {
						if err := s.Deliver(t.Context(), version(t, fmt.Sprintf("inv-%d", i), 1, "1.00")); err != nil {
							t.Fatalf("sink %d: deliver: %v", i, err)
						}
					}
					var rows int
					if err := opened[1].db.QueryRowContext(t.Context(), `SELECT count(*) FROM invoice_events`).Scan(&rows); err != nil || rows != len(opened) {
						t.Fatalf("%d event rows (%v), want %d", rows, err, len(opened))
					}
				})
			}
		})
	}
}

// startTogether opens n sinks on dsn at the same instant, each with its own
// pool, and fails the test unless all of them start.
func startTogether(t *testing.T, driver, dsn string, n int) []*Sink {
	t.Helper()
	start := make(chan struct{})
	var wg sync.WaitGroup
	opened, errs := make([]*Sink, n), make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			opened[i], errs[i] = Open(t.Context(), driver, dsn)
		})
	}
	close(start)
	wg.Wait()
	for _, s := range opened {
		if s != nil {
			t.Cleanup(func() { s.Close(context.Background()) })
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent start: %v", err)
	}
	return opened
}

// checkMigrations fails the test unless every embedded migration of s's
// dialect is recorded exactly once, and nothing else is.
func checkMigrations(t *testing.T, s *Sink) {
	t.Helper()
	files, err := fs.Glob(migrations, "migrations/"+s.d.name+"/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("embedded migrations: %v %v", files, err)
	}
	rows, err := s.db.QueryContext(t.Context(), `SELECT version, count(*) FROM schema_migrations GROUP BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	recorded := 0
	for rows.Next() {
		var version, n int
		if err := rows.Scan(&version, &n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("migration %d recorded %d times", version, n)
		}
		recorded++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if recorded != len(files) {
		t.Fatalf("%d migrations recorded, want %d", recorded, len(files))
	}
}

func TestSQLiteDSN(t *testing.T) {
	const defaults = "_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL&_txlock=immediate"
	tests := []struct {
		name, dsn, want string
		wantErr         bool
	}{
		{name: "path", dsn: "/data/invoices.db", want: "file:/data/invoices.db?" + defaults},
		{name: "uri with a query", dsn: "file:/data/x.db?mode=rwc", want: "file:/data/x.db?mode=rwc&" + defaults},
		{name: "own pragmas kept, missing ones added", dsn: "x.db?_pragma=busy_timeout(500)&_pragma=journal_mode(DELETE)",
			want: "file:x.db?_pragma=busy_timeout(500)&_pragma=journal_mode(DELETE)&_synchronous=FULL&_txlock=immediate"},
		{name: "own keys kept", dsn: "x.db?_busy_timeout=1&_synchronous=NORMAL&_txlock=IMMEDIATE",
			want: "file:x.db?_busy_timeout=1&_synchronous=NORMAL&_txlock=IMMEDIATE&_journal_mode=WAL"},
		{name: "deferred transactions refused", dsn: "x.db?_txlock=deferred", wantErr: true},
		{name: "bad query", dsn: "x.db?_pragma=%zz", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sqliteDSN(tt.dsn)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("sqliteDSN(%q) = %q, %v; want %q, error %v", tt.dsn, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
