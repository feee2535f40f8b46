//! Plumbing between Python values and the core's types: JSON-shaped data both ways, aware
//! datetimes, exact decimals, and the small argument types (provider, context, subjects,
//! windows). No rule about money, tokens or quotas lives here.

use chrono::{DateTime, Utc};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple, PyType,
};
use rust_decimal::Decimal;
use serde_json::{Map, Number, Value};
use usage_core::extract::Provider;
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
        return dict_json(d, &[]);
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
        if let Some(data) = plain_model_json(obj, &[], 0)? {
            return Ok(data);
        }
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

/// A dict as a JSON object, without the keys in `skip`; keys that are not strings are written
/// as their `str()`.
fn dict_json(d: &Bound<'_, PyDict>, skip: &[&str]) -> PyResult<Value> {
    let mut m = Map::with_capacity(d.len());
    for (k, v) in d.iter() {
        let key = match k.cast::<PyString>() {
            Ok(s) => s.extract::<String>()?,
            Err(_) => k.str()?.extract::<String>()?,
        };
        if !skip.contains(&key.as_str()) {
            m.insert(key, py_to_json(&v)?);
        }
    }
    Ok(Value::Object(m))
}

/// A provider's response or stream event (a dict or an SDK object) as JSON for its extractor,
/// without the top-level fields that extractor never reads ([`Provider::unread_fields`]: the
/// generated content, most of a long answer's size).
pub(crate) fn response_json(obj: &Bound<'_, PyAny>, provider: Provider) -> PyResult<Value> {
    let unread = provider.unread_fields();
    if let Ok(d) = obj.cast::<PyDict>() {
        return dict_json(d, unread);
    }
    if let Some(data) = plain_model_json(obj, unread, 0)? {
        return Ok(data);
    }
    let mut v = py_to_json(obj)?;
    if let Value::Object(m) = &mut v {
        for key in unread {
            m.remove(*key);
        }
    }
    Ok(v)
}

/// How deep [`plain_model_json`] reads before leaving a value to pydantic's serializer.
const PLAIN_DEPTH: usize = 64;

/// A pydantic model whose serialisation is pydantic's plain default, read from its instance's
/// `__dict__` and `__pydantic_extra__`: what `model_dump(mode="json")` gives for the plain data
/// SDK responses are made of (strings, numbers, lists, dicts and nested such models), without
/// serialising it to text and parsing that again (the wrappers read every response and stream
/// event this way). `skip` names top-level fields to leave out. `None` when `obj` is not such a
/// model or holds anything else (bytes, a datetime, an enum that is not a string…): the caller
/// then asks pydantic's serializer for the whole object.
fn plain_model_json(
    obj: &Bound<'_, PyAny>,
    skip: &[&str],
    depth: usize,
) -> PyResult<Option<Value>> {
    let py = obj.py();
    if depth > PLAIN_DEPTH || !is_plain_model_type(&obj.get_type())? {
        return Ok(None);
    }
    let mut m = Map::new();
    for part in [intern!(py, "__dict__"), intern!(py, "__pydantic_extra__")] {
        let Ok(fields) = obj.getattr(part) else {
            return Ok(None);
        };
        // `__pydantic_extra__` is None unless the model keeps extra fields.
        let Ok(fields) = fields.cast::<PyDict>() else {
            continue;
        };
        for (k, v) in fields.iter() {
            let Ok(k) = k.cast::<PyString>() else {
                return Ok(None);
            };
            let key = k.extract::<String>()?;
            if skip.contains(&key.as_str()) {
                continue;
            }
            match plain_json(&v, depth + 1)? {
                Some(x) => m.insert(key, x),
                None => return Ok(None),
            };
        }
    }
    Ok(Some(Value::Object(m)))
}

/// A field's value for [`plain_model_json`], `None` when it is not plain data.
fn plain_json(v: &Bound<'_, PyAny>, depth: usize) -> PyResult<Option<Value>> {
    if depth > PLAIN_DEPTH {
        return Ok(None);
    }
    if v.is_none() {
        return Ok(Some(Value::Null));
    }
    if let Ok(s) = v.cast::<PyString>() {
        // A `str` enum member is its value, as pydantic writes it.
        return Ok(Some(Value::String(s.extract::<String>()?)));
    }
    // Exact ints and bools only: an `IntEnum` member is left to pydantic.
    if v.is_exact_instance_of::<PyBool>() || v.is_exact_instance_of::<PyInt>() {
        return py_to_json(v).map(Some);
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Number::from_f64(f.value()).map(Value::Number));
    }
    if let Ok(l) = v.cast::<PyList>() {
        return plain_items(l.iter(), depth);
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return plain_items(t.iter(), depth);
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut m = Map::with_capacity(d.len());
        for (k, x) in d.iter() {
            let Ok(k) = k.cast::<PyString>() else {
                return Ok(None);
            };
            match plain_json(&x, depth + 1)? {
                Some(x) => m.insert(k.extract::<String>()?, x),
                None => return Ok(None),
            };
        }
        return Ok(Some(Value::Object(m)));
    }
    plain_model_json(v, &[], depth)
}

