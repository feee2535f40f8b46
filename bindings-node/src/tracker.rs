//! `NativeTracker`: the store-backed half of the addon. Every method that touches the store is
//! an `async fn`, so it runs on napi's tokio runtime and JS gets a Promise; the event loop never
//! waits on SQLite or PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use usage_core::event::NewEvent;
use usage_core::extract::Provider;
use usage_core::forecast::ForecastOptions;
use usage_core::pricing::PriceCatalog;
use usage_core::query::{Bucket, Metric, Query};
use usage_core::quota::estimate::Estimate;
use usage_core::quota::{Quota, QuotaMetric, Subject, Threshold, Window};
use usage_core::store::{CancelToken, RunOptions};
use usage_store::{BatchOptions, CallSize, GuardContext, ResponseMeta, Tracker, TrackerOptions};

use crate::background::Background;
use crate::call::NativeCall;
use crate::catalog::{Catalog, PricingOptions, count};
use crate::convert::{
    CallMeta, dimension, from_js, from_js_or_default, millis, parse_time, range, recorded,
    recorded_list, to_js,
};
use crate::error::{IntoNapi, bad_arg};
use crate::export::{ExportStream, export_to_file};
use crate::now::now_or_spawn;
use napi::Env;
use napi::bindgen_prelude::{Either, PromiseRaw};

/// How to open a tracker.
#[napi(object)]
#[derive(Default)]
pub struct OpenOptions {
    /// The catalog to price with (default: the built-in one).
    pub catalog: Option<String>,
    /// Batched writer: most events per write (core default when absent).
    pub max_batch: Option<u32>,
    /// Batched writer: longest wait before a partial batch is written, ms.
    pub flush_interval_ms: Option<i64>,
    /// Batched writer: most events queued before `enqueue` waits.
    pub max_queue: Option<u32>,
}

/// What a guarded call is for: the JS side of the core's `GuardContext`, plus the request's
/// size for its worst-case estimate.
#[napi(object)]
#[derive(Default)]
pub struct BeginCallOptions {
    /// `anthropic`, `openai`, …: decides how the response's usage is read.
    pub provider: String,
    /// The model asked for (priced for the estimate; recorded when the response names none).
    pub model: String,
    /// Approximate prompt size, tokens.
    pub prompt_tokens: i64,
    /// The request's output cap, tokens.
    pub max_tokens: i64,
    /// Pricing context of the estimate.
    pub pricing: Option<PricingOptions>,
    /// Quota subjects to reserve against, as JSON text (`[{ "kind": "user", "id": … }]`);
    /// absent: the call's user and tags (`Subject::for_call`);
    /// global quotas always apply.
    pub subjects_json: Option<String>,
    /// The user the call is for.
    pub user_id: Option<String>,
    /// Tags to record with the call, as JSON text (`{"team": "ml"}`).
    pub tags_json: Option<String>,
    /// How long the hold lasts if the process dies mid-call, ms (core default when absent).
    pub ttl_ms: Option<i64>,
    /// Record through the batched writer when no quota holds anything.
    pub batched: Option<bool>,
}

/// A quota as JS gives it: what `Quota::new` needs, and the optional parts.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaInput {
    id: String,
    subject: Subject,
    metric: QuotaMetric,
    limit: Value,
    window: Window,
    tz: Option<String>,
    hard: Option<bool>,
    thresholds: Option<Vec<Threshold>>,
}

/// An exact decimal from a JS string (or a number, by its shortest decimal text).
pub fn decimal(field: &str, v: &Value) -> napi::Result<Decimal> {
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(bad_arg(
                field,
                format!("expected a decimal string, got {other}"),
            ));
        }
    };
    text.parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|e| bad_arg(field, format!("`{text}` is not a decimal ({e})")))
}

/// A progress callback from JS: called with `{"done": n, "total": n | null}` as JSON text.
pub type ProgressCallback = ThreadsafeFunction<String, (), String, napi::Status, false, true>;

