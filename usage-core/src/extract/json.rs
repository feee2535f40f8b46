//! Checked access to provider JSON. Every accessor knows the JSON path it stands on, so a bad
//! field becomes an [`Error::InvalidResponse`] that names it (`usage.input_tokens`), and nothing
//! here can panic, whatever the input.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::money::{Usd, decimal_from_json};

/// The largest integer an `f64` holds exactly: integral floats above it are not trusted as counts.
const MAX_EXACT_F64: f64 = 9_007_199_254_740_992.0;

/// A JSON value together with where it sits in the payload and who sent it.
#[derive(Clone, Debug)]
pub(crate) struct Node<'a> {
    pub(crate) v: &'a Value,
    path: String,
    provider: &'static str,
}

impl<'a> Node<'a> {
    /// The payload root. Errors about the root itself name `root_name` (`<body>`, `<event>`).
    pub(crate) fn root(provider: &'static str, v: &'a Value) -> Self {
        Node {
            v,
            path: String::new(),
            provider,
        }
    }

    /// The provider or format name errors carry.
    pub(crate) fn provider(&self) -> &'static str {
        self.provider
    }

    /// The path of `key` under this node.
    pub(crate) fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// An `InvalidResponse` about `key` under this node.
    pub(crate) fn err(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::response(self.provider, self.path_of(key), reason)
    }

    /// An `InvalidResponse` about this node itself.
    pub(crate) fn err_here(&self, reason: impl Into<String>) -> Error {
        let field = if self.path.is_empty() {
            "<body>".to_owned()
        } else {
            self.path.clone()
        };
        Error::response(self.provider, field, reason)
    }

    /// Requires this node to be an object.
    pub(crate) fn expect_object(&self) -> Result<()> {
        if self.v.is_object() {
            Ok(())
        } else {
            Err(self.err_here(format!("is {}, not a JSON object", describe(self.v))))
        }
    }

    /// The raw value of `key` when present and not `null`.
    pub(crate) fn raw(&self, key: &str) -> Option<&'a Value> {
        match self.v.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// True when `key` is present, even as `null`.
    pub(crate) fn has_key(&self, key: &str) -> bool {
        self.v.as_object().is_some_and(|m| m.contains_key(key))
    }

    /// `key` as a child node, whatever its type, when present and not `null`.
    pub(crate) fn child(&self, key: &str) -> Option<Node<'a>> {
        self.raw(key).map(|v| Node {
            v,
            path: self.path_of(key),
            provider: self.provider,
        })
    }

    /// `key` as an object node; `null`/absent is `None`, any other type an error.
    pub(crate) fn obj(&self, key: &str) -> Result<Option<Node<'a>>> {
        match self.child(key) {
            None => Ok(None),
            Some(n) if n.v.is_object() => Ok(Some(n)),
            Some(n) => Err(self.err(key, format!("is {}, not an object", describe(n.v)))),
        }
    }

    /// `key` as an object node that must be there.
    pub(crate) fn req_obj(&self, key: &str) -> Result<Node<'a>> {
        self.obj(key)?.ok_or_else(|| self.missing(key))
    }

    /// `key` as an array's element nodes; `null`/absent is `None`, any other type an error.
    pub(crate) fn arr(&self, key: &str) -> Result<Option<Vec<Node<'a>>>> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                let base = self.path_of(key);
                Ok(Some(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| Node {
                            v,
                            path: format!("{base}[{i}]"),
                            provider: self.provider,
                        })
                        .collect(),
                ))
            }
            Some(other) => Err(self.err(key, format!("is {}, not an array", describe(other)))),
        }
    }

    /// `key` as a map's entries, each a node whose path is `key["name"]` (map keys may hold
    /// dots, such as Bedrock model ids); `null`/absent is `None`, any other type an error.
    pub(crate) fn entries(&self, key: &str) -> Result<Option<Vec<(&'a str, Node<'a>)>>> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Object(map)) => {
                let base = self.path_of(key);
                Ok(Some(
                    map.iter()
                        .map(|(k, v)| {
                            let path = format!("{base}[{}]", Value::String(k.clone()));
                            (
                                k.as_str(),
                                Node {
                                    v,
                                    path,
                                    provider: self.provider,
                                },
                            )
                        })
                        .collect(),
                ))
            }
            Some(other) => Err(self.err(key, format!("is {}, not an object", describe(other)))),
        }
    }

    /// `key` as a string; `null`/absent is `None`, any other type an error.
    pub(crate) fn str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(self.err(key, format!("is {}, not a string", describe(other)))),
        }
    }

    /// `key` as a non-empty string, owned; empty, `null` and absent are all `None`.
    pub(crate) fn string(&self, key: &str) -> Result<Option<String>> {
        Ok(self.str(key)?.filter(|s| !s.is_empty()).map(str::to_owned))
    }

    /// `key` as a bool; `null`/absent is `None`, any other type an error.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.err(key, format!("is {}, not true or false", describe(other)))),
        }
    }

    /// `key` as a count (a non-negative integer that fits in `u64`); `null`/absent is `None`.
    pub(crate) fn u64(&self, key: &str) -> Result<Option<u64>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => count(v).map(Some).map_err(|reason| self.err(key, reason)),
        }
    }

    /// `key` as a count, 0 when `null`/absent.
    pub(crate) fn u64_or_zero(&self, key: &str) -> Result<u64> {
        Ok(self.u64(key)?.unwrap_or(0))
    }

    /// `key` as a count that must be there.
    pub(crate) fn req_u64(&self, key: &str) -> Result<u64> {
        self.u64(key)?.ok_or_else(|| self.missing(key))
    }

    /// The first of `keys` that is present, as a count (for camelCase/snake_case twins).
    pub(crate) fn u64_any(&self, keys: &[&str]) -> Result<Option<u64>> {
        match keys.iter().find(|k| self.raw(k).is_some()) {
            Some(k) => self.u64(k),
            None => Ok(None),
        }
    }

    /// The first of `keys` that is present, as a string.
    pub(crate) fn str_any(&self, keys: &[&str]) -> Result<Option<&'a str>> {
        match keys.iter().find(|k| self.raw(k).is_some()) {
            Some(k) => self.str(k),
            None => Ok(None),
        }
    }

    /// The first of `keys` that is present, as an object node.
    pub(crate) fn obj_any(&self, keys: &[&str]) -> Result<Option<Node<'a>>> {
        match keys.iter().find(|k| self.raw(k).is_some()) {
            Some(k) => self.obj(k),
            None => Ok(None),
        }
    }

    /// `key` as an exact dollar amount (a JSON number read digit for digit, or a decimal
    /// string); `null`/absent is `None`.
    pub(crate) fn usd(&self, key: &str) -> Result<Option<Usd>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => match decimal_from_json(v) {
                Some(d) => Ok(Some(Usd::new(d))),
                None => Err(self.err(key, format!("is {}, not a decimal amount", describe(v)))),
            },
        }
    }

    /// The "is missing" error for `key`.
    pub(crate) fn missing(&self, key: &str) -> Error {
        self.err(key, "is missing")
    }
}

