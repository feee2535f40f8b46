//! The in-memory store: for tests and short-lived scripts. It keeps real hourly rollups beside
//! the raw events, exactly like the SQL backends, so purging and rollup verification behave the
//! same everywhere.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use usage_core::event::{EventId, UsageEvent};
use usage_core::pricing::PriceCatalog;
use usage_core::query::{Dimension, Filter, TimeRange, Totals};
use usage_core::quota::Quota;
use usage_core::store::{
    AggregateRequest, AggregateRow, Cursor, DistinctRow, LatencyRow, RepriceReport, RunKind,
    RunOptions, RunOutcome, RunRecord, Source, Store,
};
use usage_core::store::{
    Alert, QuotaStore, QuotaUse, Reservation, ReservationState, ReserveRequest,
    quota_usage_requests,
};
use usage_core::{Error, Result};

const HOUR_MS: i64 = 3_600_000;

type GroupKey = (Vec<Option<String>>, Option<DateTime<Utc>>);

type EventCell = (i64, String, String, String, String); // hour, user ('' = none), provider, model, status
type TagCell = (i64, String, String, String); // hour, key, value, user

#[derive(Debug, Default)]
struct Inner {
    closed: bool,
    events: BTreeMap<(i64, String), UsageEvent>, // (ts_ms, id)
    ids: HashMap<String, i64>,
    rollup_events: BTreeMap<EventCell, Totals>,
    rollup_tags: BTreeMap<TagCell, Totals>,
    purged_before: Option<DateTime<Utc>>,
    runs: Vec<RunRecord>,
}

/// Events and rollups in memory; gone when dropped.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
    quota: std::sync::Mutex<QuotaState>,
}

fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn closed() -> Error {
    Error::store("memory", "access", "the store is closed")
}

impl Inner {
    fn add_rollups(&mut self, e: &UsageEvent, sign: i8) {
        let t = Totals::of(e);
        let hour = hour_of(e.timestamp.timestamp_millis());
        let user = e.user_id.clone().unwrap_or_default();
        let cell = (
            hour,
            user.clone(),
            e.provider.clone(),
            e.model_key().to_owned(),
            e.status.as_str().to_owned(),
        );
        apply(self.rollup_events.entry(cell).or_default(), &t, sign);
        for (k, v) in &e.tags {
            let cell = (hour, k.clone(), v.clone(), user.clone());
            apply(self.rollup_tags.entry(cell).or_default(), &t, sign);
        }
    }

    fn log(
        &mut self,
        kind: RunKind,
        range: Option<TimeRange>,
        started_at: DateTime<Utc>,
        rows: u64,
        outcome: RunOutcome,
        detail: Option<String>,
    ) -> RunRecord {
        let r = RunRecord {
            id: self.runs.len() as i64 + 1,
            kind,
            range,
            started_at,
            finished_at: Utc::now(),
            rows,
            outcome,
            error: None,
            detail,
        };
        self.runs.push(r.clone());
        r
    }
}

fn apply(into: &mut Totals, t: &Totals, sign: i8) {
    if sign > 0 {
        into.merge(t);
    } else {
        let neg = |a: u64, b: u64| a.saturating_sub(b);
        into.requests = neg(into.requests, t.requests);
        into.errors = neg(into.errors, t.errors);
        into.unpriced = neg(into.unpriced, t.unpriced);
        into.input = neg(into.input, t.input);
        into.cache_read = neg(into.cache_read, t.cache_read);
        into.cache_write_5m = neg(into.cache_write_5m, t.cache_write_5m);
        into.cache_write_1h = neg(into.cache_write_1h, t.cache_write_1h);
        into.output = neg(into.output, t.output);
        into.reasoning = neg(into.reasoning, t.reasoning);
        into.web_search_requests = neg(into.web_search_requests, t.web_search_requests);
        into.web_fetch_requests = neg(into.web_fetch_requests, t.web_fetch_requests);
        into.cost_input = into.cost_input - t.cost_input;
        into.cost_cache_read = into.cost_cache_read - t.cost_cache_read;
        into.cost_cache_write_5m = into.cost_cache_write_5m - t.cost_cache_write_5m;
        into.cost_cache_write_1h = into.cost_cache_write_1h - t.cost_cache_write_1h;
        into.cost_output = into.cost_output - t.cost_output;
        into.cost_web_search = into.cost_web_search - t.cost_web_search;
        into.cost_total = into.cost_total - t.cost_total;
        into.latency_sum_ms = neg(into.latency_sum_ms, t.latency_sum_ms);
        into.latency_count = neg(into.latency_count, t.latency_count);
        into.duration_sum_ms = neg(into.duration_sum_ms, t.duration_sum_ms);
    }
}

