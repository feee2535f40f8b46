//! The value types of the stateless API, as frozen classes over the core's own structs:
//! `TokenUsage`, `PricingContext`, `CostBreakdown` (and its `PricingBasis`), `Extracted`,
//! `Estimate`. Money fields are `decimal.Decimal`, instants are aware `datetime`s, and
//! `to_dict()` gives JSON-ready data (money as exact decimal strings).

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use rust_decimal::Decimal;
use usage_core::extract::Extracted as CoreExtracted;
use usage_core::pricing::{CostBreakdown as CoreCost, PricingBasis as CoreBasis};
use usage_core::quota::estimate::Estimate as CoreEstimate;

use crate::errors::IntoPy;

/// Python `repr` of an optional string.
fn opt_repr(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("{s:?}"),
        None => "None".to_owned(),
    }
}

/// Tokens by category (the core's `TokenUsage`): categories never overlap; `reasoning` is a
/// subset of `output`.
#[pyclass(module = "usage_core", frozen, eq, hash, from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenUsage(pub usage_core::TokenUsage);

#[pymethods]
impl TokenUsage {
    #[new]
    #[pyo3(signature = (input=None, cache_read=None, cache_write_5m=None, cache_write_1h=None, output=None, reasoning=None, web_search_requests=None, web_fetch_requests=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        input: Option<u64>,
        cache_read: Option<u64>,
        cache_write_5m: Option<u64>,
        cache_write_1h: Option<u64>,
        output: Option<u64>,
        reasoning: Option<u64>,
        web_search_requests: Option<u64>,
        web_fetch_requests: Option<u64>,
    ) -> Self {
        let d = usage_core::TokenUsage::default();
        TokenUsage(usage_core::TokenUsage {
            input: input.unwrap_or(d.input),
            cache_read: cache_read.unwrap_or(d.cache_read),
            cache_write_5m: cache_write_5m.unwrap_or(d.cache_write_5m),
            cache_write_1h: cache_write_1h.unwrap_or(d.cache_write_1h),
            output: output.unwrap_or(d.output),
            reasoning: reasoning.unwrap_or(d.reasoning),
            web_search_requests: web_search_requests.unwrap_or(d.web_search_requests),
            web_fetch_requests: web_fetch_requests.unwrap_or(d.web_fetch_requests),
        })
    }

    /// Uncached input tokens.
    #[getter]
    fn input(&self) -> u64 {
        self.0.input
    }
    /// Input tokens read from a prompt cache.
    #[getter]
    fn cache_read(&self) -> u64 {
        self.0.cache_read
    }
    /// Input tokens written to a 5-minute cache.
    #[getter]
    fn cache_write_5m(&self) -> u64 {
        self.0.cache_write_5m
    }
    /// Input tokens written to a 1-hour cache.
    #[getter]
    fn cache_write_1h(&self) -> u64 {
        self.0.cache_write_1h
    }
    /// Output tokens, reasoning included.
    #[getter]
    fn output(&self) -> u64 {
        self.0.output
    }
    /// Reasoning tokens (a subset of output).
    #[getter]
    fn reasoning(&self) -> u64 {
        self.0.reasoning
    }
    /// Server-side web search requests.
    #[getter]
    fn web_search_requests(&self) -> u64 {
        self.0.web_search_requests
    }
    /// Server-side web fetch requests.
    #[getter]
    fn web_fetch_requests(&self) -> u64 {
        self.0.web_fetch_requests
    }

    /// Every input token: uncached input, cache reads and cache writes.
    fn prompt_tokens(&self) -> u64 {
        self.0.prompt_tokens()
    }
    /// Prompt plus output tokens.
    fn total_tokens(&self) -> u64 {
        self.0.total_tokens()
    }
    /// Cache writes of both TTLs.
    fn cache_write(&self) -> u64 {
        self.0.cache_write()
    }

    /// The eight counts as a dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::convert::to_py_data(py, &self.0)
    }

    fn __repr__(&self) -> String {
        let shown: Vec<String> = self
            .0
            .counts()
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("TokenUsage({})", shown.join(", "))
    }
}

/// Reads a `TokenUsage` or a dict of its fields.
pub(crate) fn usage_arg(obj: &Bound<'_, PyAny>) -> PyResult<usage_core::TokenUsage> {
    if let Ok(u) = obj.cast::<TokenUsage>() {
        return Ok(u.get().0);
    }
    crate::convert::from_data(obj, "usage")
}

