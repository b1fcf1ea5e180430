-- invoicehub sql sink, SQLite. Money is TEXT holding the exact decimal
-- (SQLite's NUMERIC affinity would turn it into a float).
CREATE TABLE invoices (
    id              TEXT PRIMARY KEY,           -- <provider>:<source>:<remote id>
    provider        TEXT NOT NULL,
    source          TEXT NOT NULL,
    remote_id       TEXT NOT NULL,
    number          TEXT,
    direction       TEXT NOT NULL,
    document_type   TEXT NOT NULL,
    status          TEXT NOT NULL,
    provider_status TEXT NOT NULL,
    is_overdue      INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    total           TEXT NOT NULL,
    paid            TEXT NOT NULL,
    due             TEXT NOT NULL,
    issue_date      TEXT,
    due_date        TEXT,
    sequence        INTEGER NOT NULL,           -- version: only a higher one replaces the row
    last_event_id   TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    invoice         TEXT NOT NULL               -- the full canonical invoice (JSON)
) STRICT;
CREATE INDEX invoices_status ON invoices (status);
CREATE INDEX invoices_due_date ON invoices (due_date) WHERE NOT deleted;

CREATE TABLE invoice_events (
    event_id        TEXT PRIMARY KEY,           -- a redelivered event has no second effect
    invoice_id      TEXT NOT NULL,
    kind            TEXT NOT NULL,
    sequence        INTEGER NOT NULL,
    occurred_at     TEXT NOT NULL,
    stream_sequence INTEGER NOT NULL,
    received_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    event           TEXT NOT NULL               -- the structured CloudEvent (JSON)
) STRICT;
CREATE INDEX invoice_events_invoice ON invoice_events (invoice_id, sequence);
