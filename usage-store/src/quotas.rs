//! The Tracker's budget surface: quotas, status with forecasts, `check`, atomic
//! `reserve`/`commit`/`release`, alerts (returned, pushed to callbacks, and pollable), and
//! `guard`, which wraps any async provider call in reserve → call → commit / release.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use usage_core::event::{NewEvent, UsageEvent};
use usage_core::extract::Provider;
use usage_core::forecast::{Forecast, ForecastOptions, forecast};
use usage_core::query::engine::plan_requests;
use usage_core::query::{Bucket, Filter, TimeRange};
use usage_core::quota::estimate::Estimate;
use usage_core::quota::status::{self, Decision, QuotaStatus};
use usage_core::quota::window::WindowSpan;
use usage_core::quota::{Quota, QuotaMetric, Subject, Window};
use usage_core::store::{Alert, HoldRequest, Reservation, ReserveRequest};
use usage_core::{Error, Result};

use crate::tracker::{Recorded, ResponseMeta, Tracker};

/// Called with every alert this process stores (the first notice anywhere of a threshold
/// reached in a window).
pub type AlertCallback = Arc<dyn Fn(&Alert) + Send + Sync>;

/// How long this process trusts its copy of the quota list before reading it again (quotas set
/// through this tracker are seen at once; those set by other processes within this delay).
const QUOTA_CACHE_TTL: StdDuration = StdDuration::from_secs(1);

/// Default lifetime of a reservation's holds.
pub const DEFAULT_RESERVATION_TTL: StdDuration = StdDuration::from_secs(600);

#[derive(Default)]
pub(crate) struct QuotaCache(RwLock<Option<(Instant, Arc<Vec<Quota>>)>>);

impl QuotaCache {
    fn get(&self) -> Option<Arc<Vec<Quota>>> {
        let g = self.0.read().unwrap_or_else(|p| p.into_inner());
        g.as_ref()
            .filter(|(at, _)| at.elapsed() < QUOTA_CACHE_TTL)
            .map(|(_, q)| q.clone())
    }
    fn put(&self, q: Arc<Vec<Quota>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), q));
    }
    fn clear(&self) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The alerts this process knows are stored, so that a quota that stays past a threshold does
/// not try to store its alert again on every event: per quota, the alert window last seen and
/// the thresholds stored in it. Bounded by the number of quotas; a new window replaces the old.
#[derive(Default)]
pub(crate) struct AlertsSeen(Mutex<HashMap<String, WindowAlerts>>);

/// An alert window's start and the thresholds whose alerts are stored in it.
type WindowAlerts = (DateTime<Utc>, Vec<String>);

impl AlertsSeen {
    fn contains(&self, quota: &str, window_start: DateTime<Utc>, threshold: &str) -> bool {
        let seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(quota)
            .is_some_and(|(w, names)| *w == window_start && names.iter().any(|n| n == threshold))
    }
    fn insert(&self, quota: &str, window_start: DateTime<Utc>, threshold: &str) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = seen
            .entry(quota.to_owned())
            .or_insert_with(|| (window_start, Vec::new()));
        if entry.0 != window_start {
            *entry = (window_start, Vec::new());
        }
        if !entry.1.iter().any(|n| n == threshold) {
            entry.1.push(threshold.to_owned());
        }
    }
}

/// Whether `q` counts a call made for `subjects`: global quotas count every call.
fn applies(q: &Quota, subjects: &[Subject]) -> bool {
    q.subject == Subject::Global || subjects.contains(&q.subject)
}

/// The quotas a write's events count toward, each with its window at `now`; see
/// [`Tracker::alert_watch`].
pub(crate) struct AlertWatch {
    now: DateTime<Utc>,
    quotas: Vec<(Quota, WindowSpan)>,
}

impl AlertWatch {
    /// What the store reads back: each quota's usage over its window.
    pub(crate) fn ranges(&self) -> Vec<(Quota, TimeRange)> {
        self.quotas
            .iter()
            .map(|(q, span)| (q.clone(), span.range()))
            .collect()
    }
}

