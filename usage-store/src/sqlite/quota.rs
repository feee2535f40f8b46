//! Quotas, reservations and alerts for the SQLite backend. A reservation is checked and stored
//! in one `BEGIN IMMEDIATE` transaction on the writer connection, which holds the file's write
//! lock from the first read of usage to the last hold written: that serialises every reserve
//! and commit across threads and processes sharing the file.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use rust_decimal::Decimal;
use usage_core::event::UsageEvent;
use usage_core::query::TimeRange;
use usage_core::quota::Quota;
use usage_core::store::{
    Alert, QuotaStore, QuotaUse, Reservation, ReservationState, ReserveRequest,
};
use usage_core::{Error, Result};

use super::codec::ms;
use super::{Fail, SqliteStore, counters, write};

/// An instant as (Unix ms, nanoseconds past that ms), ordered exactly as the instant.
fn split(t: DateTime<Utc>) -> (i64, i64) {
    (ms(t), i64::from(t.timestamp_subsec_nanos() % 1_000_000))
}

fn state_name(s: ReservationState) -> &'static str {
    match s {
        ReservationState::Held => "held",
        ReservationState::Committed => "committed",
        ReservationState::Released => "released",
    }
}

fn bad_text(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, Fail> {
    serde_json::to_string(v)
        .map_err(|e| Fail::Sql(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> rusqlite::Result<T> {
    serde_json::from_str(s).map_err(bad_text)
}

/// A stored reservation: its state, and what finishing it needs to find its holds.
struct Stored {
    state: ReservationState,
    expires: (i64, i64),
    quota_ids: String,
}

fn stored_reservation(conn: &Connection, id: &str) -> Result<Stored, Fail> {
    let row: Option<(String, i64, i64, String)> = conn
        .prepare_cached(
            "SELECT state, expires_at_ms, expires_at_frac_ns, quota_ids FROM reservations
             WHERE id = ?1",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((state, exp_ms, exp_ns, quota_ids)) = row else {
        return Err(Error::NotFound {
            kind: "reservation",
            id: id.to_owned(),
        }
        .into());
    };
    let state = match state.as_str() {
        "held" => ReservationState::Held,
        "committed" => ReservationState::Committed,
        "released" => ReservationState::Released,
        other => {
            return Err(Fail::Sql(bad_text(Error::argument(
                "reservations.state",
                format!("`{other}` is not a reservation state"),
            ))));
        }
    };
    Ok(Stored {
        state,
        expires: (exp_ms, exp_ns),
        quota_ids,
    })
}

/// Marks a held reservation committed or released and deletes its holds, each by its key.
fn finish(conn: &Connection, id: &str, r: &Stored, to: ReservationState) -> Result<(), Fail> {
    conn.prepare_cached(
        "UPDATE reservations SET state = ?2, finished_at_ms = ?3 WHERE id = ?1 AND state = 'held'",
    )?
    .execute(params![id, state_name(to), ms(Utc::now())])?;
    let quota_ids: Vec<String> = from_json(&r.quota_ids)?;
    let mut delete = conn.prepare_cached(
        "DELETE FROM holds WHERE quota_id = ?1 AND expires_at_ms = ?2
         AND expires_at_frac_ns = ?3 AND reservation_id = ?4",
    )?;
    for quota_id in &quota_ids {
        delete.execute(params![quota_id, r.expires.0, r.expires.1, id])?;
    }
    Ok(())
}

/// The outstanding holds on a quota at `now`: those expiring after `now`. Saturates
/// rather than overflowing, so an absurd sum refuses hard reservations instead of panicking.
fn held_on(conn: &Connection, quota_id: &str, now: DateTime<Utc>) -> Result<Decimal, Fail> {
    let (now_ms, now_ns) = split(now);
    // The first condition bounds the index range; the second makes the comparison exact.
    let mut stmt = conn.prepare_cached(
        "SELECT amount FROM holds WHERE quota_id = ?1 AND expires_at_ms >= ?2
         AND (expires_at_ms > ?2 OR expires_at_frac_ns > ?3)",
    )?;
    let mut rows = stmt.query(params![quota_id, now_ms, now_ns])?;
    let mut sum = Decimal::ZERO;
    while let Some(row) = rows.next()? {
        let text: String = row.get(0)?;
        let amount = Decimal::from_str_exact(&text).map_err(bad_text)?;
        sum = sum.saturating_add(amount);
    }
    Ok(sum)
}

fn reserve(conn: &mut Connection, req: &ReserveRequest) -> Result<Reservation, Fail> {
    // A request may name one quota twice: each hold is checked on its own (as the memory
    // store does), and they are stored as one row holding their sum.
    let mut merged: Vec<(&str, Decimal)> = Vec::with_capacity(req.holds.len());
    for h in &req.holds {
        match merged.iter_mut().find(|(q, _)| *q == h.quota.id) {
            Some((_, a)) => *a = a.saturating_add(h.amount),
            None => merged.push((&h.quota.id, h.amount)),
        }
    }
    let quota_ids = to_json(&merged.iter().map(|(q, _)| q).collect::<Vec<_>>())?;
    let (exp_ms, exp_ns) = split(req.expires_at);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Stored first, so that a taken id is refused by its key; a refusal below rolls it back.
    let stored = tx
        .prepare_cached(
            "INSERT INTO reservations (id, state, created_at_ms, expires_at_ms, expires_at_frac_ns, quota_ids)
             VALUES (?1, 'held', ?2, ?3, ?4, ?5)",
        )?
        .execute(params![req.id, ms(req.now), exp_ms, exp_ns, quota_ids]);
    match stored {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            return Err(
                Error::argument("reservation", format!("`{}` already exists", req.id)).into(),
            );
        }
        other => other?,
    };
    let mut uses = Vec::with_capacity(req.holds.len());
    for h in &req.holds {
        let used = counters::used_for_update(&tx, &h.quota, h.range)?;
        // This reservation's holds are not stored yet, so every hold is another's.
        let held = held_on(&tx, &h.quota.id, req.now)?;
        let taken = used.saturating_add(held);
        let over = taken
            .checked_add(h.amount)
            .is_none_or(|total| total > h.quota.limit);
        if h.quota.hard && over {
            // Dropping `tx` rolls back: nothing of this reservation is stored.
            return Err(Error::QuotaExceeded {
                quota: h.quota.id.clone(),
                limit: h.quota.limit,
                used: taken,
                requested: h.amount,
            }
            .into());
        }
        uses.push(QuotaUse {
            quota_id: h.quota.id.clone(),
            used,
            held,
            requested: h.amount,
            limit: h.quota.limit,
        });
    }
    {
        let mut ins = tx.prepare_cached(
            "INSERT INTO holds (quota_id, expires_at_ms, expires_at_frac_ns, reservation_id, amount)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (quota_id, amount) in &merged {
            ins.execute(params![
                quota_id,
                exp_ms,
                exp_ns,
                req.id,
                amount.to_string()
            ])?;
        }
    }
    tx.commit()?;
    Ok(Reservation {
        id: req.id.clone(),
        expires_at: req.expires_at,
        uses,
    })
}

/// Commits a reservation and reads the usage of `watch`'s quotas, in one transaction.
fn commit(
    conn: &mut Connection,
    id: &str,
    events: &[UsageEvent],
    watch: &[(Quota, TimeRange)],
) -> Result<(Vec<bool>, Vec<Decimal>), Fail> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored = stored_reservation(&tx, id)?;
    let inserted = match stored.state {
        ReservationState::Committed => vec![false; events.len()],
        ReservationState::Released => {
            return Err(Error::argument(
                "reservation",
                format!("`{id}` was released; it cannot be committed"),
            )
            .into());
        }
        // Expired or not: the events happened, so they are recorded.
        ReservationState::Held => {
            let batch = write::Batch::new(events)?;
            let inserted = write::insert_rows(&tx, &batch)?;
            finish(&tx, id, &stored, ReservationState::Committed)?;
            inserted
        }
    };
    let used = counters::used_all_for_update(&tx, watch)?;
    tx.commit()?;
    Ok((inserted, used))
}

fn release(conn: &mut Connection, id: &str) -> Result<bool, Fail> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored = stored_reservation(&tx, id)?;
    if stored.state != ReservationState::Held {
        return Ok(false);
    }
    finish(&tx, id, &stored, ReservationState::Released)?;
    tx.commit()?;
    Ok(true)
}

/// Deletes a quota and, in the same transaction, its holds: "its outstanding holds stop
/// counting". Holds name their quota by id only (a hold request carries its quota by
/// value, and may name one that was never stored), so they are dropped here rather than
/// filtered by a join on `quotas`: that would make holds on unstored quotas never count.
/// Re-creating the quota does not bring the dropped holds back.
fn delete_quota(conn: &mut Connection, id: &str) -> Result<bool, Fail> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if tx
        .prepare_cached("DELETE FROM quotas WHERE id = ?1")?
        .execute([id])?
        == 0
    {
        return Ok(false);
    }
    tx.prepare_cached("DELETE FROM holds WHERE quota_id = ?1")?
        .execute([id])?;
    counters::drop_quota(&tx, id)?;
    tx.commit()?;
    Ok(true)
}

