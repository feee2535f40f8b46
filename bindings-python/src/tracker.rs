//! `NativeTracker` and `NativeCall`: the store-facing half of `usage_core.Tracker` /
//! `AsyncTracker`. Every store call runs on the one tokio runtime: the blocking flavour with the
//! GIL released (`py.detach` around `block_on`), the asyncio flavour as an awaitable
//! (pyo3-async-runtimes), so neither holds the GIL nor blocks the event loop while the store
//! works. Results cross as plain data; the Python layer turns them into frozen dataclasses.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use chrono::Utc;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use serde_json::json;
use usage_core::Error;
use usage_core::extract::Provider;
use usage_core::forecast::ForecastOptions;
use usage_core::query::{Bucket, Bucketing, Dimension, Filter, Metric, Order, Period, Query};
use usage_core::quota::estimate::Estimate as CoreEstimate;
use usage_core::quota::{Quota, QuotaMetric, Subject, Threshold};
use usage_core::store::Alert;
use usage_store::{BatchOptions, GuardContext, Recorded, Tracker, TrackerOptions};

use crate::args::{
    dimensions, filter_arg, meta_arg, new_event, range_arg, run_options, subjects_arg, ttl_arg,
};
use crate::call::{CallTemplate, NativeCall};
use crate::convert::{
    datetime_arg, decimal_arg, from_data, response_json, subject_arg, to_py_data, window_arg,
};
use crate::errors::{IntoPy, argument, to_py};
use crate::values::{CostBreakdown, Estimate};

/// Turns a finished store call's result into Python objects, once the GIL is held again.
pub(crate) type Conv = Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<Py<PyAny>> + Send>;
pub(crate) type Out = usage_core::Result<Conv>;

pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Serialisable data, converted later.
fn data<T: serde::Serialize + Send + 'static>(v: T) -> Conv {
    Box::new(move |py| Ok(to_py_data(py, &v)?.unbind()))
}

pub(crate) fn none() -> Conv {
    Box::new(|py| Ok(py.None()))
}

/// Runs `fut` on the runtime: blocking with the GIL released, or as an asyncio awaitable.
pub(crate) fn go<F>(py: Python<'_>, asynchronous: bool, fut: F) -> PyResult<Py<PyAny>>
where
    F: Future<Output = Out> + Send + 'static,
{
    if asynchronous {
        let fut = async move {
            let r = fut.await;
            Python::attach(|py| match r {
                Ok(c) => c(py),
                Err(e) => Err(to_py(py, e)),
            })
        };
        pyo3_async_runtimes::tokio::future_into_py(py, fut).map(Bound::unbind)
    } else {
        let r = py.detach(|| runtime().block_on(fut));
        match r {
            Ok(c) => c(py),
            Err(e) => Err(to_py(py, e)),
        }
    }
}

/// `Recorded` as data, its breakdown as a native `CostBreakdown`.
fn recorded_to_py<'py>(py: Python<'py>, r: Recorded) -> PyResult<Bound<'py, PyAny>> {
    let d = PyDict::new(py);
    d.set_item("event", to_py_data(py, &r.event)?)?;
    d.set_item("duplicate", r.duplicate)?;
    match r.breakdown {
        Some(b) => d.set_item("breakdown", Bound::new(py, CostBreakdown(b))?)?,
        None => d.set_item("breakdown", py.None())?,
    }
    d.set_item("alerts", to_py_data(py, &r.alerts)?)?;
    Ok(d.into_any())
}

pub(crate) fn recorded_list(list: Vec<Recorded>) -> Conv {
    Box::new(move |py| {
        let items = list
            .into_iter()
            .map(|r| recorded_to_py(py, r))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, items)?.into_any().unbind())
    })
}

