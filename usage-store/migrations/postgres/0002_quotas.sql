-- usage-store PostgreSQL schema, version 2: quotas, reservations (with their holds) and alerts.
-- Amounts are NUMERIC, written and read as text, so they round-trip rust_decimal exactly.
-- Instants are Unix milliseconds, like events.ts_ms.

-- A quota is stored whole, as serde writes it (decimals as strings, so exact).
CREATE TABLE quotas (
    id            TEXT COLLATE "C" PRIMARY KEY,
    body          JSONB NOT NULL,
    updated_at_ms BIGINT
);

-- created_at_ms is the request's `now`; finished_at_ms is the server's clock when the
-- reservation was committed or released. Rows are kept (they make commit and release
-- idempotent).
CREATE TABLE reservations (
    id             TEXT PRIMARY KEY,
    state          TEXT NOT NULL CHECK (state IN ('held', 'committed', 'released')),
    created_at_ms  BIGINT,
    expires_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT
);

-- One row per (reservation, quota). `active` is true while the reservation is held and the
-- quota has not been deleted since; expires_at_ms is the reservation's, copied here (rounded up
-- to the millisecond) so the sum of outstanding holds is one index range read.
CREATE TABLE holds (
    reservation_id TEXT NOT NULL REFERENCES reservations (id),
    quota_id       TEXT NOT NULL,
    amount         NUMERIC NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    active         BOOLEAN NOT NULL,
    PRIMARY KEY (reservation_id, quota_id)
);
CREATE INDEX holds_active_quota ON holds (quota_id, expires_at_ms) INCLUDE (amount) WHERE active;

-- One alert per (quota, window start, threshold): the primary key makes a second notice a
-- no-op, whichever server sends it. at_ms and at_sub_ns are the alert's instant to the
-- nanosecond (the body has it too), and seq the order of insertion, so `alerts` filters and
-- orders exactly like the other backends.
CREATE TABLE alerts (
    quota_id        TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    threshold       TEXT NOT NULL,
    body            JSONB NOT NULL,
    at_ms           BIGINT NOT NULL,
    at_sub_ns       INTEGER NOT NULL,
    seq             BIGSERIAL,
    PRIMARY KEY (quota_id, window_start_ms, threshold)
);
CREATE INDEX alerts_at ON alerts (at_ms, at_sub_ns, seq);
