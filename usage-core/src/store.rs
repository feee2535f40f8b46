//! The storage contract every backend (SQLite, PostgreSQL, memory) implements. Backends only
//! store events and answer a few primitive aggregate requests; query planning, time zones and
//! reports are done once, in [`crate::query::engine`], so all backends give identical answers.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::event::{EventId, UsageEvent};
use crate::pricing::PriceCatalog;
use crate::query::{Dimension, Filter, TimeRange, Totals};

/// Where an aggregate is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Raw events.
    Raw,
    /// Hourly rollups. Only asked for when [`rollup_can_serve`] holds and the range starts and
    /// ends on whole UTC hours.
    Rollup,
}

/// True when the hourly rollups can answer a request that filters, groups or counts distinct
/// over `dims`. Backends keep two rollups: events by (hour, user, provider, model, status), and
/// tags by (hour, tag key, tag value, user). So `dims` must be within {user, provider, model,
/// status}, or within {user, one tag key}. A rollup request grouped by a tag returns only the
/// rows of events that carry the tag; the engine derives the untagged (`None`) group itself
/// from the events rollup, so backends must not add it.
pub fn rollup_can_serve(dims: &[Dimension]) -> bool {
    let mut tag: Option<&str> = None;
    let mut plain = false;
    for d in dims {
        match d {
            Dimension::User => {}
            Dimension::Provider | Dimension::Model | Dimension::Status => plain = true,
            Dimension::Tag(k) => match tag {
                Some(t) if t != k => return false,
                _ => tag = Some(k),
            },
        }
    }
    !(plain && tag.is_some())
}

/// A primitive aggregate: sums of events passing `filter`, grouped by `group_by` and, with
/// `grain_secs`, by `floor(unix_seconds / grain) * grain` in UTC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateRequest {
    /// Which events (the range is already clipped to what this source should cover).
    pub filter: Filter,
    /// Group by these dimensions, in order.
    pub group_by: Vec<Dimension>,
    /// Time grain in seconds (a multiple of 3600 for rollups; 900 or more for raw).
    pub grain_secs: Option<i64>,
    /// Raw events or rollups.
    pub source: Source,
}

/// One group of an aggregate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateRow {
    /// Dimension values in `group_by` order.
    pub group: Vec<Option<String>>,
    /// Grain start, when a grain was asked for.
    pub grain_start: Option<DateTime<Utc>>,
    /// The sums.
    pub totals: Totals,
}

/// One distinct value of a dimension within a group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistinctRow {
    /// Dimension values in `group_by` order.
    pub group: Vec<Option<String>>,
    /// Grain start, when a grain was asked for.
    pub grain_start: Option<DateTime<Utc>>,
    /// The value (events without the dimension are not counted).
    pub value: String,
}

/// One latency sample within a group (raw events only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyRow {
    /// Dimension values in `group_by` order.
    pub group: Vec<Option<String>>,
    /// Grain start, when a grain was asked for.
    pub grain_start: Option<DateTime<Utc>>,
    /// Latency in ms.
    pub latency_ms: u64,
}

/// The position after an event in `(timestamp, id)` order, for keyset pagination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The last event's timestamp.
    pub timestamp: DateTime<Utc>,
    /// The last event's id.
    pub id: EventId,
}

impl Cursor {
    /// The cursor just after `e`.
    pub fn after(e: &UsageEvent) -> Cursor {
        Cursor {
            timestamp: e.timestamp,
            id: e.id.clone(),
        }
    }
}

/// How far a long operation has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Rows processed so far.
    pub done: u64,
    /// Rows to process in all, when known.
    pub total: Option<u64>,
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Cancels a long operation from another thread; the operation then rolls back.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the operation to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Options of a long operation (rebuild, reprice, purge). Each runs as one transaction in
/// batches of `batch_size` rows: progress is reported between batches, and a cancellation
/// rolls everything back.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Rows per batch (default 10,000).
    pub batch_size: Option<usize>,
    /// Called after each batch.
    pub progress: Option<ProgressFn>,
    /// Checked between batches.
    pub cancel: Option<CancelToken>,
}

impl fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("batch_size", &self.batch_size)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl RunOptions {
    /// The batch size to use.
    pub fn batch(&self) -> usize {
        self.batch_size.unwrap_or(10_000).max(1)
    }

