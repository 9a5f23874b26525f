-- The sender claims waiting rows oldest first (next_attempt_at, then id). An index in
-- that order, over the waiting rows only, lets a claim read its batch off the front;
-- outbox_due (state, next_attempt_at) cannot serve that order across three states, so
-- every claim sorted the whole due queue (issue 13). Held rows whose release is still
-- ahead sit past the claim's bound and are never read.
CREATE INDEX outbox_waiting ON outbox (next_attempt_at, id)
    WHERE state IN ('queued', 'retry', 'held');