/// Calls the Python alert callbacks on one background thread, so a callback never runs on a
/// store thread or inside a blocking call, may take the GIL freely, and may use the tracker.
fn alert_sender() -> &'static mpsc::Sender<(Arc<Py<PyAny>>, Alert)> {
    static SENDER: OnceLock<mpsc::Sender<(Arc<Py<PyAny>>, Alert)>> = OnceLock::new();
    SENDER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Arc<Py<PyAny>>, Alert)>();
        std::thread::Builder::new()
            .name("usage-core-alerts".into())
            .spawn(move || {
                for (cb, alert) in rx {
                    let delivered = Python::try_attach(|py| {
                        let r = to_py_data(py, &alert).and_then(|a| cb.bind(py).call1((a,)));
                        if let Err(e) = r {
                            e.write_unraisable(py, Some(cb.bind(py)));
                        }
                    });
                    if delivered.is_none() {
                        break; // the interpreter is shutting down
                    }
                }
            })
            .expect("cannot start the alert callback thread");
        tx
    })
}

/// The store-facing half of `Tracker` and `AsyncTracker` (use those).
#[pyclass(module = "usage_core._native", frozen)]
pub struct NativeTracker {
    tracker: Tracker,
    asynchronous: bool,
}

impl NativeTracker {
    fn go<F>(&self, py: Python<'_>, fut: F) -> PyResult<Py<PyAny>>
    where
        F: Future<Output = Out> + Send + 'static,
    {
        go(py, self.asynchronous, fut)
    }

    fn handle(&self, tracker: Tracker) -> NativeTracker {
        NativeTracker {
            tracker,
            asynchronous: self.asynchronous,
        }
    }
}

#[pymethods]
impl NativeTracker {
    /// Opens a store by URL; returns a `NativeTracker` (or an awaitable of one).
    #[staticmethod]
    #[pyo3(signature = (url, *, asynchronous=false, catalog=None, max_batch=None, flush_interval=None, max_queue=None))]
    fn open(
        py: Python<'_>,
        url: String,
        asynchronous: bool,
        catalog: Option<PyRef<'_, crate::catalog::PriceCatalog>>,
        max_batch: Option<usize>,
        flush_interval: Option<f64>,
        max_queue: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let mut batch = BatchOptions::default();
        if let Some(n) = max_batch {
            batch.max_batch = n;
        }
        if let Some(s) = flush_interval {
            batch.flush_interval = Duration::try_from_secs_f64(s)
                .map_err(|e| argument(py, "flush_interval", format!("{s}: {e}")))?;
        }
        if let Some(n) = max_queue {
            batch.max_queue = n;
        }
        let options = TrackerOptions {
            catalog: catalog.map(|c| Arc::new(crate::catalog::owned(&c))),
            batch,
        };
        go(py, asynchronous, async move {
            let tracker = Tracker::open_with(&url, options).await?;
            Ok(Box::new(move |py: Python<'_>| {
                Ok(Py::new(
                    py,
                    NativeTracker {
                        tracker,
                        asynchronous,
                    },
                )?
                .into_any())
            }) as Conv)
        })
    }

    /// True for the asyncio flavour.
    #[getter]
    fn asynchronous(&self) -> bool {
        self.asynchronous
    }

    /// The same store, the other flavour (sync ↔ async), sharing everything.
    fn flavour(&self, asynchronous: bool) -> NativeTracker {
        NativeTracker {
            tracker: self.tracker.clone(),
            asynchronous,
        }
    }