/// Whether any of `events` adds to `quota` in its window `span`.
fn adds_to<'e>(
    quota: &Quota,
    span: &WindowSpan,
    events: impl Iterator<Item = &'e UsageEvent>,
) -> bool {
    let range = span.range();
    let added: Decimal = events
        .filter(|e| quota.covers(e) && range.contains(e.timestamp))
        .map(|e| quota.metric.of_event(e))
        .sum();
    !added.is_zero()
}

/// The key under which a window's alerts are kept: calendar windows by their start; rolling
/// windows by consecutive periods of their own length (so a threshold fires at most once per
/// window length); lifetime windows once ever.
fn alert_window_start(quota: &Quota, span: &WindowSpan) -> DateTime<Utc> {
    match quota.window {
        Window::Rolling { seconds } => {
            let t = span.now.timestamp();
            DateTime::from_timestamp(t - t.rem_euclid(seconds), 0).unwrap_or(span.now)
        }
        Window::Lifetime => DateTime::<Utc>::UNIX_EPOCH,
        _ => span.start,
    }
}

/// What a guarded call needs besides the call itself.
#[derive(Clone, Debug, Default)]
pub struct GuardContext {
    /// The provider, which decides how the response's usage is read.
    pub provider: Option<Provider>,
    /// The quota subjects to reserve against (global quotas always apply).
    pub subjects: Vec<Subject>,
    /// What to attach to the recorded event (user, tags, model for payloads without one).
    pub meta: ResponseMeta,
    /// How long the hold lasts if the process dies mid-call (default 10 minutes).
    pub ttl: Option<StdDuration>,
    /// When no quota applies (so nothing is held), record through the batched writer instead
    /// of one durable write per call. A held call always commits durably.
    pub batched: bool,
}

impl Tracker {
    fn admin_only(&self, op: &str) -> Result<()> {
        if self.scope != Filter::default() {
            return Err(Error::argument(
                "scope",
                format!("{op} needs an unscoped tracker"),
            ));
        }
        Ok(())
    }

    /// Creates or replaces a quota. Changing a limit mid-period keeps the usage counted so far.
    pub async fn set_quota(&self, quota: Quota) -> Result<()> {
        self.admin_only("set_quota")?;
        quota.validate()?;
        self.shared.store.put_quota(&quota).await?;
        self.shared.quotas.clear();
        Ok(())
    }

    /// Every quota.
    pub async fn quotas(&self) -> Result<Arc<Vec<Quota>>> {
        if let Some(q) = self.shared.quotas.get() {
            return Ok(q);
        }
        let q = Arc::new(self.shared.store.quotas().await?);
        self.shared.quotas.put(q.clone());
        Ok(q)
    }

    /// Deletes a quota; true when there was one.
    pub async fn delete_quota(&self, id: &str) -> Result<bool> {
        self.admin_only("delete_quota")?;
        let r = self.shared.store.delete_quota(id).await?;
        self.shared.quotas.clear();
        Ok(r)
    }

    /// Registers a callback for every alert this process stores.
    pub fn on_alert(&self, callback: AlertCallback) {
        self.shared
            .alert_callbacks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(callback);
    }

    /// Alerts noticed since `since` (by any process), oldest first: for a background notifier.
    pub async fn alerts(&self, since: DateTime<Utc>, limit: usize) -> Result<Vec<Alert>> {
        self.admin_only("alerts")?;
        self.shared.store.alerts(since, limit).await
    }

    /// The quotas that apply to `subjects`: theirs and every global quota. A scoped handle
    /// may only ask about its own user.
    pub(crate) async fn applicable(&self, subjects: &[Subject]) -> Result<Vec<Quota>> {
        self.check_subjects(subjects)?;
        Ok(self
            .quotas()
            .await?
            .iter()
            .filter(|q| applies(q, subjects))
            .cloned()
            .collect())
    }

