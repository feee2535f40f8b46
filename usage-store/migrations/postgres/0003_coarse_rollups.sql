-- usage-core PostgreSQL schema, version 3: coarser rollups for long-range dashboard reads.
--
-- `rollup_events` has one cell per (hour, user, provider, model, status); with thousands of
-- users most cells hold an event or two, so a month's all-user report or a heavy user's
-- month reads hundreds of thousands of cells. Four tables summed from `rollup_events` cells
-- (never from raw events, so they agree with it by construction) cut that:
--   rollup_days:   (UTC day, provider, model, status), for reads of whole days that neither
--                  filter nor group by user or tag;
--   rollup_models: (hour, provider, model, status), for reads that neither filter nor group
--                  by user or tag;
--   rollup_users:  (UTC day, user), for per-user totals, series and rankings of whole days;
--   rollup_daily:  (UTC day, user, provider, model, status), for per-user breakdowns of
--                  whole days.
-- They are maintained in the same transaction as `rollup_events`, rebuilt from it, and
-- verified against raw events like it.

CREATE TABLE rollup_days (
    day_ms              BIGINT NOT NULL,
    provider            TEXT    NOT NULL,
    model_key           TEXT    NOT NULL,
    status              TEXT    NOT NULL,
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
    PRIMARY KEY (day_ms, provider, model_key, status)
);

CREATE TABLE rollup_daily (
    day_ms              BIGINT NOT NULL,
    user_id             TEXT    NOT NULL,
    provider            TEXT    NOT NULL,
    model_key           TEXT    NOT NULL,
    status              TEXT    NOT NULL,
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
    PRIMARY KEY (day_ms, user_id, provider, model_key, status)
);

CREATE TABLE rollup_models (
    hour_ms             BIGINT NOT NULL,
    provider            TEXT    NOT NULL,
    model_key           TEXT    NOT NULL,
    status              TEXT    NOT NULL,
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
    PRIMARY KEY (hour_ms, provider, model_key, status)
);

CREATE TABLE rollup_users (
    day_ms              BIGINT NOT NULL,
    user_id             TEXT    NOT NULL,
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
    PRIMARY KEY (day_ms, user_id)
);

CREATE INDEX rollup_users_user_day ON rollup_users (user_id, day_ms);
CREATE INDEX rollup_daily_user_day ON rollup_daily (user_id, day_ms);

-- Distinct tag values of one user (a user's workflows and instances) without a scan of
-- every user's tag cells.
CREATE INDEX rollup_tags_key_user_hour ON rollup_tags (key, user_id, hour_ms);

-- Existing stores: fill the new tables from the hourly cells.
INSERT INTO rollup_days (day_ms, provider, model_key, status, requests, errors, unpriced, input, cache_read, cache_write_5m, cache_write_1h, output, reasoning, web_search_requests, web_fetch_requests, cost_input, cost_cache_read, cost_cache_write_5m, cost_cache_write_1h, cost_output, cost_web_search, cost_total, latency_sum_ms, latency_count, duration_sum_ms)
SELECT (hour_ms - (((hour_ms % 86400000) + 86400000) % 86400000)), provider, model_key, status, SUM(requests), SUM(errors), SUM(unpriced), SUM(input), SUM(cache_read), SUM(cache_write_5m), SUM(cache_write_1h), SUM(output), SUM(reasoning), SUM(web_search_requests), SUM(web_fetch_requests), SUM(cost_input), SUM(cost_cache_read), SUM(cost_cache_write_5m), SUM(cost_cache_write_1h), SUM(cost_output), SUM(cost_web_search), SUM(cost_total), SUM(latency_sum_ms), SUM(latency_count), SUM(duration_sum_ms)
FROM rollup_events GROUP BY 1, 2, 3, 4;

INSERT INTO rollup_users (day_ms, user_id, requests, errors, unpriced, input, cache_read, cache_write_5m, cache_write_1h, output, reasoning, web_search_requests, web_fetch_requests, cost_input, cost_cache_read, cost_cache_write_5m, cost_cache_write_1h, cost_output, cost_web_search, cost_total, latency_sum_ms, latency_count, duration_sum_ms)
SELECT (hour_ms - (((hour_ms % 86400000) + 86400000) % 86400000)), user_id, SUM(requests), SUM(errors), SUM(unpriced), SUM(input), SUM(cache_read), SUM(cache_write_5m), SUM(cache_write_1h), SUM(output), SUM(reasoning), SUM(web_search_requests), SUM(web_fetch_requests), SUM(cost_input), SUM(cost_cache_read), SUM(cost_cache_write_5m), SUM(cost_cache_write_1h), SUM(cost_output), SUM(cost_web_search), SUM(cost_total), SUM(latency_sum_ms), SUM(latency_count), SUM(duration_sum_ms)
FROM rollup_events GROUP BY 1, 2;

INSERT INTO rollup_daily (day_ms, user_id, provider, model_key, status, requests, errors, unpriced, input, cache_read, cache_write_5m, cache_write_1h, output, reasoning, web_search_requests, web_fetch_requests, cost_input, cost_cache_read, cost_cache_write_5m, cost_cache_write_1h, cost_output, cost_web_search, cost_total, latency_sum_ms, latency_count, duration_sum_ms)
SELECT (hour_ms - (((hour_ms % 86400000) + 86400000) % 86400000)), user_id, provider, model_key, status, SUM(requests), SUM(errors), SUM(unpriced), SUM(input), SUM(cache_read), SUM(cache_write_5m), SUM(cache_write_1h), SUM(output), SUM(reasoning), SUM(web_search_requests), SUM(web_fetch_requests), SUM(cost_input), SUM(cost_cache_read), SUM(cost_cache_write_5m), SUM(cost_cache_write_1h), SUM(cost_output), SUM(cost_web_search), SUM(cost_total), SUM(latency_sum_ms), SUM(latency_count), SUM(duration_sum_ms)
FROM rollup_events GROUP BY 1, 2, 3, 4, 5;

INSERT INTO rollup_models (hour_ms, provider, model_key, status, requests, errors, unpriced, input, cache_read, cache_write_5m, cache_write_1h, output, reasoning, web_search_requests, web_fetch_requests, cost_input, cost_cache_read, cost_cache_write_5m, cost_cache_write_1h, cost_output, cost_web_search, cost_total, latency_sum_ms, latency_count, duration_sum_ms)
SELECT hour_ms, provider, model_key, status, SUM(requests), SUM(errors), SUM(unpriced), SUM(input), SUM(cache_read), SUM(cache_write_5m), SUM(cache_write_1h), SUM(output), SUM(reasoning), SUM(web_search_requests), SUM(web_fetch_requests), SUM(cost_input), SUM(cost_cache_read), SUM(cost_cache_write_5m), SUM(cost_cache_write_1h), SUM(cost_output), SUM(cost_web_search), SUM(cost_total), SUM(latency_sum_ms), SUM(latency_count), SUM(duration_sum_ms)
FROM rollup_events GROUP BY 1, 2, 3, 4;
