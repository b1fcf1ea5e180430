package sqlsink

import (
	"database/sql"
	"errors"
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
	name           string
	open           func(dsn string) (*sql.DB, error)
	lockMigrations string
	numbered       bool // $1 placeholders instead of ?
	native         bool // native BOOLEAN, TIMESTAMPTZ and JSONB
	permanent      func(error) bool
}

var dialects = map[string]dialect{
	"postgres": {
		name: "postgres", numbered: true, native: true,
		open: func(dsn string) (*sql.DB, error) { return sql.Open("pgx", dsn) },
		// One replica migrates at a time; the lock ends with the transaction.
		lockMigrations: `SELECT pg_advisory_xact_lock(7424150386)`,
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
		open: func(dsn string) (*sql.DB, error) {
			db, err := sql.Open("sqlite", sqliteDSN(dsn))
			if err != nil {
				return nil, err
			}
			db.SetMaxOpenConns(1) // one writer: no SQLITE_BUSY between our own connections
			return db, nil
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

// sqliteDSN adds the pragmas the sink needs: a busy timeout, WAL, and
// foreign keys, unless the DSN sets them.
func sqliteDSN(dsn string) string {
	if strings.Contains(dsn, "_pragma") {
		return dsn
	}
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
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