/// How a request was served, as far as price is concerned (the core's `PricingContext`).
#[pyclass(module = "usage_core", frozen, eq, hash, from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PricingContext(pub usage_core::PricingContext);

#[pymethods]
impl PricingContext {
    #[new]
    #[pyo3(signature = (service_tier=None, speed=None, inference_geo=None, platform=None, deployment=None))]
    fn new(
        py: Python<'_>,
        service_tier: Option<&str>,
        speed: Option<&str>,
        inference_geo: Option<String>,
        platform: Option<&str>,
        deployment: Option<&str>,
    ) -> PyResult<Self> {
        crate::convert::context_args(py, service_tier, speed, inference_geo, platform, deployment)
            .map(PricingContext)
    }
    /// `standard`, `batch`, `flex`, `priority` or `provisioned`.
    #[getter]
    fn service_tier(&self) -> &'static str {
        self.0.service_tier.as_str()
    }
    /// `standard` or `fast`.
    #[getter]
    fn speed(&self) -> &'static str {
        self.0.speed.as_str()
    }
    /// Anthropic `inference_geo` as reported.
    #[getter]
    fn inference_geo(&self) -> Option<String> {
        self.0.inference_geo.clone()
    }
    /// `direct`, `bedrock` or `vertex`, when set.
    #[getter]
    fn platform(&self) -> Option<&'static str> {
        self.0.platform.map(|p| p.as_str())
    }
    /// `global`, `regional` or `gov_cloud`, when set.
    #[getter]
    fn deployment(&self) -> Option<&'static str> {
        self.0.deployment.map(|d| d.as_str())
    }
    /// The fields as a dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::convert::to_py_data(py, &self.0)
    }
    fn __repr__(&self) -> String {
        let c = &self.0;
        format!(
            "PricingContext(service_tier={:?}, speed={:?}, inference_geo={}, platform={}, deployment={})",
            c.service_tier.as_str(),
            c.speed.as_str(),
            opt_repr(&c.inference_geo),
            opt_repr(&c.platform.map(|p| p.as_str().to_owned())),
            opt_repr(&c.deployment.map(|d| d.as_str().to_owned())),
        )
    }
}

/// How a cost was reached: the resolved model, price version, tier, modifiers, catalog version.
#[pyclass(module = "usage_core", frozen)]
#[derive(Clone)]
pub struct PricingBasis(pub CoreBasis);

#[pymethods]
impl PricingBasis {
    /// The catalog id the model resolved to.
    #[getter]
    fn model(&self) -> &str {
        &self.0.model
    }
    /// The provider key.
    #[getter]
    fn provider(&self) -> &str {
        &self.0.provider
    }
    /// Start of the price version used (`None`: the model's first prices).
    #[getter]
    fn price_from(&self) -> Option<DateTime<Utc>> {
        self.0.price_from
    }
    /// The prompt-size tier threshold crossed, if any.
    #[getter]
    fn tier_above(&self) -> Option<u64> {
        self.0.tier_above
    }
    /// The platform priced on.
    #[getter]
    fn platform(&self) -> &'static str {
        self.0.platform.as_str()
    }
    /// The modifiers applied, in order: `(kind, factor)`; factor `None` for a substituted
    /// price schedule.
    #[getter]
    fn modifiers(&self) -> Vec<(&'static str, Option<Decimal>)> {
        self.0
            .modifiers
            .iter()
            .map(|m| (m.kind.as_str(), m.factor))
            .collect()
    }
    /// The catalog version.
    #[getter]
    fn catalog_version(&self) -> &str {
        &self.0.catalog_version
    }
    /// Anything a reader should know about this price.
    #[getter]
    fn notes(&self) -> Vec<String> {
        self.0.notes.clone()
    }
    /// JSON-ready dict (decimals as exact strings).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::convert::to_py_data(py, &self.0)
    }
    fn __repr__(&self) -> String {
        format!(
            "PricingBasis(model={:?}, provider={:?}, tier_above={}, modifiers={:?}, catalog_version={:?})",
            &*self.0.model,
            &*self.0.provider,
            self.0
                .tier_above
                .map_or("None".to_owned(), |t| t.to_string()),
            self.0
                .modifiers
                .iter()
                .map(|m| m.kind.as_str())
                .collect::<Vec<_>>(),
            &*self.0.catalog_version
        )
    }
}