/// Cancels a maintenance run from JS (`AbortSignal` in the JS layer): the run stops between
/// batches and rolls back.
#[napi]
#[derive(Default)]
pub struct RunControl {
    token: CancelToken,
}

#[napi]
impl RunControl {
    /// A fresh control.
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop.
    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }
}

fn run_options(
    batch_size: Option<u32>,
    control: Option<&RunControl>,
    progress: Option<ProgressCallback>,
) -> RunOptions {
    RunOptions {
        batch_size: batch_size.map(|b| b as usize),
        cancel: control.map(|c| c.token.clone()),
        progress: progress.map(|cb| {
            let cb = Arc::new(cb);
            Arc::new(move |p: usage_core::store::Progress| {
                if let Ok(text) = serde_json::to_string(&p) {
                    cb.call(text, ThreadsafeFunctionCallMode::NonBlocking);
                }
            }) as usage_core::store::ProgressFn
        }),
    }
}

fn subjects(v: Option<Value>) -> napi::Result<Vec<Subject>> {
    from_js_or_default("subjects", v)
}

fn estimate(v: Option<Value>) -> napi::Result<Estimate> {
    from_js_or_default("estimate", v)
}

fn new_events(v: Vec<Value>) -> napi::Result<Vec<NewEvent>> {
    v.into_iter().map(|e| from_js("event", e)).collect()
}

/// Records, prices, queries and enforces quotas over one store. Cheap to clone on the Rust side;
/// handles made with `forUser`/`scoped` share the store, the catalog and the batched writer.
#[napi]
pub struct NativeTracker {
    pub(crate) inner: Tracker,
    background: Arc<Background>,
}

#[napi]
impl NativeTracker {
    /// Opens `sqlite://PATH`, `postgres://…` or `memory://`.
    #[napi(factory)]
    pub async fn open(url: String, options: Option<OpenOptions>) -> napi::Result<NativeTracker> {
        let o = options.unwrap_or_default();
        let mut batch = BatchOptions::default();
        if let Some(n) = o.max_batch {
            batch.max_batch = n as usize;
        }
        if let Some(ms) = millis("flushIntervalMs", o.flush_interval_ms)? {
            batch.flush_interval = Duration::from_millis(ms);
        }
        if let Some(n) = o.max_queue {
            batch.max_queue = n as usize;
        }
        let catalog = match o.catalog {
            Some(json) => Some(Arc::new(PriceCatalog::from_json(&json).napi()?)),
            None => None,
        };
        let inner = Tracker::open_with(&url, TrackerOptions { catalog, batch })
            .await
            .napi()?;
        Ok(NativeTracker {
            inner,
            background: Default::default(),
        })
    }

    /// A handle that only reads and writes `userId`'s events.
    #[napi]
    pub fn for_user(&self, user_id: String) -> napi::Result<NativeTracker> {
        Ok(NativeTracker {
            inner: self.inner.for_user(user_id).napi()?,
            background: self.background.clone(),
        })
    }

    /// A handle confined to a scope (`{ user_id, tags }`).
    #[napi]
    pub fn scoped(&self, scope: Value) -> napi::Result<NativeTracker> {
        let scope = from_js("scope", scope)?;
        Ok(NativeTracker {
            inner: self.inner.scoped(scope).napi()?,
            background: self.background.clone(),
        })
    }

    /// The scope of this handle (`{}` when unscoped).
    #[napi]
    pub fn scope(&self) -> napi::Result<String> {
        to_js(self.inner.scope())
    }

    /// Replaces the catalog for events recorded from now on.
    #[napi]
    pub fn set_catalog(&self, catalog: &Catalog) {
        self.inner.set_catalog((*catalog.inner).clone());
    }

    /// The catalog in use.
    #[napi]
    pub fn catalog(&self) -> Catalog {
        Catalog {
            inner: self.inner.catalog(),
        }
    }

