//! The `usage_core._native` extension module: the thin PyO3 layer over usage-core and
//! usage-store. Values and errors are converted here; every rule lives in the Rust crates.

use pyo3::prelude::*;

mod args;
mod call;
mod catalog;
mod convert;
mod errors;
mod tracker;
mod values;

/// The native half of the `usage_core` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<values::TokenUsage>()?;
    m.add_class::<values::PricingContext>()?;
    m.add_class::<values::CostBreakdown>()?;
    m.add_class::<values::PricingBasis>()?;
    m.add_class::<values::Extracted>()?;
    m.add_class::<values::Estimate>()?;
    m.add_class::<values::StreamAccumulator>()?;
    m.add_class::<catalog::PriceCatalog>()?;
    m.add_class::<tracker::NativeTracker>()?;
    m.add_class::<call::NativeCall>()?;
    m.add_class::<call::CallTemplate>()?;
    m.add_function(wrap_pyfunction!(values::cost, m)?)?;
    m.add_function(wrap_pyfunction!(values::extract, m)?)?;
    m.add_function(wrap_pyfunction!(call::loads, m)?)?;
    m.add_function(wrap_pyfunction!(call::approx_prompt_tokens, m)?)?;
    m.add(
        "CATALOG_VERSION",
        usage_core::PriceCatalog::builtin().version(),
    )?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