    /// Whether any quota applies to `subjects`, when the quotas are cached; `None` when telling
    /// needs the store.
    pub(crate) fn any_applicable_cached(&self, subjects: &[Subject]) -> Result<Option<bool>> {
        self.check_subjects(subjects)?;
        Ok(self
            .shared
            .quotas
            .get()
            .map(|quotas| quotas.iter().any(|q| applies(q, subjects))))
    }

    /// Subjects must be well formed and inside this handle's scope.
    fn check_subjects(&self, subjects: &[Subject]) -> Result<()> {
        for s in subjects {
            s.validate()?;
            if let (Some(mine), Subject::User { id }) = (&self.scope.user_id, s)
                && id != mine
            {
                return Err(Error::argument(
                    "subject",
                    format!("user `{id}` is outside this handle's scope"),
                ));
            }
        }
        Ok(())
    }

    async fn used(&self, quota: &Quota, range: TimeRange) -> Result<Decimal> {
        let used = self.shared.store.used(&[(quota.clone(), range)]).await?;
        Ok(used.into_iter().next().unwrap_or_default())
    }

    async fn forecast_for(
        &self,
        quota: &Quota,
        span: &WindowSpan,
        used: Decimal,
    ) -> Result<Forecast> {
        let options = ForecastOptions::default();
        self.forecast_span(
            &quota.subject.filter(),
            quota.metric,
            &quota.tz,
            span,
            used,
            Some(quota.limit),
            &options,
        )
        .await
    }

    /// Daily history of `metric` over the look-back, then the forecast for `span`.
    #[allow(clippy::too_many_arguments)]
    async fn forecast_span(
        &self,
        filter: &Filter,
        metric: QuotaMetric,
        tz_name: &str,
        span: &WindowSpan,
        used: Decimal,
        limit: Option<Decimal>,
        options: &ForecastOptions,
    ) -> Result<Forecast> {
        let tz = usage_core::query::parse_tz(tz_name)?;
        let today = Bucket::Day.floor(&tz, span.now);
        let mut start = today;
        for _ in 0..options.lookback_days.clamp(1, 3660) {
            start = Bucket::Day.floor(&tz, start - Duration::hours(1));
        }
        let range = TimeRange::new(start, Bucket::Day.next(&tz, today))?;
        let filter = Filter {
            range: Some(range),
            ..filter.clone()
        };
        let series = usage_core::query::reports::timeseries(
            &*self.shared.store,
            &filter,
            Bucket::Day,
            tz_name,
        )
        .await?;
        let daily: Vec<(DateTime<Utc>, Decimal)> = series
            .iter()
            .map(|p| (p.start, metric.amount(&p.totals)))
            .collect();
        Ok(forecast(&daily, used, limit, span, options))
    }

    /// Forecasts any slice of usage, not only a quota's: `metric` of the events matching `filter`
    /// (within this handle's scope) over the current `window` in time zone `tz`, against an
    /// optional `limit` (a budget), with burn rate, period-end projection and range, and when
    /// the limit is expected to be reached. `filter.range` is ignored: the window sets the
    /// period.
    pub async fn forecast(
        &self,
        filter: &Filter,
        metric: QuotaMetric,
        window: Window,
        tz: &str,
        limit: Option<Decimal>,
        options: &ForecastOptions,
    ) -> Result<Forecast> {
        window.validate()?;
        if let Some(l) = limit
            && l.is_sign_negative()
        {
            return Err(Error::argument(
                "limit",
                format!("must not be negative, got {l}"),
            ));
        }
        let zone = usage_core::query::parse_tz(tz)?;
        let span = window.span_at(&zone, Utc::now())?;
        let filter = self.scoped_filter(filter)?;
        let totals_filter = Filter {
            range: Some(span.range()),
            ..filter.clone()
        };
        let mut used = Decimal::ZERO;
        for req in plan_requests(&totals_filter, &[], None) {
            for row in self.shared.store.aggregate(&req).await? {
                used += metric.amount(&row.totals);
            }
        }
        self.forecast_span(&filter, metric, tz, &span, used, limit, options)
            .await
    }