    /// Reports progress, if anyone listens.
    pub fn report(&self, done: u64, total: Option<u64>) {
        if let Some(p) = &self.progress {
            p(Progress { done, total });
        }
    }

    /// True when cancelled.
    pub fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(CancelToken::is_cancelled)
    }
}

/// What kind of maintenance run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Rollups recomputed from raw events.
    RebuildRollups,
    /// Costs recomputed under another catalog.
    Reprice,
    /// Raw events deleted (rollups kept).
    Purge,
}

impl RunKind {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunKind::RebuildRollups => "rebuild_rollups",
            RunKind::Reprice => "reprice",
            RunKind::Purge => "purge",
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Committed.
    Succeeded,
    /// Dry run: nothing written.
    DryRun,
    /// Cancelled: rolled back.
    Cancelled,
    /// Failed: rolled back.
    Failed,
}

impl RunOutcome {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::DryRun => "dry_run",
            RunOutcome::Cancelled => "cancelled",
            RunOutcome::Failed => "failed",
        }
    }
}

/// The record each maintenance run leaves, for an admin view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id (increasing).
    pub id: i64,
    /// What ran.
    pub kind: RunKind,
    /// The range it covered (all time when absent).
    pub range: Option<TimeRange>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Rows read or changed.
    pub rows: u64,
    /// How it ended.
    pub outcome: RunOutcome,
    /// The error, when it failed.
    pub error: Option<String>,
    /// A short summary (e.g. the repricing difference).
    pub detail: Option<String>,
}

/// What a reprice changed (or would change, in a dry run).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepriceReport {
    /// Events examined.
    pub examined: u64,
    /// Events whose cost changed.
    pub changed: u64,
    /// Events newly priced (were unpriced).
    pub newly_priced: u64,
    /// Events that became unpriced (model gone from the catalog): left unchanged.
    pub still_unpriced: u64,
    /// Total cost before.
    pub old_total: crate::money::Usd,
    /// Total cost after.
    pub new_total: crate::money::Usd,
    /// True when nothing was written.
    pub dry_run: bool,
}

/// The storage contract. All methods are safe to call from many tasks at once, and every
/// write is atomic: it happens completely or not at all.
#[async_trait]
pub trait Store: QuotaStore + Send + Sync + fmt::Debug {
    /// `"sqlite"`, `"postgres"` or `"memory"`.
    fn backend(&self) -> &'static str;

    /// How many [`insert`](Store::insert)s the batched writer may run at once to good effect
    /// (default 1). A server database can index one batch while it writes another; a store
    /// whose writes take one lock in turn can prepare one batch (check it, sum its rollup
    /// cells) while another holds the lock, or, like the memory store, gain nothing.
    fn concurrent_inserts(&self) -> usize {
        1
    }

    /// Inserts events and updates rollups in one transaction. Returns, per event, true when
    /// inserted and false when an event with the same id already existed (nothing changed).
    async fn insert(&self, events: &[UsageEvent]) -> Result<Vec<bool>>;

    /// [`insert`](Store::insert), then [`used`](QuotaStore::used) of `watch` with the new
    /// events counted: what the alert check after a write reads. The default makes the two
    /// calls, so that on a server database each writer's read sees the other writers'
    /// committed events. A store whose writers take one lock in turn (SQLite's write lock) may
    /// read inside the insert's transaction instead and save a trip: no other writer can
    /// commit in between, so it reads the level this write reached.
    async fn insert_and_read(
        &self,
        events: &[UsageEvent],
        watch: &[(crate::quota::Quota, TimeRange)],
    ) -> Result<(Vec<bool>, Vec<rust_decimal::Decimal>)> {
        let inserted = self.insert(events).await?;
        Ok((inserted, used_unless_empty(self, watch).await?))
    }

    /// One event by id.
    async fn get(&self, id: &EventId) -> Result<Option<UsageEvent>>;

