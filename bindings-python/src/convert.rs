//! Plumbing between Python values and the core's types: JSON-shaped data both ways, aware
//! datetimes, exact decimals, and the small argument types (provider, context, subjects,
//! windows). No rule about money, tokens or quotas lives here.

use chrono::{DateTime, Utc};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
use rust_decimal::Decimal;
use serde_json::{Map, Number, Value};
use usage_core::quota::{Subject, Window};
use usage_core::{Error, PricingContext};

use crate::errors::{IntoPy, argument};

static DATETIME: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DATE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DECIMAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static MODEL_DUMP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    module: &str,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    Ok(cell
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(PyModule::import(py, module)?.getattr(name)?.unbind())
        })?
        .bind(py))
}

/// JSON data as plain Python objects (dict, list, str, int, float, bool, None).
pub(crate) fn json_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| json_to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, x) in o {
                d.set_item(k, json_to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

/// Any serialisable core value as plain Python data.
pub(crate) fn to_py_data<'py>(
    py: Python<'py>,
    v: &impl serde::Serialize,
) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(v)
        .map_err(|e| Error::argument("result", format!("cannot serialise: {e}")))
        .py(py)?;
    json_to_py(py, &value)
}

/// A Python value as JSON: dicts and lists, scalars, `Decimal` (as its exact string), aware
/// `datetime` (RFC 3339), and SDK objects (pydantic models through `model_dump(mode="json")`,
/// others through `to_dict()`).
pub(crate) fn py_to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = obj.py();
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.extract::<String>()?));
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.cast::<PyInt>().is_ok() {
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        // Past 64 bits: keep every digit as a string rather than lose precision.
        return Ok(Value::String(obj.str()?.extract::<String>()?));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| {
                argument(
                    py,
                    "response",
                    format!("{} is not a JSON number", f.value()),
                )
            });
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = match k.cast::<PyString>() {
                Ok(s) => s.extract::<String>()?,
                Err(_) => k.str()?.extract::<String>()?,
            };
            m.insert(key, py_to_json(&v)?);
        }
        return Ok(Value::Object(m));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|x| py_to_json(&x))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .map(|x| py_to_json(&x))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if obj.is_instance(class(py, &DECIMAL, "decimal", "Decimal")?)? {
        return Ok(Value::String(obj.str()?.extract::<String>()?));
    }
    if obj.is_instance(class(py, &DATETIME, "datetime", "datetime")?)? {
        let at = datetime_arg(obj, "datetime")?;
        return Ok(Value::String(at.to_rfc3339()));
    }
    if obj.is_instance(class(py, &DATE, "datetime", "date")?)? {
        return Ok(Value::String(obj.call_method0("isoformat")?.extract()?));
    }
    if obj.hasattr("model_dump")? {
        if let Some(data) = pydantic_json(obj)? {
            return Ok(data);
        }
        let kw = PyDict::new(py);
        kw.set_item("mode", "json")?;
        return py_to_json(&obj.call_method("model_dump", (), Some(&kw))?);
    }
    if obj.hasattr("to_dict")? {
        return py_to_json(&obj.call_method0("to_dict")?);
    }
    if let Ok(m) = obj.cast::<PyMapping>() {
        return py_to_json(&PyDict::from_sequence(&m.items()?.into_any())?.into_any());
    }
    Err(argument(
        py,
        "response",
        format!(
            "a {} cannot be read as JSON (pass a dict or an SDK response object)",
            obj.get_type().name()?
        ),
    ))
}

