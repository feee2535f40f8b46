-- usage-core SQLite schema, version 1. Applied by usage-store inside one transaction; the
-- PostgreSQL schema mirrors these tables and column names.
--
-- Money is stored as whole nano-USD (1e-9 USD) integers; timestamps as Unix milliseconds (UTC).

-- Bookkeeping: schema_version, purged_before_ms.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);

-- One row per recorded call. `model_key` is resolved_model, else model: what queries group by.
-- The cost columns are all NULL when the event is unpriced.
CREATE TABLE events (
    seq                 INTEGER PRIMARY KEY,
    id                  TEXT    NOT NULL UNIQUE,
    ts_ms               INTEGER NOT NULL,
    provider            TEXT    NOT NULL,
    model               TEXT    NOT NULL,
    model_key           TEXT    NOT NULL,
    resolved_model      TEXT,
    user_id             TEXT,
    input               INTEGER NOT NULL,
    cache_read          INTEGER NOT NULL,
    cache_write_5m      INTEGER NOT NULL,
    cache_write_1h      INTEGER NOT NULL,
    output              INTEGER NOT NULL,
    reasoning           INTEGER NOT NULL,
    web_search_requests INTEGER NOT NULL,
    web_fetch_requests  INTEGER NOT NULL,
    cost_input          INTEGER,
    cost_cache_read     INTEGER,
    cost_cache_write_5m INTEGER,
    cost_cache_write_1h INTEGER,
    cost_output         INTEGER,
    cost_web_search     INTEGER,
    cost_total          INTEGER,
    cost_source         TEXT    NOT NULL,
    unpriced_reason     TEXT,
    catalog_version     TEXT,
    latency_ms          INTEGER,
    duration_ms         INTEGER,
    status              TEXT    NOT NULL,
    error_type          TEXT,
    error_message       TEXT,
    service_tier        TEXT    NOT NULL,
    speed               TEXT    NOT NULL,
    inference_geo       TEXT,
    platform            TEXT,
    deployment          TEXT,
    tags                TEXT    NOT NULL -- canonical JSON object (keys sorted)
);
CREATE INDEX events_user_ts  ON events (user_id, ts_ms);
CREATE INDEX events_ts       ON events (ts_ms);
CREATE INDEX events_model_ts ON events (model_key, ts_ms);

-- The tags of each event, one row per key, for filtering and grouping by tag.
CREATE TABLE event_tags (
    seq     INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    key     TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    ts_ms   INTEGER NOT NULL,
    user_id TEXT,
    PRIMARY KEY (seq, key)
) WITHOUT ROWID;
CREATE INDEX event_tags_key_value_ts ON event_tags (key, value, ts_ms);

-- Hourly rollups (hour_ms = floor(ts_ms / 3600000) * 3600000). A missing user is stored as ''
-- (user ids are never empty). Maintained in the same transaction as the events they sum, and
-- kept when raw events are purged.
CREATE TABLE rollup_events (
    hour_ms             INTEGER NOT NULL,
    user_id             TEXT    NOT NULL,
    provider            TEXT    NOT NULL,
    model_key           TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    requests            INTEGER NOT NULL DEFAULT 0,
    errors              INTEGER NOT NULL DEFAULT 0,
    unpriced            INTEGER NOT NULL DEFAULT 0,
    input               INTEGER NOT NULL DEFAULT 0,
    cache_read          INTEGER NOT NULL DEFAULT 0,
    cache_write_5m      INTEGER NOT NULL DEFAULT 0,
    cache_write_1h      INTEGER NOT NULL DEFAULT 0,
    output              INTEGER NOT NULL DEFAULT 0,
    reasoning           INTEGER NOT NULL DEFAULT 0,
    web_search_requests INTEGER NOT NULL DEFAULT 0,
    web_fetch_requests  INTEGER NOT NULL DEFAULT 0,
    cost_input          INTEGER NOT NULL DEFAULT 0,
    cost_cache_read     INTEGER NOT NULL DEFAULT 0,
    cost_cache_write_5m INTEGER NOT NULL DEFAULT 0,
    cost_cache_write_1h INTEGER NOT NULL DEFAULT 0,
    cost_output         INTEGER NOT NULL DEFAULT 0,
    cost_web_search     INTEGER NOT NULL DEFAULT 0,
    cost_total          INTEGER NOT NULL DEFAULT 0,
    latency_sum_ms      INTEGER NOT NULL DEFAULT 0,
    latency_count       INTEGER NOT NULL DEFAULT 0,
    duration_sum_ms     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour_ms, user_id, provider, model_key, status)
) WITHOUT ROWID;

CREATE TABLE rollup_tags (
    hour_ms             INTEGER NOT NULL,
    key                 TEXT    NOT NULL,
    value               TEXT    NOT NULL,
    user_id             TEXT    NOT NULL,
    requests            INTEGER NOT NULL DEFAULT 0,
    errors              INTEGER NOT NULL DEFAULT 0,
    unpriced            INTEGER NOT NULL DEFAULT 0,
    input               INTEGER NOT NULL DEFAULT 0,
    cache_read          INTEGER NOT NULL DEFAULT 0,
    cache_write_5m      INTEGER NOT NULL DEFAULT 0,
    cache_write_1h      INTEGER NOT NULL DEFAULT 0,
    output              INTEGER NOT NULL DEFAULT 0,
    reasoning           INTEGER NOT NULL DEFAULT 0,
    web_search_requests INTEGER NOT NULL DEFAULT 0,
    web_fetch_requests  INTEGER NOT NULL DEFAULT 0,
    cost_input          INTEGER NOT NULL DEFAULT 0,
    cost_cache_read     INTEGER NOT NULL DEFAULT 0,
    cost_cache_write_5m INTEGER NOT NULL DEFAULT 0,
    cost_cache_write_1h INTEGER NOT NULL DEFAULT 0,
    cost_output         INTEGER NOT NULL DEFAULT 0,
    cost_web_search     INTEGER NOT NULL DEFAULT 0,
    cost_total          INTEGER NOT NULL DEFAULT 0,
    latency_sum_ms      INTEGER NOT NULL DEFAULT 0,
    latency_count       INTEGER NOT NULL DEFAULT 0,
    duration_sum_ms     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour_ms, key, value, user_id)
) WITHOUT ROWID;

-- One row per maintenance run (rebuild_rollups, reprice, purge), whatever its outcome.
CREATE TABLE runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT    NOT NULL,
    range_start_ms INTEGER,
    range_end_ms   INTEGER,
    started_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER NOT NULL,
    rows           INTEGER NOT NULL,
    outcome        TEXT    NOT NULL,
    error          TEXT,
    detail         TEXT
);