#[async_trait]
impl QuotaStore for SqliteStore {
    async fn put_quota(&self, quota: &Quota) -> Result<()> {
        quota.validate()?;
        let (id, body) = (
            quota.id.clone(),
            to_json(quota).map_err(|e| e.into_error("put_quota"))?,
        );
        self.write("put_quota", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "INSERT INTO quotas (id, body, updated_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at_ms = excluded.updated_at_ms",
            )?
            .execute(params![id, body, ms(Utc::now())])?;
            // The next reservation counts the quota afresh from the rollups (a changed subject,
            // metric or window would not match its counter anyway).
            counters::drop_quota(&tx, &id)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn quotas(&self) -> Result<Vec<Quota>> {
        self.read("quotas", |c| {
            let mut stmt = c.prepare_cached("SELECT body FROM quotas ORDER BY id")?;
            let quotas = stmt
                .query_map([], |r| from_json(&r.get::<_, String>(0)?))?
                .collect::<rusqlite::Result<Vec<Quota>>>()?;
            Ok(quotas)
        })
        .await
    }

    async fn delete_quota(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write("delete_quota", move |c| delete_quota(c, &id))
            .await
    }

    async fn used(&self, quotas: &[(Quota, TimeRange)]) -> Result<Vec<Decimal>> {
        let quotas = quotas.to_vec();
        self.read("used", move |c| {
            quotas
                .iter()
                .map(|(q, range)| counters::used(c, q, *range))
                .collect()
        })
        .await
    }

    async fn held(&self, quota_id: &str, now: DateTime<Utc>) -> Result<Decimal> {
        let quota_id = quota_id.to_owned();
        self.read("held", move |c| held_on(c, &quota_id, now)).await
    }

    async fn reserve(&self, req: &ReserveRequest) -> Result<Reservation> {
        let req = req.clone();
        self.write("reserve", move |c| reserve(c, &req)).await
    }

    async fn commit_reservation(&self, id: &str, events: &[UsageEvent]) -> Result<Vec<bool>> {
        Ok(self.commit_and_read(id, events, &[]).await?.0)
    }

    async fn commit_and_read(
        &self,
        id: &str,
        events: &[UsageEvent],
        watch: &[(Quota, TimeRange)],
    ) -> Result<(Vec<bool>, Vec<Decimal>)> {
        let (id, events, watch) = (id.to_owned(), events.to_vec(), watch.to_vec());
        self.write("commit_reservation", move |c| {
            commit(c, &id, &events, &watch)
        })
        .await
    }

    async fn release_reservation(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write("release_reservation", move |c| release(c, &id))
            .await
    }

    async fn insert_alert(&self, alert: &Alert) -> Result<bool> {
        let body = to_json(alert).map_err(|e| e.into_error("insert_alert"))?;
        let (at_ms, at_ns) = split(alert.at);
        let (quota_id, window_ms, threshold) = (
            alert.quota_id.clone(),
            ms(alert.window_start),
            alert.threshold.clone(),
        );
        self.write("insert_alert", move |c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO alerts (quota_id, window_start_ms, threshold, body, at_ms, at_frac_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (quota_id, window_start_ms, threshold) DO NOTHING",
                )?
                .execute(params![quota_id, window_ms, threshold, body, at_ms, at_ns])?;
            Ok(n == 1)
        })
        .await
    }

    async fn alerts(&self, since: DateTime<Utc>, limit: usize) -> Result<Vec<Alert>> {
        let (since_ms, since_ns) = split(since);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read("alerts", move |c| {
            // Oldest first; among equal instants, in the order they were stored.
            let mut stmt = c.prepare_cached(
                "SELECT body FROM alerts WHERE (at_ms, at_frac_ns) >= (?1, ?2)
                 ORDER BY at_ms, at_frac_ns, rowid LIMIT ?3",
            )?;
            let alerts = stmt
                .query_map(params![since_ms, since_ns, limit], |r| {
                    from_json(&r.get::<_, String>(0)?)
                })?
                .collect::<rusqlite::Result<Vec<Alert>>>()?;
            Ok(alerts)
        })
        .await
    }
}
