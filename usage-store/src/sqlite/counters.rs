//! Quota usage counters (`quota_counters`, schema 4): one quota's usage in one calendar or
//! lifetime window, so that a reservation, a status or an alert check reads one row instead of
//! summing the window's rollup cells (~150 µs for a month of the global budget on a 1M-event
//! store, read twice per reserve + commit).
//!
//! A counter is created from the rollups by the first reservation that needs it, while that
//! reservation holds the write lock, and from then on every insert adds its new events to it
//! in the same transaction; so it always equals what the rollups would say. Every process
//! writing the file does the same, since the counters live in the file. Rolling windows have
//! no counter: their start moves. A counter is used only when its subject, metric and window
//! still match the quota asking; a deleted quota's counters go with it, and rebuild, reprice
//! and purge, which change what the rollups say, drop them all.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;
use usage_core::query::TimeRange;
use usage_core::quota::{Quota, QuotaMetric, Subject, Window};

use super::codec::{EventRow, ceil_ms};
use super::{Fail, query};

/// Above this many distinct tag values in one insert, the tag keys that have counters are
/// read first, so values of other keys are not looked up one by one.
const TAG_LOOKUPS: usize = 64;

/// (subject, subject_key, subject_value) as stored.
fn subject_cols(s: &Subject) -> (&'static str, &str, &str) {
    match s {
        Subject::Global => ("global", "", ""),
        Subject::User { id } => ("user", id, ""),
        Subject::Tag { key, value } => ("tag", key, value),
    }
}

/// The window `[start_ms, end_ms)` a counter of `quota` over `range` would hold; `None` for a
/// rolling window.
fn window_ms(quota: &Quota, range: TimeRange) -> Option<(i64, i64)> {
    match quota.window {
        Window::Rolling { .. } => None,
        _ => Some((ceil_ms(range.start), ceil_ms(range.end))),
    }
}

/// The amount of `quota`'s counter over `window`, when one is stored and still describes it.
fn stored(conn: &Connection, quota: &Quota, window: (i64, i64)) -> Result<Option<Decimal>, Fail> {
    let row: Option<(i64, String, String, String, String, String)> = conn
        .prepare_cached(
            "SELECT end_ms, subject, subject_key, subject_value, metric, amount
             FROM quota_counters WHERE quota_id = ?1 AND start_ms = ?2",
        )?
        .query_row(params![quota.id, window.0], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()?;
    let Some((end, subject, key, value, metric, amount)) = row else {
        return Ok(None);
    };
    let (s, k, v) = subject_cols(&quota.subject);
    if end != window.1 || subject != s || key != k || value != v || metric != quota.metric.as_str()
    {
        return Ok(None);
    }
    Ok(Some(parse_amount(&amount)?))
}

fn parse_amount(text: &str) -> Result<Decimal, Fail> {
    Decimal::from_str_exact(text).map_err(|e| {
        Fail::Sql(rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            Box::new(e),
        ))
    })
}

/// `quota`'s usage over `range`: its counter when one matches, else summed from the rollups.
pub(super) fn used(conn: &Connection, quota: &Quota, range: TimeRange) -> Result<Decimal, Fail> {
    if let Some(w) = window_ms(quota, range)
        && let Some(amount) = stored(conn, quota, w)?
    {
        return Ok(amount);
    }
    query::used(conn, quota, range)
}

/// [`used_for_update`] of each quota of `quotas`, in order.
pub(super) fn used_all_for_update(
    tx: &Connection,
    quotas: &[(Quota, TimeRange)],
) -> Result<Vec<Decimal>, Fail> {
    quotas
        .iter()
        .map(|(q, range)| used_for_update(tx, q, *range))
        .collect()
}

/// As [`used`], inside a write transaction: a missing or outdated counter is computed from
/// the rollups and stored (replacing the quota's counters of other windows), so that every
/// later insert keeps it current.
pub(super) fn used_for_update(
    tx: &Connection,
    quota: &Quota,
    range: TimeRange,
) -> Result<Decimal, Fail> {
    let Some(w) = window_ms(quota, range) else {
        return query::used(tx, quota, range);
    };
    if let Some(amount) = stored(tx, quota, w)? {
        return Ok(amount);
    }
    let amount = query::used(tx, quota, range)?;
    drop_quota(tx, &quota.id)?;
    let (s, k, v) = subject_cols(&quota.subject);
    tx.prepare_cached(
        "INSERT INTO quota_counters
         (quota_id, start_ms, end_ms, subject, subject_key, subject_value, metric, amount)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        quota.id,
        w.0,
        w.1,
        s,
        k,
        v,
        quota.metric.as_str(),
        amount.to_string()
    ])?;
    Ok(amount)
}

