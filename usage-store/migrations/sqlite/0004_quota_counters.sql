-- usage-core SQLite schema, version 4: quota usage counters; tags only in the events' JSON.
--
-- A reservation checks every hard quota against its usage so far in the current window, and
-- every commit checks the thresholds again. Summed from rollups, a month of the global budget
-- reads hundreds of cells each time. A counter holds one quota's usage in one calendar (or
-- lifetime) window: it is created from the rollups by the first reservation that needs it,
-- while that reservation holds the write lock, and from then on every insert adds its new
-- events to it in the same transaction. Rolling windows have no counter (their start moves).
-- Counters are only a cache of what the rollups say: a quota change drops its counters, and
-- rebuild, reprice and purge drop them all.
--
-- `subject` is 'global', 'user' or 'tag'; `subject_key` the user id or tag key ('' for
-- global); `subject_value` the tag value ('' otherwise). `amount` is the exact decimal usage
-- in the quota's metric. An insert looks up the counters of its events' subjects by index.
CREATE TABLE quota_counters (
    quota_id      TEXT    NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    subject       TEXT    NOT NULL,
    subject_key   TEXT    NOT NULL,
    subject_value TEXT    NOT NULL,
    metric        TEXT    NOT NULL,
    amount        TEXT    NOT NULL,
    PRIMARY KEY (quota_id, start_ms)
) WITHOUT ROWID;
CREATE INDEX quota_counters_subject ON quota_counters (subject, subject_key, subject_value);

-- `event_tags` held a row per (event, tag) plus an index entry: two more b-trees written at
-- every insert, for raw tag filters only (dashboards read `rollup_tags`). Raw reads now take a
-- tag from the event's canonical JSON through `json_each`.
DROP TABLE event_tags;
