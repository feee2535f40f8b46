//! [`Tracker`]: what an app calls on every LLM request and every dashboard load. It prices
//! events with its catalog, writes them durably (`record`) or in batches (`enqueue`), and
//! answers queries and reports, optionally confined to a scope (`for_user`, `scoped`).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use usage_core::event::{EventId, NewEvent, UsageEvent, price_call};
use usage_core::extract::{Provider, extract};
use usage_core::pricing::{CostBreakdown, PriceCatalog};
use usage_core::query::engine::{self, RollupDifference};
use usage_core::query::reports::{self, Comparison, Point, SharePage, Summary};
use usage_core::query::{Bucket, Dimension, Filter, Metric, Query, QueryResult, TimeRange};
use usage_core::store::{RepriceReport, RunOptions, RunRecord, Store};
use usage_core::{Error, Result};

use crate::quotas::AlertWatch;
use crate::writer::{AfterWrite, BatchOptions, BatchWriter};

/// Tracker settings.
#[derive(Clone, Debug, Default)]
pub struct TrackerOptions {
    /// The catalog to price with (default: the built-in one).
    pub catalog: Option<Arc<PriceCatalog>>,
    /// Batched-writer settings for `enqueue`.
    pub batch: BatchOptions,
}

/// The outcome of recording one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The event as stored (or as it would have been, for a duplicate).
    pub event: UsageEvent,
    /// True when an event with this id was already stored: nothing was counted again.
    pub duplicate: bool,
    /// The full cost breakdown, when calculated from the catalog.
    pub breakdown: Option<CostBreakdown>,
    /// Quota thresholds first seen reached when this event was checked (each fires once per
    /// quota and window, across every process sharing the store).
    pub alerts: Vec<usage_core::store::Alert>,
}

/// What to attach to events read from a provider response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseMeta {
    /// The user.
    pub user_id: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Time to first token, ms.
    pub latency_ms: Option<u64>,
    /// Whole-call wall time, ms.
    pub duration_ms: Option<u64>,
    /// The model, for payloads that do not name it (Bedrock Converse).
    pub model: Option<String>,
    /// When the call happened (now when absent).
    pub timestamp: Option<DateTime<Utc>>,
    /// An idempotency key when the payload has no message id.
    pub id: Option<String>,
}

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) catalog: RwLock<Arc<PriceCatalog>>,
    pub(crate) writer: BatchWriter,
    pub(crate) quotas: crate::quotas::QuotaCache,
    pub(crate) alerts_seen: crate::quotas::AlertsSeen,
    pub(crate) alert_callbacks: RwLock<Vec<crate::quotas::AlertCallback>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Records and queries usage. Cheap to clone; clones share the store, the catalog and the
/// batched writer.
#[derive(Clone, Debug)]
pub struct Tracker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) scope: Filter,
}

fn new_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

impl Tracker {
    /// Opens a store by URL: `sqlite://usage.db` (the default backend; the file is created if
    /// absent), `postgres://user@host/db` (feature `postgres`), or `memory://`.
    pub async fn open(url: &str) -> Result<Tracker> {
        Tracker::open_with(url, TrackerOptions::default()).await
    }

    /// [`Tracker::open`] with options.
    pub async fn open_with(url: &str, options: TrackerOptions) -> Result<Tracker> {
        let store = crate::open_store(url).await?;
        Ok(Tracker::with_store(store, options))
    }