/// Drops one quota's counters (it was changed or deleted).
pub(super) fn drop_quota(tx: &Connection, quota_id: &str) -> Result<(), Fail> {
    tx.prepare_cached("DELETE FROM quota_counters WHERE quota_id = ?1")?
        .execute([quota_id])?;
    Ok(())
}

/// Drops every counter (the rollups were rebuilt, repriced or purged).
pub(super) fn drop_all(tx: &Connection) -> Result<(), Fail> {
    tx.prepare_cached("DELETE FROM quota_counters")?
        .execute([])?;
    Ok(())
}

/// A counter read by an insert, and what the insert adds to it.
struct Counter {
    quota_id: String,
    start: i64,
    end: i64,
    metric: QuotaMetric,
    amount: Decimal,
    changed: bool,
}

/// Adds newly inserted events to the counters of their subjects (global, their user, each of
/// their tags) whose window holds them. Each subject's counters are read once per insert.
pub(super) fn add_events(tx: &Connection, rows: &[&EventRow<'_>]) -> Result<(), Fail> {
    if rows.is_empty()
        || !tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM quota_counters)")?
            .query_row([], |r| r.get::<_, bool>(0))?
    {
        return Ok(());
    }
    let tag_values: HashSet<(&str, &str)> = rows
        .iter()
        .flat_map(|r| r.e.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .collect();
    let tag_keys: Option<HashSet<String>> = if tag_values.len() > TAG_LOOKUPS {
        let mut stmt = tx.prepare_cached(
            "SELECT DISTINCT subject_key FROM quota_counters WHERE subject = 'tag'",
        )?;
        let keys = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<HashSet<String>>>()?;
        Some(keys)
    } else {
        None
    };
    let mut counters: Vec<Counter> = Vec::new();
    let mut of_subject: HashMap<(&str, &str, &str), Vec<usize>> = HashMap::new();
    let mut lookup = tx.prepare_cached(
        "SELECT quota_id, start_ms, end_ms, metric, amount FROM quota_counters
         WHERE subject = ?1 AND subject_key = ?2 AND subject_value = ?3",
    )?;
    for r in rows {
        let user = r.e.user_id.as_deref().map(|u| ("user", u, ""));
        let tags =
            r.e.tags
                .iter()
                .filter(|(k, _)| tag_keys.as_ref().is_none_or(|keys| keys.contains(*k)))
                .map(|(k, v)| ("tag", k.as_str(), v.as_str()));
        for subject in std::iter::once(("global", "", "")).chain(user).chain(tags) {
            let found = match of_subject.entry(subject) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(slot) => {
                    let mut found = Vec::new();
                    let mut q = lookup.query(params![subject.0, subject.1, subject.2])?;
                    while let Some(row) = q.next()? {
                        let metric: String = row.get(3)?;
                        // An unknown metric never matches a quota (see `stored`): nothing reads it.
                        let Some(metric) = QuotaMetric::from_name(&metric) else {
                            continue;
                        };
                        found.push(counters.len());
                        counters.push(Counter {
                            quota_id: row.get(0)?,
                            start: row.get(1)?,
                            end: row.get(2)?,
                            metric,
                            amount: parse_amount(&row.get::<_, String>(4)?)?,
                            changed: false,
                        });
                    }
                    slot.insert(found)
                }
            };
            for &i in found.iter() {
                let c = &mut counters[i];
                if c.start <= r.ts_ms && r.ts_ms < c.end {
                    // Saturates like the rollup sum it stands for.
                    c.amount = c
                        .amount
                        .saturating_add(c.metric.amount(&r.sums.to_totals()));
                    c.changed = true;
                }
            }
        }
    }
    let mut update = tx.prepare_cached(
        "UPDATE quota_counters SET amount = ?3 WHERE quota_id = ?1 AND start_ms = ?2",
    )?;
    for c in counters.iter().filter(|c| c.changed) {
        update.execute(params![c.quota_id, c.start, c.amount.to_string()])?;
    }
    Ok(())
}
