-- When a row reached its end state (sent, failed, stale, expired): the timeline of
-- `simulate` and `outbox list` show when, not only what.
ALTER TABLE outbox ADD COLUMN ended_at BIGINT;
