//! # usage-store
//!
//! Where usage-core's events live: an embedded SQLite file (the default, zero set-up), a shared
//! PostgreSQL database (feature `postgres`, for several app servers), or memory (tests and
//! short scripts), all behind [`usage_core::store::Store`]. The [`Tracker`] is what apps call.
//!
//! ```no_run
//! # async fn demo() -> usage_core::Result<()> {
//! use usage_core::{NewEvent, TokenUsage};
//! let tracker = usage_store::Tracker::open("sqlite://usage.db").await?;
//! let usage = TokenUsage { input: 1200, output: 300, ..Default::default() };
//! let rec = tracker.record(NewEvent::new("anthropic", "claude-haiku-4-5", usage).user("u1")).await?;
//! println!("{} cost {}", rec.event.id, rec.event.total_cost());
//! # Ok(()) }
//! ```

mod call;
pub mod export;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod quotas;
mod rollups;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod tracker;
mod writer;

/// The rollup tables' sum columns, in `usage_core::query::Totals` field order: one list for
/// every SQL backend's schema, reads and writes.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) const TOTALS_COLUMNS: [&str; 21] = [
    "requests",
    "errors",
    "unpriced",
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
    "latency_sum_ms",
    "latency_count",
    "duration_sum_ms",
];

/// The [`TOTALS_COLUMNS`] (by index) a quota metric is computed from, `requests` first:
/// whether a cell counts at all depends on it. Summing only these makes a quota's usage read
/// several times cheaper than a full aggregate, which sums all 21.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn metric_columns(metric: usage_core::quota::QuotaMetric) -> &'static [usize] {
    use usage_core::quota::QuotaMetric as M;
    match metric {
        M::Cost => &[0, 17],
        M::TotalTokens => &[0, 3, 4, 5, 6, 7],
        M::InputTokens => &[0, 3],
        M::OutputTokens => &[0, 7],
        M::CacheReadTokens => &[0, 4],
        M::CacheWriteTokens => &[0, 5, 6],
        M::Requests => &[0],
    }
}

use std::sync::Arc;

use usage_core::store::Store;
use usage_core::{Error, Result};

pub use call::{CallGuard, CallSize};
pub use quotas::{AlertCallback, DEFAULT_RESERVATION_TTL, GuardContext};
pub use tracker::{
    Recorded, ResponseMeta, Tracker, TrackerOptions, extracted_event, response_events,
};
pub use writer::BatchOptions;

/// Opens the store a URL names: `sqlite://PATH` (relative or absolute: `sqlite:///var/x.db`),
/// `postgres://…` / `postgresql://…`, or `memory://`.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    let u = url.trim();
    let bad = |why: &str| Error::argument("url", format!("`{url}`: {why}"));
    let (scheme, rest) = u
        .split_once("://")
        .ok_or_else(|| bad("expected sqlite://PATH, postgres://… or memory://"))?;
    match scheme.to_ascii_lowercase().as_str() {
        "memory" => Ok(Arc::new(memory::MemoryStore::default())),
        "sqlite" => {
            #[cfg(feature = "sqlite")]
            {
                let path = rest.split('?').next().unwrap_or_default();
                if path.is_empty() {
                    return Err(bad("the SQLite file path is empty"));
                }
                let path = std::path::PathBuf::from(path);
                let store = tokio::task::spawn_blocking(move || {
                    sqlite::SqliteStore::open(&path, sqlite::SqliteOptions::default())
                })
                .await
                .map_err(|e| Error::store("sqlite", "open", e))??;
                Ok(Arc::new(store))
            }
            #[cfg(not(feature = "sqlite"))]
            {
                let _ = rest;
                Err(bad(
                    "this build has no SQLite support (enable the `sqlite` feature)",
                ))
            }
        }
        "postgres" | "postgresql" => {
            #[cfg(feature = "postgres")]
            {
                Ok(Arc::new(
                    postgres::PgStore::connect(u, postgres::PgOptions::default()).await?,
                ))
            }
            #[cfg(not(feature = "postgres"))]
            {
                Err(bad(
                    "this build has no PostgreSQL support (enable the `postgres` feature)",
                ))
            }
        }
        other => Err(bad(&format!("unknown scheme `{other}`"))),
    }
}