/// A pydantic (v2) model whose `model_dump` is pydantic's own, as JSON data: what
/// `model_dump(mode="json")` returns, serialised by the model's own serializer straight to JSON
/// text (`to_json`) and parsed here, so no Python dict or string is built on the way. The SDK
/// wrappers read every response this way, so it is on their hot path. `None` for anything
/// else.
fn pydantic_json(obj: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
    let py = obj.py();
    let ty = obj.get_type();
    let Ok(serializer) = ty.getattr(intern!(py, "__pydantic_serializer__")) else {
        return Ok(None);
    };
    // The type has a pydantic serializer, so pydantic is importable.
    let pydantic_dump = MODEL_DUMP.get_or_try_init(py, || {
        Ok::<_, PyErr>(
            PyModule::import(py, "pydantic")?
                .getattr("BaseModel")?
                .getattr("model_dump")?
                .unbind(),
        )
    })?;
    if !ty
        .getattr(intern!(py, "model_dump"))?
        .is(pydantic_dump.bind(py))
    {
        return Ok(None);
    }
    // Warnings off: a value that does not match its declared type (the SDKs' generic parsed
    // outputs) is serialised as it is, which is all a reading needs, and the caller's program
    // does not see warnings about our reading its response.
    let kw = PyDict::new(py);
    kw.set_item(intern!(py, "warnings"), false)?;
    let text = serializer.call_method(intern!(py, "to_json"), (obj,), Some(&kw))?;
    let bytes = text.cast::<PyBytes>()?;
    serde_json::from_slice(bytes.as_bytes())
        .map(Some)
        .map_err(|e| {
            argument(
                py,
                "response",
                format!("pydantic serialised it to invalid JSON: {e}"),
            )
        })
}

/// An aware `datetime` as a UTC instant; a naive one, or anything else, is an
/// `InvalidArgumentError` naming `name`.
pub(crate) fn datetime_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<DateTime<Utc>> {
    let py = obj.py();
    if !obj.is_instance(class(py, &DATETIME, "datetime", "datetime")?)? {
        return Err(argument(
            py,
            name,
            format!(
                "expected a timezone-aware datetime, got a {}",
                obj.get_type().name()?
            ),
        ));
    }
    if obj.call_method0("utcoffset")?.is_none() {
        return Err(argument(
            py,
            name,
            format!(
                "`{}` is a naive datetime; pass a timezone-aware one (e.g. datetime.now(timezone.utc))",
                obj.str()?
            ),
        ));
    }
    let text: String = obj.call_method0("isoformat")?.extract()?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| argument(py, name, format!("`{text}` cannot be read: {e}")))
}

