-- When each campaign was first loaded: firings before it never fire.
CREATE TABLE campaigns_seen (
    campaign        TEXT   PRIMARY KEY,
    first_loaded_at BIGINT NOT NULL
);

-- One row a firing (campaign, key): a restart neither repeats nor loses one.
-- state: running (enqueueing; resumed after a crash) | done | skipped (missed).
CREATE TABLE campaign_firings (
    campaign     TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    scheduled_at BIGINT  NOT NULL,
    state        TEXT    NOT NULL,
    started_at   BIGINT  NOT NULL,
    finished_at  BIGINT,
    audience     BIGINT  NOT NULL DEFAULT 0,
    queued       BIGINT  NOT NULL DEFAULT 0,
    note         TEXT,
    PRIMARY KEY (campaign, key)
);
