package sqlsink

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/invoicehub/invoicehub/internal/consume"
)

// dialect is what differs between PostgreSQL and SQLite.
type dialect struct {
	name string
	open func(ctx context.Context, dsn string) (*sql.DB, error)
	// lockMigrations makes sinks starting at once on one database take
	// turns: it is taken on conn before any DDL, and unlock releases it.
	lockMigrations func(ctx context.Context, conn *sql.Conn) (unlock func(context.Context), err error)
	numbered       bool // $1 placeholders instead of ?
	native         bool // native BOOLEAN, TIMESTAMPTZ and JSONB
	permanent      func(error) bool
}

var dialects = map[string]dialect{
	"postgres": {
		name: "postgres", numbered: true, native: true,
		open:           func(_ context.Context, dsn string) (*sql.DB, error) { return sql.Open("pgx", dsn) },
		lockMigrations: pgLockMigrations,
		permanent: func(err error) bool {
			var pg *pgconn.PgError
			if !errors.As(err, &pg) {
				return false
			}
			// 22 data exception, 23 integrity constraint, 42 syntax or
			// access rule: retrying the same event cannot help.
			class := pg.Code[:2]
			return class == "22" || class == "23" || class == "42"
		},
	},
	"sqlite": {
		name: "sqlite",
		open: sqliteOpen,
		// Every transaction begins IMMEDIATE (sqliteDSN): it takes the write
		// lock first, waiting for it up to the busy timeout, so migrations
		// of processes starting at once take turns without a lock of ours.
		lockMigrations: func(context.Context, *sql.Conn) (func(context.Context), error) {
			return func(context.Context) {}, nil
		},
		permanent: func(err error) bool {
			var e *sqlite.Error
			if !errors.As(err, &e) {
				return false
			}
			switch e.Code() & 0xff {
			case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG:
				return true
			}
			return false
		},
	},
}

// migrationLockKey is the PostgreSQL advisory lock migrations hold.
const migrationLockKey = 7424150386

// pgLockMigrations takes a session advisory lock on conn, waiting while
// another sink migrates. A session lock, unlike a transaction's, covers
// creating the migrations table and every migration after it.
func pgLockMigrations(ctx context.Context, conn *sql.Conn) (func(context.Context), error) {
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return nil, err
	}
	return func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		var released bool
		err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1)`, migrationLockKey).Scan(&released)
		if err != nil || !released {
			// The lock lives as long as the session: close the connection
			// instead of returning it to the pool still holding the lock.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}, nil
}

// sqliteOpen opens a pool of one connection (one writer: no SQLITE_BUSY
// between our own connections) and makes that connection.
func sqliteOpen(ctx context.Context, dsn string) (*sql.DB, error) {
	dsn, err := sqliteDSN(dsn)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := sqliteConnect(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// sqliteConnectTimeout bounds sqliteConnect's retries.
const sqliteConnectTimeout = 10 * time.Second

// sqliteConnect makes db's first connection, retrying while SQLite answers
// SQLITE_BUSY. Turning a new file to WAL (the DSN's journal_mode) needs an
// exclusive lock that SQLite does not wait for, busy timeout or not: of two
// processes creating the file at once, one would fail. Once the file is in
// WAL, connecting needs no such lock.
func sqliteConnect(ctx context.Context, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, sqliteConnectTimeout)
	defer cancel()
	wait := time.Millisecond
	for {
		err := db.PingContext(ctx)
		var e *sqlite.Error
		if !errors.As(err, &e) || e.Code()&0xff != sqlite3.SQLITE_BUSY {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// sqliteDefaults are the settings the sink needs, added to a DSN that
// does not set them: each key, and the PRAGMA a _pragma value may set it
// with instead ("" for none).
var sqliteDefaults = []struct{ key, pragma, value string }{
	{"_busy_timeout", "busy_timeout", "10000"}, // wait for the write lock instead of failing
	{"_journal_mode", "journal_mode", "WAL"},
	{"_synchronous", "synchronous", "FULL"},
	{"_txlock", "", "immediate"}, // take the write lock at BEGIN: see lockMigrations
}

// sqliteDSN adds the settings of sqliteDefaults the DSN does not set. It
// refuses a _txlock other than immediate: a deferred transaction that
// reads and then writes fails with SQLITE_BUSY, busy timeout or not.
func sqliteDSN(dsn string) (string, error) {
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + dsn
	}
	_, query, _ := strings.Cut(dsn, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("sqlite dsn: %w", err)
	}
	if v := q.Get("_txlock"); v != "" && !strings.EqualFold(v, "immediate") {
		return "", fmt.Errorf("sqlite dsn: _txlock=%s: want immediate", v)
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	for _, d := range sqliteDefaults {
		if !sqliteSets(q, d.key, d.pragma) {
			dsn += sep + d.key + "=" + d.value
			sep = "&"
		}
	}
	return dsn, nil
}

// sqliteSets reports whether q sets key, or the PRAGMA pragma through a
// _pragma value.
func sqliteSets(q url.Values, key, pragma string) bool {
	if q.Has(key) {
		return true
	}
	if pragma == "" {
		return false
	}
	for _, v := range q["_pragma"] {
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), pragma) {
			return true
		}
	}
	return false
}

// rebind turns ? placeholders into $1, $2... for PostgreSQL.
func (d dialect) rebind(q string) string {
	if !d.numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (d dialect) boolean(v bool) any {
	if d.native {
		return v
	}
	if v {
		return 1
	}
	return 0
}

func (d dialect) timestamp(t time.Time) any {
	if d.native {
		return t.UTC()
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// date is a calendar date, "2006-01-02" or "" (NULL), as the dialect
// stores it. PostgreSQL gets a time.Time, which pgx encodes as a day
// number: its text input refuses year 0000, a date the schema's format:
// date accepts (ISO 8601's year 0, 1 BC, which PostgreSQL keeps and
// prints as "0001-01-01 BC"); pgx reads it back as year 0. A value that
// is not a date is passed on as it is, for the database to refuse
// (permanently).
func (d dialect) date(s string) any {
	if s == "" {
		return nil
	}
	if !d.native {
		return s
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return s
	}
	return t
}

func (d dialect) json(b []byte) any { return string(b) }

// classify marks errors retrying cannot fix as permanent.
func (d dialect) classify(err error) error {
	if err == nil {
		return nil
	}
	if d.permanent(err) {
		return consume.PermanentClass("sql_"+d.name, err)
	}
	return err
}