/// An optional aware datetime argument.
pub(crate) fn opt_datetime(
    obj: Option<&Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<Option<DateTime<Utc>>> {
    match obj {
        Some(o) if !o.is_none() => datetime_arg(o, name).map(Some),
        _ => Ok(None),
    }
}

/// An exact decimal from a `Decimal`, an `int` or a decimal string. Floats are refused: money
/// and limits are exact.
pub(crate) fn decimal_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Decimal> {
    let py = obj.py();
    if obj.cast::<PyFloat>().is_ok() {
        return Err(argument(
            py,
            name,
            format!(
                "{} is a float; pass a Decimal, an int or a decimal string (amounts are exact)",
                obj.str()?
            ),
        ));
    }
    if obj.cast::<PyBool>().is_ok() {
        return Err(argument(py, name, "expected a number, got a bool"));
    }
    let is_number = obj.cast::<PyInt>().is_ok()
        || obj.cast::<PyString>().is_ok()
        || obj.is_instance(class(py, &DECIMAL, "decimal", "Decimal")?)?;
    if !is_number {
        return Err(argument(
            py,
            name,
            format!(
                "expected a Decimal, an int or a decimal string, got a {}",
                obj.get_type().name()?
            ),
        ));
    }
    let text = obj.str()?.extract::<String>()?.trim().to_owned();
    Decimal::from_str_exact(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|e| argument(py, name, format!("`{text}` is not a decimal number: {e}")))
}

/// The pricing context from keyword arguments; absent ones keep the core's defaults.
pub(crate) fn context_args(
    py: Python<'_>,
    service_tier: Option<&str>,
    speed: Option<&str>,
    inference_geo: Option<String>,
    platform: Option<&str>,
    deployment: Option<&str>,
) -> PyResult<PricingContext> {
    let mut c = PricingContext::default();
    if let Some(t) = service_tier {
        c.service_tier = t.parse().py(py)?;
    }
    if let Some(s) = speed {
        c.speed = s.parse().py(py)?;
    }
    if inference_geo.is_some() {
        c.inference_geo = inference_geo;
    }
    if let Some(p) = platform {
        c.platform = Some(p.parse().py(py)?);
    }
    if let Some(d) = deployment {
        c.deployment = Some(d.parse().py(py)?);
    }
    Ok(c)
}

/// A serde value of the core from its JSON shape (a dict), naming `name` when it does not fit.
pub(crate) fn from_data<T: serde::de::DeserializeOwned>(
    obj: &Bound<'_, PyAny>,
    name: &str,
) -> PyResult<T> {
    let v = py_to_json(obj)?;
    serde_json::from_value(v).map_err(|e| argument(obj.py(), name, e.to_string()))
}

/// A quota subject: `"user:ID"`, `"tag:KEY=VALUE"`, `"global"` (the core's display form), or
/// its dict form (`{"kind": "user", "id": "alice"}`, what `Subject.to_dict()` gives).
pub(crate) fn subject_arg(obj: &Bound<'_, PyAny>) -> PyResult<Subject> {
    let py = obj.py();
    if let Ok(s) = obj.cast::<PyString>() {
        let s: String = s.extract()?;
        let s = s.as_str();
        let bad = || {
            argument(
                py,
                "subject",
                format!("`{s}` is not `user:ID`, `tag:KEY=VALUE` or `global`"),
            )
        };
        let subject = if s == "global" {
            Subject::Global
        } else if let Some(id) = s.strip_prefix("user:") {
            Subject::user(id)
        } else if let Some(kv) = s.strip_prefix("tag:") {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            Subject::tag(k, v)
        } else {
            return Err(bad());
        };
        subject.validate().py(py)?;
        return Ok(subject);
    }
    if obj.hasattr("to_dict")? && obj.cast::<PyDict>().is_err() {
        return from_data(&obj.call_method0("to_dict")?, "subject");
    }
    from_data(obj, "subject")
}

/// A quota window: `"day"`, `"week"` (from Monday), `"week:sunday"`, `"month"` (from the 1st),
/// `"month:15"`, `"year"`, `"rolling:SECONDS"`, `"lifetime"`, or its dict form.
pub(crate) fn window_arg(obj: &Bound<'_, PyAny>) -> PyResult<Window> {
    let py = obj.py();
    let Ok(s) = obj.cast::<PyString>() else {
        if obj.hasattr("to_dict")? && obj.cast::<PyDict>().is_err() {
            return from_data(&obj.call_method0("to_dict")?, "window");
        }
        return from_data(obj, "window");
    };
    let s = s.extract::<String>()?.trim().to_ascii_lowercase();
    let bad = |why: String| argument(py, "window", why);
    let (unit, arg) = s
        .split_once(':')
        .map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
    let window = match (unit, arg) {
        ("day", None) => Window::Day,
        ("week", None) => Window::Week {
            start: chrono::Weekday::Mon,
        },
        ("week", Some(d)) => Window::Week {
            start: usage_core::query::time::parse_weekday(d).py(py)?,
        },
        ("month", None) => Window::Month { anchor_day: 1 },
        ("month", Some(d)) => Window::Month {
            anchor_day: d
                .parse()
                .map_err(|_| bad(format!("`{s}`: `{d}` is not a day of the month")))?,
        },
        ("year", None) => Window::Year,
        ("lifetime", None) => Window::Lifetime,
        ("rolling", Some(secs)) => Window::Rolling {
            seconds: secs
                .parse()
                .map_err(|_| bad(format!("`{s}`: `{secs}` is not a number of seconds")))?,
        },
        _ => {
            return Err(bad(format!(
                "`{s}` is not day, week, week:DAY, month, month:DAY, year, rolling:SECONDS or lifetime"
            )));
        }
    };
    window.validate().py(py)?;
    Ok(window)
}
