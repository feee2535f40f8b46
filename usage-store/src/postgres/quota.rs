//! Quotas, reservations and alerts for the PostgreSQL backend. `reserve` checks and holds in
//! one transaction under a transaction-scoped advisory lock per quota, which every
//! `commit_reservation` (and `delete_quota`) on the same quotas takes too: the check is
//! serialised across pools, processes and servers sharing the database.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::Row;
use sqlx::Transaction;
use sqlx::postgres::{PgConnection, PgExecutor, PgPool, Postgres};
use usage_core::event::UsageEvent;
use usage_core::query::TimeRange;
use usage_core::quota::Quota;
use usage_core::store::{
    Alert, QuotaStore, QuotaUse, Reservation, ReservationState, ReserveRequest,
};
use usage_core::{Error, Result};

use super::{BACKEND, PgStore, ceil_ms, db_err, insert, query};

/// `pg_advisory_xact_lock` on the key of every id `ids` yields, in ascending key order, so two
/// transactions locking overlapping sets always queue instead of deadlocking (ids whose hashes
/// collide share a lock: harmless, it is re-entrant). The namespace keeps the keys apart from
/// other users of advisory locks (the migration lock among them). The ORDER BY subquery is not
/// flattened, so the locks are taken above the sort, in its order.
fn lock_sql(ids: &str) -> String {
    format!(
        "SELECT pg_advisory_xact_lock(k) FROM ( \
             SELECT DISTINCT hashtextextended('usage-core:quota:' || id, 0) AS k \
             FROM {ids} ORDER BY k) AS keys"
    )
}

/// Locks the quota ids bound as `$1` (a text array).
static LOCK_IDS: LazyLock<String> = LazyLock::new(|| lock_sql("unnest($1::text[]) AS u(id)"));

/// Commits a reservation in ONE statement (one round trip, atomic without an explicit
/// transaction). Parameters: the event arrays ([`insert::Batch::bind`]), then the reservation
/// id and the time (ms).
///
/// In order, each step gated on the one before (a step's CTE is read by the next one's
/// one-time filter, so it runs to completion first; checked with EXPLAIN): the advisory locks of the quotas the
/// reservation holds against (the same a reserve on them takes, so a reserve's reads see all of
/// this commit or none of it, and taken before any row lock, so a commit never waits for a
/// lock while holding a row another waits for); the move from held to committed (a concurrent
/// commit or release makes the UPDATE re-check `state` once that one is done, so exactly one
/// of them wins); the holds dropped; the events inserted, only when this statement committed
/// the reservation. Holds never change quota after they are written, so reading them before
/// the lock is safe.
static COMMIT: LazyLock<String> = LazyLock::new(|| {
    let n = super::columns::EVENT_COLUMNS.len();
    let (id, at) = (format!("${}", n + 1), format!("${}", n + 2));
    format!(
        "WITH locked AS (SELECT count(*) AS n FROM ({lock}) AS l), \
         r AS (UPDATE reservations SET state = 'committed', finished_at_ms = {at} \
               WHERE id = {id} AND state = 'held' AND (SELECT n FROM locked) >= 0 RETURNING id), \
         h AS (UPDATE holds SET active = FALSE \
               WHERE reservation_id IN (SELECT id FROM r) AND active), \
         {ctes} \
         SELECT EXISTS (SELECT 1 FROM r), ARRAY(SELECT id FROM ins)",
        lock = lock_sql(&format!(
            "(SELECT quota_id AS id FROM holds WHERE reservation_id = {id}) AS h"
        )),
        ctes = insert::insert_ctes(&super::columns::insert_sql("EXISTS (SELECT 1 FROM r)")),
    )
});

/// Outstanding holds per quota (`$1` ids, `$2` now in ms): active, expiring after now.
const HELD: &str = "SELECT quota_id, SUM(amount)::text FROM holds \
                    WHERE quota_id = ANY($1::text[]) AND active AND expires_at_ms > $2 \
                    GROUP BY quota_id";

/// Moves reservation `$1` from held to released (at `$2` ms) and drops its holds, in one
/// statement (no transaction needed); says whether it did, and whether the reservation existed
/// when the statement started. A concurrent commit or release makes the UPDATE re-check
/// `state` once that one is done, so exactly one of them wins.
const RELEASE: &str = "WITH r AS ( \
         UPDATE reservations SET state = 'released', finished_at_ms = $2 \
         WHERE id = $1 AND state = 'held' RETURNING id), \
     h AS ( \
         UPDATE holds SET active = FALSE \
         WHERE reservation_id IN (SELECT id FROM r) AND active) \
     SELECT EXISTS (SELECT 1 FROM r), \
            EXISTS (SELECT 1 FROM reservations WHERE id = $1)";

