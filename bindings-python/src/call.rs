//! `NativeCall`: one guarded provider call (the core's `CallGuard`) as the SDK wrappers drive
//! it: finished once, from a response, from a stream accumulator, or as a failure; the
//! `CallTemplate` the wrappers start their calls from; and the rough prompt-size count they
//! reserve with.

use std::future::Future;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use usage_core::quota::estimate::{self, prompt_rule};
use usage_store::{CallGuard, GuardContext, Recorded, Tracker};

use crate::convert::{json_to_py, py_to_json, response_json};
use crate::errors::{IntoPy, argument, to_py};
use crate::tracker::{CallSizeArgs, Conv, Out, go, none, recorded_list, runtime, start_call};
use crate::values::StreamAccumulator;

/// One guarded provider call in progress (the core's `CallGuard`): finish it exactly once with
/// `succeed`, `succeed_stream` or `fail`.
#[pyclass(module = "usage_core._native", frozen)]
pub struct NativeCall {
    guard: Arc<CallGuard>,
    asynchronous: bool,
}

impl NativeCall {
    pub(crate) fn new(guard: CallGuard, asynchronous: bool) -> Self {
        NativeCall {
            guard: Arc::new(guard),
            asynchronous,
        }
    }
}

impl NativeCall {
    /// Runs a finishing step: like the tracker's calls, or, with `background`, on the runtime
    /// without waiting (for a stream abandoned in a finaliser, where nothing may block or be
    /// awaited); a failure there is reported through `sys.unraisablehook`.
    fn finish<F>(&self, py: Python<'_>, background: bool, fut: F) -> PyResult<Py<PyAny>>
    where
        F: Future<Output = Out> + Send + 'static,
    {
        if !background {
            return go(py, self.asynchronous, fut);
        }
        runtime().spawn(async move {
            if let Err(e) = fut.await {
                Python::try_attach(|py| to_py(py, e).write_unraisable(py, None));
            }
        });
        Ok(py.None())
    }
}

/// `begin_call`'s arguments that stay the same from call to call (provider, user, tags,
/// quota subjects, ttl, batching), already converted: a wrapped client keeps one and starts
/// each call with `begin`, which converts only the request's own model, prompt and output
/// limit. Made by `NativeTracker.call_template`.
#[pyclass(module = "usage_core._native", frozen)]
pub struct CallTemplate {
    pub(crate) tracker: Tracker,
    pub(crate) ctx: GuardContext,
    pub(crate) asynchronous: bool,
}

#[pymethods]
impl CallTemplate {
    /// Starts a guarded call: `NativeTracker.begin_call` with this template's arguments,
    /// `model` (also recorded as the event's model when the response names none), the prompt
    /// size counted from the request's prompt parts by the core's rough rule
    /// (`approx_prompt_tokens`), and `max_tokens`. On an async tracker an awaitable of the
    /// `NativeCall`, except when nothing is to be reserved: then the call itself.
    fn begin(
        &self,
        py: Python<'_>,
        model: Option<String>,
        prompt: &Bound<'_, PyAny>,
        max_tokens: Option<u64>,
    ) -> PyResult<Py<PyAny>> {
        let prompt_tokens = prompt_tokens(prompt)?;
        let mut ctx = self.ctx.clone();
        if let Some(m) = model.as_deref().filter(|m| !m.is_empty()) {
            ctx.meta.model = Some(m.to_owned());
        }
        // With nothing to reserve the call starts here, without entering the runtime: the call
        // itself is returned, on an async tracker too (not an awaitable of it).
        if let Some(guard) = self.tracker.begin_call_unreserved(&ctx).py(py)? {
            let call = NativeCall::new(guard, self.asynchronous);
            return Ok(Py::new(py, call)?.into_any());
        }
        let size = CallSizeArgs {
            model,
            prompt_tokens,
            max_tokens: max_tokens.unwrap_or_default(),
        };
        let fut = start_call(self.tracker.clone(), ctx, None, size, self.asynchronous);
        go(py, self.asynchronous, fut)
    }
}

fn outcome(list: Vec<Recorded>, want: bool) -> Conv {
    if want { recorded_list(list) } else { none() }
}

#[pymethods]
impl NativeCall {
    /// The reservation holding the estimate, when a quota applied.
    #[getter]
    fn reservation_id(&self) -> Option<String> {
        self.guard.reservation_id()
    }

    /// Marks the first token's arrival (a stream's latency); later calls change nothing.
    fn first_token(&self) {
        self.guard.first_token();
    }

