-- embudo schema, version 1.
-- Timestamps are BIGINT milliseconds since the Unix epoch (UTC), so the same SQL
-- compares and indexes them on SQLite and PostgreSQL.

CREATE TABLE leads (
    id               INTEGER PRIMARY KEY,
    email            TEXT    NOT NULL UNIQUE,
    name             TEXT,
    stage            TEXT    NOT NULL,
    locale           TEXT,
    timezone         TEXT,
    created_at       BIGINT  NOT NULL,
    stage_entered_at BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    unsubscribed_at  BIGINT
);

CREATE TABLE lead_tags (
    lead_id BIGINT NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    tag     TEXT   NOT NULL,
    PRIMARY KEY (lead_id, tag)
);

-- One row an attribute; `value` is the typed value as JSON ({"int":3}, {"date":"2026-05-01"}).
CREATE TABLE lead_attrs (
    lead_id BIGINT NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    key     TEXT   NOT NULL,
    value   TEXT   NOT NULL,
    PRIMARY KEY (lead_id, key)
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    lead_id     BIGINT  NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL,
    at          BIGINT  NOT NULL,
    props       TEXT    NOT NULL DEFAULT '{}',
    recorded_at BIGINT  NOT NULL
);
CREATE INDEX events_by_lead ON events (lead_id, at);

CREATE TABLE stage_history (
    id         INTEGER PRIMARY KEY,
    lead_id    BIGINT  NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    from_stage TEXT,
    to_stage   TEXT    NOT NULL,
    at         BIGINT  NOT NULL,
    cause      TEXT    NOT NULL
);
CREATE INDEX stage_history_by_lead ON stage_history (lead_id, at);

-- Every email is a row here before it is handed to SMTP. The unique dedupe key
-- (lead, template, key) is what makes `send` at-most-once per key.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    lead_id         BIGINT  NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    template        TEXT    NOT NULL,
    dedupe_key      TEXT    NOT NULL,
    requested_at    BIGINT  NOT NULL,
    stage           TEXT    NOT NULL,
    rule            TEXT,
    campaign        TEXT,
    state           TEXT    NOT NULL DEFAULT 'queued',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    lease_until     BIGINT,
    message_id      TEXT,
    sent_at         BIGINT,
    last_error      TEXT,
    UNIQUE (lead_id, template, dedupe_key)
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_lead ON outbox (lead_id, requested_at);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Named leases, so two ticks (a daemon and `embudo tick`) never overlap.
CREATE TABLE locks (
    name   TEXT PRIMARY KEY,
    holder TEXT   NOT NULL,
    until  BIGINT NOT NULL
);
