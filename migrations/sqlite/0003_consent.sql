-- Addresses that must not be mailed, kept by a SHA-256 of the lower-cased address so
-- that `forget` can erase the person and still honour the suppression.
-- reason: unsubscribed (marketing only) | bounced | forgotten (all email).
CREATE TABLE suppressions (
    email_hash TEXT   PRIMARY KEY,
    reason     TEXT   NOT NULL,
    at         BIGINT NOT NULL,
    detail     TEXT
);

-- Sent rows by time: the daily capacity and per-lead caps count them.
CREATE INDEX outbox_sent ON outbox (state, sent_at);

-- An operator's `outbox retry` restarts the expiry clock from here, not from the request.
ALTER TABLE outbox ADD COLUMN released_at BIGINT;