/// An exact cost, line by line; `total` is the sum of the rounded lines. Lines are
/// `decimal.Decimal` USD.
#[pyclass(module = "usage_core", frozen)]
pub struct CostBreakdown(pub CoreCost);

#[pymethods]
impl CostBreakdown {
    /// Uncached input.
    #[getter]
    fn input(&self) -> Decimal {
        self.0.input.as_decimal().normalize()
    }
    /// Cache reads.
    #[getter]
    fn cache_read(&self) -> Decimal {
        self.0.cache_read.as_decimal().normalize()
    }
    /// 5-minute cache writes.
    #[getter]
    fn cache_write_5m(&self) -> Decimal {
        self.0.cache_write_5m.as_decimal().normalize()
    }
    /// 1-hour cache writes.
    #[getter]
    fn cache_write_1h(&self) -> Decimal {
        self.0.cache_write_1h.as_decimal().normalize()
    }
    /// Output, reasoning included.
    #[getter]
    fn output(&self) -> Decimal {
        self.0.output.as_decimal().normalize()
    }
    /// Web search fees.
    #[getter]
    fn web_search(&self) -> Decimal {
        self.0.web_search.as_decimal().normalize()
    }
    /// The total.
    #[getter]
    fn total(&self) -> Decimal {
        self.0.total.as_decimal().normalize()
    }
    /// How it was priced.
    #[getter]
    fn basis(&self) -> PricingBasis {
        PricingBasis(self.0.basis.clone())
    }
    /// The six lines by name, in a fixed order (total excluded).
    fn lines(&self) -> Vec<(&'static str, Decimal)> {
        self.0
            .lines()
            .iter()
            .map(|(k, v)| (*k, v.as_decimal().normalize()))
            .collect()
    }
    /// JSON-ready dict: every line as an exact decimal string, and the basis.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::convert::to_py_data(py, &self.0)
    }
    fn __repr__(&self) -> String {
        let lines: Vec<String> = self
            .0
            .lines()
            .iter()
            .filter(|(_, v)| !v.is_zero())
            .map(|(k, v)| format!("{k}=Decimal('{v}')"))
            .collect();
        let sep = if lines.is_empty() { "" } else { ", " };
        format!(
            "CostBreakdown(total=Decimal('{}'){sep}{}, model={:?})",
            self.0.total,
            lines.join(", "),
            &*self.0.basis.model
        )
    }
}

/// One call's usage as read from a provider payload (the core's `Extracted`).
#[pyclass(module = "usage_core", frozen)]
#[derive(Clone)]
pub struct Extracted(pub CoreExtracted);

#[pymethods]
impl Extracted {
    /// The provider key.
    #[getter]
    fn provider(&self) -> &'static str {
        self.0.provider.as_str()
    }
    /// The model as reported (empty when the payload names none).
    #[getter]
    fn model(&self) -> &str {
        &self.0.model
    }
    /// Normalised token usage.
    #[getter]
    fn usage(&self) -> TokenUsage {
        TokenUsage(self.0.usage)
    }
    /// Service tier, speed and geography as reported.
    #[getter]
    fn context(&self) -> PricingContext {
        PricingContext(self.0.context.clone())
    }
    /// The provider's message or response id.
    #[getter]
    fn message_id(&self) -> Option<String> {
        self.0.message_id.clone()
    }
    /// The provider's request id.
    #[getter]
    fn request_id(&self) -> Option<String> {
        self.0.request_id.clone()
    }
    /// Session id (Claude Code, Claude CLI).
    #[getter]
    fn session_id(&self) -> Option<String> {
        self.0.session_id.clone()
    }
    /// When the payload says it happened.
    #[getter]
    fn timestamp(&self) -> Option<DateTime<Utc>> {
        self.0.timestamp
    }
    /// False for a stream cut off before its final usage.
    #[getter]
    fn complete(&self) -> bool {
        self.0.complete
    }
    /// False when the record must not be billed.
    #[getter]
    fn billable(&self) -> bool {
        self.0.billable
    }
    /// The provider's error as `(type, message)`, for failed calls.
    #[getter]
    fn error(&self) -> Option<(String, String)> {
        self.0
            .error
            .as_ref()
            .map(|e| (e.kind.clone(), e.message.clone()))
    }
    /// A cost the payload itself states.
    #[getter]
    fn provided_cost(&self) -> Option<Decimal> {
        self.0.provided_cost.map(|c| c.as_decimal().normalize())
    }
    /// Wall time the payload reports, ms.
    #[getter]
    fn duration_ms(&self) -> Option<u64> {
        self.0.duration_ms
    }
    /// Turns in an agent run.
    #[getter]
    fn num_turns(&self) -> Option<u64> {
        self.0.num_turns
    }
    /// True for a Claude Code sidechain line.
    #[getter]
    fn sidechain(&self) -> bool {
        self.0.sidechain
    }
    /// JSON-ready dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::convert::to_py_data(py, &self.0)
    }
    fn __repr__(&self) -> String {
        format!(
            "Extracted(provider={:?}, model={:?}, usage={}, complete={}, billable={}, message_id={})",
            self.0.provider.as_str(),
            self.0.model,
            TokenUsage(self.0.usage).__repr__(),
            if self.0.complete { "True" } else { "False" },
            if self.0.billable { "True" } else { "False" },
            opt_repr(&self.0.message_id),
        )
    }
}

