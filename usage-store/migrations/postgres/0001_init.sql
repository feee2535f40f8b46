-- usage-store PostgreSQL schema, version 1. Column names are the same as the SQLite schema's,
-- so both backends answer every query identically. Money is stored as whole nano-USD
-- (Usd::to_nanos) in BIGINT columns: exact, and summable without floating point. The `meta`
-- table (schema_version, purged_before_ms) is created by the migration runner itself.

-- Raw events. `id` compares bytewise (COLLATE "C") so keyset pagination in (ts_ms, id) order
-- agrees with Rust's String ordering and with the other backends.
CREATE TABLE events (
    seq                 BIGSERIAL PRIMARY KEY,
    id                  TEXT COLLATE "C" NOT NULL UNIQUE,
    ts_ms               BIGINT NOT NULL,
    provider            TEXT NOT NULL,
    model               TEXT NOT NULL,
    model_key           TEXT NOT NULL, -- resolved_model, else model
    resolved_model      TEXT,
    user_id             TEXT,
    input               BIGINT NOT NULL,
    cache_read          BIGINT NOT NULL,
    cache_write_5m      BIGINT NOT NULL,
    cache_write_1h      BIGINT NOT NULL,
    output              BIGINT NOT NULL,
    reasoning           BIGINT NOT NULL,
    web_search_requests BIGINT NOT NULL,
    web_fetch_requests  BIGINT NOT NULL,
    -- nano-USD; all NULL when the event is unpriced
    cost_input          BIGINT,
    cost_cache_read     BIGINT,
    cost_cache_write_5m BIGINT,
    cost_cache_write_1h BIGINT,
    cost_output         BIGINT,
    cost_web_search     BIGINT,
    cost_total          BIGINT,
    cost_source         TEXT NOT NULL,
    unpriced_reason     TEXT,
    catalog_version     TEXT,
    latency_ms          BIGINT,
    duration_ms         BIGINT,
    status              TEXT NOT NULL,
    error_type          TEXT,
    error_message       TEXT,
    service_tier        TEXT NOT NULL,
    speed               TEXT NOT NULL,
    inference_geo       TEXT,
    platform            TEXT,
    deployment          TEXT,
    tags                JSONB NOT NULL
);
CREATE INDEX events_user_ts ON events (user_id, ts_ms);
CREATE INDEX events_ts ON events (ts_ms, id);
CREATE INDEX events_model_ts ON events (model_key, ts_ms);

-- One row per (event, tag), for filtering and grouping by tag values. No FOREIGN KEY on seq:
-- its per-row check cost an eighth of a batch insert, and rows are only ever written with
-- their event (in the same statement) and deleted with it (purge deletes both, in one
-- statement).
CREATE TABLE event_tags (
    seq     BIGINT NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    ts_ms   BIGINT NOT NULL,
    user_id TEXT,
    PRIMARY KEY (seq, key)
);
CREATE INDEX event_tags_kv_ts ON event_tags (key, value, ts_ms);

-- Hourly rollups. hour_ms = floor(ts_ms / 3600000) * 3600000; a missing user is stored as ''
-- (real user ids are never empty) so it can be part of the primary key. Every insert updates
-- the current hour's rows in place: free space on each page (fillfactor) lets those updates
-- be HOT (no index writes, no bloat).
CREATE TABLE rollup_events (
    hour_ms             BIGINT NOT NULL,
    user_id             TEXT NOT NULL,
    provider            TEXT NOT NULL,
    model_key           TEXT NOT NULL,
    status              TEXT NOT NULL,
    requests            BIGINT NOT NULL DEFAULT 0,
    errors              BIGINT NOT NULL DEFAULT 0,
    unpriced            BIGINT NOT NULL DEFAULT 0,
    input               BIGINT NOT NULL DEFAULT 0,
    cache_read          BIGINT NOT NULL DEFAULT 0,
    cache_write_5m      BIGINT NOT NULL DEFAULT 0,
    cache_write_1h      BIGINT NOT NULL DEFAULT 0,
    output              BIGINT NOT NULL DEFAULT 0,
    reasoning           BIGINT NOT NULL DEFAULT 0,
    web_search_requests BIGINT NOT NULL DEFAULT 0,
    web_fetch_requests  BIGINT NOT NULL DEFAULT 0,
    cost_input          BIGINT NOT NULL DEFAULT 0,
    cost_cache_read     BIGINT NOT NULL DEFAULT 0,
    cost_cache_write_5m BIGINT NOT NULL DEFAULT 0,
    cost_cache_write_1h BIGINT NOT NULL DEFAULT 0,
    cost_output         BIGINT NOT NULL DEFAULT 0,
    cost_web_search     BIGINT NOT NULL DEFAULT 0,
    cost_total          BIGINT NOT NULL DEFAULT 0,
    latency_sum_ms      BIGINT NOT NULL DEFAULT 0,
    latency_count       BIGINT NOT NULL DEFAULT 0,
    duration_sum_ms     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour_ms, user_id, provider, model_key, status)
) WITH (fillfactor = 70);
CREATE INDEX rollup_events_user_hour ON rollup_events (user_id, hour_ms);

CREATE TABLE rollup_tags (
    hour_ms             BIGINT NOT NULL,
    key                 TEXT NOT NULL,
    value               TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    requests            BIGINT NOT NULL DEFAULT 0,
    errors              BIGINT NOT NULL DEFAULT 0,
    unpriced            BIGINT NOT NULL DEFAULT 0,
    input               BIGINT NOT NULL DEFAULT 0,
    cache_read          BIGINT NOT NULL DEFAULT 0,
    cache_write_5m      BIGINT NOT NULL DEFAULT 0,
    cache_write_1h      BIGINT NOT NULL DEFAULT 0,
    output              BIGINT NOT NULL DEFAULT 0,
    reasoning           BIGINT NOT NULL DEFAULT 0,
    web_search_requests BIGINT NOT NULL DEFAULT 0,
    web_fetch_requests  BIGINT NOT NULL DEFAULT 0,
    cost_input          BIGINT NOT NULL DEFAULT 0,
    cost_cache_read     BIGINT NOT NULL DEFAULT 0,
    cost_cache_write_5m BIGINT NOT NULL DEFAULT 0,
    cost_cache_write_1h BIGINT NOT NULL DEFAULT 0,
    cost_output         BIGINT NOT NULL DEFAULT 0,
    cost_web_search     BIGINT NOT NULL DEFAULT 0,
    cost_total          BIGINT NOT NULL DEFAULT 0,
    latency_sum_ms      BIGINT NOT NULL DEFAULT 0,
    latency_count       BIGINT NOT NULL DEFAULT 0,
    duration_sum_ms     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour_ms, key, value, user_id)
) WITH (fillfactor = 70);
CREATE INDEX rollup_tags_key_hour ON rollup_tags (key, hour_ms);

-- One row per maintenance run (rebuild_rollups, reprice, purge), whatever its outcome.
CREATE TABLE runs (
    id             BIGSERIAL PRIMARY KEY,
    kind           TEXT NOT NULL,
    range_start_ms BIGINT,
    range_end_ms   BIGINT,
    started_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT NOT NULL,
    rows           BIGINT NOT NULL,
    outcome        TEXT NOT NULL,
    error          TEXT,
    detail         TEXT
);
