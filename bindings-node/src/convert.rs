//! JS values in and out: the core's serde shapes cross as plain objects (snake_case keys, as in
//! the JSON-lines export and the Python binding), money and other decimals as exact strings,
//! instants as RFC 3339 strings. Nothing here decides a value: absent options stay `None` and
//! the core applies its defaults.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use napi_derive::napi;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use usage_core::Error;
use usage_core::query::{Dimension, Filter, TimeRange};
use usage_store::{Recorded, ResponseMeta};

use crate::error::{IntoNapi, bad_arg, to_napi};

/// Reads a core type from its JSON shape; a mismatch is `INVALID_ARGUMENT` naming `field`.
pub fn from_js<T: DeserializeOwned>(field: &str, v: Value) -> napi::Result<T> {
    serde_json::from_value(v).map_err(|e| bad_arg(field, e))
}

/// Reads an optional core type; `null`/absent gives the type's default.
pub fn from_js_or_default<T: DeserializeOwned + Default>(
    field: &str,
    v: Option<Value>,
) -> napi::Result<T> {
    match v {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => from_js(field, v),
    }
}

/// A core value as JSON text for JS (`JSON.parse` in the JS layer: faster than building the
/// objects through napi calls, and without napi's node-count limit on large results).
pub fn to_js<T: Serialize>(v: &T) -> napi::Result<String> {
    serde_json::to_string(v).map_err(|e| to_napi(Error::argument("result", e.to_string())))
}

/// A core value as a JSON tree, to compose a larger result.
pub fn to_value<T: Serialize>(v: &T) -> napi::Result<Value> {
    serde_json::to_value(v).map_err(|e| to_napi(Error::argument("result", e.to_string())))
}

/// An RFC 3339 instant.
pub fn parse_time(field: &str, s: &str) -> napi::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            to_napi(Error::argument(
                field,
                format!("`{s}` is not an RFC 3339 instant ({e})"),
            ))
        })
}

/// An optional `{ start, end }` range.
pub fn range(field: &str, v: Option<Value>) -> napi::Result<Option<TimeRange>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let r: TimeRange = from_js(field, v)?;
            TimeRange::new(r.start, r.end).napi().map(Some)
        }
    }
}

/// A filter (absent: everything).
pub fn filter(v: Option<Value>) -> napi::Result<Filter> {
    from_js_or_default("filter", v)
}

/// A dimension by name (`user`, `model`, `provider`, `status`, or a tag key).
pub fn dimension(s: &str) -> napi::Result<Dimension> {
    Dimension::parse(s).napi()
}

/// Milliseconds from JS (a non-negative integer).
pub fn millis(field: &str, v: Option<i64>) -> napi::Result<Option<u64>> {
    v.map(|x| {
        u64::try_from(x).map_err(|_| {
            to_napi(Error::argument(
                field,
                format!("must not be negative, got {x}"),
            ))
        })
    })
    .transpose()
}

/// What to record a provider response under.
#[napi(object)]
#[derive(Default)]
pub struct CallMeta {
    /// The user the call is for.
    pub user_id: Option<String>,
    /// Tags (team, feature, API key…).
    pub tags: Option<HashMap<String, String>>,
    /// Time to first token, ms.
    pub latency_ms: Option<i64>,
    /// Whole-call wall time, ms.
    pub duration_ms: Option<i64>,
    /// The model, for payloads that do not name it (Bedrock Converse).
    pub model: Option<String>,
    /// When the call happened, RFC 3339 (default: now).
    pub timestamp: Option<String>,
    /// An idempotency key when the payload has no message id.
    pub id: Option<String>,
}

impl CallMeta {
    /// The core's `ResponseMeta`.
    pub fn into_meta(self) -> napi::Result<ResponseMeta> {
        Ok(ResponseMeta {
            user_id: self.user_id,
            tags: self
                .tags
                .map(|t| t.into_iter().collect::<BTreeMap<_, _>>())
                .unwrap_or_default(),
            latency_ms: millis("latencyMs", self.latency_ms)?,
            duration_ms: millis("durationMs", self.duration_ms)?,
            model: self.model,
            timestamp: self
                .timestamp
                .map(|t| parse_time("timestamp", &t))
                .transpose()?,
            id: self.id,
        })
    }
}

/// One recorded event: `{ event, duplicate, breakdown, alerts }`.
pub fn recorded(r: &Recorded) -> napi::Result<Value> {
    Ok(json!({
        "event": to_value(&r.event)?,
        "duplicate": r.duplicate,
        "breakdown": to_value(&r.breakdown)?,
        "alerts": to_value(&r.alerts)?,
    }))
}

/// Several recorded events, as JSON text.
pub fn recorded_list(list: &[Recorded]) -> napi::Result<String> {
    to_js(
        &list
            .iter()
            .map(recorded)
            .collect::<napi::Result<Vec<_>>>()?,
    )
}