/// What one request may use at most, and its price: what a reservation holds.
#[pyclass(module = "usage_core", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq, Eq)]
pub struct Estimate(pub CoreEstimate);

#[pymethods]
impl Estimate {
    #[new]
    fn new(usage: &Bound<'_, PyAny>, cost: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Estimate(CoreEstimate::new(
            usage_arg(usage)?,
            crate::convert::decimal_arg(cost, "cost")?.into(),
        )))
    }

    /// The most a request to `model` with `prompt_tokens` of input and at most `max_tokens` of
    /// output can cost (the core's `worst_case`): the whole prompt priced as uncached input.
    #[staticmethod]
    #[pyo3(signature = (model, prompt_tokens, max_tokens, at=None, *, catalog=None, service_tier=None, speed=None, inference_geo=None, platform=None, deployment=None))]
    #[allow(clippy::too_many_arguments)]
    fn worst_case(
        py: Python<'_>,
        model: &str,
        prompt_tokens: u64,
        max_tokens: u64,
        at: Option<&Bound<'_, PyAny>>,
        catalog: Option<PyRef<'_, crate::catalog::PriceCatalog>>,
        service_tier: Option<&str>,
        speed: Option<&str>,
        inference_geo: Option<String>,
        platform: Option<&str>,
        deployment: Option<&str>,
    ) -> PyResult<Self> {
        let at = crate::convert::opt_datetime(at, "at")?.unwrap_or_else(Utc::now);
        let ctx = crate::convert::context_args(
            py,
            service_tier,
            speed,
            inference_geo,
            platform,
            deployment,
        )?;
        let cat = crate::catalog::pick(catalog.as_deref());
        usage_core::quota::estimate::worst_case(cat, model, prompt_tokens, max_tokens, at, &ctx)
            .py(py)
            .map(Estimate)
    }

    /// `usage` of `model` priced by the cost engine (use it when cache writes or server tools
    /// are expected).
    #[staticmethod]
    #[pyo3(signature = (model, usage, at=None, *, catalog=None, service_tier=None, speed=None, inference_geo=None, platform=None, deployment=None))]
    #[allow(clippy::too_many_arguments)]
    fn priced(
        py: Python<'_>,
        model: &str,
        usage: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
        catalog: Option<PyRef<'_, crate::catalog::PriceCatalog>>,
        service_tier: Option<&str>,
        speed: Option<&str>,
        inference_geo: Option<String>,
        platform: Option<&str>,
        deployment: Option<&str>,
    ) -> PyResult<Self> {
        let usage = usage_arg(usage)?;
        let at = crate::convert::opt_datetime(at, "at")?.unwrap_or_else(Utc::now);
        let ctx = crate::convert::context_args(
            py,
            service_tier,
            speed,
            inference_geo,
            platform,
            deployment,
        )?;
        let cat = crate::catalog::pick(catalog.as_deref());
        CoreEstimate::priced(cat, model, usage, at, &ctx)
            .py(py)
            .map(Estimate)
    }

    /// The tokens the request may use.
    #[getter]
    fn usage(&self) -> TokenUsage {
        TokenUsage(self.0.usage)
    }
    /// Their price, USD.
    #[getter]
    fn cost(&self) -> Decimal {
        self.0.cost.as_decimal().normalize()
    }
    /// The amount to hold against a quota counting `metric` (`cost`, `total_tokens`,
    /// `requests`…).
    fn amount(&self, py: Python<'_>, metric: &str) -> PyResult<Decimal> {
        let m: usage_core::quota::QuotaMetric = metric.parse().py(py)?;
        Ok(self.0.amount(m))
    }
    /// JSON-ready dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::convert::to_py_data(py, &self.0)
    }
    fn __repr__(&self) -> String {
        format!(
            "Estimate(usage={}, cost=Decimal('{}'))",
            TokenUsage(self.0.usage).__repr__(),
            self.0.cost
        )
    }
}

