//! The long maintenance runs (`purge`, `rebuild_rollups`, `reprice`) and their records. Each
//! runs as one transaction in batches, reporting progress and checking for cancellation
//! between batches; a cancellation or an error rolls everything back. Every run, whatever its
//! outcome, leaves a `runs` row, written after its transaction.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgPool};
use usage_core::event::UsageEvent;
use usage_core::pricing::PriceCatalog;
use usage_core::query::TimeRange;
use usage_core::store::{RepriceReport, RunKind, RunOptions, RunOutcome, RunRecord};
use usage_core::{Error, Result};

use super::columns::{bind_arrays, event_from_row, reprice_arrays, reprice_sql, select_list};
use super::rollup::{self, HOUR_MS, add_events_sql, add_tags_sql};
use super::{BACKEND, db_err, ms_to_time, range_ms};
use crate::rollups::{DERIVED, EVENTS, refresh_range, refresh_sql};
use crate::rollups::{Deltas, Sums};
use sqlx::AssertSqlSafe;

/// How a run's transaction ended, before its record is written.
struct Ended {
    outcome: RunOutcome,
    rows: u64,
    detail: Option<String>,
}

/// What is known of a run before it ends.
struct Run {
    kind: RunKind,
    range: Option<TimeRange>,
    started_at: DateTime<Utc>,
}

impl Run {
    fn start(kind: RunKind, range: Option<TimeRange>) -> Run {
        Run {
            kind,
            range,
            started_at: Utc::now(),
        }
    }

    /// Writes the run's record; on failure the record says why and the error is returned.
    async fn finish(
        self,
        pool: &PgPool,
        ended: Result<Ended>,
        rows_so_far: u64,
    ) -> Result<RunRecord> {
        let (ended, err) = match ended {
            Ok(e) => (e, None),
            Err(e) => {
                let failed = Ended {
                    outcome: RunOutcome::Failed,
                    rows: rows_so_far,
                    detail: None,
                };
                (failed, Some(e))
            }
        };
        let mut rec = RunRecord {
            id: 0,
            kind: self.kind,
            range: self.range,
            started_at: self.started_at,
            finished_at: Utc::now(),
            rows: ended.rows,
            outcome: ended.outcome,
            error: err.as_ref().map(ToString::to_string),
            detail: ended.detail,
        };
        let written = sqlx::query_scalar::<_, i64>(
            "INSERT INTO runs (kind, range_start_ms, range_end_ms, started_at_ms, finished_at_ms, rows, outcome, error, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(rec.kind.as_str())
        .bind(rec.range.map(|r| r.start.timestamp_millis()))
        .bind(rec.range.map(|r| r.end.timestamp_millis()))
        .bind(rec.started_at.timestamp_millis())
        .bind(rec.finished_at.timestamp_millis())
        .bind(i64::try_from(rec.rows).unwrap_or(i64::MAX))
        .bind(rec.outcome.as_str())
        .bind(rec.error.as_deref())
        .bind(rec.detail.as_deref())
        .fetch_one(pool)
        .await;
        // The run's own error matters more than a failure to record it.
        if let Some(e) = err {
            return Err(e);
        }
        rec.id = written.map_err(db_err("record run"))?;
        Ok(rec)
    }
}

fn check_hour(field: &str, t: DateTime<Utc>) -> Result<()> {
    if t.timestamp_subsec_nanos() != 0 || t.timestamp().rem_euclid(3600) != 0 {
        return Err(Error::argument(
            field,
            format!("{t} is not a whole UTC hour"),
        ));
    }
    Ok(())
}

pub(super) async fn purged_before(pool: &PgPool) -> Result<Option<DateTime<Utc>>> {
    let v: Option<String> =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'purged_before_ms'")
            .fetch_optional(pool)
            .await
            .map_err(db_err("purged_before"))?;
    v.map(|v| {
        let ms = v.parse::<i64>().map_err(|_| {
            Error::store(
                BACKEND,
                "purged_before",
                format!("meta.purged_before_ms is `{v}`"),
            )
        })?;
        ms_to_time(ms)
    })
    .transpose()
}

pub(super) async fn purge(
    pool: &PgPool,
    before: DateTime<Utc>,
    opts: &RunOptions,
) -> Result<RunRecord> {
    check_hour("before", before)?;
    let run = Run::start(RunKind::Purge, None);
    let mut done = 0;
    let ended = purge_tx(pool, before.timestamp_millis(), opts, &mut done).await;
    run.finish(pool, ended, done).await
}

async fn purge_tx(pool: &PgPool, cut: i64, opts: &RunOptions, done: &mut u64) -> Result<Ended> {
    let op = "purge";
    let mut tx = pool.begin().await.map_err(db_err(op))?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE ts_ms < $1")
        .bind(cut)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err(op))?;
    let total = u64::try_from(total).unwrap_or(0);
    let batch = i64::try_from(opts.batch()).unwrap_or(i64::MAX);
    loop {
        if opts.cancelled() {
            tx.rollback().await.map_err(db_err(op))?;
            return Ok(Ended {
                outcome: RunOutcome::Cancelled,
                rows: *done,
                detail: None,
            });
        }
        let n = sqlx::query(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts_ms < $1 LIMIT $2)",
        )
        .bind(cut)
        .bind(batch)
        .execute(&mut *tx)
        .await
        .map_err(db_err(op))?
        .rows_affected();
        *done += n;
        opts.report(*done, Some(total));
        if n < opts.batch() as u64 {
            break;
        }
    }
    if opts.cancelled() {
        tx.rollback().await.map_err(db_err(op))?;
        return Ok(Ended {
            outcome: RunOutcome::Cancelled,
            rows: *done,
            detail: None,
        });
    }
    let reservations = forget_reservations(&mut tx, cut.min(Utc::now().timestamp_millis())).await?;
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES ('purged_before_ms', $1)
         ON CONFLICT (key) DO UPDATE SET value = GREATEST(meta.value::BIGINT, EXCLUDED.value::BIGINT)::TEXT",
    )
    .bind(cut.to_string())
    .execute(&mut *tx)
    .await
    .map_err(db_err(op))?;
    tx.commit().await.map_err(db_err(op))?;
    Ok(Ended {
        outcome: RunOutcome::Succeeded,
        rows: *done,
        detail: Some(format!(
            "deleted {done} raw events and {reservations} reservations that had ended",
            done = *done
        )),
    })
}

