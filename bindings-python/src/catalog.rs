//! `PriceCatalog`: the built-in catalog, a catalog file, a LiteLLM price map, and local
//! overrides (`add_model`), for `cost()`, estimates and trackers.

use pyo3::prelude::*;
use usage_core::pricing::schema::ModelFile;

use crate::errors::IntoPy;

/// A dated price catalog. `PriceCatalog.builtin()` is the one shipped in this build; load your
/// own with `from_json` / `from_litellm_json`, and override models with `add_model`.
#[pyclass(module = "usage_core")]
#[derive(Clone)]
pub struct PriceCatalog {
    inner: usage_core::PriceCatalog,
}

/// The catalog to price with: the given one, or the built-in one.
pub(crate) fn pick(c: Option<&PriceCatalog>) -> &usage_core::PriceCatalog {
    match c {
        Some(c) => &c.inner,
        None => usage_core::PriceCatalog::builtin(),
    }
}

/// A copy of the catalog, for a tracker to own.
pub(crate) fn owned(c: &PriceCatalog) -> usage_core::PriceCatalog {
    c.inner.clone()
}

/// Wraps a catalog for Python.
pub(crate) fn wrap(inner: usage_core::PriceCatalog) -> PriceCatalog {
    PriceCatalog { inner }
}

#[pymethods]
impl PriceCatalog {
    /// A copy of the catalog shipped in this build.
    #[staticmethod]
    fn builtin() -> Self {
        PriceCatalog {
            inner: usage_core::PriceCatalog::builtin().clone(),
        }
    }
    /// An empty catalog with this version, to fill with `add_model`.
    #[staticmethod]
    fn empty(version: String) -> Self {
        PriceCatalog {
            inner: usage_core::PriceCatalog::empty(version),
        }
    }
    /// A whole catalog in usage-core's JSON format.
    #[staticmethod]
    fn from_json(py: Python<'_>, json: &str) -> PyResult<Self> {
        let inner = py
            .detach(|| usage_core::PriceCatalog::from_json(json))
            .py(py)?;
        Ok(PriceCatalog { inner })
    }
    /// A catalog from LiteLLM's `model_prices_and_context_window.json`.
    #[staticmethod]
    fn from_litellm_json(py: Python<'_>, json: &str, version: String) -> PyResult<Self> {
        let inner = py
            .detach(|| usage_core::PriceCatalog::from_litellm_json(json, version))
            .py(py)?;
        Ok(PriceCatalog { inner })
    }
    /// The catalog in its JSON file format.
    fn to_json(&self) -> String {
        self.inner.to_json()
    }
    /// The version stamped on every price computed from this catalog.
    #[getter]
    fn version(&self) -> &str {
        self.inner.version()
    }
    /// Sets the version (after local overrides, say).
    fn set_version(&mut self, version: String) {
        self.inner.set_version(version);
    }
    /// Every model id, in catalog order.
    fn models(&self) -> Vec<String> {
        self.inner.models().map(|m| m.id().to_owned()).collect()
    }
    /// The catalog id `model` resolves to (aliases, dated ids, platform prefixes…); raises
    /// `UnknownModelError` when it resolves to none.
    fn resolve(&self, py: Python<'_>, model: &str) -> PyResult<String> {
        self.inner.resolve(model).py(py).map(|r| r.id.to_string())
    }
    /// Adds a model (a dict in the catalog file's model format), replacing one with the same
    /// id; its aliases now point to it.
    fn add_model(&mut self, py: Python<'_>, model: &Bound<'_, PyAny>) -> PyResult<()> {
        let file: ModelFile = crate::convert::from_data(model, "model")?;
        self.inner.add_model(file).py(py)
    }
    /// Adds every model of `other`, replacing models with the same id.
    fn merge(&mut self, py: Python<'_>, other: PyRef<'_, PriceCatalog>) -> PyResult<()> {
        self.inner.merge(other.inner.clone()).py(py)
    }
    /// Removes a model by id; true when there was one.
    fn remove_model(&mut self, id: &str) -> bool {
        self.inner.remove_model(id)
    }
    fn __repr__(&self) -> String {
        format!(
            "<PriceCatalog version={:?} models={}>",
            self.inner.version(),
            self.inner.models().count()
        )
    }
}
