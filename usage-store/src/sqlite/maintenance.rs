//! The long runs — purge, rollup rebuild, reprice — each one transaction worked through in
//! batches, with progress reports and cancellation (a rollback) between batches; and the
//! `runs` table that records every run, whatever its outcome.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use usage_core::event::UsageEvent;
use usage_core::pricing::PriceCatalog;
use usage_core::query::TimeRange;
use usage_core::store::{RepriceReport, RunKind, RunOptions, RunOutcome, RunRecord};
use usage_core::{Error, Usd};

use super::codec::{EventRow, TOTALS_COLS, event_from_row, event_select, from_ms, ms};
use super::write::{HOUR_MS, apply, floor_sql, floor_to};
use super::{Fail, counters, ids};
use crate::rollups::Deltas;
use crate::rollups::{DERIVED, refresh_range, refresh_sql};

/// Cell start bounds meaning "all time" (far outside any real timestamp, and safe to round).
pub(super) const ALL_TIME: (i64, i64) = (-(1 << 62), 1 << 62);

/// How a run ended, before it is recorded.
pub(super) struct Done<T> {
    pub outcome: RunOutcome,
    pub rows: u64,
    pub detail: Option<String>,
    pub value: T,
}

/// What a run is about, for its record.
#[derive(Clone, Copy)]
pub(super) struct RunInfo {
    pub kind: RunKind,
    pub range: Option<TimeRange>,
    pub started_at: DateTime<Utc>,
}

fn ms_instant(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms(t)).unwrap_or(t)
}

/// Appends a row to `runs` (its own small transaction) and returns the record as stored.
pub(super) fn record_run(
    conn: &Connection,
    info: RunInfo,
    rows: u64,
    outcome: RunOutcome,
    error: Option<String>,
    detail: Option<String>,
) -> Result<RunRecord, Fail> {
    let started_at = ms_instant(info.started_at);
    let finished_at = ms_instant(Utc::now()).max(started_at);
    let range = info.range.map(|r| TimeRange {
        start: ms_instant(r.start),
        end: ms_instant(r.end),
    });
    conn.prepare_cached(
        "INSERT INTO runs (kind, range_start_ms, range_end_ms, started_at_ms, finished_at_ms, rows, outcome, error, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        info.kind.as_str(),
        range.map(|r| ms(r.start)),
        range.map(|r| ms(r.end)),
        ms(started_at),
        ms(finished_at),
        i64::try_from(rows).unwrap_or(i64::MAX),
        outcome.as_str(),
        error,
        detail,
    ])?;
    Ok(RunRecord {
        id: conn.last_insert_rowid(),
        kind: info.kind,
        range,
        started_at,
        finished_at,
        rows,
        outcome,
        error,
        detail,
    })
}

fn kind_of(s: &str) -> Option<RunKind> {
    [RunKind::RebuildRollups, RunKind::Reprice, RunKind::Purge]
        .into_iter()
        .find(|k| k.as_str() == s)
}

fn outcome_of(s: &str) -> Option<RunOutcome> {
    [
        RunOutcome::Succeeded,
        RunOutcome::DryRun,
        RunOutcome::Cancelled,
        RunOutcome::Failed,
    ]
    .into_iter()
    .find(|o| o.as_str() == s)
}

fn unknown(idx: usize, what: &str, s: &str) -> rusqlite::Error {
    let e = Error::argument(what, format!("`{s}` is not a known value"));
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
}

