-- SQLite's events index became covering (lead_id, at, kind, props) at this version.
-- PostgreSQL's stays on (lead_id, at): an index row there is limited to about 2.7 kB,
-- which a large props would exceed, and its heap fetches are not a page read per row
-- through a system call as SQLite's were. The version stays in step with SQLite's
-- so that `migrate --to` can copy between them.
SELECT 1;