/// A JSON value as a token or request count: a non-negative integer within `u64`. Integral
/// floats (`100.0`) are accepted while they are exact; fractions, negatives, strings are not.
pub(crate) fn count(v: &Value) -> std::result::Result<u64, String> {
    let n = raw_count(v)?;
    if n > crate::tokens::MAX_TOKENS {
        return Err(format!(
            "is {n}: more than any one request can use ({})",
            crate::tokens::MAX_TOKENS
        ));
    }
    Ok(n)
}

fn raw_count(v: &Value) -> std::result::Result<u64, String> {
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(u)
            } else if let Some(i) = n.as_i64() {
                Err(format!("is {i}: a count cannot be negative"))
            } else {
                match n.as_f64() {
                    Some(f)
                        if f.is_finite()
                            && f.fract() == 0.0
                            && (0.0..=MAX_EXACT_F64).contains(&f) =>
                    {
                        // Exact: integral, non-negative and at most 2^53.
                        Ok(f as u64)
                    }
                    Some(f) if f < 0.0 => Err(format!("is {n}: a count cannot be negative")),
                    Some(f) if f.fract() == 0.0 => Err(format!("is {n}: too large for a count")),
                    _ => Err(format!("is {n}: a count must be a whole number")),
                }
            }
        }
        other => Err(format!(
            "is {}, not a count (a non-negative integer)",
            describe(other)
        )),
    }
}

/// A short description of a value for error messages: its type, and its text when short.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let short: String = s.chars().take(40).collect();
            if short.len() < s.len() {
                format!("the string \"{short}…\"")
            } else {
                format!("the string \"{short}\"")
            }
        }
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_are_checked() {
        assert_eq!(count(&json!(5)), Ok(5));
        assert_eq!(count(&json!(5.0)), Ok(5));
        assert!(count(&json!(-1)).unwrap_err().contains("negative"));
        assert!(count(&json!(1.5)).unwrap_err().contains("whole"));
        assert!(count(&json!(1e30)).unwrap_err().contains("too large"));
        assert!(count(&json!("5")).unwrap_err().contains("string"));
    }

    #[test]
    fn errors_name_the_path() {
        let v = json!({"usage": {"input_tokens": -3}});
        let root = Node::root("anthropic", &v);
        let usage = root.req_obj("usage").unwrap();
        let e = usage.req_u64("input_tokens").unwrap_err();
        assert!(
            matches!(&e, Error::InvalidResponse { field, .. } if field == "usage.input_tokens"),
            "{e}"
        );
        let e = usage.req_u64("output_tokens").unwrap_err();
        assert!(
            matches!(&e, Error::InvalidResponse { field, .. } if field == "usage.output_tokens")
        );
    }
}