/// Deletes the reservations that ended before `cut` (committed or released before it, or still
/// held but expired before it) with their holds; returns how many. The caller caps `cut` at
/// now, so that no outstanding hold goes; commits and releases stamp their end with the app's
/// clock, as `cut` is. The rows are locked first, as a commit or release locks its reservation
/// before its holds, so a concurrent commit of one of them waits (and then finds it gone) or
/// is waited for (and then it ended after the cut, and stays).
async fn forget_reservations(tx: &mut sqlx::PgConnection, cut: i64) -> Result<u64> {
    let op = "purge";
    sqlx::query(
        "SELECT count(*) FROM (SELECT 1 FROM reservations
         WHERE COALESCE(finished_at_ms, expires_at_ms) < $1 FOR UPDATE) AS l",
    )
    .bind(cut)
    .execute(&mut *tx)
    .await
    .map_err(db_err(op))?;
    sqlx::query(
        "DELETE FROM holds WHERE reservation_id IN (SELECT id FROM reservations
         WHERE COALESCE(finished_at_ms, expires_at_ms) < $1)",
    )
    .bind(cut)
    .execute(&mut *tx)
    .await
    .map_err(db_err(op))?;
    let n =
        sqlx::query("DELETE FROM reservations WHERE COALESCE(finished_at_ms, expires_at_ms) < $1")
            .bind(cut)
            .execute(&mut *tx)
            .await
            .map_err(db_err(op))?
            .rows_affected();
    Ok(n)
}

/// Blocks inserts and other maintenance runs until the transaction ends, so the rollups being
/// rewritten cannot change underneath (readers are not blocked). Tables are locked in the order
/// inserts lock them, so this never deadlocks with an insert.
async fn lock_for_rewrite(conn: &mut PgConnection, op: &'static str) -> Result<()> {
    sqlx::raw_sql(
        "LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE; \
         LOCK TABLE rollup_events, rollup_tags, rollup_days, rollup_models, rollup_users, rollup_daily IN EXCLUSIVE MODE",
    )
    .execute(conn)
    .await
    .map_err(db_err(op))?;
    Ok(())
}

/// The range clipped to the purge horizon: rollups before it have no raw events to rebuild from.
fn clip(range: Option<TimeRange>, horizon: Option<DateTime<Utc>>) -> Option<TimeRange> {
    match (range, horizon) {
        (Some(r), Some(h)) => Some(TimeRange {
            start: r.start.max(h),
            end: r.end.max(h),
        }),
        (None, Some(h)) => Some(TimeRange {
            start: h,
            end: DateTime::<Utc>::MAX_UTC,
        }),
        (r, None) => r,
    }
}