fn plain_items<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    depth: usize,
) -> PyResult<Option<Value>> {
    let mut out = Vec::new();
    for x in items {
        match plain_json(&x, depth + 1)? {
            Some(x) => out.push(x),
            None => return Ok(None),
        }
    }
    Ok(Some(Value::Array(out)))
}

/// Model types already looked at by [`is_plain_model_type`]: type → whether it is plain. At
/// most [`PLAIN_TYPES_KEPT`] are kept (generic models can make types without end).
static PLAIN_TYPES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
const PLAIN_TYPES_KEPT: usize = 1024;

/// Whether `ty` is a pydantic (v2) model that `model_dump(mode="json")` writes as its fields'
/// values under their names: pydantic's own `model_dump`, no custom, computed or excluded
/// fields, no serialisation by alias, not a root model. (A serializer attached deeper inside a
/// field's type, `list[Annotated[int, PlainSerializer(…)]]`, is not seen; no SDK response
/// uses one.)
fn is_plain_model_type(ty: &Bound<'_, PyType>) -> PyResult<bool> {
    let py = ty.py();
    let seen = PLAIN_TYPES
        .get_or_init(py, || PyDict::new(py).unbind())
        .bind(py);
    if let Some(known) = seen.get_item(ty)? {
        return known.is_truthy();
    }
    // A type this reading cannot make out (another pydantic version's internals) is left to
    // pydantic's serializer rather than failing the caller's call.
    let plain = looks_plain(ty).unwrap_or(false);
    if seen.len() < PLAIN_TYPES_KEPT {
        seen.set_item(ty, plain)?;
    }
    Ok(plain)
}

fn looks_plain(ty: &Bound<'_, PyType>) -> PyResult<bool> {
    let py = ty.py();
    if ty.getattr(intern!(py, "__pydantic_serializer__")).is_err() || !pydantic_dump_is_own(ty)? {
        return Ok(false);
    }
    if ty
        .getattr(intern!(py, "__pydantic_root_model__"))
        .is_ok_and(|r| r.is_truthy().unwrap_or(true))
    {
        return Ok(false);
    }
    let decorators = ty.getattr(intern!(py, "__pydantic_decorators__"))?;
    for kind in ["field_serializers", "model_serializers", "computed_fields"] {
        if decorators.getattr(kind)?.len()? > 0 {
            return Ok(false);
        }
    }
    let config = ty.getattr(intern!(py, "model_config"))?;
    if config
        .call_method1("get", ("serialize_by_alias",))?
        .is_truthy()?
    {
        return Ok(false);
    }
    let module = PyModule::import(py, "pydantic.functional_serializers")?;
    let serializers = PyTuple::new(
        py,
        [
            module.getattr("PlainSerializer")?,
            module.getattr("WrapSerializer")?,
        ],
    )?;
    let fields = ty.getattr(intern!(py, "__pydantic_fields__"))?;
    for info in fields.cast::<PyDict>()?.values() {
        if info.getattr("exclude")?.is_truthy()?
            || info.getattr("exclude_if").is_ok_and(|f| !f.is_none())
        {
            return Ok(false);
        }
        for m in info.getattr("metadata")?.try_iter()? {
            if m?.is_instance(serializers.as_any())? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Whether `ty.model_dump` is pydantic's own (not an SDK's override).
fn pydantic_dump_is_own(ty: &Bound<'_, PyType>) -> PyResult<bool> {
    let py = ty.py();
    let pydantic_dump = MODEL_DUMP.get_or_try_init(py, || {
        Ok::<_, PyErr>(
            PyModule::import(py, "pydantic")?
                .getattr("BaseModel")?
                .getattr("model_dump")?
                .unbind(),
        )
    })?;
    Ok(ty
        .getattr(intern!(py, "model_dump"))?
        .is(pydantic_dump.bind(py)))
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
    if !pydantic_dump_is_own(&ty)? {
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
