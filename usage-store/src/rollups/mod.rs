//! The rollup tables every SQL backend keeps, and which one serves a request.
//!
//! `rollup_events` (hour, user, provider, model, status) and `rollup_tags` (hour, tag key,
//! value, user) are summed from raw events. Four coarser tables are summed from
//! `rollup_events` cells, so that the dashboards' long-range reads touch few rows even with
//! thousands of users: `rollup_days` (UTC day, provider, model, status) and `rollup_models`
//! (hour, provider, model, status) for everything that neither filters nor groups by user or
//! tag, `rollup_users` (UTC day, user) for per-user
//! totals, series and rankings over whole days, and `rollup_daily` (UTC day, user, provider,
//! model, status) for per-user breakdowns over whole days.

use usage_core::query::{Dimension, Filter};

mod deltas;
mod sums;

#[cfg(feature = "postgres")]
pub(crate) use deltas::derive;
pub(crate) use deltas::{BatchCells, Deltas};
pub(crate) use sums::{Sums, int, nanos};

pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 86_400_000;

/// One rollup table over the event dimensions.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RollupTable {
    pub name: &'static str,
    /// The time key column.
    pub time_col: &'static str,
    /// Its step: the cell's period length.
    pub step_ms: i64,
    /// The other key columns, in primary-key order (a subset of `rollup_events`' keys).
    pub keys: &'static [&'static str],
}

impl RollupTable {
    /// Whether the cell key includes the user.
    pub fn has_user(&self) -> bool {
        self.keys.contains(&"user_id")
    }
}

/// The base table, summed from raw events.
pub(crate) const EVENTS: RollupTable = RollupTable {
    name: "rollup_events",
    time_col: "hour_ms",
    step_ms: HOUR_MS,
    keys: &["user_id", "provider", "model_key", "status"],
};

/// The tables derived from [`EVENTS`], in the order [`table_for`] prefers them (fewest rows
/// for the requests each can serve first).
pub(crate) const DERIVED: [RollupTable; 4] = [
    RollupTable {
        name: "rollup_days",
        time_col: "day_ms",
        step_ms: DAY_MS,
        keys: &["provider", "model_key", "status"],
    },
    RollupTable {
        name: "rollup_models",
        time_col: "hour_ms",
        step_ms: HOUR_MS,
        keys: &["provider", "model_key", "status"],
    },
    RollupTable {
        name: "rollup_users",
        time_col: "day_ms",
        step_ms: DAY_MS,
        keys: &["user_id"],
    },
    RollupTable {
        name: "rollup_daily",
        time_col: "day_ms",
        step_ms: DAY_MS,
        keys: &["user_id", "provider", "model_key", "status"],
    },
];

/// `floor(ms / step) * step`, correct before 1970 too; saturates at the ends of `i64` (the
/// bounds of "all time").
pub(crate) fn floor_to(ms: i64, step: i64) -> i64 {
    ms.checked_sub(ms.rem_euclid(step)).unwrap_or(i64::MIN)
}

/// `ceil(ms / step) * step`.
pub(crate) fn ceil_to(ms: i64, step: i64) -> i64 {
    let f = floor_to(ms, step);
    if f == ms { ms } else { f.saturating_add(step) }
}

/// The column of `rollup_events` that holds a dimension (tags are not in these tables).
fn column(d: &Dimension) -> Option<&'static str> {
    match d {
        Dimension::User => Some("user_id"),
        Dimension::Provider => Some("provider"),
        Dimension::Model => Some("model_key"),
        Dimension::Status => Some("status"),
        Dimension::Tag(_) => None,
    }
}

/// The fewest-rows table among [`DERIVED`] and [`EVENTS`] that holds every cell a rollup
/// request over the event dimensions (no tag) needs: every dimension the request filters,
/// groups or counts by must be among the table's keys, the range (ms) must start and end on
/// the table's periods, and the grain (ms) must be a whole number of them.
pub(crate) fn table_for(
    filter: &Filter,
    group_by: &[Dimension],
    range_ms: Option<(i64, i64)>,
    grain_ms: Option<i64>,
) -> &'static RollupTable {
    let used: Vec<Option<&str>> = filter
        .dimensions()
        .iter()
        .chain(group_by)
        .map(column)
        .collect();
    let fits = |t: &RollupTable| {
        used.iter().all(|c| c.is_some_and(|c| t.keys.contains(&c)))
            && range_ms.is_none_or(|(s, e)| s % t.step_ms == 0 && e % t.step_ms == 0)
            && grain_ms.is_none_or(|g| g % t.step_ms == 0)
    };
    DERIVED.iter().find(|t| fits(t)).unwrap_or(&EVENTS)
}

/// The SQL form of [`floor_to`] for a column, the same in SQLite and PostgreSQL (whose `%`
/// both truncate towards zero).
pub(crate) fn floor_sql(col: &str, step: i64) -> String {
    format!("({col} - ((({col} % {step}) + {step}) % {step}))")
}

/// The statements that recompute a derived table's cells for the periods `[p1, p2)` (ms, on
/// the table's period boundaries; see [`refresh_range`]) from `rollup_events`: a delete, then
/// an insert of the sums. `p1`/`p2` are the backend's placeholders (`?1` or `$1`).
pub(crate) fn refresh_sql(t: &RollupTable, p1: &str, p2: &str) -> [String; 2] {
    let keys = t.keys.join(", ");
    let cols = crate::TOTALS_COLUMNS.join(", ");
    let sums = crate::TOTALS_COLUMNS
        .iter()
        .map(|c| format!("SUM({c})"))
        .collect::<Vec<_>>()
        .join(", ");
    let groups = (1..=t.keys.len() + 1)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    [
        format!(
            "DELETE FROM {name} WHERE {time} >= {p1} AND {time} < {p2}",
            name = t.name,
            time = t.time_col
        ),
        format!(
            "INSERT INTO {name} ({time}, {keys}, {cols}) \
             SELECT {period}, {keys}, {sums} FROM {base} \
             WHERE hour_ms >= {p1} AND hour_ms < {p2} \
             GROUP BY {groups} HAVING SUM(requests) > 0",
            name = t.name,
            time = t.time_col,
            period = floor_sql("hour_ms", t.step_ms),
            base = EVENTS.name,
        ),
    ]
}

/// The whole periods of `t` that overlap `[start, end)` (ms): what a refresh after
/// rebuilding `rollup_events` over that range must recompute.
pub(crate) fn refresh_range(t: &RollupTable, start: i64, end: i64) -> (i64, i64) {
    (floor_to(start, t.step_ms), ceil_to(end, t.step_ms))
}
