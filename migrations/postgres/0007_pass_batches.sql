-- Several daemons on one database share a tick's pass (issue 14): the leads of the
-- pass at `pass_at` (the tick's instant: its key and its clock) are split into ranges
-- of lead ids, each claimed by one daemon under a lease it renews while it works. A
-- daemon that dies mid-batch stops renewing; another takes the batch over when the
-- lease runs out (at once, when the dead holder was on its own machine).
CREATE TABLE pass_batches (
    pass_at     BIGINT NOT NULL,
    first_id    BIGINT NOT NULL,
    last_id     BIGINT NOT NULL,
    holder      TEXT,
    lease_until BIGINT,
    done_at     BIGINT,
    PRIMARY KEY (pass_at, first_id)
);
CREATE INDEX pass_batches_open ON pass_batches (pass_at, first_id) WHERE done_at IS NULL;