/// The most recent runs, newest first.
pub(super) fn runs(conn: &Connection, limit: usize) -> Result<Vec<RunRecord>, Fail> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, range_start_ms, range_end_ms, started_at_ms, finished_at_ms, rows, outcome, error, detail
         FROM runs ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
        let kind: String = r.get(1)?;
        let outcome: String = r.get(7)?;
        let start: Option<i64> = r.get(2)?;
        let end: Option<i64> = r.get(3)?;
        let range = match (start, end) {
            (Some(s), Some(e)) => Some(TimeRange {
                start: from_ms(s)?,
                end: from_ms(e)?,
            }),
            _ => None,
        };
        Ok(RunRecord {
            id: r.get(0)?,
            kind: kind_of(&kind).ok_or_else(|| unknown(1, "kind", &kind))?,
            range,
            started_at: from_ms(r.get(4)?)?,
            finished_at: from_ms(r.get(5)?)?,
            rows: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
            outcome: outcome_of(&outcome).ok_or_else(|| unknown(7, "outcome", &outcome))?,
            error: r.get(8)?,
            detail: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The purge horizon in ms, from `meta`.
pub(super) fn purged_before_ms(conn: &Connection) -> Result<Option<i64>, Fail> {
    let v: Option<Option<String>> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'purged_before_ms'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    match v.flatten() {
        None => Ok(None),
        Some(s) => s.trim().parse::<i64>().map(Some).map_err(|e| {
            Fail::Core(Error::store(
                "sqlite",
                "read meta",
                format!("meta purged_before_ms `{s}` is not a number: {e}"),
            ))
        }),
    }
}

fn count(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<u64, Fail> {
    let n: i64 = conn.prepare_cached(sql)?.query_row(p, |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn cancelled<T>(rows: u64, total: u64, value: T) -> Done<T> {
    Done {
        outcome: RunOutcome::Cancelled,
        rows,
        detail: Some(format!(
            "cancelled after {rows} of {total} rows; everything was rolled back"
        )),
        value,
    }
}

/// Deletes raw events before `before_ms` (rollups stay) and the reservations that ended
/// before it, and moves the purge horizon.
pub(super) fn purge(
    conn: &mut Connection,
    before_ms: i64,
    opts: &RunOptions,
) -> Result<Done<()>, Fail> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let total = count(
        &tx,
        "SELECT COUNT(*) FROM events WHERE ts_ms < ?1",
        [before_ms],
    )?;
    let batch = i64::try_from(opts.batch()).unwrap_or(i64::MAX);
    let mut done = 0u64;
    loop {
        if opts.cancelled() {
            return Ok(cancelled(done, total, ()));
        }
        // The batch's id hashes first, then its events: the three statements pick the same
        // events (the `events_ts` index orders them by time, then sequence number).
        for table in ["event_ids", "event_ids_recent"] {
            tx.prepare_cached(&format!(
                "DELETE FROM {table} WHERE (h, seq) IN (SELECT {}(id), seq FROM events WHERE ts_ms < ?1 ORDER BY ts_ms, seq LIMIT ?2)",
                ids::SQL_FUNCTION
            ))?
            .execute(params![before_ms, batch])?;
        }
        let n = tx
            .prepare_cached("DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts_ms < ?1 ORDER BY ts_ms, seq LIMIT ?2)")?
            .execute(params![before_ms, batch])?;
        if n == 0 {
            break;
        }
        done += n as u64;
        opts.report(done, Some(total));
    }
    let reservations = forget_reservations(&tx, before_ms.min(ms(Utc::now())))?;
    let horizon = purged_before_ms(&tx)?.map_or(before_ms, |old| old.max(before_ms));
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('purged_before_ms', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [horizon.to_string()],
    )?;
    counters::drop_all(&tx)?;
    tx.commit()?;
    let horizon = from_ms(horizon)?;
    Ok(Done {
        outcome: RunOutcome::Succeeded,
        rows: done,
        detail: Some(format!(
            "deleted {done} raw events and {reservations} reservations that had ended; raw events now start at {}",
            horizon.to_rfc3339()
        )),
        value: (),
    })
}

/// Deletes the reservations that ended before `cut_ms` (at most now, so that no outstanding
/// hold goes): committed or released before it, or still held but expired before it (with
/// their holds, which no longer count). Returns how many. Both tables are scanned: this runs
/// once per purge, not per write, and an index on the end would cost every reserve and
/// commit a page.
fn forget_reservations(tx: &Connection, cut_ms: i64) -> Result<u64, Fail> {
    // A hold row exists only while its reservation is held, so these are exactly the holds
    // of the held reservations deleted below.
    tx.prepare_cached("DELETE FROM holds WHERE expires_at_ms < ?1")?
        .execute([cut_ms])?;
    let n = tx
        .prepare_cached(
            "DELETE FROM reservations WHERE COALESCE(finished_at_ms, expires_at_ms) < ?1",
        )?
        .execute([cut_ms])?;
    Ok(n as u64)
}

/// The statements that add the rollups of the raw events in `[?1, ?2)`.
fn rebuild_sql() -> (String, String) {
    let sums = |prefix: &str| {
        [
            "COUNT(*)".to_owned(),
            format!("SUM({prefix}status = 'error')"),
            format!("SUM({prefix}cost_total IS NULL)"),
        ]
        .into_iter()
        .chain(
            [
                "input",
                "cache_read",
                "cache_write_5m",
                "cache_write_1h",
                "output",
                "reasoning",
                "web_search_requests",
                "web_fetch_requests",
                "cost_input",
                "cost_cache_read",
                "cost_cache_write_5m",
                "cost_cache_write_1h",
                "cost_output",
                "cost_web_search",
                "cost_total",
                "latency_ms",
            ]
            .iter()
            .map(|c| format!("COALESCE(SUM({prefix}{c}), 0)")),
        )
        .chain([
            format!("COUNT({prefix}latency_ms)"),
            format!("COALESCE(SUM({prefix}duration_ms), 0)"),
        ])
        .collect::<Vec<_>>()
        .join(", ")
    };
    let sets = TOTALS_COLS
        .iter()
        .map(|c| format!("{c} = {c} + excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let cols = TOTALS_COLS.join(", ");
    let time = "hour_ms";
    // `WHERE` before `ON CONFLICT` also keeps SQLite's upsert parser unambiguous.
    let events = format!(
        "INSERT INTO {t} ({time}, user_id, provider, model_key, status, {cols})
         SELECT {hour}, COALESCE(user_id, ''), provider, model_key, status, {sums}
         FROM events WHERE ts_ms >= ?1 AND ts_ms < ?2 GROUP BY 1, 2, 3, 4, 5
         ON CONFLICT ({time}, user_id, provider, model_key, status) DO UPDATE SET {sets}",
        t = "rollup_events",
        hour = floor_sql("ts_ms", HOUR_MS),
        sums = sums(""),
    );
    let tags = format!(
        "INSERT INTO {t} ({time}, key, value, user_id, {cols})
         SELECT {hour}, g.key, g.value, COALESCE(e.user_id, ''), {sums}
         FROM events e, json_each(e.tags) g
         WHERE e.ts_ms >= ?1 AND e.ts_ms < ?2 GROUP BY 1, 2, 3, 4
         ON CONFLICT ({time}, key, value, user_id) DO UPDATE SET {sets}",
        t = "rollup_tags",
        hour = floor_sql("e.ts_ms", HOUR_MS),
        sums = sums("e."),
    );
    (events, tags)
}

/// Recomputes the rollups of `range` (whole hours; all time when `None`) from raw events,
/// never before the purge horizon.
pub(super) fn rebuild(
    conn: &mut Connection,
    range: Option<(i64, i64)>,
    opts: &RunOptions,
) -> Result<Done<()>, Fail> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (asked_start, end) = range.unwrap_or(ALL_TIME);
    let horizon = purged_before_ms(&tx)?;
    let start = horizon.map_or(asked_start, |h| asked_start.max(h));
    let clipped = start > asked_start;
    if start >= end {
        return Ok(Done {
            outcome: RunOutcome::Succeeded,
            rows: 0,
            detail: Some("nothing to rebuild: the range ends before the purge horizon".into()),
            value: (),
        });
    }
    let (events_sql, tags_sql) = rebuild_sql();
    tx.execute(
        "DELETE FROM rollup_events WHERE hour_ms >= ?1 AND hour_ms < ?2",
        [start, end],
    )?;
    tx.execute(
        "DELETE FROM rollup_tags WHERE hour_ms >= ?1 AND hour_ms < ?2",
        [start, end],
    )?;
    let total = count(
        &tx,
        "SELECT COUNT(*) FROM events WHERE ts_ms >= ?1 AND ts_ms < ?2",
        [start, end],
    )?;
    let batch = i64::try_from(opts.batch()).unwrap_or(i64::MAX);
    let (mut cur, mut done) = (start, 0u64);
    loop {
        if opts.cancelled() {
            return Ok(cancelled(done, total, ()));
        }
        if cur >= end {
            break;
        }
        // The next chunk ends where the next `batch` events (in time order) end. Cells
        // split across chunks add up, since every write is an additive upsert.
        let boundary: Option<i64> = tx
            .prepare_cached("SELECT ts_ms FROM events WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY ts_ms LIMIT 1 OFFSET ?3")?
            .query_row(params![cur, end, batch], |r| r.get(0))
            .optional()?;
        let next = match boundary {
            None => end,
            Some(b) if b > cur => b,
            Some(_) => cur + 1,
        };
        let n = count(
            &tx,
            "SELECT COUNT(*) FROM events WHERE ts_ms >= ?1 AND ts_ms < ?2",
            [cur, next],
        )?;
        tx.prepare_cached(&events_sql)?.execute([cur, next])?;
        tx.prepare_cached(&tags_sql)?.execute([cur, next])?;
        done += n;
        cur = next;
        opts.report(done, Some(total));
    }
    for t in &DERIVED {
        let (from, to) = refresh_range(t, start, end);
        for sql in refresh_sql(t, "?1", "?2") {
            tx.prepare_cached(&sql)?.execute([from, to])?;
        }
    }
    counters::drop_all(&tx)?;
    tx.commit()?;
    let mut detail = format!("rebuilt the rollups from {done} raw events");
    if clipped && let Some(h) = horizon {
        detail.push_str(&format!(
            "; started at the purge horizon {} (older raw events are gone)",
            from_ms(h)?.to_rfc3339()
        ));
    }
    Ok(Done {
        outcome: RunOutcome::Succeeded,
        rows: done,
        detail: Some(detail),
        value: (),
    })
}

/// Reprices events in `range` (ms, half-open) under `catalog`. With `dry_run` nothing is
/// written (the connection may be a read-only one).
pub(super) fn reprice(
    conn: &mut Connection,
    range: Option<(i64, i64)>,
    catalog: &PriceCatalog,
    dry_run: bool,
    opts: &RunOptions,
) -> Result<Done<RepriceReport>, Fail> {
    let behavior = if dry_run {
        TransactionBehavior::Deferred
    } else {
        TransactionBehavior::Immediate
    };
    let tx = conn.transaction_with_behavior(behavior)?;
    let (start, end) = range.unwrap_or(ALL_TIME);
    let total = count(
        &tx,
        "SELECT COUNT(*) FROM events WHERE ts_ms >= ?1 AND ts_ms < ?2",
        [start, end],
    )?;
    let batch = i64::try_from(opts.batch()).unwrap_or(i64::MAX);
    let select = format!(
        "SELECT {}, e.seq FROM events e
         WHERE e.ts_ms >= ?1 AND e.ts_ms < ?2 AND (e.ts_ms > ?3 OR (e.ts_ms = ?3 AND e.seq > ?4))
         ORDER BY e.ts_ms, e.seq LIMIT ?5",
        event_select()
    );
    let update = "UPDATE events SET resolved_model = ?1, model_key = ?2, cost_input = ?3, cost_cache_read = ?4,
        cost_cache_write_5m = ?5, cost_cache_write_1h = ?6, cost_output = ?7, cost_web_search = ?8, cost_total = ?9,
        cost_source = ?10, unpriced_reason = ?11, catalog_version = ?12 WHERE seq = ?13";
    let mut report = RepriceReport {
        dry_run,
        ..Default::default()
    };
    let (mut old_total, mut new_total) = (0i128, 0i128);
    let (mut after_ts, mut after_seq) = (i64::MIN, i64::MIN);
    loop {
        if opts.cancelled() {
            report.old_total = Usd::from_nanos(old_total);
            report.new_total = Usd::from_nanos(new_total);
            return Ok(cancelled(report.examined, total, report));
        }
        let batch_events: Vec<(UsageEvent, i64)> = tx
            .prepare_cached(&select)?
            .query_map(params![start, end, after_ts, after_seq, batch], |r| {
                Ok((event_from_row(r, 0)?, r.get(36)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let Some((last, last_seq)) = batch_events.last() else {
            break;
        };
        (after_ts, after_seq) = (ms(last.timestamp), *last_seq);

        let repriced: Vec<Option<UsageEvent>> = batch_events
            .iter()
            .map(|(e, _)| e.repriced(catalog))
            .collect();
        let mut deltas = Deltas::default();
        for ((old, seq), new) in batch_events.iter().zip(&repriced) {
            let old_row = EventRow::new(old)?;
            report.examined += 1;
            old_total += i128::from(old_row.sums.0[17]);
            let Some(new) = new else {
                new_total += i128::from(old_row.sums.0[17]);
                report.still_unpriced += u64::from(old.cost.is_none());
                continue;
            };
            let new_row = EventRow::new(new)?;
            new_total += i128::from(new_row.sums.0[17]);
            report.changed += 1;
            report.newly_priced += u64::from(old.cost.is_none() && new.cost.is_some());
            report.still_unpriced += u64::from(new.cost.is_none());
            if !dry_run {
                let c = new_row.cost;
                let cost = |i: usize| c.map(|c| c[i]);
                tx.prepare_cached(update)?.execute(params![
                    new.resolved_model,
                    new.model_key(),
                    cost(0),
                    cost(1),
                    cost(2),
                    cost(3),
                    cost(4),
                    cost(5),
                    cost(6),
                    new.cost_source.as_str(),
                    new.unpriced_reason,
                    new.catalog_version,
                    seq,
                ])?;
                deltas.add(old, old_row.ts_ms, &old_row.sums, -1);
                deltas.add(new, new_row.ts_ms, &new_row.sums, 1);
            }
        }
        if !dry_run {
            apply(&deltas.cells(), &tx)?;
        }
        opts.report(report.examined, Some(total));
    }
    report.old_total = Usd::from_nanos(old_total);
    report.new_total = Usd::from_nanos(new_total);
    if !dry_run {
        counters::drop_all(&tx)?;
        tx.commit()?;
    }
    let detail = format!(
        "examined {}, changed {}, newly priced {}, still unpriced {}; total {} -> {} USD",
        report.examined,
        report.changed,
        report.newly_priced,
        report.still_unpriced,
        report.old_total,
        report.new_total
    );
    let outcome = if dry_run {
        RunOutcome::DryRun
    } else {
        RunOutcome::Succeeded
    };
    Ok(Done {
        outcome,
        rows: report.examined,
        detail: Some(detail),
        value: report,
    })
}

/// Checks that `t` is a whole UTC hour (what rollups and the purge horizon are made of).
pub(super) fn whole_hour(field: &str, t: DateTime<Utc>) -> usage_core::Result<i64> {
    let m = ms(t);
    if t.timestamp_subsec_nanos() != 0 || floor_to(m, HOUR_MS) != m {
        return Err(Error::argument(
            field,
            format!("{} is not a whole UTC hour", t.to_rfc3339()),
        ));
    }
    Ok(m)
}