    /// Records the usage in the provider's response (dict or SDK object) and drops the hold.
    /// On an async call an awaitable of the outcome, except when it could be queued for the
    /// batched writer at once: then the outcome itself.
    #[pyo3(signature = (response, result=true, background=false))]
    fn succeed(
        &self,
        py: Python<'_>,
        response: &Bound<'_, PyAny>,
        result: bool,
        background: bool,
    ) -> PyResult<Py<PyAny>> {
        let body = match self.guard.provider() {
            Some(p) => response_json(response, p)?,
            None => py_to_json(response)?,
        };
        // Queued for the batched writer with nothing to wait for: done here, without entering
        // the runtime; the outcome itself is returned, on an async call too.
        if !background && let Some(done) = self.guard.succeed_now(&body) {
            return outcome(done.py(py)?, result)(py);
        }
        let g = self.guard.clone();
        self.finish(py, background, async move {
            Ok(outcome(g.succeed(&body).await?, result))
        })
    }

    /// Records what a stream accumulator saw. With `error_type` (an abandoned or failed stream)
    /// the event is recorded as an error carrying the usage seen so far; a stream with nothing
    /// identifying in it is recorded as a plain failure.
    #[pyo3(signature = (accumulator, error_type=None, error_message=None, result=true, background=false))]
    #[allow(clippy::too_many_arguments)]
    fn succeed_stream(
        &self,
        py: Python<'_>,
        accumulator: &Bound<'_, StreamAccumulator>,
        error_type: Option<String>,
        error_message: Option<String>,
        result: bool,
        background: bool,
    ) -> PyResult<Py<PyAny>> {
        let acc = accumulator
            .borrow_mut()
            .inner
            .take()
            .ok_or_else(|| argument(py, "accumulator", "was already finished"))?;
        let g = self.guard.clone();
        self.finish(py, background, async move {
            // A stream the caller stopped keeps what it delivered; a finished one must parse.
            let record = if error_type.is_some() {
                acc.snapshot()
            } else {
                acc.finish().ok()
            };
            let message = error_message.unwrap_or_else(|| "the stream stopped early".to_owned());
            let stopped = error_type.as_deref().map(|kind| (kind, message.as_str()));
            Ok(outcome(g.finish_stream(record, stopped).await?, result))
        })
    }

    /// Records the call as failed (usage zero) and drops the hold.
    #[pyo3(signature = (error_type, message, result=true, background=false))]
    fn fail(
        &self,
        py: Python<'_>,
        error_type: String,
        message: String,
        result: bool,
        background: bool,
    ) -> PyResult<Py<PyAny>> {
        let g = self.guard.clone();
        self.finish(py, background, async move {
            let r = g.fail(&error_type, &message).await?;
            Ok(outcome(vec![r], result))
        })
    }
}

/// A rough count of the prompt tokens in a request's prompt parts, by the core's rule
/// (`usage_core::quota::estimate::approx_prompt_tokens`). For reservations only.
#[pyfunction]
pub(crate) fn approx_prompt_tokens(obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    prompt_tokens(obj)
}

/// The core's rough prompt count, walking Python's own strings, dicts, lists and tuples where
/// they are (a string's length is known without reading it), so a long conversation costs a
/// few microseconds rather than a copy of all its text; anything else (an SDK object passed
/// back as content) is converted to JSON and counted by the core.
fn prompt_tokens(obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    Ok(prompt_rule::tokens(prompt_chars(obj, 0)?))
}

fn prompt_chars(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<u64> {
    if depth > prompt_rule::MAX_DEPTH {
        return Ok(0);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        // Code points, as the core counts `char`s.
        return Ok(s.len()? as u64);
    }
    if obj.is_none()
        || obj.cast::<PyBool>().is_ok()
        || obj.cast::<PyInt>().is_ok()
        || obj.cast::<PyFloat>().is_ok()
    {
        return Ok(0);
    }
    let mut n = 0;
    if let Ok(d) = obj.cast::<PyDict>() {
        let skipped_key = pyo3::intern!(obj.py(), prompt_rule::SKIPPED_KEY);
        for (k, v) in d.iter() {
            if !k.eq(skipped_key)? {
                n += prompt_chars(&v, depth + 1)?;
            }
        }
        return Ok(n);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        for v in l.iter() {
            n += prompt_chars(&v, depth + 1)?;
        }
        return Ok(n);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        for v in t.iter() {
            n += prompt_chars(&v, depth + 1)?;
        }
        return Ok(n);
    }
    Ok(estimate::prompt_chars(&py_to_json(obj)?, depth))
}

/// JSON text as Python data (used by tests and the vectors runner through `_native`).
#[pyfunction]
pub(crate) fn loads<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| argument(py, "text", format!("is not JSON: {e}")))?;
    json_to_py(py, &v)
}