const INSERT_ALERT: &str = "INSERT INTO alerts \
         (quota_id, window_start_ms, threshold, body, at_ms, at_sub_ns) \
     VALUES ($1, $2, $3, $4::jsonb, $5, $6) ON CONFLICT DO NOTHING";

/// Alerts at or after (`$1` ms, `$2` ns within the ms), oldest first, ties in insertion order
/// (as the memory store's stable sort), at most `$3`.
const ALERTS: &str = "SELECT body::text FROM alerts WHERE (at_ms, at_sub_ns) >= ($1, $2) \
                      ORDER BY at_ms, at_sub_ns, seq LIMIT $3";

fn state_name(s: ReservationState) -> &'static str {
    match s {
        ReservationState::Held => "held",
        ReservationState::Committed => "committed",
        ReservationState::Released => "released",
    }
}

fn parse_state(s: &str) -> Result<ReservationState> {
    [
        ReservationState::Held,
        ReservationState::Committed,
        ReservationState::Released,
    ]
    .into_iter()
    .find(|st| state_name(*st) == s)
    .ok_or_else(|| {
        Error::store(
            BACKEND,
            "read",
            format!("reservations.state is `{s}`, not held, committed or released"),
        )
    })
}

/// A NUMERIC read as text.
fn decimal(field: &str, text: &str) -> Result<Decimal> {
    Decimal::from_str_exact(text).map_err(|e| {
        Error::store(
            BACKEND,
            "read",
            format!("{field} is `{text}`, which a Decimal cannot hold exactly: {e}"),
        )
    })
}

/// `(whole ms, ns within the ms)`, flooring: the two order like the instant itself.
fn ms_ns(t: DateTime<Utc>) -> (i64, i32) {
    // Below 1,000,000: fits.
    (
        t.timestamp_millis(),
        (t.timestamp_subsec_nanos() % 1_000_000) as i32,
    )
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        kind: "reservation",
        id: id.to_owned(),
    }
}

/// Takes the advisory locks of `ids` (see [`lock_sql`]).
async fn lock_quotas<'e>(db: impl PgExecutor<'e>, ids: &[String], op: &'static str) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(LOCK_IDS.as_str())
        .bind(ids)
        .execute(db)
        .await
        .map_err(db_err(op))?;
    Ok(())
}

/// The outstanding holds on each of `ids` at `now` (quotas without any are absent).
async fn held_by_quota<'e>(
    db: impl PgExecutor<'e>,
    ids: &[String],
    now: DateTime<Utc>,
    op: &'static str,
) -> Result<HashMap<String, Decimal>> {
    // Stored expiries are rounded up to the ms and `now` is rounded down: a hold the exact
    // comparison counts is always counted (within the same ms a hold may count a little
    // longer, never shorter: the safe side of a limit).
    let rows = sqlx::query(HELD)
        .bind(ids)
        .bind(now.timestamp_millis())
        .fetch_all(db)
        .await
        .map_err(db_err(op))?;
    rows.iter()
        .map(|r| {
            let read = |e| Error::store(BACKEND, "read", e);
            let id: String = r.try_get(0).map_err(read)?;
            let sum: String = r.try_get(1).map_err(read)?;
            Ok((id, decimal("holds.amount", &sum)?))
        })
        .collect()
}

fn overflow(quota: &str) -> Error {
    Error::argument(
        "holds.amount",
        format!("used + held + requested on quota `{quota}` is beyond what a Decimal can hold"),
    )
}