fn grain_start(ms: i64, grain: Option<i64>) -> Option<DateTime<Utc>> {
    grain.map(|g| ms_to_time(ms.div_euclid(g * 1000) * g * 1000))
}

fn in_range(range: &Option<TimeRange>, ms: i64) -> bool {
    range.is_none_or(|r| r.start.timestamp_millis() <= ms && ms < r.end.timestamp_millis())
}

/// A rollup cell seen through the dimensions it has.
struct CellView<'a> {
    hour: i64,
    user: &'a str,
    provider: Option<&'a str>,
    model: Option<&'a str>,
    status: Option<&'a str>,
    tag: Option<(&'a str, &'a str)>,
}

impl CellView<'_> {
    fn value(&self, d: &Dimension) -> Option<String> {
        let v = match d {
            Dimension::User => (!self.user.is_empty()).then_some(self.user),
            Dimension::Provider => self.provider,
            Dimension::Model => self.model,
            Dimension::Status => self.status,
            Dimension::Tag(k) => self.tag.filter(|(tk, _)| tk == k).map(|(_, v)| v),
        };
        v.map(str::to_owned)
    }

    fn matches(&self, f: &Filter) -> bool {
        in_range(&f.range, self.hour)
            && f.user_id.as_deref().is_none_or(|u| u == self.user)
            && f.provider
                .as_deref()
                .is_none_or(|p| Some(p) == self.provider)
            && f.model.as_deref().is_none_or(|m| Some(m) == self.model)
            && f.status.is_none_or(|s| Some(s.as_str()) == self.status)
            && f.tags
                .iter()
                .all(|(k, v)| self.tag == Some((k.as_str(), v.as_str())))
    }
}

fn tag_key_of(req: &AggregateRequest, extra: Option<&Dimension>) -> Option<String> {
    req.filter.tags.keys().next().cloned().or_else(|| {
        req.group_by.iter().chain(extra).find_map(|d| match d {
            Dimension::Tag(k) => Some(k.clone()),
            _ => None,
        })
    })
}

impl Inner {
    fn cells(
        &self,
        req: &AggregateRequest,
        extra: Option<&Dimension>,
    ) -> Vec<(CellView<'_>, &Totals)> {
        match tag_key_of(req, extra) {
            None => self
                .rollup_events
                .iter()
                .map(|((h, u, p, m, s), t)| {
                    (
                        CellView {
                            hour: *h,
                            user: u,
                            provider: Some(p),
                            model: Some(m),
                            status: Some(s),
                            tag: None,
                        },
                        t,
                    )
                })
                .collect(),
            Some(key) => self
                .rollup_tags
                .iter()
                .filter(|((_, k, _, _), _)| *k == key)
                .map(|((h, k, v, u), t)| {
                    (
                        CellView {
                            hour: *h,
                            user: u,
                            provider: None,
                            model: None,
                            status: None,
                            tag: Some((k, v)),
                        },
                        t,
                    )
                })
                .collect(),
        }
    }

    fn raw<'a>(&'a self, f: &'a Filter) -> impl Iterator<Item = &'a UsageEvent> + 'a {
        self.events.values().filter(move |e| f.matches(e))
    }
}

impl Inner {
    /// A quota's recorded usage over `range`.
    fn used(&self, quota: &Quota, range: TimeRange) -> Decimal {
        quota_usage_requests(quota, range)
            .iter()
            .flat_map(|r| self.aggregate(r))
            .map(|row| quota.metric.amount(&row.totals))
            .sum()
    }