    /// The worst-case estimate of a request (whole prompt as uncached input, `maxTokens` of
    /// output), priced with this tracker's catalog.
    #[napi]
    pub fn estimate(
        &self,
        model: String,
        prompt_tokens: i64,
        max_tokens: i64,
        options: Option<PricingOptions>,
    ) -> napi::Result<String> {
        let catalog = self.inner.catalog();
        crate::catalog::worst_case_with(&catalog, &model, prompt_tokens, max_tokens, options)
    }

    /// Prices and stores one event durably.
    #[napi]
    pub async fn record(&self, event: Value) -> napi::Result<String> {
        let e: NewEvent = from_js("event", event)?;
        to_js(&recorded(&self.inner.record(e).await.napi()?)?)
    }

    /// Prices and stores several events in one transaction.
    #[napi]
    pub async fn record_many(&self, events: Vec<Value>) -> napi::Result<String> {
        recorded_list(&self.inner.record_many(new_events(events)?).await.napi()?)
    }

    /// Prices an event and queues it for the batched writer. A batch the store refused is reported once, by the next `enqueue` (which then does not queue its own event) or `flush`.
    #[napi]
    pub async fn enqueue(&self, event: Value) -> napi::Result<String> {
        let e: NewEvent = from_js("event", event)?;
        to_js(&self.inner.enqueue(e).await.napi()?)
    }

    /// Reads every usage record in a provider payload and records each durably.
    #[napi]
    pub async fn record_response(
        &self,
        provider: String,
        response: Value,
        meta: Option<CallMeta>,
    ) -> napi::Result<String> {
        let provider: Provider = provider.parse().napi()?;
        let meta = meta.unwrap_or_default().into_meta()?;
        recorded_list(
            &self
                .inner
                .record_response(provider, &response, meta)
                .await
                .napi()?,
        )
    }

    /// Resolves once every wrapped call handed over so far has been recorded.
    #[napi]
    pub async fn settled(&self) {
        self.background.settled().await;
    }

    /// Errors of wrapped calls that could not be recorded, since the last call (JSON texts).
    #[napi]
    pub fn take_errors(&self) -> Vec<String> {
        self.background.take_errors()
    }

    /// Writes everything queued by `enqueue`; fails with a batch the store refused since the last report.
    #[napi]
    pub async fn flush(&self) -> napi::Result<()> {
        self.inner.flush().await.napi()
    }