/// Events of one rebuild batch: within [`$1`, `$2`) and (`$3`, `$4`) < (ts_ms, id) ≤ (`$5`, `$6`).
const BATCH_WHERE: &str =
    "e.ts_ms >= $1 AND e.ts_ms < $2 AND (e.ts_ms, e.id) > ($3, $4) AND (e.ts_ms, e.id) <= ($5, $6)";

static REBUILD_EVENTS: LazyLock<String> =
    LazyLock::new(|| add_events_sql(&EVENTS, "events e", BATCH_WHERE));
static REBUILD_TAGS: LazyLock<String> = LazyLock::new(|| {
    add_tags_sql(
        "events e CROSS JOIN LATERAL jsonb_each_text(e.tags) AS t(key, value)",
        "t.key",
        "t.value",
        BATCH_WHERE,
    )
});

/// The (ts_ms, id) of the last event of the next batch of `n` after `after`, or `None` when
/// fewer than `n` are left.
async fn batch_end(
    conn: &mut PgConnection,
    (start, end): (i64, i64),
    after: &(i64, String),
    n: usize,
    op: &'static str,
) -> Result<Option<(i64, String)>> {
    let row = sqlx::query(
        "SELECT ts_ms, id FROM events WHERE ts_ms >= $1 AND ts_ms < $2 AND (ts_ms, id) > ($3, $4)
         ORDER BY ts_ms, id OFFSET $5 LIMIT 1",
    )
    .bind(start)
    .bind(end)
    .bind(after.0)
    .bind(after.1.as_str())
    .bind(i64::try_from(n - 1).unwrap_or(i64::MAX))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err(op))?;
    row.map(|r| {
        Ok((
            r.try_get(0).map_err(db_err(op))?,
            r.try_get(1).map_err(db_err(op))?,
        ))
    })
    .transpose()
}

pub(super) async fn rebuild_rollups(
    pool: &PgPool,
    range: Option<TimeRange>,
    opts: &RunOptions,
) -> Result<RunRecord> {
    if let Some(r) = range {
        check_hour("range.start", r.start)?;
        check_hour("range.end", r.end)?;
    }
    let range = clip(range, purged_before(pool).await?);
    let run = Run::start(RunKind::RebuildRollups, range);
    let mut done = 0;
    let ended = rebuild_tx(pool, range, opts, &mut done).await;
    run.finish(pool, ended, done).await
}

async fn rebuild_tx(
    pool: &PgPool,
    range: Option<TimeRange>,
    opts: &RunOptions,
    done: &mut u64,
) -> Result<Ended> {
    let op = "rebuild_rollups";
    let (start, end) = range_ms(range);
    let mut tx = pool.begin().await.map_err(db_err(op))?;
    lock_for_rewrite(&mut tx, op).await?;
    let total: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE ts_ms >= $1 AND ts_ms < $2")
            .bind(start)
            .bind(end)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err(op))?;
    let total = u64::try_from(total).unwrap_or(0);
    for sql in [
        "DELETE FROM rollup_events WHERE hour_ms >= $1 AND hour_ms < $2",
        "DELETE FROM rollup_tags WHERE hour_ms >= $1 AND hour_ms < $2",
    ] {
        sqlx::query(sql)
            .bind(start)
            .bind(end)
            .execute(&mut *tx)
            .await
            .map_err(db_err(op))?;
    }
    // Ids are never empty, so ('', i64::MIN) is before every event.
    let mut after = (i64::MIN, String::new());
    loop {
        if opts.cancelled() {
            tx.rollback().await.map_err(db_err(op))?;
            return Ok(Ended {
                outcome: RunOutcome::Cancelled,
                rows: *done,
                detail: None,
            });
        }
        let last = batch_end(&mut tx, (start, end), &after, opts.batch(), op).await?;
        let upto = last.clone().unwrap_or((i64::MAX, String::new()));
        for sql in [REBUILD_EVENTS.as_str(), REBUILD_TAGS.as_str()] {
            sqlx::query(sql)
                .bind(start)
                .bind(end)
                .bind(after.0)
                .bind(after.1.as_str())
                .bind(upto.0)
                .bind(upto.1.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err(op))?;
        }
        match last {
            Some(l) => {
                *done = (*done + opts.batch() as u64).min(total);
                after = l;
            }
            None => *done = total,
        }
        opts.report(*done, Some(total));
        if *done >= total {
            break;
        }
    }
    if opts.cancelled() {
        tx.rollback().await.map_err(db_err(op))?;
        return Ok(Ended {
            outcome: RunOutcome::Cancelled,
            rows: *done,
            detail: None,
        });
    }
    refresh_derived(&mut tx, start, end, op).await?;
    tx.commit().await.map_err(db_err(op))?;
    Ok(Ended {
        outcome: RunOutcome::Succeeded,
        rows: *done,
        detail: None,
    })
}

