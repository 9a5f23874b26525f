-- Idempotent ingest (DESIGN.md "Ingest idempotency").

-- An event's own id (a webhook's event id), unique per lead: a retried delivery of the
-- same event is skipped and counted as a duplicate.
ALTER TABLE events ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX events_external_id ON events (lead_id, external_id)
    WHERE external_id IS NOT NULL;

-- The first answer to a request with an `Idempotency-Key` header, replayed for the same
-- key and body within 24 h. Written in the same transaction as what the request stored.
CREATE TABLE idempotency_keys (
    endpoint     TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (endpoint, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
