//! Writing events and keeping the rollups in step: a batch's rollup changes are summed per
//! cell in memory first, then each cell is upserted once, hourly and daily.

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::{Connection, TransactionBehavior, params};
use usage_core::event::UsageEvent;

use super::Fail;
use super::codec::{EVENT_COLS, EventRow, Sums, TOTALS_COLS};

/// A rollup granularity. Day cells are always the sum of their day's hour cells: every change
/// is applied to both in one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Level {
    Hour,
    Day,
}

pub(super) const HOUR_MS: i64 = 3_600_000;
pub(super) const DAY_MS: i64 = 86_400_000;

impl Level {
    pub fn ms(self) -> i64 {
        match self {
            Level::Hour => HOUR_MS,
            Level::Day => DAY_MS,
        }
    }

    /// The time column of this level's tables.
    pub fn col(self) -> &'static str {
        match self {
            Level::Hour => "hour_ms",
            Level::Day => "day_ms",
        }
    }

    pub fn events_table(self) -> &'static str {
        match self {
            Level::Hour => "rollup_events",
            Level::Day => "rollup_events_daily",
        }
    }

    pub fn tags_table(self) -> &'static str {
        match self {
            Level::Hour => "rollup_tags",
            Level::Day => "rollup_tags_daily",
        }
    }

    fn index(self) -> usize {
        match self {
            Level::Hour => 0,
            Level::Day => 1,
        }
    }
}

pub(super) const LEVELS: [Level; 2] = [Level::Hour, Level::Day];

/// `floor(ms / step) * step`, correct for instants before 1970 too.
pub(super) fn floor_to(ms: i64, step: i64) -> i64 {
    ms - ms.rem_euclid(step)
}

/// The SQL form of [`floor_to`] for a column (SQLite's `%` truncates towards zero).
pub(super) fn floor_sql(col: &str, step: i64) -> String {
    format!("({col} - ((({col} % {step}) + {step}) % {step}))")
}

const EVENT_KEYS: [&str; 4] = ["user_id", "provider", "model_key", "status"];
const TAG_KEYS: [&str; 3] = ["key", "value", "user_id"];

fn upsert_sql(table: &str, time_col: &str, keys: &[&str]) -> String {
    let key_cols: Vec<&str> = std::iter::once(time_col)
        .chain(keys.iter().copied())
        .collect();
    let cols: Vec<&str> = key_cols.iter().copied().chain(TOTALS_COLS).collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let sets: Vec<String> = TOTALS_COLS
        .iter()
        .map(|c| format!("{c} = {c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        cols.join(", "),
        marks.join(", "),
        key_cols.join(", "),
        sets.join(", ")
    )
}

fn delete_empty_sql(table: &str, time_col: &str, keys: &[&str]) -> String {
    let conds: Vec<String> = std::iter::once(time_col)
        .chain(keys.iter().copied())
        .enumerate()
        .map(|(i, c)| format!("{c} = ?{}", i + 1))
        .collect();
    format!(
        "DELETE FROM {table} WHERE {} AND requests = 0",
        conds.join(" AND ")
    )
}

struct CellSql {
    upsert_events: String,
    upsert_tags: String,
    delete_events: String,
    delete_tags: String,
}

static CELL_SQL: LazyLock<[CellSql; 2]> = LazyLock::new(|| {
    LEVELS.map(|l| CellSql {
        upsert_events: upsert_sql(l.events_table(), l.col(), &EVENT_KEYS),
        upsert_tags: upsert_sql(l.tags_table(), l.col(), &TAG_KEYS),
        delete_events: delete_empty_sql(l.events_table(), l.col(), &EVENT_KEYS),
        delete_tags: delete_empty_sql(l.tags_table(), l.col(), &TAG_KEYS),
    })
});

static INSERT_EVENT: LazyLock<String> = LazyLock::new(|| {
    let marks: Vec<String> = (1..=EVENT_COLS.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO events ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING",
        EVENT_COLS.join(", "),
        marks.join(", ")
    )
});

const INSERT_TAG: &str =
    "INSERT INTO event_tags (seq, key, value, ts_ms, user_id) VALUES (?1, ?2, ?3, ?4, ?5)";

/// (time, user or '', provider, model_key, status)
type EventCell<'a> = (i64, &'a str, &'a str, &'a str, &'a str);
/// (time, tag key, tag value, user or '')
type TagCell<'a> = (i64, &'a str, &'a str, &'a str);

/// Rollup changes not yet written, per hour cell.
#[derive(Default)]
pub(super) struct Deltas<'a> {
    events: HashMap<EventCell<'a>, Sums>,
    tags: HashMap<TagCell<'a>, Sums>,
}