/// Ends a transaction: commits when its work succeeded, and rolls back at once when it failed.
/// A dropped transaction would only roll back when its connection is next touched (by a task
/// the pool spawns), keeping its advisory locks, and the servers waiting on them, until then.
async fn finish<T>(
    tx: Transaction<'_, Postgres>,
    result: Result<T>,
    op: &'static str,
) -> Result<T> {
    match result {
        Ok(v) => {
            tx.commit().await.map_err(db_err(op))?;
            Ok(v)
        }
        Err(e) => {
            // The error that ended the work is the one to report; a connection that cannot
            // even roll back is closed by the pool.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// Deletes quota `id` and drops its outstanding holds, under the quota's lock: a reserve in
/// flight either finishes first (and its hold is dropped here) or starts after (and holds
/// against the quota it brought along itself).
async fn delete_in(db: &mut PgConnection, id: &str) -> Result<bool> {
    const OP: &str = "delete_quota";
    lock_quotas(&mut *db, &[id.to_owned()], OP).await?;
    let deleted = sqlx::query("DELETE FROM quotas WHERE id = $1")
        .bind(id)
        .execute(&mut *db)
        .await
        .map_err(db_err(OP))?
        .rows_affected()
        > 0;
    if deleted {
        sqlx::query("UPDATE holds SET active = FALSE WHERE quota_id = $1 AND active")
            .bind(id)
            .execute(&mut *db)
            .await
            .map_err(db_err(OP))?;
    }
    Ok(deleted)
}

/// `reserve`'s transaction: the quotas locked; then, in one statement, their usage and
/// holds read and the reservation stored; then a commit, or a rollback when a quota refuses.
async fn reserve_in(db: &mut PgConnection, req: &ReserveRequest) -> Result<Reservation> {
    const OP: &str = "reserve";
    let mut ids: Vec<String> = req.holds.iter().map(|h| h.quota.id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    // Locks first: usage and holds are read after every reserve or commit on these quotas that
    // got there before has committed, and nothing on them changes until this one is done.
    lock_quotas(&mut *db, &ids, OP).await?;
    // One row per quota: a quota named twice holds the sum (as the memory store counts both
    // of its holds).
    let mut amounts: Vec<(String, Decimal)> = Vec::with_capacity(ids.len());
    for h in &req.holds {
        match amounts.iter_mut().find(|(q, _)| *q == h.quota.id) {
            Some((_, a)) => {
                *a = a
                    .checked_add(h.amount)
                    .ok_or_else(|| overflow(&h.quota.id))?
            }
            None => amounts.push((h.quota.id.clone(), h.amount)),
        }
    }
    let amounts: Vec<(String, String)> = amounts
        .into_iter()
        .map(|(q, a)| (q, a.to_string()))
        .collect();
    // Usage and holds in one statement, so in one snapshot (a commit that took no lock, an
    // older build's, is counted once, as its hold or as its events), which also stores the
    // reservation: its own holds are not in that snapshot.
    let ranges: Vec<(&Quota, TimeRange)> = req.holds.iter().map(|h| (&h.quota, h.range)).collect();
    let read = query::used_and_held(
        &mut *db,
        &ranges,
        Some(query::HeldAt {
            ids: &ids,
            now_ms: req.now.timestamp_millis(),
        }),
        Some(query::NewReservation {
            id: &req.id,
            created_ms: req.now.timestamp_millis(),
            expires_ms: ceil_ms(req.expires_at),
            holds: &amounts,
        }),
    )
    .await?;
    if !read.stored {
        return Err(Error::argument(
            "reservation",
            format!("`{}` already exists", req.id),
        ));
    }
    let mut uses = Vec::with_capacity(req.holds.len());
    for (h, used) in req.holds.iter().zip(read.used) {
        let held = read.held.get(&h.quota.id).copied().unwrap_or_default();
        let used_held = used
            .checked_add(held)
            .ok_or_else(|| overflow(&h.quota.id))?;
        let total = used_held
            .checked_add(h.amount)
            .ok_or_else(|| overflow(&h.quota.id))?;
        if h.quota.hard && total > h.quota.limit {
            // The caller rolls back: nothing of this reservation stays stored.
            return Err(Error::QuotaExceeded {
                quota: h.quota.id.clone(),
                limit: h.quota.limit,
                used: used_held,
                requested: h.amount,
            });
        }
        uses.push(QuotaUse {
            quota_id: h.quota.id.clone(),
            used,
            held,
            requested: h.amount,
            limit: h.quota.limit,
        });
    }
    Ok(Reservation {
        id: req.id.clone(),
        expires_at: req.expires_at,
        uses,
    })
}

/// `commit_reservation`: one statement, then (only when the reservation was not held) a look
/// at why.
async fn commit(db: &PgPool, id: &str, events: &[UsageEvent]) -> Result<Vec<bool>> {
    const OP: &str = "commit_reservation";
    let batch = insert::Batch::new(events)?;
    let row = batch
        .bind(sqlx::query(COMMIT.as_str()))?
        .bind(id)
        .bind(Utc::now().timestamp_millis())
        .fetch_one(db)
        .await
        .map_err(db_err(OP))?;
    if row.try_get::<bool, _>(0).map_err(db_err(OP))? {
        let inserted: Vec<String> = row.try_get(1).map_err(db_err(OP))?;
        return Ok(batch.stored(&inserted.into_iter().collect()));
    }
    // Not held: a fresh look says why (states never go back to held).
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM reservations WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
        .map_err(db_err(OP))?;
    match state.as_deref().map(parse_state).transpose()? {
        None => Err(not_found(id)),
        Some(ReservationState::Committed) => Ok(vec![false; events.len()]),
        Some(ReservationState::Released) => Err(Error::argument(
            "reservation",
            format!("`{id}` was released; it cannot be committed"),
        )),
        Some(ReservationState::Held) => Err(Error::store(
            BACKEND,
            OP,
            format!("reservation `{id}` is held but could not be marked committed"),
        )),
    }
}

/// Reservations and alerts share the database with the events, so a reservation's check and
/// its commit see the same usage every other server records.
///
/// `delete_quota` drops the deleted quota's outstanding holds (they stop counting in `held` and
/// in later reservations, even if a quota with the same id is put again); the reservations
/// themselves can still be committed or released.
#[async_trait]
impl QuotaStore for PgStore {
    async fn put_quota(&self, quota: &Quota) -> Result<()> {
        quota.validate()?;
        let body =
            serde_json::to_string(quota).map_err(|e| Error::store(BACKEND, "put_quota", e))?;
        sqlx::query(
            "INSERT INTO quotas (id, body, updated_at_ms) VALUES ($1, $2::jsonb, $3) \
             ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, \
             updated_at_ms = EXCLUDED.updated_at_ms",
        )
        .bind(&quota.id)
        .bind(body)
        .bind(Utc::now().timestamp_millis())
        .execute(self.pool("put_quota")?)
        .await
        .map_err(db_err("put_quota"))?;
        Ok(())
    }

    async fn quotas(&self) -> Result<Vec<Quota>> {
        let bodies: Vec<String> = sqlx::query_scalar("SELECT body::text FROM quotas ORDER BY id")
            .fetch_all(self.pool("quotas")?)
            .await
            .map_err(db_err("quotas"))?;
        bodies
            .iter()
            .map(|b| {
                serde_json::from_str(b).map_err(|e| {
                    Error::store(BACKEND, "read", format!("quotas.body is not a quota: {e}"))
                })
            })
            .collect()
    }

    async fn delete_quota(&self, id: &str) -> Result<bool> {
        const OP: &str = "delete_quota";
        let mut tx = self.pool(OP)?.begin().await.map_err(db_err(OP))?;
        let result = delete_in(&mut tx, id).await;
        finish(tx, result, OP).await
    }

    async fn used(&self, quotas: &[(Quota, TimeRange)]) -> Result<Vec<Decimal>> {
        let quotas: Vec<(&Quota, TimeRange)> = quotas.iter().map(|(q, r)| (q, *r)).collect();
        Ok(
            query::used_and_held(self.pool("used")?, &quotas, None, None)
                .await?
                .used,
        )
    }

    async fn held(&self, quota_id: &str, now: DateTime<Utc>) -> Result<Decimal> {
        let held = held_by_quota(self.pool("held")?, &[quota_id.to_owned()], now, "held").await?;
        Ok(held.get(quota_id).copied().unwrap_or_default())
    }

    async fn reserve(&self, req: &ReserveRequest) -> Result<Reservation> {
        const OP: &str = "reserve";
        let mut tx = self.pool(OP)?.begin().await.map_err(db_err(OP))?;
        let result = reserve_in(&mut tx, req).await;
        finish(tx, result, OP).await
    }

    async fn commit_reservation(&self, id: &str, events: &[UsageEvent]) -> Result<Vec<bool>> {
        commit(self.pool("commit_reservation")?, id, events).await
    }

    async fn release_reservation(&self, id: &str) -> Result<bool> {
        const OP: &str = "release_reservation";
        let row = sqlx::query(RELEASE)
            .bind(id)
            .bind(Utc::now().timestamp_millis())
            .fetch_one(self.pool(OP)?)
            .await
            .map_err(db_err(OP))?;
        let read = |e| Error::store(BACKEND, "read", e);
        let released: bool = row.try_get(0).map_err(read)?;
        let exists: bool = row.try_get(1).map_err(read)?;
        if !exists {
            return Err(not_found(id));
        }
        Ok(released)
    }

    async fn insert_alert(&self, alert: &Alert) -> Result<bool> {
        const OP: &str = "insert_alert";
        let body = serde_json::to_string(alert).map_err(|e| Error::store(BACKEND, OP, e))?;
        let (at_ms, at_ns) = ms_ns(alert.at);
        let done = sqlx::query(INSERT_ALERT)
            .bind(&alert.quota_id)
            .bind(alert.window_start.timestamp_millis())
            .bind(&alert.threshold)
            .bind(body)
            .bind(at_ms)
            .bind(at_ns)
            .execute(self.pool(OP)?)
            .await
            .map_err(db_err(OP))?;
        Ok(done.rows_affected() == 1)
    }

    async fn alerts(&self, since: DateTime<Utc>, limit: usize) -> Result<Vec<Alert>> {
        const OP: &str = "alerts";
        let (ms, ns) = ms_ns(since);
        let bodies: Vec<String> = sqlx::query_scalar(ALERTS)
            .bind(ms)
            .bind(ns)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool(OP)?)
            .await
            .map_err(db_err(OP))?;
        bodies
            .iter()
            .map(|b| {
                serde_json::from_str(b).map_err(|e| {
                    Error::store(BACKEND, "read", format!("alerts.body is not an alert: {e}"))
                })
            })
            .collect()
    }
}
