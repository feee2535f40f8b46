-- usage-core SQLite schema, version 6: fewer pages written per reserve and commit.
--
-- Counting the WAL frames of reserve + commit cycles showed a reserve writing four pages
-- (the reservation row, its id index, the hold rows and their partial index of active holds)
-- and a commit three more besides the event's own (the reservation row, the holds, the
-- index). Each page is a WAL frame: two `pwrite` calls, a third of a cycle's time together.
--
-- `reservations` is keyed by its id (no separate index) and names the quotas it holds, so
-- that finishing it can find its holds by their key. A hold is stored only while it is
-- outstanding: committing, releasing or deleting its quota deletes it (it used to stay,
-- marked inactive). `holds` is keyed as it is read, by quota and expiry, so summing a quota's
-- outstanding holds reads one range and skips the expired ones.

CREATE TABLE reservations_v6 (
    id                 TEXT    PRIMARY KEY,
    state              TEXT    NOT NULL CHECK (state IN ('held', 'committed', 'released')),
    created_at_ms      INTEGER NOT NULL,
    expires_at_ms      INTEGER NOT NULL,
    expires_at_frac_ns INTEGER NOT NULL,
    finished_at_ms     INTEGER,
    -- The ids of the quotas the reservation was made against, as a JSON array of strings.
    quota_ids          TEXT    NOT NULL
) WITHOUT ROWID;

INSERT INTO reservations_v6
    (id, state, created_at_ms, expires_at_ms, expires_at_frac_ns, finished_at_ms, quota_ids)
SELECT r.id, r.state, r.created_at_ms, r.expires_at_ms, r.expires_at_frac_ns, r.finished_at_ms,
       (SELECT json_group_array(h.quota_id) FROM holds h WHERE h.reservation_id = r.id)
FROM reservations r;

CREATE TABLE holds_v6 (
    quota_id           TEXT    NOT NULL,
    expires_at_ms      INTEGER NOT NULL,
    expires_at_frac_ns INTEGER NOT NULL,
    reservation_id     TEXT    NOT NULL,
    amount             TEXT    NOT NULL, -- exact decimal
    PRIMARY KEY (quota_id, expires_at_ms, expires_at_frac_ns, reservation_id)
) WITHOUT ROWID;

INSERT INTO holds_v6 (quota_id, expires_at_ms, expires_at_frac_ns, reservation_id, amount)
SELECT quota_id, expires_at_ms, expires_at_frac_ns, reservation_id, amount
FROM holds WHERE active = 1;

DROP TABLE holds;
DROP TABLE reservations;
ALTER TABLE reservations_v6 RENAME TO reservations;
ALTER TABLE holds_v6 RENAME TO holds;
