-- invoicehub sql sink, PostgreSQL. Money is NUMERIC: exact.
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
    is_overdue      BOOLEAN NOT NULL,
    deleted         BOOLEAN NOT NULL,
    currency        TEXT NOT NULL,
    total           NUMERIC NOT NULL,
    paid            NUMERIC NOT NULL,
    due             NUMERIC NOT NULL,
    issue_date      DATE,
    due_date        DATE,
    sequence        BIGINT NOT NULL,            -- version: only a higher one replaces the row
    last_event_id   TEXT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    invoice         JSONB NOT NULL              -- the full canonical invoice
);
CREATE INDEX invoices_status ON invoices (status);
CREATE INDEX invoices_due_date ON invoices (due_date) WHERE NOT deleted;

CREATE TABLE invoice_events (
    event_id        TEXT PRIMARY KEY,           -- a redelivered event has no second effect
    invoice_id      TEXT NOT NULL,
    kind            TEXT NOT NULL,
    sequence        BIGINT NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    stream_sequence BIGINT NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    event           JSONB NOT NULL              -- the structured CloudEvent
);
CREATE INDEX invoice_events_invoice ON invoice_events (invoice_id, sequence);