/// Recomputes the derived rollups over every period overlapping `[start, end)` from
/// `rollup_events`, after a rebuild or reprice rewrote it there.
async fn refresh_derived(
    conn: &mut PgConnection,
    start: i64,
    end: i64,
    op: &'static str,
) -> Result<()> {
    for t in &DERIVED {
        let (from, to) = refresh_range(t, start, end);
        for sql in refresh_sql(t, "$1", "$2") {
            sqlx::query(AssertSqlSafe(sql))
                .bind(from)
                .bind(to)
                .execute(&mut *conn)
                .await
                .map_err(db_err(op))?;
        }
    }
    Ok(())
}

static REPRICE_UPDATE: LazyLock<String> = LazyLock::new(reprice_sql);

static REPRICE_SCAN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT e.seq, {} FROM events e WHERE e.ts_ms >= $1 AND e.ts_ms < $2 AND (e.ts_ms, e.id) > ($3, $4)
         ORDER BY e.ts_ms, e.id LIMIT $5",
        select_list()
    )
});

pub(super) async fn reprice(
    pool: &PgPool,
    range: Option<TimeRange>,
    catalog: &PriceCatalog,
    dry_run: bool,
    opts: &RunOptions,
) -> Result<(RepriceReport, RunRecord)> {
    let run = Run::start(RunKind::Reprice, range);
    let mut report = RepriceReport {
        dry_run,
        ..Default::default()
    };
    let ended = reprice_tx(pool, range, catalog, opts, &mut report).await;
    let examined = report.examined;
    let rec = run.finish(pool, ended, examined).await?;
    Ok((report, rec))
}