    /// Flushes and closes the store.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.inner.close().await.napi()
    }

    /// The general query.
    #[napi]
    pub async fn query(&self, query: Value) -> napi::Result<String> {
        let q: Query = from_js("query", query)?;
        to_js(&self.inner.query(&q).await.napi()?)
    }

    /// Totals with derived figures.
    #[napi]
    pub async fn summary(
        &self,
        filter: Option<Value>,
        distinct: Option<Vec<String>>,
    ) -> napi::Result<String> {
        let f = crate::convert::filter(filter)?;
        let d = distinct
            .unwrap_or_default()
            .iter()
            .map(|s| dimension(s))
            .collect::<napi::Result<Vec<_>>>()?;
        to_js(&self.inner.summary(&f, &d).await.napi()?)
    }

    /// Per-bucket series over `filter.range`, empty buckets included.
    #[napi]
    pub async fn timeseries(
        &self,
        filter: Option<Value>,
        bucket: String,
        tz: String,
    ) -> napi::Result<String> {
        let f = crate::convert::filter(filter)?;
        let b = Bucket::parse(&bucket).napi()?;
        to_js(&self.inner.timeseries(&f, b, &tz).await.napi()?)
    }

    /// Sums by a dimension with shares of the total.
    #[napi]
    pub async fn breakdown(&self, filter: Option<Value>, by: String) -> napi::Result<String> {
        let f = crate::convert::filter(filter)?;
        to_js(&self.inner.breakdown(&f, &dimension(&by)?).await.napi()?)
    }

    /// Two periods compared.
    #[napi]
    pub async fn compare(
        &self,
        filter: Option<Value>,
        current: Value,
        previous: Value,
    ) -> napi::Result<String> {
        let f = crate::convert::filter(filter)?;
        let c = required_range("current", current)?;
        let p = required_range("previous", previous)?;
        to_js(&self.inner.compare(&f, c, p).await.napi()?)
    }

    /// The heaviest values of a dimension, paginated.
    #[napi]
    pub async fn top(
        &self,
        filter: Option<Value>,
        by: String,
        metric: String,
        limit: u32,
        offset: Option<u32>,
    ) -> napi::Result<String> {
        let f = crate::convert::filter(filter)?;
        let m = Metric::parse(&metric).napi()?;
        to_js(
            &self
                .inner
                .top(
                    &f,
                    &dimension(&by)?,
                    m,
                    limit as usize,
                    offset.unwrap_or(0) as usize,
                )
                .await
                .napi()?,
        )
    }

    /// One stored event by id (`null` when absent or outside this handle's scope).
    #[napi]
    pub async fn event(&self, id: String) -> napi::Result<String> {
        to_js(&self.inner.event(&id).await.napi()?)
    }

    /// Recomputes rollups from raw events, in batches (progress after each; cancellable).
    #[napi(
        ts_args_type = "range?: any, batchSize?: number | null, control?: RunControl | null, onProgress?: ((progressJson: string) => void) | null",
        ts_return_type = "Promise<string>"
    )]
    pub fn rebuild_rollups<'env>(
        &self,
        env: &'env Env,
        range: Option<Value>,
        batch_size: Option<u32>,
        control: Option<&RunControl>,
        on_progress: Option<ProgressCallback>,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let r = crate::convert::range("range", range)?;
        let opts = run_options(batch_size, control, on_progress);
        let tracker = self.inner.clone();
        env.spawn_future(async move { to_js(&tracker.rebuild_rollups(r, &opts).await.napi()?) })
    }

    /// Every (hour, group) where rollups and raw events disagree; empty means verified.
    #[napi]
    pub async fn verify_rollups(&self, range: Option<Value>) -> napi::Result<String> {
        let r = crate::convert::range("range", range)?;
        to_js(&self.inner.verify_rollups(r).await.napi()?)
    }

    /// Recomputes stored costs under a catalog; `{ report, run }`.
    #[napi(
        ts_args_type = "range: any, catalog: Catalog, dryRun: boolean, batchSize?: number | null, control?: RunControl | null, onProgress?: ((progressJson: string) => void) | null",
        ts_return_type = "Promise<string>"
    )]
    #[allow(clippy::too_many_arguments)]
    pub fn reprice<'env>(
        &self,
        env: &'env Env,
        range: Option<Value>,
        catalog: &Catalog,
        dry_run: bool,
        batch_size: Option<u32>,
        control: Option<&RunControl>,
        on_progress: Option<ProgressCallback>,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let r = crate::convert::range("range", range)?;
        let catalog = catalog.inner.clone();
        let opts = run_options(batch_size, control, on_progress);
        let tracker = self.inner.clone();
        env.spawn_future(async move {
            let (report, run) = tracker.reprice(r, &catalog, dry_run, &opts).await.napi()?;
            to_js(&json!({ "report": report, "run": run }))
        })
    }

    /// Deletes raw events before `before` (RFC 3339, a whole UTC hour), keeping rollups, and
    /// forgets the reservations that ended before it (committed, released or expired; never an
    /// outstanding one).
    #[napi(
        ts_args_type = "before: string, batchSize?: number | null, control?: RunControl | null, onProgress?: ((progressJson: string) => void) | null",
        ts_return_type = "Promise<string>"
    )]
    pub fn purge<'env>(
        &self,
        env: &'env Env,
        before: String,
        batch_size: Option<u32>,
        control: Option<&RunControl>,
        on_progress: Option<ProgressCallback>,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let t = parse_time("before", &before)?;
        let opts = run_options(batch_size, control, on_progress);
        let tracker = self.inner.clone();
        env.spawn_future(async move { to_js(&tracker.purge(t, &opts).await.napi()?) })
    }

    /// Recent maintenance runs, newest first.
    #[napi]
    pub async fn runs(&self, limit: u32) -> napi::Result<String> {
        to_js(&self.inner.runs(limit as usize).await.napi()?)
    }

    /// Creates or replaces a quota.
    #[napi]
    pub async fn set_quota(&self, quota: Value) -> napi::Result<()> {
        let q: QuotaInput = from_js("quota", quota)?;
        let limit = decimal("limit", &q.limit)?;
        let mut quota = Quota::new(q.id, q.subject, q.metric, limit, q.window);
        if let Some(tz) = q.tz {
            quota = quota.in_tz(tz);
        }
        if q.hard == Some(false) {
            quota = quota.soft();
        }
        if let Some(t) = q.thresholds {
            quota = quota.with_thresholds(t);
        }
        self.inner.set_quota(quota).await.napi()
    }

    /// Every quota.
    #[napi]
    pub async fn quotas(&self) -> napi::Result<String> {
        to_js(&*self.inner.quotas().await.napi()?)
    }

    /// Deletes a quota; true when there was one.
    #[napi]
    pub async fn delete_quota(&self, id: String) -> napi::Result<bool> {
        self.inner.delete_quota(&id).await.napi()
    }

    /// Status of every quota applying to the subjects (and every global quota).
    #[napi]
    pub async fn quota_status(&self, subjects: Option<Value>) -> napi::Result<String> {
        let s = crate::tracker::subjects(subjects)?;
        to_js(&self.inner.quota_status(&s).await.napi()?)
    }

    /// Would a request of `estimate` be allowed? Changes nothing.
    #[napi]
    pub async fn check(
        &self,
        subjects: Option<Value>,
        estimate: Option<Value>,
    ) -> napi::Result<String> {
        let s = crate::tracker::subjects(subjects)?;
        let e = crate::tracker::estimate(estimate)?;
        to_js(&self.inner.check(&s, &e).await.napi()?)
    }

    /// Atomically holds `estimate` against every applicable quota, or fails with
    /// `QUOTA_EXCEEDED`.
    #[napi]
    pub async fn reserve(
        &self,
        subjects: Option<Value>,
        estimate: Option<Value>,
        ttl_ms: Option<i64>,
    ) -> napi::Result<String> {
        let s = crate::tracker::subjects(subjects)?;
        let e = crate::tracker::estimate(estimate)?;
        let ttl = millis("ttlMs", ttl_ms)?.map(Duration::from_millis);
        to_js(&self.inner.reserve(&s, &e, ttl).await.napi()?)
    }

    /// Records a reserved call's events and drops its holds, in one transaction.
    #[napi]
    pub async fn commit(&self, reservation_id: String, events: Vec<Value>) -> napi::Result<String> {
        recorded_list(
            &self
                .inner
                .commit(&reservation_id, new_events(events)?)
                .await
                .napi()?,
        )
    }

    /// Drops a reservation's holds; true the first time.
    #[napi]
    pub async fn release(&self, reservation_id: String) -> napi::Result<bool> {
        self.inner.release(&reservation_id).await.napi()
    }

    /// Alerts noticed since `since` (RFC 3339), oldest first.
    #[napi]
    pub async fn alerts(&self, since: String, limit: u32) -> napi::Result<String> {
        let t = parse_time("since", &since)?;
        to_js(&self.inner.alerts(t, limit as usize).await.napi()?)
    }

    /// Calls `callback` with each alert this process stores (as its JSON text). The callback
    /// does not keep the process alive.
    #[napi(ts_args_type = "callback: (alertJson: string) => void")]
    pub fn on_alert(
        &self,
        callback: ThreadsafeFunction<String, (), String, napi::Status, false, true>,
    ) {
        let cb = Arc::new(callback);
        self.inner.on_alert(Arc::new(move |a| {
            if let Ok(text) = serde_json::to_string(a) {
                cb.call(text, ThreadsafeFunctionCallMode::NonBlocking);
            }
        }));
    }

    /// Forecasts `metric` of the events matching `filter` over the current `window`.
    #[napi]
    pub async fn forecast(
        &self,
        filter: Option<Value>,
        metric: String,
        window: Value,
        tz: String,
        limit: Option<Value>,
        options: Option<Value>,
    ) -> napi::Result<String> {
        let f = crate::convert::filter(filter)?;
        let m: QuotaMetric = from_js("metric", Value::String(metric))?;
        let w: Window = from_js("window", window)?;
        let limit = match limit {
            None | Some(Value::Null) => None,
            Some(v) => Some(decimal("limit", &v)?),
        };
        let o: ForecastOptions = from_js_or_default("options", options)?;
        to_js(&self.inner.forecast(&f, m, w, &tz, limit, &o).await.napi()?)
    }

    /// Writes the events matching `filter` (within this handle's scope) to `path` as CSV
    /// (`format = "csv"`) or JSON lines (`"jsonl"`); resolves to the number of rows.
    #[napi]
    pub async fn export_to_file(
        &self,
        filter: Option<Value>,
        path: String,
        format: String,
    ) -> napi::Result<i64> {
        let f = crate::convert::filter(filter)?;
        export_to_file(&self.inner, f, path, &format).await
    }

    /// Streams the events matching `filter` as CSV or JSON lines, chunk by chunk.
    #[napi]
    pub async fn export_stream(
        &self,
        filter: Option<Value>,
        format: String,
    ) -> napi::Result<ExportStream> {
        let f = crate::convert::filter(filter)?;
        ExportStream::start(&self.inner, f, &format)
    }

    /// Starts a guarded provider call for `wrap()`: prices the worst case of the request
    /// (`promptTokens` of input, `maxTokens` of output) with this tracker's catalog, then holds
    /// it against every applicable hard quota or fails with `QUOTA_EXCEEDED` before anything is
    /// sent. Returns the call at once when nothing had to wait, else a Promise of it.
    #[napi(ts_return_type = "NativeCall | Promise<NativeCall>")]
    pub fn begin_call<'env>(
        &self,
        env: &'env Env,
        options: BeginCallOptions,
    ) -> napi::Result<Either<NativeCall, PromiseRaw<'env, NativeCall>>> {
        let provider: Provider = options.provider.parse().napi()?;
        let (at, context) = options.pricing.unwrap_or_default().split()?;
        let size = CallSize {
            model: options.model.clone(),
            prompt_tokens: count("promptTokens", options.prompt_tokens)?,
            max_tokens: count("maxTokens", options.max_tokens)?,
            at: Some(at),
            context,
        };
        let tags: std::collections::BTreeMap<String, String> = match options.tags_json {
            None => Default::default(),
            Some(text) => serde_json::from_str(&text).map_err(|e| bad_arg("tags", e))?,
        };
        let subjects = match options.subjects_json {
            None => Subject::for_call(options.user_id.as_deref(), &tags),
            Some(text) => serde_json::from_str(&text).map_err(|e| bad_arg("subjects", e))?,
        };
        let meta = ResponseMeta {
            user_id: options.user_id,
            tags,
            model: Some(options.model.clone()),
            ..Default::default()
        };
        let ctx = GuardContext {
            provider: Some(provider),
            subjects,
            meta,
            ttl: millis("ttlMs", options.ttl_ms)?.map(Duration::from_millis),
            batched: options.batched.unwrap_or_default(),
        };
        let tracker = self.inner.clone();
        let background = self.background.clone();
        let model = options.model;
        let started = std::time::Instant::now();
        now_or_spawn(env, async move {
            let guard = tracker.begin_call_sized(ctx, &size).await.napi()?;
            Ok(NativeCall::new(provider, model, started, guard, background))
        })
    }
}

fn required_range(field: &str, v: Value) -> napi::Result<usage_core::query::TimeRange> {
    range(field, Some(v))?.ok_or_else(|| bad_arg(field, "is required"))
}