    /// Events passing `filter` in `(timestamp, id)` order, after `after`, at most `limit`.
    async fn scan(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<UsageEvent>>;

    /// Sums per group (see [`AggregateRequest`]).
    async fn aggregate(&self, req: &AggregateRequest) -> Result<Vec<AggregateRow>>;

    /// Distinct values of `dimension` per group.
    async fn distinct(
        &self,
        req: &AggregateRequest,
        dimension: &Dimension,
    ) -> Result<Vec<DistinctRow>>;

    /// Latencies per group, from raw events (`req.source` is always `Raw`).
    async fn latencies(&self, req: &AggregateRequest) -> Result<Vec<LatencyRow>>;

    /// Raw events before this instant were purged (rollups still cover them).
    async fn purged_before(&self) -> Result<Option<DateTime<Utc>>>;

    /// Recomputes rollups in `range` (whole hours; all time when absent) from raw events.
    async fn rebuild_rollups(
        &self,
        range: Option<TimeRange>,
        opts: &RunOptions,
    ) -> Result<RunRecord>;

    /// Recomputes costs of events in `range` under `catalog`; with `dry_run`, reports only.
    async fn reprice(
        &self,
        range: Option<TimeRange>,
        catalog: &PriceCatalog,
        dry_run: bool,
        opts: &RunOptions,
    ) -> Result<(RepriceReport, RunRecord)>;

    /// Deletes raw events before `before` (a whole UTC hour), keeping rollups, and forgets the
    /// reservations that ended before it (committed or released, or expired while held; never
    /// one whose hold is still outstanding), which are then unknown to commit and release.
    async fn purge(&self, before: DateTime<Utc>, opts: &RunOptions) -> Result<RunRecord>;

    /// The most recent maintenance runs, newest first.
    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>>;

    /// Flushes and releases resources. Later calls fail.
    async fn close(&self) -> Result<()>;
}

/// One quota to hold against in a reservation: the quota, its window's range at the time of
/// the reservation, and the amount (in the quota's metric) to hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRequest {
    /// The quota (hard or soft; only hard ones can refuse).
    pub quota: crate::quota::Quota,
    /// The range usage is counted over (the quota's window at `now`).
    pub range: TimeRange,
    /// What to hold, in the quota's metric.
    pub amount: rust_decimal::Decimal,
}

/// An atomic, all-or-nothing reservation against several quotas at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveRequest {
    /// The reservation's id (unique; chosen by the caller).
    pub id: String,
    /// The quotas to check and hold against.
    pub holds: Vec<HoldRequest>,
    /// The instant of the reservation: holds expiring at or before it do not count.
    pub now: DateTime<Utc>,
    /// When this reservation's holds stop counting if neither committed nor released.
    pub expires_at: DateTime<Utc>,
}

/// Where a quota stood when a reservation was checked against it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUse {
    /// The quota's id.
    pub quota_id: String,
    /// Recorded usage in the window.
    pub used: rust_decimal::Decimal,
    /// Outstanding holds of other reservations (not expired, not committed or released).
    pub held: rust_decimal::Decimal,
    /// What this reservation asked for.
    pub requested: rust_decimal::Decimal,
    /// The limit.
    pub limit: rust_decimal::Decimal,
}

/// A reservation's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Holding (until `expires_at`).
    Held,
    /// Committed: its events were recorded and the holds dropped.
    Committed,
    /// Released: the holds dropped, nothing recorded.
    Released,
}

/// A granted reservation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Its id.
    pub id: String,
    /// When its holds stop counting.
    pub expires_at: DateTime<Utc>,
    /// Where each quota stood at the time of the reservation.
    pub uses: Vec<QuotaUse>,
}

/// An alert: a quota's usage reached a threshold in a window. Stored once per (quota, window
/// start, threshold), however many processes notice the crossing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The quota's id.
    pub quota_id: String,
    /// The quota's subject.
    pub subject: crate::quota::Subject,
    /// The window's start (for rolling and lifetime windows, see `Tracker` docs).
    pub window_start: DateTime<Utc>,
    /// The threshold's name.
    pub threshold: String,
    /// The threshold's percentage.
    pub percent: rust_decimal::Decimal,
    /// Usage when it was noticed.
    pub used: rust_decimal::Decimal,
    /// The limit then.
    pub limit: rust_decimal::Decimal,
    /// When it was noticed.
    pub at: DateTime<Utc>,
}