    /// A tracker over any store. Must be called inside a tokio runtime (it starts the batched
    /// writer task).
    pub fn with_store(store: Arc<dyn Store>, options: TrackerOptions) -> Tracker {
        let catalog = options
            .catalog
            .unwrap_or_else(|| Arc::new(PriceCatalog::builtin().clone()));
        let shared = Arc::new_cyclic(|weak: &std::sync::Weak<Shared>| {
            let weak = weak.clone();
            let after: AfterWrite = Arc::new(move |events| {
                let weak = weak.clone();
                Box::pin(async move {
                    match weak.upgrade() {
                        Some(shared) => {
                            let tracker = Tracker {
                                shared,
                                scope: Filter::default(),
                            };
                            tracker.alerts_after(&events).await.map(|_| ())
                        }
                        None => Ok(()),
                    }
                })
            });
            Shared {
                writer: BatchWriter::spawn(store.clone(), options.batch, after),
                store,
                catalog: RwLock::new(catalog),
                quotas: Default::default(),
                alerts_seen: Default::default(),
                alert_callbacks: RwLock::new(Vec::new()),
            }
        });
        Tracker {
            shared,
            scope: Filter::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The catalog events are priced with.
    pub fn catalog(&self) -> Arc<PriceCatalog> {
        self.shared
            .catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the catalog for events recorded from now on (stored costs are kept; see
    /// [`Tracker::reprice`]).
    pub fn set_catalog(&self, catalog: PriceCatalog) {
        *self
            .shared
            .catalog
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
    }

    /// A handle that can only read and write `user_id`'s events.
    pub fn for_user(&self, user_id: impl Into<String>) -> Result<Tracker> {
        self.scoped(Filter {
            user_id: Some(user_id.into()),
            ..Default::default()
        })
    }

    /// A handle confined to a scope (a user and/or tag values): its queries only see events
    /// inside it, and events it records are placed inside it. Scopes only narrow.
    pub fn scoped(&self, scope: Filter) -> Result<Tracker> {
        if scope.range.is_some()
            || scope.model.is_some()
            || scope.provider.is_some()
            || scope.status.is_some()
        {
            return Err(Error::argument(
                "scope",
                "a scope may only name a user and tags",
            ));
        }
        if let Some(u) = &scope.user_id
            && u.trim().is_empty()
        {
            return Err(Error::argument("user_id", "is empty"));
        }
        let scope = scope.within(&self.scope)?;
        Ok(Tracker {
            shared: self.shared.clone(),
            scope,
        })
    }

    /// The scope of this handle (empty: everything).
    pub fn scope(&self) -> &Filter {
        &self.scope
    }

    fn place(&self, mut e: NewEvent) -> Result<NewEvent> {
        if let Some(u) = &self.scope.user_id {
            match &e.user_id {
                Some(x) if x != u => {
                    return Err(Error::argument(
                        "user_id",
                        format!("`{x}` is outside this handle's scope"),
                    ));
                }
                _ => e.user_id = Some(u.clone()),
            }
        }
        for (k, v) in &self.scope.tags {
            match e.tags.get(k) {
                Some(x) if x != v => {
                    return Err(Error::argument(
                        format!("tags.{k}"),
                        format!("`{x}` is outside this handle's scope"),
                    ));
                }
                _ => {
                    e.tags.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(e)
    }

    /// Validates, scopes and prices an event without storing it.
    pub fn prepare(&self, e: NewEvent) -> Result<(UsageEvent, Option<CostBreakdown>)> {
        let e = self.place(e)?;
        e.validate()?;
        let now = Utc::now();
        let at = e.timestamp.unwrap_or(now);
        // Stores keep milliseconds; truncate here so what we return is what is stored.
        let at = DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at);
        let catalog = self.catalog();
        let p = price_call(
            &catalog,
            &e.model,
            &e.usage,
            at,
            &e.context,
            e.provided_cost,
        )?;
        let id = EventId::new(e.id.unwrap_or_else(new_id))?;
        let event = UsageEvent {
            id,
            timestamp: at,
            provider: e.provider,
            model: e.model,
            resolved_model: p.resolved_model,
            usage: e.usage,
            cost: p.cost,
            cost_source: p.source,
            unpriced_reason: p.unpriced_reason,
            catalog_version: p.catalog_version,
            latency_ms: e.latency_ms,
            duration_ms: e.duration_ms,
            status: e.status,
            error_type: e.error_type,
            error_message: e.error_message,
            context: e.context,
            user_id: e.user_id,
            tags: e.tags,
        };
        Ok((event, p.breakdown))
    }

    /// Prices and stores one event durably before returning (one transaction). Recording an id
    /// that is already stored changes nothing and says so.
    pub async fn record(&self, e: NewEvent) -> Result<Recorded> {
        Ok(self.record_many(vec![e]).await?.remove(0))
    }

    /// Prices and stores several events in one transaction.
    pub async fn record_many(&self, events: Vec<NewEvent>) -> Result<Vec<Recorded>> {
        let (events, breakdowns) = self.prepare_all(events)?;
        let watch = self.alert_watch(&events).await?;
        let (inserted, used) = self
            .shared
            .store
            .insert_and_read(&events, &watch.ranges())
            .await?;
        self.finish_recorded(events, breakdowns, inserted, watch, used)
            .await
    }

    /// [`prepare`](Tracker::prepare)s every event: the events to store, and their costs.
    pub(crate) fn prepare_all(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<(Vec<UsageEvent>, Vec<Option<CostBreakdown>>)> {
        let mut out = (
            Vec::with_capacity(events.len()),
            Vec::with_capacity(events.len()),
        );
        for e in events {
            let (event, breakdown) = self.prepare(e)?;
            out.0.push(event);
            out.1.push(breakdown);
        }
        Ok(out)
    }

    /// What a write of `events` (with their `breakdowns`) answers: per event, whether it was
    /// new, and the alerts the new ones fired (`used`: the usage of `watch`'s quotas after the
    /// write).
    pub(crate) async fn finish_recorded(
        &self,
        events: Vec<UsageEvent>,
        breakdowns: Vec<Option<CostBreakdown>>,
        inserted: Vec<bool>,
        watch: AlertWatch,
        used: Vec<Decimal>,
    ) -> Result<Vec<Recorded>> {
        let new = events
            .iter()
            .zip(&inserted)
            .filter(|(_, ok)| **ok)
            .map(|(e, _)| e);
        let mut alerts = self.alerts_from(watch, new, used).await?;
        let mut out: Vec<Recorded> = events
            .into_iter()
            .zip(breakdowns)
            .zip(inserted)
            .map(|((event, breakdown), ok)| Recorded {
                event,
                duplicate: !ok,
                breakdown,
                alerts: Vec::new(),
            })
            .collect();
        // Alerts belong to the batch; report them on its last new event.
        if let Some(last) = out.iter_mut().rev().find(|r| !r.duplicate) {
            last.alerts.append(&mut alerts);
        }
        Ok(out)
    }

    /// Prices an event and queues it for the batched writer; returns at once. The event is
    /// durable after the next batch write (`flush`, `close`, a full batch or the flush
    /// interval). Duplicates are still stored once. A batch the store refused is reported once,
    /// by the next `enqueue` or `flush`; an `enqueue` that reports one does not queue its own
    /// event.
    pub async fn enqueue(&self, e: NewEvent) -> Result<UsageEvent> {
        Ok(self.enqueue_recorded(e).await?.event)
    }

    /// [`enqueue`](Tracker::enqueue), answering like [`record`](Tracker::record) does: the
    /// event is queued, not yet stored, so it is never reported a duplicate and its alerts
    /// arrive through the callbacks and `alerts()` once its batch is written.
    pub(crate) async fn enqueue_recorded(&self, e: NewEvent) -> Result<Recorded> {
        let (event, breakdown) = self.prepare(e)?;
        self.writer_error()?;
        self.shared.writer.send(event.clone()).await?;
        Ok(queued(event, breakdown))
    }

    /// [`enqueue_recorded`](Tracker::enqueue_recorded) without waiting, for callers that made
    /// sure the queue has room ([`queue_has_room`](Tracker::queue_has_room)).
    pub(crate) fn enqueue_now(&self, e: NewEvent) -> Result<Recorded> {
        let (event, breakdown) = self.prepare(e)?;
        self.writer_error()?;
        self.shared.writer.push(event.clone())?;
        Ok(queued(event, breakdown))
    }

    /// Whether the batched writer's queue has room for another event.
    pub(crate) fn queue_has_room(&self) -> bool {
        self.shared.writer.has_room()
    }

    /// A write error of the batched writer's since this was last asked.
    fn writer_error(&self) -> Result<()> {
        match self.shared.writer.take_error() {
            Some(err) => Err(Error::store(self.shared.store.backend(), "enqueue", err)),
            None => Ok(()),
        }
    }

    /// Reads every usage record in a provider payload and records each durably.
    pub async fn record_response(
        &self,
        provider: Provider,
        response: &serde_json::Value,
        meta: ResponseMeta,
    ) -> Result<Vec<Recorded>> {
        let events = response_events(provider, response, meta)?;
        self.record_many(events).await
    }

    /// Writes everything queued by `enqueue`; fails with a batch the store refused since the
    /// last report (its events were not stored).
    pub async fn flush(&self) -> Result<()> {
        self.shared.writer.flush().await
    }

    /// Flushes and closes the store. Later calls fail.
    pub async fn close(&self) -> Result<()> {
        self.flush().await?;
        self.shared.store.close().await
    }

    pub(crate) fn scoped_filter(&self, f: &Filter) -> Result<Filter> {
        f.within(&self.scope)
    }

    /// The general query.
    pub async fn query(&self, q: &Query) -> Result<QueryResult> {
        let mut q = q.clone();
        q.filter = self.scoped_filter(&q.filter)?;
        engine::run(&*self.shared.store, &q).await
    }

    /// Streams the events matching `filter` (within this handle's scope) to `out` as CSV
    /// (see [`crate::export`]); the number of rows.
    pub async fn export_csv<W: std::io::Write>(&self, filter: &Filter, out: W) -> Result<u64> {
        crate::export::export_csv(&*self.shared.store, &self.scoped_filter(filter)?, out).await
    }

    /// [`export_csv`](Tracker::export_csv) as JSON lines, one event per line.
    pub async fn export_jsonl<W: std::io::Write>(&self, filter: &Filter, out: W) -> Result<u64> {
        crate::export::export_jsonl(&*self.shared.store, &self.scoped_filter(filter)?, out).await
    }

    /// Totals over `filter` with distinct counts of `distinct`.
    pub async fn summary(&self, filter: &Filter, distinct: &[Dimension]) -> Result<Summary> {
        reports::summary(&*self.shared.store, &self.scoped_filter(filter)?, distinct).await
    }

    /// Per-bucket series over `filter.range`, empty buckets included.
    pub async fn timeseries(
        &self,
        filter: &Filter,
        bucket: Bucket,
        tz: &str,
    ) -> Result<Vec<Point>> {
        reports::timeseries(
            &*self.shared.store,
            &self.scoped_filter(filter)?,
            bucket,
            tz,
        )
        .await
    }

    /// Sums by a dimension with shares of the total.
    pub async fn breakdown(&self, filter: &Filter, by: &Dimension) -> Result<SharePage> {
        reports::breakdown(&*self.shared.store, &self.scoped_filter(filter)?, by).await
    }

    /// Two periods compared.
    pub async fn compare(
        &self,
        filter: &Filter,
        current: TimeRange,
        previous: TimeRange,
    ) -> Result<Comparison> {
        reports::compare(
            &*self.shared.store,
            &self.scoped_filter(filter)?,
            current,
            previous,
        )
        .await
    }

    /// The heaviest values of a dimension, paginated.
    pub async fn top(
        &self,
        filter: &Filter,
        by: &Dimension,
        metric: Metric,
        limit: usize,
        offset: usize,
    ) -> Result<SharePage> {
        reports::top(
            &*self.shared.store,
            &self.scoped_filter(filter)?,
            by,
            metric,
            limit,
            offset,
        )
        .await
    }

    /// One stored event by id (only inside this handle's scope).
    pub async fn event(&self, id: &str) -> Result<Option<UsageEvent>> {
        let e = self.shared.store.get(&EventId::new(id)?).await?;
        Ok(e.filter(|e| self.scope.matches(e)))
    }

    fn admin(&self, op: &str) -> Result<()> {
        if self.scope != Filter::default() {
            return Err(Error::argument(
                "scope",
                format!("{op} needs an unscoped tracker"),
            ));
        }
        Ok(())
    }

    /// Recomputes rollups from raw events (whole UTC hours; all time when absent).
    pub async fn rebuild_rollups(
        &self,
        range: Option<TimeRange>,
        opts: &RunOptions,
    ) -> Result<RunRecord> {
        self.admin("rebuild_rollups")?;
        self.shared.store.rebuild_rollups(range, opts).await
    }

    /// Lists every (hour, group) where rollups and raw events disagree; empty means verified.
    pub async fn verify_rollups(&self, range: Option<TimeRange>) -> Result<Vec<RollupDifference>> {
        self.admin("verify_rollups")?;
        engine::verify_rollups(&*self.shared.store, range).await
    }

    /// Recomputes stored costs under `catalog` (dry run: report only).
    pub async fn reprice(
        &self,
        range: Option<TimeRange>,
        catalog: &PriceCatalog,
        dry_run: bool,
        opts: &RunOptions,
    ) -> Result<(RepriceReport, RunRecord)> {
        self.admin("reprice")?;
        self.shared
            .store
            .reprice(range, catalog, dry_run, opts)
            .await
    }

    /// Deletes raw events before `before`, keeping rollups, and forgets the reservations that
    /// ended before it (committed, released or expired; never an outstanding one).
    pub async fn purge(&self, before: DateTime<Utc>, opts: &RunOptions) -> Result<RunRecord> {
        self.admin("purge")?;
        self.shared.store.purge(before, opts).await
    }

    /// Recent maintenance runs, newest first.
    pub async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.admin("runs")?;
        self.shared.store.runs(limit).await
    }
}

/// What `enqueue` reports for an event it queued: never a duplicate (that is known once it is
/// written), no alerts yet.
fn queued(event: UsageEvent, breakdown: Option<CostBreakdown>) -> Recorded {
    Recorded {
        event,
        duplicate: false,
        breakdown,
        alerts: Vec::new(),
    }
}

/// Turns a provider payload into events to record.
pub fn response_events(
    provider: Provider,
    response: &serde_json::Value,
    meta: ResponseMeta,
) -> Result<Vec<NewEvent>> {
    let records = extract(provider, response)?;
    let n = records.len();
    records
        .into_iter()
        .map(|r| {
            // One payload with several records (per-model CLI usage) gets one id per record.
            let suffix = (n > 1).then(|| r.model.clone());
            extracted_event(provider, r, &meta, suffix.as_deref())
        })
        .collect()
}

/// The event to record for one extracted usage record (a whole response's, or a stream
/// accumulator's): the model from the record, else `meta.model`; the id from the record, else
/// `meta.id` (with `#id_suffix` when given); an error status when the provider reported an
/// error, the record is not billable (`not_billable`), or the stream ended before its final
/// usage (`incomplete_stream`, with the usage seen so far).
pub fn extracted_event(
    provider: Provider,
    r: usage_core::extract::Extracted,
    meta: &ResponseMeta,
    id_suffix: Option<&str>,
) -> Result<NewEvent> {
    let model = if r.model.is_empty() {
        meta.model.clone().unwrap_or_default()
    } else {
        r.model.clone()
    };
    if model.is_empty() {
        return Err(Error::response(
            provider.as_str(),
            "model",
            "is absent from the payload; pass it in the metadata",
        ));
    }
    let base_id = r.message_id.clone().or_else(|| meta.id.clone());
    let id = base_id.map(|b| match id_suffix {
        Some(x) => format!("{b}#{x}"),
        None => b,
    });
    let error_type = match (&r.error, r.billable, r.complete) {
        (Some(e), _, _) => Some(e.kind.clone()),
        (None, false, _) => Some("not_billable".to_owned()),
        (None, true, false) => Some("incomplete_stream".to_owned()),
        (None, true, true) => None,
    };
    Ok(NewEvent {
        id,
        timestamp: meta.timestamp.or(r.timestamp),
        provider: provider_key(provider).to_owned(),
        model,
        usage: r.usage,
        context: r.context,
        provided_cost: r.provided_cost,
        latency_ms: meta.latency_ms,
        duration_ms: meta.duration_ms.or(r.duration_ms),
        status: if error_type.is_some() {
            usage_core::Status::Error
        } else {
            usage_core::Status::Success
        },
        error_type,
        error_message: r.error.as_ref().map(|e| e.message.clone()),
        user_id: meta.user_id.clone(),
        tags: meta.tags.clone(),
    })
}

pub(crate) fn provider_key(p: Provider) -> &'static str {
    match p {
        Provider::ClaudeCode | Provider::ClaudeCli | Provider::Vertex => "anthropic",
        other => other.as_str(),
    }
}
