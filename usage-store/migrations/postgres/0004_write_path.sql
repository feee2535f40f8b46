-- usage-store PostgreSQL schema, version 4: a cheaper write path.
--
-- events_model_ts: every model read is served by the rollups (rollup_models, rollup_days,
-- rollup_daily and rollup_events all key on model_key), and a raw read by model only covers
-- the ragged edges of a range (under an hour, read through events_ts). The index cost one more
-- b-tree insert per event and was never scanned (pg_stat_user_indexes.idx_scan = 0 after a
-- 2M-event load and the benches).
DROP INDEX IF EXISTS events_model_ts;

-- Every insert updates the current day's (or hour's) cells of the derived rollups in place. With
-- full pages about half of those updates could not stay on their page (not HOT), and so also
-- wrote an entry into every index of the table. Free space on each page, as rollup_events and
-- rollup_tags already have, lets them be HOT. Applies to pages filled from now on: the
-- current periods' cells, which are the ones updated.
ALTER TABLE rollup_days SET (fillfactor = 70);
ALTER TABLE rollup_models SET (fillfactor = 70);
ALTER TABLE rollup_users SET (fillfactor = 70);
ALTER TABLE rollup_daily SET (fillfactor = 70);

-- event_tags held a row per (event, tag) with two index entries: a third of an insert's
-- b-tree work (about a fifth of a batch's time, and half the size of `events` on disk), for
-- raw tag filters only (dashboards read `rollup_tags`). Raw reads now take a tag from the
-- event's JSONB (`tags ->> key`); rebuilds expand it with jsonb_each_text. A raw read filtered
-- by tag scans the events of its time range (or user) instead of the tag's own rows.
DROP TABLE IF EXISTS event_tags;