/// The usage `quota` counts over `range`, as the primitive requests to sum: rollups for the
/// whole hours, raw events for the ragged edges. Backends run these inside their reservation
/// transaction and add up `quota.metric.amount(&totals)`.
pub fn quota_usage_requests(
    quota: &crate::quota::Quota,
    range: TimeRange,
) -> Vec<AggregateRequest> {
    let filter = Filter {
        range: Some(range),
        ..quota.subject.filter()
    };
    crate::query::engine::plan_requests(&filter, &[], None)
}

/// [`QuotaStore::used`] of `watch`, without a trip to the store when it is empty.
async fn used_unless_empty<S: QuotaStore + ?Sized>(
    store: &S,
    watch: &[(crate::quota::Quota, TimeRange)],
) -> Result<Vec<rust_decimal::Decimal>> {
    if watch.is_empty() {
        return Ok(Vec::new());
    }
    store.used(watch).await
}

/// Quotas, reservations and alerts: the part of the store that enforces budgets. Every method
/// is atomic; `reserve` is serialised against every other `reserve` and `commit_reservation`
/// touching the same quotas, across threads, processes and servers.
#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// Creates or replaces a quota (by id). Usage already recorded keeps counting.
    async fn put_quota(&self, quota: &crate::quota::Quota) -> Result<()>;

    /// Every quota, by id.
    async fn quotas(&self) -> Result<Vec<crate::quota::Quota>>;

    /// Deletes a quota; true when there was one. Its outstanding holds stop counting.
    async fn delete_quota(&self, id: &str) -> Result<bool>;

    /// The sum of outstanding holds on a quota at `now` (held, not expired).
    async fn held(&self, quota_id: &str, now: DateTime<Utc>) -> Result<rust_decimal::Decimal>;

    /// Recorded usage of each quota's metric over its range (what [`QuotaStore::reserve`]
    /// counts as used): the sum over the rows of every request [`quota_usage_requests`]
    /// plans. One call reads them all (one connection, one trip to the store's thread);
    /// backends may read only the columns each metric needs.
    async fn used(
        &self,
        quotas: &[(crate::quota::Quota, TimeRange)],
    ) -> Result<Vec<rust_decimal::Decimal>>;

    /// Atomically: for every hold, computes used (via [`quota_usage_requests`]) and the other
    /// reservations' outstanding holds; if any *hard* quota would pass its limit
    /// (`used + held + amount > limit`), fails with [`crate::Error::QuotaExceeded`] naming the
    /// first such quota (in `holds` order) and stores nothing; otherwise stores every hold.
    /// Reusing an existing reservation id is an [`crate::Error::InvalidArgument`].
    async fn reserve(&self, req: &ReserveRequest) -> Result<Reservation>;

    /// Records `events` (as [`Store::insert`]) and drops the reservation's holds in one
    /// transaction. Idempotent: committing an already committed reservation changes nothing
    /// and returns `false` for every event. Committing a released one, or an unknown id, is an
    /// error ([`crate::Error::InvalidArgument`] / [`crate::Error::NotFound`]; a reservation that
    /// a [`Store::purge`] forgot is unknown). An expired hold can still be committed: its
    /// events are recorded.
    async fn commit_reservation(&self, id: &str, events: &[UsageEvent]) -> Result<Vec<bool>>;

    /// [`commit_reservation`](QuotaStore::commit_reservation), then [`used`](QuotaStore::used)
    /// of `watch`, as [`Store::insert_and_read`] does for an insert.
    async fn commit_and_read(
        &self,
        id: &str,
        events: &[UsageEvent],
        watch: &[(crate::quota::Quota, TimeRange)],
    ) -> Result<(Vec<bool>, Vec<rust_decimal::Decimal>)> {
        let inserted = self.commit_reservation(id, events).await?;
        Ok((inserted, used_unless_empty(self, watch).await?))
    }

    /// Drops the holds without recording anything. Idempotent: true the first time, false
    /// after (also after a commit). An unknown id is [`crate::Error::NotFound`].
    async fn release_reservation(&self, id: &str) -> Result<bool>;

    /// Stores an alert unless one with the same (quota, window start, threshold) exists;
    /// true when this call stored it.
    async fn insert_alert(&self, alert: &Alert) -> Result<bool>;

    /// Alerts noticed at or after `since`, oldest first, at most `limit`.
    async fn alerts(&self, since: DateTime<Utc>, limit: usize) -> Result<Vec<Alert>>;
}
