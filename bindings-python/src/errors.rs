//! Rust errors to Python exceptions: every `usage_core::Error` variant becomes the matching class
//! of `usage_core._errors`, with the variant's fields as attributes and its message kept.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use usage_core::Error;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn class_and_fields<'py>(
    py: Python<'py>,
    e: &Error,
) -> PyResult<(&'static str, Bound<'py, PyDict>)> {
    let kw = PyDict::new(py);
    let name = match e {
        Error::UnknownModel { model } => {
            kw.set_item("model", model)?;
            "UnknownModelError"
        }
        Error::InvalidUsage { field, reason } => {
            kw.set_item("field", field)?;
            kw.set_item("reason", reason)?;
            "InvalidUsageError"
        }
        Error::InvalidCatalog {
            model,
            field,
            reason,
        } => {
            kw.set_item("model", model)?;
            kw.set_item("field", field)?;
            kw.set_item("reason", reason)?;
            "InvalidCatalogError"
        }
        Error::InvalidResponse {
            provider,
            field,
            reason,
        } => {
            kw.set_item("provider", provider)?;
            kw.set_item("field", field)?;
            kw.set_item("reason", reason)?;
            "InvalidResponseError"
        }
        Error::InvalidArgument { field, reason } => {
            kw.set_item("field", field)?;
            kw.set_item("reason", reason)?;
            "InvalidArgumentError"
        }
        Error::QuotaExceeded {
            quota,
            limit,
            used,
            requested,
        } => {
            kw.set_item("quota", quota)?;
            kw.set_item("limit", *limit)?;
            kw.set_item("used", *used)?;
            kw.set_item("requested", *requested)?;
            "QuotaExceededError"
        }
        Error::NotFound { kind, id } => {
            kw.set_item("kind", *kind)?;
            kw.set_item("id", id)?;
            "NotFoundError"
        }
        Error::Cancelled { operation } => {
            kw.set_item("operation", operation)?;
            "OperationCancelledError"
        }
        Error::Store {
            backend, operation, ..
        } => {
            kw.set_item("backend", *backend)?;
            kw.set_item("operation", operation)?;
            "StoreError"
        }
        // A variant added to the core later still reaches Python with its code and message.
        _ => {
            kw.set_item("code", e.code())?;
            "UsageError"
        }
    };
    Ok((name, kw))
}

/// The Python exception for `e` (needs the GIL to build it).
pub(crate) fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let module = ERRORS
            .get_or_try_init(py, || {
                PyModule::import(py, "usage_core._errors").map(Bound::unbind)
            })?
            .bind(py);
        let (name, kw) = class_and_fields(py, &e)?;
        let exc = module.getattr(name)?.call((e.to_string(),), Some(&kw))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|err| err)
}

/// `Result<T>` of the core as a `PyResult<T>`.
pub(crate) trait IntoPy<T> {
    /// Converts the error, if any, to its Python exception.
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for usage_core::Result<T> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

/// An argument error naming the argument, as the core reports its own.
pub(crate) fn argument(py: Python<'_>, field: &str, reason: impl Into<String>) -> PyErr {
    to_py(py, Error::argument(field, reason))
}