    /// For every quota applying to `subjects` (and every global quota): used, held, limit,
    /// remaining, percentage, level, flags, window start and reset, and a forecast.
    pub async fn quota_status(&self, subjects: &[Subject]) -> Result<Vec<QuotaStatus>> {
        let now = Utc::now();
        let mut out = Vec::new();
        for q in self.applicable(subjects).await? {
            let span = q.window_at(now)?;
            let used = self.used(&q, span.range()).await?;
            let held = self.shared.store.held(&q.id, now).await?;
            let f = self.forecast_for(&q, &span, used).await?;
            out.push(status::status(&q, span, used, held, Some(f)));
        }
        Ok(out)
    }

    /// Would a request of `estimate` be allowed? Changes nothing.
    pub async fn check(&self, subjects: &[Subject], estimate: &Estimate) -> Result<Decision> {
        let statuses = self.quota_status(subjects).await?;
        let requested: Vec<(String, Decimal)> = statuses
            .iter()
            .map(|s| (s.quota.id.clone(), estimate.amount(s.quota.metric)))
            .collect();
        Ok(status::decide(&statuses, &requested))
    }

    /// Atomically holds `estimate` against every quota applying to `subjects` (and every global
    /// quota), or fails with `QuotaExceeded` naming the quota, its limit, what is used and held,
    /// and what was asked. The hold stops counting after `ttl` (default 10 minutes).
    pub async fn reserve(
        &self,
        subjects: &[Subject],
        estimate: &Estimate,
        ttl: Option<StdDuration>,
    ) -> Result<Reservation> {
        let now = Utc::now();
        let ttl = ttl.unwrap_or(DEFAULT_RESERVATION_TTL);
        let ttl = Duration::from_std(ttl).map_err(|_| Error::argument("ttl", "is too long"))?;
        if ttl <= Duration::zero() {
            return Err(Error::argument("ttl", "must be longer than zero"));
        }
        let mut holds = Vec::new();
        for q in self.applicable(subjects).await? {
            let range = q.window_at(now)?.range();
            holds.push(HoldRequest {
                amount: estimate.amount(q.metric),
                range,
                quota: q,
            });
        }
        let req = ReserveRequest {
            id: format!("rsv_{}", uuid::Uuid::now_v7().simple()),
            holds,
            now,
            expires_at: now + ttl,
        };
        self.shared.store.reserve(&req).await
    }