async fn reprice_tx(
    pool: &PgPool,
    range: Option<TimeRange>,
    catalog: &PriceCatalog,
    opts: &RunOptions,
    report: &mut RepriceReport,
) -> Result<Ended> {
    let op = "reprice";
    let (start, end) = range_ms(range);
    let mut tx = pool.begin().await.map_err(db_err(op))?;
    if !report.dry_run {
        lock_for_rewrite(&mut tx, op).await?;
    }
    let total: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE ts_ms >= $1 AND ts_ms < $2")
            .bind(start)
            .bind(end)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err(op))?;
    let total = u64::try_from(total).unwrap_or(0);
    let mut after = (i64::MIN, String::new());
    let cancelled = loop {
        if opts.cancelled() {
            break true;
        }
        let rows = sqlx::query(REPRICE_SCAN.as_str())
            .bind(start)
            .bind(end)
            .bind(after.0)
            .bind(after.1.as_str())
            .bind(i64::try_from(opts.batch()).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err(op))?;
        let mut seqs = Vec::new();
        // (old, new) for each event whose cost changed, with their sums.
        let mut changed: Vec<(UsageEvent, UsageEvent)> = Vec::new();
        let mut sums: Vec<(Sums, Sums)> = Vec::new();
        for row in &rows {
            let seq: i64 = row.try_get("seq").map_err(db_err(op))?;
            let old = event_from_row(row)?;
            report.examined += 1;
            report.old_total += old.total_cost();
            after = (old.timestamp.timestamp_millis(), old.id.as_str().to_owned());
            match old.repriced(catalog) {
                Some(new) => {
                    report.changed += 1;
                    if old.cost.is_none() {
                        report.newly_priced += 1;
                    }
                    report.new_total += new.total_cost();
                    sums.push((Sums::of_event(&old)?, Sums::of_event(&new)?));
                    seqs.push(seq);
                    changed.push((old, new));
                }
                None => {
                    if old.cost.is_none() {
                        report.still_unpriced += 1;
                    }
                    report.new_total += old.total_cost();
                }
            }
        }
        if !report.dry_run && !changed.is_empty() {
            let arrays = reprice_arrays(changed.iter().map(|(_, new)| new))?;
            bind_arrays(sqlx::query(REPRICE_UPDATE.as_str()).bind(seqs), &arrays)
                .execute(&mut *tx)
                .await
                .map_err(db_err(op))?;
            let mut deltas = Deltas::default();
            for ((old, new), (old_sums, new_sums)) in changed.iter().zip(&sums) {
                deltas.add(old, old.timestamp.timestamp_millis(), old_sums, -1);
                deltas.add(new, new.timestamp.timestamp_millis(), new_sums, 1);
            }
            // The derived tables are refreshed from `rollup_events` once the run is done.
            rollup::apply(&mut tx, &deltas, false).await?;
        }
        opts.report(report.examined, Some(total));
        if rows.len() < opts.batch() {
            break opts.cancelled();
        }
    };
    if cancelled {
        tx.rollback().await.map_err(db_err(op))?;
        return Ok(Ended {
            outcome: RunOutcome::Cancelled,
            rows: report.examined,
            detail: None,
        });
    }
    let detail = Some(format!(
        "{} changed; total {} -> {}",
        report.changed, report.old_total, report.new_total
    ));
    if report.dry_run {
        tx.rollback().await.map_err(db_err(op))?;
        return Ok(Ended {
            outcome: RunOutcome::DryRun,
            rows: report.examined,
            detail,
        });
    }
    // A model that resolves differently now moves events to another cell; drop emptied cells.
    let (hour_start, hour_end) = (start.div_euclid(HOUR_MS).saturating_mul(HOUR_MS), end);
    sqlx::query("DELETE FROM rollup_events WHERE requests = 0 AND hour_ms >= $1 AND hour_ms < $2")
        .bind(hour_start)
        .bind(hour_end)
        .execute(&mut *tx)
        .await
        .map_err(db_err(op))?;
    refresh_derived(&mut tx, hour_start, hour_end, op).await?;
    tx.commit().await.map_err(db_err(op))?;
    Ok(Ended {
        outcome: RunOutcome::Succeeded,
        rows: report.examined,
        detail,
    })
}

pub(super) async fn runs(pool: &PgPool, limit: usize) -> Result<Vec<RunRecord>> {
    let rows = sqlx::query(
        "SELECT id, kind, range_start_ms, range_end_ms, started_at_ms, finished_at_ms, rows, outcome, error, detail
         FROM runs ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(db_err("runs"))?;
    rows.iter()
        .map(|r| {
            let get_err = db_err("runs");
            let kind: String = r.try_get("kind").map_err(get_err)?;
            let outcome: String = r.try_get("outcome").map_err(db_err("runs"))?;
            let bad = |what: &str, v: &str| {
                Error::store(BACKEND, "runs", format!("unknown {what} `{v}`"))
            };
            let kind = [RunKind::RebuildRollups, RunKind::Reprice, RunKind::Purge]
                .into_iter()
                .find(|k| k.as_str() == kind)
                .ok_or_else(|| bad("run kind", &kind))?;
            let outcome = [
                RunOutcome::Succeeded,
                RunOutcome::DryRun,
                RunOutcome::Cancelled,
                RunOutcome::Failed,
            ]
            .into_iter()
            .find(|o| o.as_str() == outcome)
            .ok_or_else(|| bad("run outcome", &outcome))?;
            let start: Option<i64> = r.try_get("range_start_ms").map_err(db_err("runs"))?;
            let end: Option<i64> = r.try_get("range_end_ms").map_err(db_err("runs"))?;
            let range = match (start, end) {
                (Some(s), Some(e)) => Some(TimeRange {
                    start: ms_to_time(s)?,
                    end: ms_to_time(e)?,
                }),
                _ => None,
            };
            let rows: i64 = r.try_get("rows").map_err(db_err("runs"))?;
            Ok(RunRecord {
                id: r.try_get("id").map_err(db_err("runs"))?,
                kind,
                range,
                started_at: ms_to_time(r.try_get("started_at_ms").map_err(db_err("runs"))?)?,
                finished_at: ms_to_time(r.try_get("finished_at_ms").map_err(db_err("runs"))?)?,
                rows: u64::try_from(rows).unwrap_or(0),
                outcome,
                error: r.try_get("error").map_err(db_err("runs"))?,
                detail: r.try_get("detail").map_err(db_err("runs"))?,
            })
        })
        .collect()
}
