//! Keyword arguments to the core's types: report filters (`start`/`end` or `period`, user,
//! tags, model, provider, status), events to record, response metadata, quota subjects, TTLs.
//! Absent arguments keep the core's defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use usage_core::Status;
use usage_core::event::NewEvent;
use usage_core::query::{Dimension, Filter, Period, TimeRange};
use usage_core::quota::Subject;
use usage_core::store::RunOptions;
use usage_store::ResponseMeta;

use crate::convert::{decimal_arg, from_data, opt_datetime, subject_arg};
use crate::errors::{IntoPy, argument};
use crate::values::usage_arg;

pub(crate) fn opt_str(d: &Bound<'_, PyDict>, key: &str) -> PyResult<Option<String>> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
        _ => Ok(None),
    }
}

pub(crate) fn opt_u64(d: &Bound<'_, PyDict>, key: &str) -> PyResult<Option<u64>> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
        _ => Ok(None),
    }
}

pub(crate) fn tags_of(d: &Bound<'_, PyDict>, key: &str) -> PyResult<BTreeMap<String, String>> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => v.extract(),
        _ => Ok(BTreeMap::new()),
    }
}

pub(crate) fn check_keys(d: &Bound<'_, PyDict>, allowed: &[&str], what: &str) -> PyResult<()> {
    for k in d.keys() {
        let k: String = k.extract()?;
        if !allowed.contains(&k.as_str()) {
            return Err(argument(
                d.py(),
                &k,
                format!(
                    "is not a {what} argument (expected one of {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) const FILTER_KEYS: &[&str] = &[
    "start", "end", "period", "tz", "user_id", "tags", "model", "provider", "status",
];

/// A `Filter` from the keyword arguments every report takes: `start`/`end` (aware datetimes)
/// or `period` (+ `tz`), `user_id`, `tags`, `model`, `provider`, `status`.
pub(crate) fn filter_arg(py: Python<'_>, f: Option<&Bound<'_, PyDict>>) -> PyResult<Filter> {
    let Some(d) = f else {
        return Ok(Filter::default());
    };
    check_keys(d, FILTER_KEYS, "filter")?;
    let start = opt_datetime(d.get_item("start")?.as_ref(), "start")?;
    let end = opt_datetime(d.get_item("end")?.as_ref(), "end")?;
    let period = d.get_item("period")?.filter(|p| !p.is_none());
    let range = match (start, end, period) {
        (None, None, None) => None,
        (Some(s), Some(e), None) => Some(TimeRange::new(s, e).py(py)?),
        (None, None, Some(p)) => {
            let period: Period = from_data(&p, "period")?;
            let tz = opt_str(d, "tz")?.unwrap_or_else(|| "UTC".to_owned());
            let zone = usage_core::query::parse_tz(&tz).py(py)?;
            Some(period.range(&zone, Utc::now()).py(py)?)
        }
        (_, _, Some(_)) => {
            return Err(argument(
                py,
                "period",
                "give a period or start/end, not both",
            ));
        }
        (Some(_), None, _) => {
            return Err(argument(
                py,
                "end",
                "is missing: a range needs start and end",
            ));
        }
        (None, Some(_), _) => {
            return Err(argument(
                py,
                "start",
                "is missing: a range needs start and end",
            ));
        }
    };
    let status = match opt_str(d, "status")? {
        Some(s) => Some(s.parse::<Status>().py(py)?),
        None => None,
    };
    Ok(Filter {
        range,
        user_id: opt_str(d, "user_id")?,
        tags: tags_of(d, "tags")?,
        model: opt_str(d, "model")?,
        provider: opt_str(d, "provider")?,
        status,
    })
}

pub(crate) fn range_arg(
    py: Python<'_>,
    start: Option<&Bound<'_, PyAny>>,
    end: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<TimeRange>> {
    match (opt_datetime(start, "start")?, opt_datetime(end, "end")?) {
        (None, None) => Ok(None),
        (Some(s), Some(e)) => TimeRange::new(s, e).py(py).map(Some),
        (Some(_), None) => Err(argument(
            py,
            "end",
            "is missing: a range needs start and end",
        )),
        (None, Some(_)) => Err(argument(
            py,
            "start",
            "is missing: a range needs start and end",
        )),
    }
}

pub(crate) fn dimensions(py: Python<'_>, names: Vec<String>) -> PyResult<Vec<Dimension>> {
    names.iter().map(|n| Dimension::parse(n).py(py)).collect()
}

pub(crate) const EVENT_KEYS: &[&str] = &[
    "provider",
    "model",
    "usage",
    "id",
    "timestamp",
    "context",
    "provided_cost",
    "latency_ms",
    "duration_ms",
    "status",
    "error_type",
    "error_message",
    "user_id",
    "tags",
];

/// A `NewEvent` from a dict of its fields; absent ones keep the core's defaults.
pub(crate) fn new_event(d: &Bound<'_, PyAny>) -> PyResult<NewEvent> {
    let py = d.py();
    let d = d
        .cast::<PyDict>()
        .map_err(|_| argument(py, "event", "expected a dict of event fields"))?;
    check_keys(d, EVENT_KEYS, "record")?;
    let provider =
        opt_str(d, "provider")?.ok_or_else(|| argument(py, "provider", "is required"))?;
    let model = opt_str(d, "model")?.ok_or_else(|| argument(py, "model", "is required"))?;
    let usage = match d.get_item("usage")? {
        Some(u) if !u.is_none() => usage_arg(&u)?,
        _ => Default::default(),
    };
    let mut e = NewEvent::new(provider, model, usage);
    e.id = opt_str(d, "id")?;
    e.timestamp = opt_datetime(d.get_item("timestamp")?.as_ref(), "timestamp")?;
    if let Some(c) = d.get_item("context")?.filter(|c| !c.is_none()) {
        e.context = match c.cast::<crate::values::PricingContext>() {
            Ok(pc) => pc.get().0.clone(),
            Err(_) => from_data(&c, "context")?,
        };
    }
    if let Some(c) = d.get_item("provided_cost")?.filter(|c| !c.is_none()) {
        e.provided_cost = Some(decimal_arg(&c, "provided_cost")?.into());
    }
    e.latency_ms = opt_u64(d, "latency_ms")?;
    e.duration_ms = opt_u64(d, "duration_ms")?;
    if let Some(s) = opt_str(d, "status")? {
        e.status = s.parse().py(py)?;
    }
    e.error_type = opt_str(d, "error_type")?;
    e.error_message = opt_str(d, "error_message")?;
    e.user_id = opt_str(d, "user_id")?;
    e.tags = tags_of(d, "tags")?;
    Ok(e)
}

pub(crate) const META_KEYS: &[&str] = &[
    "user_id",
    "tags",
    "latency_ms",
    "duration_ms",
    "model",
    "timestamp",
    "id",
];

pub(crate) fn meta_arg(d: Option<&Bound<'_, PyDict>>) -> PyResult<ResponseMeta> {
    let Some(d) = d else {
        return Ok(ResponseMeta::default());
    };
    check_keys(d, META_KEYS, "response metadata")?;
    Ok(ResponseMeta {
        user_id: opt_str(d, "user_id")?,
        tags: tags_of(d, "tags")?,
        latency_ms: opt_u64(d, "latency_ms")?,
        duration_ms: opt_u64(d, "duration_ms")?,
        model: opt_str(d, "model")?,
        timestamp: opt_datetime(d.get_item("timestamp")?.as_ref(), "timestamp")?,
        id: opt_str(d, "id")?,
    })
}

pub(crate) fn subjects_arg(list: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Subject>> {
    match list {
        None => Ok(Vec::new()),
        Some(l) if l.is_none() => Ok(Vec::new()),
        Some(l) => l.try_iter()?.map(|s| subject_arg(&s?)).collect(),
    }
}

pub(crate) fn ttl_arg(py: Python<'_>, ttl: Option<f64>) -> PyResult<Option<Duration>> {
    ttl.map(|s| {
        Duration::try_from_secs_f64(s).map_err(|e| argument(py, "ttl", format!("{s}: {e}")))
    })
    .transpose()
}

pub(crate) fn run_options(batch_size: Option<usize>) -> RunOptions {
    RunOptions {
        batch_size,
        ..Default::default()
    }
}