    /// The store backend: `sqlite`, `postgres` or `memory`.
    #[getter]
    fn backend(&self) -> &'static str {
        self.tracker.store().backend()
    }

    /// This handle's scope as data (`{}`: everything).
    fn scope<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py_data(py, self.tracker.scope())
    }

    /// A handle confined to `user_id`.
    fn for_user(&self, py: Python<'_>, user_id: String) -> PyResult<NativeTracker> {
        Ok(self.handle(self.tracker.for_user(user_id).py(py)?))
    }

    /// A handle confined to a user and/or tag values.
    #[pyo3(signature = (user_id=None, tags=None))]
    fn scoped(
        &self,
        py: Python<'_>,
        user_id: Option<String>,
        tags: Option<BTreeMap<String, String>>,
    ) -> PyResult<NativeTracker> {
        let scope = Filter {
            user_id,
            tags: tags.unwrap_or_default(),
            ..Default::default()
        };
        Ok(self.handle(self.tracker.scoped(scope).py(py)?))
    }

    /// The catalog events are priced with (a copy).
    fn catalog(&self) -> crate::catalog::PriceCatalog {
        crate::catalog::wrap((*self.tracker.catalog()).clone())
    }

    /// Replaces the catalog for events recorded from now on.
    fn set_catalog(&self, catalog: PyRef<'_, crate::catalog::PriceCatalog>) {
        self.tracker.set_catalog(crate::catalog::owned(&catalog));
    }

    fn record(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let e = new_event(event)?;
        let t = self.tracker.clone();
        self.go(py, async move {
            let r = t.record(e).await?;
            Ok(recorded_list(vec![r]))
        })
    }

    fn record_many(&self, py: Python<'_>, events: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let list = events
            .try_iter()?
            .map(|e| new_event(&e?))
            .collect::<PyResult<Vec<_>>>()?;
        let t = self.tracker.clone();
        self.go(
            py,
            async move { Ok(recorded_list(t.record_many(list).await?)) },
        )
    }

    fn enqueue(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let e = new_event(event)?;
        let t = self.tracker.clone();
        self.go(py, async move { Ok(data(t.enqueue(e).await?)) })
    }

    #[pyo3(signature = (provider, response, meta=None))]
    fn record_response(
        &self,
        py: Python<'_>,
        provider: &str,
        response: &Bound<'_, PyAny>,
        meta: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let p: Provider = provider.parse().py(py)?;
        let body = response_json(response, p)?;
        let meta = meta_arg(meta)?;
        let t = self.tracker.clone();
        self.go(py, async move {
            Ok(recorded_list(t.record_response(p, &body, meta).await?))
        })
    }

    fn flush(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let t = self.tracker.clone();
        self.go(py, async move {
            t.flush().await?;
            Ok(none())
        })
    }

    fn close(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let t = self.tracker.clone();
        self.go(py, async move {
            t.close().await?;
            Ok(none())
        })
    }

    #[pyo3(signature = (filter=None, group_by=Vec::new(), bucket=None, tz=None, distinct=Vec::new(), latency_p95=None, fill_empty=None, sort=None, order=None, limit=None, offset=None))]
    #[allow(clippy::too_many_arguments)]
    fn query(
        &self,
        py: Python<'_>,
        filter: Option<&Bound<'_, PyDict>>,
        group_by: Vec<String>,
        bucket: Option<&str>,
        tz: Option<String>,
        distinct: Vec<String>,
        latency_p95: Option<bool>,
        fill_empty: Option<bool>,
        sort: Option<&str>,
        order: Option<&str>,
        limit: Option<usize>,
        offset: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let d = Query::default();
        let order = match order {
            None => Order::default(),
            Some(o) => from_data(&o.into_pyobject(py)?.into_any(), "order")?,
        };
        let q = Query {
            filter: filter_arg(py, filter)?,
            group_by: dimensions(py, group_by)?,
            bucket: match bucket {
                Some(b) => Some(Bucketing {
                    bucket: Bucket::parse(b).py(py)?,
                    tz: tz.unwrap_or_else(|| "UTC".to_owned()),
                }),
                None => None,
            },
            distinct: dimensions(py, distinct)?,
            latency_p95: latency_p95.unwrap_or(d.latency_p95),
            fill_empty: fill_empty.unwrap_or(d.fill_empty),
            sort: match sort {
                Some(m) => Some((Metric::parse(m).py(py)?, order)),
                None => d.sort,
            },
            limit: limit.or(d.limit),
            offset: offset.unwrap_or(d.offset),
        };
        let t = self.tracker.clone();
        self.go(py, async move { Ok(data(t.query(&q).await?)) })
    }

    #[pyo3(signature = (filter=None, distinct=Vec::new()))]
    fn summary(
        &self,
        py: Python<'_>,
        filter: Option<&Bound<'_, PyDict>>,
        distinct: Vec<String>,
    ) -> PyResult<Py<PyAny>> {
        let f = filter_arg(py, filter)?;
        let dims = dimensions(py, distinct)?;
        let t = self.tracker.clone();
        self.go(py, async move { Ok(data(t.summary(&f, &dims).await?)) })
    }

    #[pyo3(signature = (bucket, filter=None, tz=None))]
    fn timeseries(
        &self,
        py: Python<'_>,
        bucket: &str,
        filter: Option<&Bound<'_, PyDict>>,
        tz: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let f = filter_arg(py, filter)?;
        let b = Bucket::parse(bucket).py(py)?;
        let tz = tz.unwrap_or_else(|| "UTC".to_owned());
        let t = self.tracker.clone();
        self.go(py, async move { Ok(data(t.timeseries(&f, b, &tz).await?)) })
    }

    #[pyo3(signature = (by, filter=None))]
    fn breakdown(
        &self,
        py: Python<'_>,
        by: &str,
        filter: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let f = filter_arg(py, filter)?;
        let by = Dimension::parse(by).py(py)?;
        let t = self.tracker.clone();
        self.go(py, async move { Ok(data(t.breakdown(&f, &by).await?)) })
    }

    #[pyo3(signature = (filter=None, current_start=None, current_end=None, previous_start=None, previous_end=None, period=None, tz=None))]
    #[allow(clippy::too_many_arguments)]
    fn compare(
        &self,
        py: Python<'_>,
        filter: Option<&Bound<'_, PyDict>>,
        current_start: Option<&Bound<'_, PyAny>>,
        current_end: Option<&Bound<'_, PyAny>>,
        previous_start: Option<&Bound<'_, PyAny>>,
        previous_end: Option<&Bound<'_, PyAny>>,
        period: Option<&Bound<'_, PyAny>>,
        tz: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let f = filter_arg(py, filter)?;
        let (current, previous) = match period.filter(|p| !p.is_none()) {
            Some(p) => {
                let period: Period = from_data(p, "period")?;
                let zone = usage_core::query::parse_tz(tz.as_deref().unwrap_or("UTC")).py(py)?;
                let now = Utc::now();
                (
                    period.range(&zone, now).py(py)?,
                    period.previous(&zone, now).py(py)?,
                )
            }
            None => {
                let c = range_arg(py, current_start, current_end)?
                    .ok_or_else(|| argument(py, "current_start", "is required without a period"))?;
                let p = range_arg(py, previous_start, previous_end)?.ok_or_else(|| {
                    argument(py, "previous_start", "is required without a period")
                })?;
                (c, p)
            }
        };
        let t = self.tracker.clone();
        self.go(py, async move {
            Ok(data(t.compare(&f, current, previous).await?))
        })
    }

    #[pyo3(signature = (by, metric, limit, offset=None, filter=None))]
    fn top(
        &self,
        py: Python<'_>,
        by: &str,
        metric: &str,
        limit: usize,
        offset: Option<usize>,
        filter: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let f = filter_arg(py, filter)?;
        let by = Dimension::parse(by).py(py)?;
        let m = Metric::parse(metric).py(py)?;
        let offset = offset.unwrap_or(Query::default().offset);
        let t = self.tracker.clone();
        self.go(py, async move {
            Ok(data(t.top(&f, &by, m, limit, offset).await?))
        })
    }

    fn event(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let t = self.tracker.clone();
        self.go(py, async move { Ok(data(t.event(&id).await?)) })
    }

    /// CSV export (schema version 1): to `path` (returns the row count) or as `bytes`.
    #[pyo3(signature = (filter=None, path=None, format="csv"))]
    fn export(
        &self,
        py: Python<'_>,
        filter: Option<&Bound<'_, PyDict>>,
        path: Option<std::path::PathBuf>,
        format: &str,
    ) -> PyResult<Py<PyAny>> {
        let f = filter_arg(py, filter)?;
        let jsonl = match format {
            "csv" => false,
            "jsonl" => true,
            other => {
                return Err(argument(
                    py,
                    "format",
                    format!("`{other}` is not csv or jsonl"),
                ));
            }
        };
        let t = self.tracker.clone();
        self.go(py, async move {
            let write = async |out: &mut (dyn std::io::Write + Send)| {
                if jsonl {
                    t.export_jsonl(&f, out).await
                } else {
                    t.export_csv(&f, out).await
                }
            };
            match path {
                Some(p) => {
                    let file = std::fs::File::create(&p).map_err(|e| {
                        Error::store("export", format!("create {}", p.display()), e)
                    })?;
                    let mut out = std::io::BufWriter::new(file);
                    let n = write(&mut out).await?;
                    Ok(data(n))
                }
                None => {
                    let mut buf = Vec::new();
                    write(&mut buf).await?;
                    Ok(Box::new(move |py: Python<'_>| {
                        Ok(PyBytes::new(py, &buf).into_any().unbind())
                    }) as Conv)
                }
            }
        })
    }

    #[pyo3(signature = (start=None, end=None, batch_size=None))]
    fn rebuild_rollups(
        &self,
        py: Python<'_>,
        start: Option<&Bound<'_, PyAny>>,
        end: Option<&Bound<'_, PyAny>>,
        batch_size: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let range = range_arg(py, start, end)?;
        let t = self.tracker.clone();
        self.go(py, async move {
            Ok(data(
                t.rebuild_rollups(range, &run_options(batch_size)).await?,
            ))
        })
    }

    #[pyo3(signature = (start=None, end=None))]
    fn verify_rollups(
        &self,
        py: Python<'_>,
        start: Option<&Bound<'_, PyAny>>,
        end: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let range = range_arg(py, start, end)?;
        let t = self.tracker.clone();
        self.go(py, async move { Ok(data(t.verify_rollups(range).await?)) })
    }

    #[pyo3(signature = (catalog, dry_run, start=None, end=None, batch_size=None))]
    fn reprice(
        &self,
        py: Python<'_>,
        catalog: PyRef<'_, crate::catalog::PriceCatalog>,
        dry_run: bool,
        start: Option<&Bound<'_, PyAny>>,
        end: Option<&Bound<'_, PyAny>>,
        batch_size: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let range = range_arg(py, start, end)?;
        let cat = crate::catalog::owned(&catalog);
        let t = self.tracker.clone();
        self.go(py, async move {
            let (report, run) = t
                .reprice(range, &cat, dry_run, &run_options(batch_size))
                .await?;
            Ok(data(json!({"report": report, "run": run})))
        })
    }

    #[pyo3(signature = (before, batch_size=None))]
    fn purge(
        &self,
        py: Python<'_>,
        before: &Bound<'_, PyAny>,
        batch_size: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let before = datetime_arg(before, "before")?;
        let t = self.tracker.clone();
        self.go(py, async move {
            Ok(data(t.purge(before, &run_options(batch_size)).await?))
        })
    }

    fn runs(&self, py: Python<'_>, limit: usize) -> PyResult<Py<PyAny>> {
        let t = self.tracker.clone();
        self.go(py, async move { Ok(data(t.runs(limit).await?)) })
    }

    #[pyo3(signature = (id, subject, metric, limit, window, tz=None, hard=None, thresholds=None))]
    #[allow(clippy::too_many_arguments)]
    fn set_quota(
        &self,
        py: Python<'_>,
        id: String,
        subject: &Bound<'_, PyAny>,
        metric: &str,
        limit: &Bound<'_, PyAny>,
        window: &Bound<'_, PyAny>,
        tz: Option<String>,
        hard: Option<bool>,
        thresholds: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let metric: QuotaMetric = metric.parse().py(py)?;
        let mut q = Quota::new(
            id,
            subject_arg(subject)?,
            metric,
            decimal_arg(limit, "limit")?,
            window_arg(window)?,
        );
        if let Some(tz) = tz {
            q = q.in_tz(tz);
        }
        if hard == Some(false) {
            q = q.soft();
        } else if let Some(h) = hard {
            q.hard = h;
        }
        if let Some(list) = thresholds.filter(|t| !t.is_none()) {
            let mut ts = Vec::new();
            for item in list.try_iter()? {
                let item = item?;
                let (name, pct): (String, Bound<'_, PyAny>) = item
                    .extract()
                    .map_err(|_| argument(py, "thresholds", "expected (name, percent) pairs"))?;
                ts.push(Threshold::new(
                    name,
                    decimal_arg(&pct, "thresholds.percent")?,
                ));
            }
            q = q.with_thresholds(ts);
        }
        let t = self.tracker.clone();
        self.go(py, async move {
            t.set_quota(q.clone()).await?;
            Ok(data(q))
        })
    }

    fn quotas(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let t = self.tracker.clone();
        self.go(py, async move { Ok(data((*t.quotas().await?).clone())) })
    }

    fn delete_quota(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let t = self.tracker.clone();
        self.go(py, async move { Ok(data(t.delete_quota(&id).await?)) })
    }

    #[pyo3(signature = (subjects=None))]
    fn quota_status(
        &self,
        py: Python<'_>,
        subjects: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let s = subjects_arg(subjects)?;
        let t = self.tracker.clone();
        self.go(py, async move { Ok(data(t.quota_status(&s).await?)) })
    }

    #[pyo3(signature = (estimate, subjects=None))]
    fn check(
        &self,
        py: Python<'_>,
        estimate: Estimate,
        subjects: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let s = subjects_arg(subjects)?;
        let t = self.tracker.clone();
        self.go(py, async move { Ok(data(t.check(&s, &estimate.0).await?)) })
    }

    #[pyo3(signature = (estimate, subjects=None, ttl=None))]
    fn reserve(
        &self,
        py: Python<'_>,
        estimate: Estimate,
        subjects: Option<&Bound<'_, PyAny>>,
        ttl: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let s = subjects_arg(subjects)?;
        let ttl = ttl_arg(py, ttl)?;
        let t = self.tracker.clone();
        self.go(py, async move {
            Ok(data(t.reserve(&s, &estimate.0, ttl).await?))
        })
    }

    fn commit(
        &self,
        py: Python<'_>,
        reservation_id: String,
        events: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let list = events
            .try_iter()?
            .map(|e| new_event(&e?))
            .collect::<PyResult<Vec<_>>>()?;
        let t = self.tracker.clone();
        self.go(py, async move {
            Ok(recorded_list(t.commit(&reservation_id, list).await?))
        })
    }

    fn release(&self, py: Python<'_>, reservation_id: String) -> PyResult<Py<PyAny>> {
        let t = self.tracker.clone();
        self.go(
            py,
            async move { Ok(data(t.release(&reservation_id).await?)) },
        )
    }

    fn alerts(
        &self,
        py: Python<'_>,
        since: &Bound<'_, PyAny>,
        limit: usize,
    ) -> PyResult<Py<PyAny>> {
        let since = datetime_arg(since, "since")?;
        let t = self.tracker.clone();
        self.go(py, async move { Ok(data(t.alerts(since, limit).await?)) })
    }

    /// Registers `callback(alert_data)` for every alert this process stores. It runs on a
    /// dedicated background thread, in the order alerts were stored.
    fn on_alert(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<()> {
        if !callback.bind(py).is_callable() {
            return Err(argument(py, "callback", "is not callable"));
        }
        let cb = Arc::new(callback);
        let tx = alert_sender().clone();
        self.tracker.on_alert(Arc::new(move |a: &Alert| {
            let _ = tx.send((cb.clone(), a.clone()));
        }));
        Ok(())
    }

    #[pyo3(signature = (metric, window, filter=None, tz=None, limit=None, lookback_days=None, confidence=None))]
    #[allow(clippy::too_many_arguments)]
    fn forecast(
        &self,
        py: Python<'_>,
        metric: &str,
        window: &Bound<'_, PyAny>,
        filter: Option<&Bound<'_, PyDict>>,
        tz: Option<String>,
        limit: Option<&Bound<'_, PyAny>>,
        lookback_days: Option<u32>,
        confidence: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let f = filter_arg(py, filter)?;
        let metric: QuotaMetric = metric.parse().py(py)?;
        let window = window_arg(window)?;
        let limit = match limit.filter(|l| !l.is_none()) {
            Some(l) => Some(decimal_arg(l, "limit")?),
            None => None,
        };
        let mut opts = ForecastOptions::default();
        if let Some(d) = lookback_days {
            opts.lookback_days = d;
        }
        if let Some(c) = confidence {
            opts.confidence = c;
        }
        let tz = tz.unwrap_or_else(|| "UTC".to_owned());
        let t = self.tracker.clone();
        self.go(py, async move {
            Ok(data(
                t.forecast(&f, metric, window, &tz, limit, &opts).await?,
            ))
        })
    }

    /// Starts a guarded call (reserve the estimate when a quota applies); returns a
    /// `NativeCall` (or an awaitable of one). The estimate is `estimate`, or the core's worst
    /// case for `model` with `prompt_tokens` in and at most `max_tokens` out, priced with this
    /// tracker's catalog. `subjects` defaults to the call's user and tags (from `meta`).
    #[pyo3(signature = (provider, *, estimate=None, model=None, prompt_tokens=None, max_tokens=None, subjects=None, meta=None, ttl=None, batched=false))]
    #[allow(clippy::too_many_arguments)]
    fn begin_call(
        &self,
        py: Python<'_>,
        provider: &str,
        estimate: Option<Estimate>,
        model: Option<String>,
        prompt_tokens: Option<u64>,
        max_tokens: Option<u64>,
        subjects: Option<&Bound<'_, PyAny>>,
        meta: Option<&Bound<'_, PyDict>>,
        ttl: Option<f64>,
        batched: bool,
    ) -> PyResult<Py<PyAny>> {
        let ctx = guard_context(py, provider, subjects, meta, ttl, batched)?;
        let size = CallSizeArgs {
            model,
            prompt_tokens: prompt_tokens.unwrap_or_default(),
            max_tokens: max_tokens.unwrap_or_default(),
        };
        self.go(
            py,
            start_call(
                self.tracker.clone(),
                ctx,
                estimate.map(|e| e.0),
                size,
                self.asynchronous,
            ),
        )
    }

    /// The arguments of `begin_call` that stay the same from call to call (provider, user and
    /// tags in `meta`, subjects, ttl, batching), converted once into a `CallTemplate`: the SDK
    /// wrappers keep one per wrapped client, so each call converts only its own request.
    #[pyo3(signature = (provider, *, subjects=None, meta=None, ttl=None, batched=false))]
    fn call_template(
        &self,
        py: Python<'_>,
        provider: &str,
        subjects: Option<&Bound<'_, PyAny>>,
        meta: Option<&Bound<'_, PyDict>>,
        ttl: Option<f64>,
        batched: bool,
    ) -> PyResult<CallTemplate> {
        Ok(CallTemplate {
            tracker: self.tracker.clone(),
            ctx: guard_context(py, provider, subjects, meta, ttl, batched)?,
            asynchronous: self.asynchronous,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "<NativeTracker backend={} asynchronous={}>",
            self.tracker.store().backend(),
            self.asynchronous
        )
    }
}

/// `begin_call`'s context: the provider, the quota subjects (by default the call's user and
/// tags, from `meta`), what to record with the event, the hold's TTL and batching.
fn guard_context(
    py: Python<'_>,
    provider: &str,
    subjects: Option<&Bound<'_, PyAny>>,
    meta: Option<&Bound<'_, PyDict>>,
    ttl: Option<f64>,
    batched: bool,
) -> PyResult<GuardContext> {
    let p: Provider = provider.parse().py(py)?;
    let meta = meta_arg(meta)?;
    // Without explicit subjects: the call's user and tags.
    let subjects = match subjects {
        Some(s) if !s.is_none() => subjects_arg(Some(s))?,
        _ => Subject::for_call(meta.user_id.as_deref(), &meta.tags),
    };
    Ok(GuardContext {
        provider: Some(p),
        subjects,
        meta,
        ttl: ttl_arg(py, ttl)?,
        batched,
    })
}

/// What a call may use when no estimate is given: the core works out the worst case.
pub(crate) struct CallSizeArgs {
    pub(crate) model: Option<String>,
    pub(crate) prompt_tokens: u64,
    pub(crate) max_tokens: u64,
}

/// Begins a guarded call on `t`: holds the estimate (given, or the worst case of `size`) when
/// a quota applies; the result is a `NativeCall`.
pub(crate) async fn start_call(
    t: Tracker,
    ctx: GuardContext,
    estimate: Option<CoreEstimate>,
    size: CallSizeArgs,
    asynchronous: bool,
) -> Out {
    let guard = match (estimate, size.model) {
        (Some(e), _) => t.begin_call(ctx, &e).await?,
        (None, Some(m)) => {
            let size = usage_store::CallSize {
                model: m,
                prompt_tokens: size.prompt_tokens,
                max_tokens: size.max_tokens,
                ..Default::default()
            };
            t.begin_call_sized(ctx, &size).await?
        }
        (None, None) => t.begin_call(ctx, &CoreEstimate::default()).await?,
    };
    Ok(Box::new(move |py: Python<'_>| {
        Ok(Py::new(py, NativeCall::new(guard, asynchronous))?.into_any())
    }) as Conv)
}