    /// Records the real events of a reserved call and drops its holds, in one transaction.
    /// Idempotent: a second commit records nothing (every result says duplicate).
    pub async fn commit(
        &self,
        reservation_id: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Recorded>> {
        let (events, breakdowns) = self.prepare_all(events)?;
        let watch = self.alert_watch(&events).await?;
        let (inserted, used) = self
            .shared
            .store
            .commit_and_read(reservation_id, &events, &watch.ranges())
            .await?;
        self.finish_recorded(events, breakdowns, inserted, watch, used)
            .await
    }

    /// Drops a reservation's holds without recording anything; true the first time.
    pub async fn release(&self, reservation_id: &str) -> Result<bool> {
        self.shared.store.release_reservation(reservation_id).await
    }

    /// Evaluates thresholds after `events` were stored: every threshold that usage has reached,
    /// of every quota the events count toward, is stored once per window (across processes)
    /// and reported by the call that stored it. Judging by the level reached rather than by
    /// what these events added keeps concurrent writers from each missing a threshold they
    /// passed together.
    pub(crate) async fn alerts_after(&self, events: &[UsageEvent]) -> Result<Vec<Alert>> {
        let watch = self.alert_watch(events).await?;
        if watch.quotas.is_empty() {
            return Ok(Vec::new());
        }
        let used = self.shared.store.used(&watch.ranges()).await?;
        self.alerts_from(watch, events.iter(), used).await
    }

    /// The quotas `events` would count toward at this instant (their current windows): what a
    /// write of them reads back for [`alerts_from`](Tracker::alerts_from). Empty when no
    /// quota applies, so a store with no quotas reads nothing.
    pub(crate) async fn alert_watch(&self, events: &[UsageEvent]) -> Result<AlertWatch> {
        let mut watch = AlertWatch {
            now: Utc::now(),
            quotas: Vec::new(),
        };
        if events.is_empty() {
            return Ok(watch);
        }
        let quotas = self.quotas().await?;
        for q in quotas.iter() {
            let span = q.window_at(watch.now)?;
            if adds_to(q, &span, events.iter()) {
                watch.quotas.push((q.clone(), span));
            }
        }
        Ok(watch)
    }

    /// The alerts of a write: `used` is the usage of `watch`'s quotas once `new` (the events
    /// the write stored; duplicates left out) were stored, in `watch`'s order.
    pub(crate) async fn alerts_from<'e>(
        &self,
        watch: AlertWatch,
        new: impl Iterator<Item = &'e UsageEvent> + Clone,
        used: Vec<Decimal>,
    ) -> Result<Vec<Alert>> {
        let mut fired = Vec::new();
        for ((q, span), used) in watch.quotas.iter().zip(used) {
            // A quota only duplicates counted toward: this write moved nothing.
            if !adds_to(q, span, new.clone()) {
                continue;
            }
            let window_start = alert_window_start(q, span);
            for t in status::reached(q, used) {
                if self
                    .shared
                    .alerts_seen
                    .contains(&q.id, window_start, &t.name)
                {
                    continue;
                }
                let alert = Alert {
                    quota_id: q.id.clone(),
                    subject: q.subject.clone(),
                    window_start,
                    threshold: t.name.clone(),
                    percent: t.percent,
                    used,
                    limit: q.limit,
                    at: watch.now,
                };
                // Stored by this call or already by another: either way it is not new again.
                if self.shared.store.insert_alert(&alert).await? {
                    fired.push(alert);
                }
                self.shared.alerts_seen.insert(&q.id, window_start, &t.name);
            }
        }
        if !fired.is_empty() {
            let callbacks = self
                .shared
                .alert_callbacks
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for a in &fired {
                for cb in &callbacks {
                    cb(a);
                }
            }
        }
        Ok(fired)
    }

    /// Wraps a provider call: reserves `estimate` for the subjects, runs `call`, reads usage from
    /// the JSON it returns, and commits it with the measured latency; when the call fails,
    /// records an error event and releases the hold, then returns the call's error.
    pub async fn guard<F, Fut, E>(
        &self,
        ctx: GuardContext,
        estimate: &Estimate,
        call: F,
    ) -> Result<std::result::Result<(serde_json::Value, Vec<Recorded>), E>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<serde_json::Value, E>>,
        E: std::fmt::Display,
    {
        let guard = self.begin_call(ctx, estimate).await?;
        match call().await {
            Ok(body) => {
                let recorded = guard.succeed(&body).await?;
                Ok(Ok((body, recorded)))
            }
            Err(err) => {
                guard.fail("call_failed", &err.to_string()).await?;
                Ok(Err(err))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AlertsSeen;

    /// A window's alerts are remembered per quota and threshold; the quota's next window
    /// starts with none, so its thresholds fire again.
    #[test]
    fn a_new_window_starts_with_no_alerts_seen() {
        let at = |s: &str| s.parse().expect("instant");
        let (nov, dec) = (at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z"));
        let seen = AlertsSeen::default();
        seen.insert("q", nov, "warning");
        assert!(seen.contains("q", nov, "warning"));
        assert!(!seen.contains("q", nov, "blocked"));
        assert!(!seen.contains("q", dec, "warning"));
        assert!(!seen.contains("other", nov, "warning"));
        seen.insert("q", dec, "blocked");
        assert!(seen.contains("q", dec, "blocked"));
        assert!(!seen.contains("q", dec, "warning"));
        assert!(
            !seen.contains("q", nov, "warning"),
            "one window per quota is kept"
        );
    }
}
