-- A pass reads each lead's events through events_by_lead. With the index on
-- (lead_id, at) alone, every event row was then fetched from the table, where a lead's
-- events lie scattered among everyone else's (they are stored in the order they
-- happened): a database page read per event (issue 13). With kind and props in the
-- index, a lead's events are read from one place and the table is not visited.
-- SQLite keeps long props in overflow pages, so no props is too large for the index.
DROP INDEX events_by_lead;
CREATE INDEX events_by_lead ON events (lead_id, at, kind, props);
