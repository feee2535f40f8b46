//! Carries a core [`Error`] across the napi boundary with its stable code and every field.
//!
//! napi errors hold a status and a message only, so the message is a JSON object
//! (`{"code": "QUOTA_EXCEEDED", "message": "...", "quota": "...", ...}`) behind a fixed prefix;
//! the JS layer (`errors.js`) rebuilds a real `Error` with `code` and the fields from it.

use serde_json::{Map, Value, json};
use usage_core::Error;

/// The prefix the JS layer looks for before parsing the message as JSON.
pub const PREFIX: &str = "__usage_core__:";

/// The JSON form of an error: `code`, `message`, and the variant's fields.
pub fn error_json(e: &Error) -> Value {
    let mut m = Map::new();
    m.insert("code".into(), json!(e.code()));
    m.insert("message".into(), json!(e.to_string()));
    let fields = match e {
        Error::UnknownModel { model } => json!({ "model": model }),
        Error::InvalidUsage { field, reason } | Error::InvalidArgument { field, reason } => {
            json!({ "field": field, "reason": reason })
        }
        Error::InvalidCatalog {
            model,
            field,
            reason,
        } => json!({ "model": model, "field": field, "reason": reason }),
        Error::InvalidResponse {
            provider,
            field,
            reason,
        } => json!({ "provider": provider, "field": field, "reason": reason }),
        Error::QuotaExceeded {
            quota,
            limit,
            used,
            requested,
        } => json!({
            "quota": quota,
            "limit": limit.to_string(),
            "used": used.to_string(),
            "requested": requested.to_string(),
        }),
        Error::NotFound { kind, id } => json!({ "kind": kind, "id": id }),
        Error::Cancelled { operation } => json!({ "operation": operation }),
        Error::Store {
            backend,
            operation,
            source,
        } => json!({ "backend": backend, "operation": operation, "source": source.to_string() }),
        // `Error` is non-exhaustive: a variant added later still crosses with its code.
        _ => json!({}),
    };
    if let Value::Object(f) = fields {
        m.extend(f);
    }
    Value::Object(m)
}

/// A core error as a napi error the JS layer turns back into a typed `Error`.
pub fn to_napi(e: Error) -> napi::Error {
    napi::Error::new(
        napi::Status::GenericFailure,
        format!("{PREFIX}{}", error_json(&e)),
    )
}

/// Converts a core `Result` for napi.
pub trait IntoNapi<T> {
    /// Maps the error with [`to_napi`].
    fn napi(self) -> napi::Result<T>;
}

impl<T> IntoNapi<T> for usage_core::Result<T> {
    fn napi(self) -> napi::Result<T> {
        self.map_err(to_napi)
    }
}

/// An argument that does not have the documented shape, as `INVALID_ARGUMENT` naming it.
pub fn bad_arg(field: &str, e: impl std::fmt::Display) -> napi::Error {
    to_napi(Error::argument(field, e.to_string()))
}