/// Prices `usage` of `model` at `at` (now when `None`) under the pricing context given by
/// keyword, with `catalog` or the built-in catalog.
#[pyfunction]
#[pyo3(signature = (model, usage, at=None, *, catalog=None, service_tier=None, speed=None, inference_geo=None, platform=None, deployment=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn cost(
    py: Python<'_>,
    model: &str,
    usage: &Bound<'_, PyAny>,
    at: Option<&Bound<'_, PyAny>>,
    catalog: Option<PyRef<'_, crate::catalog::PriceCatalog>>,
    service_tier: Option<&str>,
    speed: Option<&str>,
    inference_geo: Option<String>,
    platform: Option<&str>,
    deployment: Option<&str>,
) -> PyResult<CostBreakdown> {
    let usage = usage_arg(usage)?;
    let at = crate::convert::opt_datetime(at, "at")?.unwrap_or_else(Utc::now);
    let ctx =
        crate::convert::context_args(py, service_tier, speed, inference_geo, platform, deployment)?;
    crate::catalog::pick(catalog.as_deref())
        .cost(model, &usage, at, &ctx)
        .py(py)
        .map(CostBreakdown)
}

/// Every usage record in one provider payload (a response dict or SDK object, a batch result
/// line, a final stream event, a Claude Code line…).
#[pyfunction]
pub(crate) fn extract(
    py: Python<'_>,
    provider: &str,
    response: &Bound<'_, PyAny>,
) -> PyResult<Vec<Extracted>> {
    let p: usage_core::extract::Provider = provider.parse().py(py)?;
    let v = crate::convert::response_json(response, p)?;
    usage_core::extract::extract(p, &v)
        .py(py)
        .map(|r| r.into_iter().map(Extracted).collect())
}

/// Accumulates a provider's stream events (dicts or SDK event objects) into one record.
#[pyclass(module = "usage_core")]
pub struct StreamAccumulator {
    pub(crate) provider: usage_core::extract::Provider,
    pub(crate) inner: Option<usage_core::extract::StreamAccumulator>,
}

impl StreamAccumulator {
    fn live(&mut self, py: Python<'_>) -> PyResult<&mut usage_core::extract::StreamAccumulator> {
        self.inner.as_mut().ok_or_else(|| {
            crate::errors::argument(
                py,
                "stream",
                "finish() was already called on this accumulator",
            )
        })
    }
}

#[pymethods]
impl StreamAccumulator {
    #[new]
    fn new(py: Python<'_>, provider: &str) -> PyResult<Self> {
        let p: usage_core::extract::Provider = provider.parse().py(py)?;
        Ok(StreamAccumulator {
            provider: p,
            inner: Some(usage_core::extract::StreamAccumulator::new(p)),
        })
    }
    /// The provider key.
    #[getter]
    fn provider(&self) -> &'static str {
        self.provider.as_str()
    }
    /// Feeds one event (the JSON of an SSE `data:` line as a dict, or an SDK event object).
    /// A malformed event raises `InvalidResponseError` and leaves the accumulator unchanged.
    fn push(&mut self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = crate::convert::response_json(event, self.provider)?;
        self.live(py)?.push(&v).py(py)
    }
    /// The record as it stands now, or `None` before anything identifying was seen.
    fn snapshot(&mut self, py: Python<'_>) -> PyResult<Option<Extracted>> {
        Ok(self.live(py)?.snapshot().map(Extracted))
    }
    /// The final record (`complete` is false for a stream that ended early).
    fn finish(&mut self, py: Python<'_>) -> PyResult<Extracted> {
        let acc = self.inner.take().ok_or_else(|| {
            crate::errors::argument(
                py,
                "stream",
                "finish() was already called on this accumulator",
            )
        })?;
        acc.finish().py(py).map(Extracted)
    }
    fn __repr__(&self) -> String {
        format!("StreamAccumulator({:?})", self.provider.as_str())
    }
}