    fn aggregate(&self, req: &AggregateRequest) -> Vec<AggregateRow> {
        let g = self;
        let mut acc: BTreeMap<GroupKey, Totals> = BTreeMap::new();
        match req.source {
            Source::Raw => {
                for e in g.raw(&req.filter) {
                    let group = req
                        .group_by
                        .iter()
                        .map(|d| d.value_of(e).map(str::to_owned))
                        .collect();
                    let gs = grain_start(e.timestamp.timestamp_millis(), req.grain_secs);
                    acc.entry((group, gs)).or_default().merge(&Totals::of(e));
                }
            }
            Source::Rollup => {
                for (c, t) in g.cells(req, None) {
                    if c.matches(&req.filter) {
                        let group = req.group_by.iter().map(|d| c.value(d)).collect();
                        acc.entry((group, grain_start(c.hour, req.grain_secs)))
                            .or_default()
                            .merge(t);
                    }
                }
            }
        }
        acc.into_iter()
            .filter(|(_, t)| t.requests > 0)
            .map(|((group, grain_start), totals)| AggregateRow {
                group,
                grain_start,
                totals,
            })
            .collect()
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn insert(&self, events: &[UsageEvent]) -> Result<Vec<bool>> {
        self.insert_now(events)
    }

    async fn get(&self, id: &EventId) -> Result<Option<UsageEvent>> {
        let g = self
            .inner
            .read()
            .map_err(|_| Error::store("memory", "get", "lock poisoned"))?;
        if g.closed {
            return Err(closed());
        }
        Ok(g.ids
            .get(id.as_str())
            .and_then(|ms| g.events.get(&(*ms, id.as_str().to_owned())))
            .cloned())
    }

    async fn scan(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<UsageEvent>> {
        let g = self
            .inner
            .read()
            .map_err(|_| Error::store("memory", "scan", "lock poisoned"))?;
        if g.closed {
            return Err(closed());
        }
        let start = after.map(|c| (c.timestamp.timestamp_millis(), c.id.as_str().to_owned()));
        let it: Box<dyn Iterator<Item = &UsageEvent>> = match &start {
            Some(k) => Box::new(
                g.events
                    .range(k.clone()..)
                    .filter(move |((ms, id), _)| (ms, id) != (&k.0, &k.1))
                    .map(|(_, e)| e),
            ),
            None => Box::new(g.events.values()),
        };
        Ok(it
            .filter(|e| filter.matches(e))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn aggregate(&self, req: &AggregateRequest) -> Result<Vec<AggregateRow>> {
        let g = self
            .inner
            .read()
            .map_err(|_| Error::store("memory", "aggregate", "lock poisoned"))?;
        if g.closed {
            return Err(closed());
        }
        Ok(g.aggregate(req))
    }

    async fn distinct(
        &self,
        req: &AggregateRequest,
        dimension: &Dimension,
    ) -> Result<Vec<DistinctRow>> {
        let g = self
            .inner
            .read()
            .map_err(|_| Error::store("memory", "distinct", "lock poisoned"))?;
        if g.closed {
            return Err(closed());
        }
        let mut set = std::collections::BTreeSet::new();
        match req.source {
            Source::Raw => {
                for e in g.raw(&req.filter) {
                    if let Some(v) = dimension.value_of(e) {
                        let group: Vec<Option<String>> = req
                            .group_by
                            .iter()
                            .map(|d| d.value_of(e).map(str::to_owned))
                            .collect();
                        set.insert((
                            group,
                            grain_start(e.timestamp.timestamp_millis(), req.grain_secs),
                            v.to_owned(),
                        ));
                    }
                }
            }
            Source::Rollup => {
                for (c, t) in g.cells(req, Some(dimension)) {
                    if t.requests > 0
                        && c.matches(&req.filter)
                        && let Some(v) = c.value(dimension)
                    {
                        let group = req.group_by.iter().map(|d| c.value(d)).collect();
                        set.insert((group, grain_start(c.hour, req.grain_secs), v));
                    }
                }
            }
        }
        Ok(set
            .into_iter()
            .map(|(group, grain_start, value)| DistinctRow {
                group,
                grain_start,
                value,
            })
            .collect())
    }

    async fn latencies(&self, req: &AggregateRequest) -> Result<Vec<LatencyRow>> {
        let g = self
            .inner
            .read()
            .map_err(|_| Error::store("memory", "latencies", "lock poisoned"))?;
        if g.closed {
            return Err(closed());
        }
        Ok(g.raw(&req.filter)
            .filter_map(|e| {
                e.latency_ms.map(|l| LatencyRow {
                    group: req
                        .group_by
                        .iter()
                        .map(|d| d.value_of(e).map(str::to_owned))
                        .collect(),
                    grain_start: grain_start(e.timestamp.timestamp_millis(), req.grain_secs),
                    latency_ms: l,
                })
            })
            .collect())
    }

    async fn purged_before(&self) -> Result<Option<DateTime<Utc>>> {
        let g = self
            .inner
            .read()
            .map_err(|_| Error::store("memory", "purged_before", "lock poisoned"))?;
        Ok(g.purged_before)
    }

    async fn rebuild_rollups(
        &self,
        range: Option<TimeRange>,
        opts: &RunOptions,
    ) -> Result<RunRecord> {
        check_hours(range)?;
        let started = Utc::now();
        let mut g = self
            .inner
            .write()
            .map_err(|_| Error::store("memory", "rebuild_rollups", "lock poisoned"))?;
        if g.closed {
            return Err(closed());
        }
        let range = clip(range, g.purged_before);
        if opts.cancelled() {
            return Ok(g.log(
                RunKind::RebuildRollups,
                range,
                started,
                0,
                RunOutcome::Cancelled,
                None,
            ));
        }
        let mut fresh = Inner::default();
        let mut rows = 0u64;
        for e in g
            .events
            .values()
            .filter(|e| in_range(&range, e.timestamp.timestamp_millis()))
        {
            fresh.add_rollups(e, 1);
            rows += 1;
            if rows.is_multiple_of(opts.batch() as u64) {
                opts.report(rows, None);
                if opts.cancelled() {
                    return Ok(g.log(
                        RunKind::RebuildRollups,
                        range,
                        started,
                        rows,
                        RunOutcome::Cancelled,
                        None,
                    ));
                }
            }
        }
        g.rollup_events.retain(|k, _| !in_range(&range, k.0));
        g.rollup_tags.retain(|k, _| !in_range(&range, k.0));
        g.rollup_events.extend(fresh.rollup_events);
        g.rollup_tags.extend(fresh.rollup_tags);
        opts.report(rows, Some(rows));
        Ok(g.log(
            RunKind::RebuildRollups,
            range,
            started,
            rows,
            RunOutcome::Succeeded,
            None,
        ))
    }

    async fn reprice(
        &self,
        range: Option<TimeRange>,
        catalog: &PriceCatalog,
        dry_run: bool,
        opts: &RunOptions,
    ) -> Result<(RepriceReport, RunRecord)> {
        let started = Utc::now();
        let mut g = self
            .inner
            .write()
            .map_err(|_| Error::store("memory", "reprice", "lock poisoned"))?;
        if g.closed {
            return Err(closed());
        }
        let mut report = RepriceReport {
            dry_run,
            ..Default::default()
        };
        let mut changes = Vec::new();
        for (k, e) in g
            .events
            .iter()
            .filter(|(_, e)| in_range(&range, e.timestamp.timestamp_millis()))
        {
            report.examined += 1;
            report.old_total += e.total_cost();
            match e.repriced(catalog) {
                Some(n) => {
                    report.changed += 1;
                    if e.cost.is_none() {
                        report.newly_priced += 1;
                    }
                    report.new_total += n.total_cost();
                    changes.push((k.clone(), n));
                }
                None => {
                    if e.cost.is_none() {
                        report.still_unpriced += 1;
                    }
                    report.new_total += e.total_cost();
                }
            }
            if report.examined.is_multiple_of(opts.batch() as u64) {
                opts.report(report.examined, None);
                if opts.cancelled() {
                    let r = g.log(
                        RunKind::Reprice,
                        range,
                        started,
                        report.examined,
                        RunOutcome::Cancelled,
                        None,
                    );
                    return Ok((report, r));
                }
            }
        }
        let detail = Some(format!(
            "{} changed; total {} -> {}",
            report.changed, report.old_total, report.new_total
        ));
        if dry_run {
            let r = g.log(
                RunKind::Reprice,
                range,
                started,
                report.examined,
                RunOutcome::DryRun,
                detail,
            );
            return Ok((report, r));
        }
        for (k, n) in changes {
            if let Some(old) = g.events.get(&k).cloned() {
                g.add_rollups(&old, -1);
                g.add_rollups(&n, 1);
                g.events.insert(k, n);
            }
        }
        let r = g.log(
            RunKind::Reprice,
            range,
            started,
            report.examined,
            RunOutcome::Succeeded,
            detail,
        );
        Ok((report, r))
    }

    async fn purge(&self, before: DateTime<Utc>, opts: &RunOptions) -> Result<RunRecord> {
        if before.timestamp_millis().rem_euclid(HOUR_MS) != 0 {
            return Err(Error::argument(
                "before",
                format!("{before} is not a whole UTC hour"),
            ));
        }
        let started = Utc::now();
        // The quota state first, then the events, as `commit_reservation` takes them.
        let mut q = self.quota_state()?;
        let mut g = self
            .inner
            .write()
            .map_err(|_| Error::store("memory", "purge", "lock poisoned"))?;
        if g.closed {
            return Err(closed());
        }
        let cut = before.timestamp_millis();
        let doomed: Vec<(i64, String)> = g
            .events
            .range(..(cut, String::new()))
            .map(|(k, _)| k.clone())
            .collect();
        if opts.cancelled() {
            return Ok(g.log(
                RunKind::Purge,
                None,
                started,
                0,
                RunOutcome::Cancelled,
                None,
            ));
        }
        let n = doomed.len() as u64;
        for k in doomed {
            g.ids.remove(&k.1);
            g.events.remove(&k);
        }
        // The reservations that ended (were committed or released, or expired while held)
        // before the cut, or before now if that is earlier: no outstanding hold goes.
        let reservations = q.reservations.len();
        let ended_by = before.min(started);
        q.reservations
            .retain(|_, r| r.finished_at.unwrap_or(r.expires_at) >= ended_by);
        let reservations = reservations - q.reservations.len();
        g.purged_before = Some(g.purged_before.map_or(before, |p| p.max(before)));
        opts.report(n, Some(n));
        Ok(g.log(
            RunKind::Purge,
            None,
            started,
            n,
            RunOutcome::Succeeded,
            Some(format!(
                "deleted {n} raw events and {reservations} reservations that had ended"
            )),
        ))
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let g = self
            .inner
            .read()
            .map_err(|_| Error::store("memory", "runs", "lock poisoned"))?;
        Ok(g.runs.iter().rev().take(limit).cloned().collect())
    }

    async fn close(&self) -> Result<()> {
        let mut g = self
            .inner
            .write()
            .map_err(|_| Error::store("memory", "close", "lock poisoned"))?;
        g.closed = true;
        Ok(())
    }
}

fn check_hours(range: Option<TimeRange>) -> Result<()> {
    if let Some(r) = range {
        for t in [r.start, r.end] {
            if t.timestamp_millis().rem_euclid(HOUR_MS) != 0 {
                return Err(Error::argument(
                    "range",
                    format!("{t} is not a whole UTC hour"),
                ));
            }
        }
    }
    Ok(())
}

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

/// A reservation held in memory.
#[derive(Debug, Clone)]
struct MemReservation {
    state: ReservationState,
    expires_at: DateTime<Utc>,
    /// When it was committed or released.
    finished_at: Option<DateTime<Utc>>,
    holds: Vec<(String, Decimal)>,
}

#[derive(Debug, Default)]
struct QuotaState {
    quotas: BTreeMap<String, Quota>,
    reservations: HashMap<String, MemReservation>,
    alerts: Vec<Alert>,
    alert_keys: std::collections::HashSet<(String, i64, String)>,
}

impl QuotaState {
    fn held(&self, quota_id: &str, now: DateTime<Utc>, except: Option<&str>) -> Decimal {
        self.reservations
            .iter()
            .filter(|(id, r)| {
                r.state == ReservationState::Held
                    && r.expires_at > now
                    && Some(id.as_str()) != except
            })
            .flat_map(|(_, r)| r.holds.iter())
            .filter(|(q, _)| q == quota_id)
            .map(|(_, a)| *a)
            .sum()
    }
}

impl MemoryStore {
    fn insert_now(&self, events: &[UsageEvent]) -> Result<Vec<bool>> {
        let mut g = self
            .inner
            .write()
            .map_err(|_| Error::store("memory", "insert", "lock poisoned"))?;
        if g.closed {
            return Err(closed());
        }
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            if g.ids.contains_key(e.id.as_str()) {
                out.push(false);
                continue;
            }
            let mut e = e.clone();
            let ms = e.timestamp.timestamp_millis();
            e.timestamp = ms_to_time(ms);
            g.ids.insert(e.id.as_str().to_owned(), ms);
            g.add_rollups(&e, 1);
            g.events.insert((ms, e.id.as_str().to_owned()), e);
            out.push(true);
        }
        Ok(out)
    }

    fn quota_state(&self) -> Result<std::sync::MutexGuard<'_, QuotaState>> {
        self.quota
            .lock()
            .map_err(|_| Error::store("memory", "quota", "lock poisoned"))
    }
}

#[async_trait]
impl QuotaStore for MemoryStore {
    async fn put_quota(&self, quota: &Quota) -> Result<()> {
        quota.validate()?;
        self.quota_state()?
            .quotas
            .insert(quota.id.clone(), quota.clone());
        Ok(())
    }

    async fn quotas(&self) -> Result<Vec<Quota>> {
        Ok(self.quota_state()?.quotas.values().cloned().collect())
    }

    async fn delete_quota(&self, id: &str) -> Result<bool> {
        let mut q = self.quota_state()?;
        // Its outstanding holds stop counting, as the contract says (and SQL backends do).
        for r in q.reservations.values_mut() {
            r.holds.retain(|(quota, _)| quota != id);
        }
        Ok(q.quotas.remove(id).is_some())
    }

    async fn held(&self, quota_id: &str, now: DateTime<Utc>) -> Result<Decimal> {
        Ok(self.quota_state()?.held(quota_id, now, None))
    }

    async fn used(&self, quotas: &[(Quota, TimeRange)]) -> Result<Vec<Decimal>> {
        let g = self
            .inner
            .read()
            .map_err(|_| Error::store("memory", "used", "lock poisoned"))?;
        if g.closed {
            return Err(closed());
        }
        Ok(quotas.iter().map(|(q, range)| g.used(q, *range)).collect())
    }

    async fn reserve(&self, req: &ReserveRequest) -> Result<Reservation> {
        // The quota lock is held across usage reading and hold writing, so reservations are
        // serialised; the events lock is only read.
        let mut q = self.quota_state()?;
        if q.reservations.contains_key(&req.id) {
            return Err(Error::argument(
                "reservation",
                format!("`{}` already exists", req.id),
            ));
        }
        let g = self
            .inner
            .read()
            .map_err(|_| Error::store("memory", "reserve", "lock poisoned"))?;
        if g.closed {
            return Err(closed());
        }
        let mut uses = Vec::with_capacity(req.holds.len());
        for h in &req.holds {
            let used = g.used(&h.quota, h.range);
            let held = q.held(&h.quota.id, req.now, None);
            if h.quota.hard && used + held + h.amount > h.quota.limit {
                return Err(Error::QuotaExceeded {
                    quota: h.quota.id.clone(),
                    limit: h.quota.limit,
                    used: used + held,
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
        q.reservations.insert(
            req.id.clone(),
            MemReservation {
                state: ReservationState::Held,
                expires_at: req.expires_at,
                finished_at: None,
                holds: req
                    .holds
                    .iter()
                    .map(|h| (h.quota.id.clone(), h.amount))
                    .collect(),
            },
        );
        Ok(Reservation {
            id: req.id.clone(),
            expires_at: req.expires_at,
            uses,
        })
    }

    async fn commit_reservation(&self, id: &str, events: &[UsageEvent]) -> Result<Vec<bool>> {
        let mut q = self.quota_state()?;
        let state = q
            .reservations
            .get(id)
            .map(|r| r.state)
            .ok_or_else(|| Error::NotFound {
                kind: "reservation",
                id: id.to_owned(),
            })?;
        match state {
            ReservationState::Committed => Ok(vec![false; events.len()]),
            ReservationState::Released => Err(Error::argument(
                "reservation",
                format!("`{id}` was released; it cannot be committed"),
            )),
            ReservationState::Held => {
                let inserted = self.insert_now(events)?;
                if let Some(r) = q.reservations.get_mut(id) {
                    r.state = ReservationState::Committed;
                    r.finished_at = Some(Utc::now());
                }
                Ok(inserted)
            }
        }
    }

    async fn release_reservation(&self, id: &str) -> Result<bool> {
        let mut q = self.quota_state()?;
        let r = q.reservations.get_mut(id).ok_or_else(|| Error::NotFound {
            kind: "reservation",
            id: id.to_owned(),
        })?;
        if r.state == ReservationState::Held {
            r.state = ReservationState::Released;
            r.finished_at = Some(Utc::now());
            return Ok(true);
        }
        Ok(false)
    }

    async fn insert_alert(&self, alert: &Alert) -> Result<bool> {
        let mut q = self.quota_state()?;
        let key = (
            alert.quota_id.clone(),
            alert.window_start.timestamp_millis(),
            alert.threshold.clone(),
        );
        if !q.alert_keys.insert(key) {
            return Ok(false);
        }
        q.alerts.push(alert.clone());
        Ok(true)
    }

    async fn alerts(&self, since: DateTime<Utc>, limit: usize) -> Result<Vec<Alert>> {
        let q = self.quota_state()?;
        let mut out: Vec<Alert> = q.alerts.iter().filter(|a| a.at >= since).cloned().collect();
        out.sort_by_key(|a| a.at);
        out.truncate(limit);
        Ok(out)
    }
}