impl<'a> Deltas<'a> {
    /// Adds (`sign` 1) or removes (`sign` -1) an event's sums in its cells.
    pub fn add(&mut self, e: &'a UsageEvent, ts_ms: i64, sums: &Sums, sign: i64) {
        let hour = floor_to(ts_ms, HOUR_MS);
        let user = e.user_id.as_deref().unwrap_or("");
        self.events
            .entry((
                hour,
                user,
                e.provider.as_str(),
                e.model_key(),
                e.status.as_str(),
            ))
            .or_default()
            .add(sums, sign);
        for (k, v) in &e.tags {
            self.tags
                .entry((hour, k.as_str(), v.as_str(), user))
                .or_default()
                .add(sums, sign);
        }
    }

    /// Writes every non-zero change to the hourly and daily cells, and drops cells left
    /// with no requests (a reprice can move an event to another model's cell).
    pub fn apply(&self, conn: &Connection) -> Result<(), Fail> {
        for level in LEVELS {
            if level == Level::Day && std::env::var("XP").as_deref() == Ok("nodaily") {
                continue;
            }
            let sql = &CELL_SQL[level.index()];
            let step = level.ms();
            let mut events: HashMap<EventCell<'a>, Sums> =
                HashMap::with_capacity(self.events.len());
            for (k, s) in &self.events {
                events
                    .entry((floor_to(k.0, step), k.1, k.2, k.3, k.4))
                    .or_default()
                    .add(s, 1);
            }
            let mut tags: HashMap<TagCell<'a>, Sums> = HashMap::with_capacity(self.tags.len());
            for (k, s) in &self.tags {
                tags.entry((floor_to(k.0, step), k.1, k.2, k.3))
                    .or_default()
                    .add(s, 1);
            }

            let mut up = conn.prepare_cached(&sql.upsert_events)?;
            for (k, s) in events.iter().filter(|(_, s)| !s.is_zero()) {
                up.raw_bind_parameter(1, k.0)?;
                up.raw_bind_parameter(2, k.1)?;
                up.raw_bind_parameter(3, k.2)?;
                up.raw_bind_parameter(4, k.3)?;
                up.raw_bind_parameter(5, k.4)?;
                for (i, v) in s.0.iter().enumerate() {
                    up.raw_bind_parameter(6 + i, v)?;
                }
                up.raw_execute()?;
                if s.requests() < 0 {
                    conn.prepare_cached(&sql.delete_events)?
                        .execute(params![k.0, k.1, k.2, k.3, k.4])?;
                }
            }
            let mut up = conn.prepare_cached(&sql.upsert_tags)?;
            for (k, s) in tags.iter().filter(|(_, s)| !s.is_zero()) {
                up.raw_bind_parameter(1, k.0)?;
                up.raw_bind_parameter(2, k.1)?;
                up.raw_bind_parameter(3, k.2)?;
                up.raw_bind_parameter(4, k.3)?;
                for (i, v) in s.0.iter().enumerate() {
                    up.raw_bind_parameter(5 + i, v)?;
                }
                up.raw_execute()?;
                if s.requests() < 0 {
                    conn.prepare_cached(&sql.delete_tags)?
                        .execute(params![k.0, k.1, k.2, k.3])?;
                }
            }
        }
        Ok(())
    }
}

/// Inserts a batch in one write transaction; per event, true when it was new.
pub(super) fn insert(conn: &mut Connection, events: &[UsageEvent]) -> Result<Vec<bool>, Fail> {
    let rows = events
        .iter()
        .map(EventRow::new)
        .collect::<usage_core::Result<Vec<_>>>()?;
    static T: [std::sync::atomic::AtomicU64; 5] =
        [const { std::sync::atomic::AtomicU64::new(0) }; 5];
    let add = |i: usize, t: std::time::Instant| {
        T[i].fetch_add(
            t.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    };
    if events.len() == 999 {
        for i in 0..5 {
            eprintln!(
                "T{i} = {:?}",
                std::time::Duration::from_nanos(T[i].swap(0, std::sync::atomic::Ordering::Relaxed))
            );
        }
    }
    let t0 = std::time::Instant::now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    add(0, t0);
    let mut inserted = Vec::with_capacity(rows.len());
    {
        let mut ins = tx.prepare_cached(&INSERT_EVENT)?;
        let mut ins_tag = tx.prepare_cached(INSERT_TAG)?;
        let mut deltas = Deltas::default();
        for r in &rows {
            let t1 = std::time::Instant::now();
            r.bind(&mut ins)?;
            // ON CONFLICT DO NOTHING: zero changes means the id was already stored (possibly
            // earlier in this very batch).
            if ins.raw_execute()? == 0 {
                inserted.push(false);
                continue;
            }
            let seq = tx.last_insert_rowid();
            add(1, t1);
            let t2 = std::time::Instant::now();
            if std::env::var("XP").as_deref() != Ok("events") {
                for (k, v) in &r.e.tags {
                    ins_tag.execute(params![seq, k, v, r.ts_ms, r.e.user_id])?;
                }
            }
            add(2, t2);
            deltas.add(r.e, r.ts_ms, &r.sums, 1);
            inserted.push(true);
        }
        if !matches!(std::env::var("XP").as_deref(), Ok("events") | Ok("tags")) {
            deltas.apply(&tx)?;
        }
    }
    tx.commit()?;
    Ok(inserted)
}
