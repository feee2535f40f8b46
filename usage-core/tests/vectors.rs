//! Runs the shared test vectors in `tests/vectors/*.json` (format: that folder's README), the
//! same files pytest and the Node tests read. Each case is built from a raw provider payload, a
//! stream or plain usage, priced with the built-in catalog, and compared with its hand-worked
//! expectation. Every failing case is reported at once, not just the first.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use usage_core::extract::{Extracted, Provider, StreamAccumulator, extract};
use usage_core::{CostBreakdown, Error, PriceCatalog, PricingContext, TokenUsage, Usd};

const CASE_FIELDS: &[&str] = &[
    "name", "why", "source", "at", "provider", "response", "stream", "model", "usage", "context",
    "expect",
];
const EXPECT_FIELDS: &[&str] = &[
    "model",
    "usage",
    "complete",
    "billable",
    "records",
    "cost",
    "tier_above",
    "modifiers",
    "error",
];
/// The cost lines in the order `CostBreakdown` has them; `total` last.
const COST_LINES: &[&str] = &[
    "input",
    "cache_read",
    "cache_write_5m",
    "cache_write_1h",
    "output",
    "web_search",
    "total",
];
const ERROR_CODES: &[&str] = &["UNKNOWN_MODEL", "INVALID_USAGE", "INVALID_RESPONSE"];
/// Costs are rounded to 1e-9 USD, so an expected figure never has more decimals.
const MAX_SCALE: u32 = 9;

struct Case {
    file: String,
    name: String,
    body: Map<String, Value>,
}

impl Case {
    fn label(&self) -> String {
        format!("{} › {}", self.file, self.name)
    }
    fn get(&self, key: &str) -> Option<&Value> {
        self.body.get(key)
    }
    fn expect(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.get("expect")
            .and_then(Value::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("vectors")
}

/// Every case of every `*.json` file, in file-name order, plus the problems met while reading
/// the files themselves.
fn load() -> (Vec<Case>, Vec<String>) {
    let dir = vectors_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{file}: cannot read: {e}"));
                continue;
            }
        };
        let doc: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{file}: not JSON: {e}"));
                continue;
            }
        };
        let Some(obj) = doc.as_object() else {
            problems.push(format!("{file}: the top level must be an object"));
            continue;
        };
        for key in obj.keys() {
            if key != "description" && key != "cases" {
                problems.push(format!("{file}: unknown top-level field `{key}`"));
            }
        }
        if obj
            .get("description")
            .and_then(Value::as_str)
            .is_none_or(|d| d.trim().is_empty())
        {
            problems.push(format!("{file}: `description` must be a non-empty string"));
        }
        let Some(list) = obj.get("cases").and_then(Value::as_array) else {
            problems.push(format!("{file}: `cases` must be an array"));
            continue;
        };
        for (i, v) in list.iter().enumerate() {
            let Some(body) = v.as_object() else {
                problems.push(format!("{file} › cases[{i}]: a case must be an object"));
                continue;
            };
            let name = match body.get("name").and_then(Value::as_str) {
                Some(n) => n.to_owned(),
                None => format!("cases[{i}]"),
            };
            cases.push(Case {
                file: file.clone(),
                name,
                body: body.clone(),
            });
        }
    }
    (cases, problems)
}

fn parse_at(v: Option<&Value>) -> Result<DateTime<Utc>, String> {
    let s = v
        .and_then(Value::as_str)
        .ok_or("`at` must be an RFC 3339 string")?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`at` `{s}` is not RFC 3339: {e}"))
}

fn parse_decimal(v: &Value) -> Result<Decimal, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("{v} must be a decimal string"))?;
    Decimal::from_str_exact(s.trim()).map_err(|e| format!("`{s}` is not a decimal: {e}"))
}

fn is_kebab(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Everything that makes a case unreadable or self-contradictory, before any code runs.
fn format_problems(c: &Case) -> Vec<String> {
    let mut p = Vec::new();
    for key in c.body.keys() {
        if !CASE_FIELDS.contains(&key.as_str()) {
            p.push(format!("unknown field `{key}`"));
        }
    }
    if !is_kebab(&c.name) {
        p.push(format!("name `{}` is not kebab-case", c.name));
    }
    if c.get("why")
        .and_then(Value::as_str)
        .is_none_or(|w| w.trim().is_empty())
    {
        p.push("`why` is missing or empty: every case explains its rule and arithmetic".into());
    }
    if c.get("source").is_some_and(|s| !s.is_string()) {
        p.push("`source` must be a string".into());
    }
    if let Err(e) = parse_at(c.get("at")) {
        p.push(e);
    }
    let has = |k: &str| c.get(k).is_some();
    match (has("response"), has("stream")) {
        (true, true) => p.push("give `response` or `stream`, not both".into()),
        (true, false) | (false, true) => {
            match c
                .get("provider")
                .and_then(Value::as_str)
                .map(str::parse::<Provider>)
            {
                Some(Ok(_)) => {}
                Some(Err(e)) => p.push(format!("`provider`: {e}")),
                None => p.push("`response`/`stream` need a `provider` string".into()),
            }
            if has("usage") {
                p.push("`usage` goes with `model` only, not with `response`/`stream`".into());
            }
            if c.get("stream")
                .is_some_and(|s| s.as_array().is_none_or(Vec::is_empty))
            {
                p.push("`stream` must be a non-empty array of events".into());
            }
            if c.get("model").is_some_and(|m| !m.is_string()) {
                p.push("`model` must be a string".into());
            }
        }
        (false, false) => {
            if has("provider") {
                p.push("`provider` needs a `response` or `stream`".into());
            }
            if !c.get("model").is_some_and(Value::is_string) {
                p.push(
                    "a case needs `model` + `usage`, or `provider` + `response`/`stream`".into(),
                );
            }
            match c
                .get("usage")
                .map(|u| serde_json::from_value::<TokenUsage>(u.clone()))
            {
                Some(Ok(_)) => {}
                Some(Err(e)) => p.push(format!("`usage`: {e}")),
                None => p.push("`model` needs a `usage`".into()),
            }
        }
    }
    if let Some(ctx) = c.get("context")
        && let Err(e) = serde_json::from_value::<PricingContext>(ctx.clone())
    {
        p.push(format!("`context`: {e}"));
    }
    let Some(expect) = c.get("expect").and_then(Value::as_object) else {
        p.push("`expect` must be an object".into());
        return p;
    };
    for key in expect.keys() {
        if !EXPECT_FIELDS.contains(&key.as_str()) {
            p.push(format!("unknown field `expect.{key}`"));
        }
    }
    match (expect.get("cost"), expect.get("error")) {
        (Some(_), Some(_)) => p.push("`expect` has both `cost` and `error`".into()),
        (None, None) => p.push("`expect` needs `cost` or `error`".into()),
        (None, Some(e)) => {
            if !e.as_str().is_some_and(|s| ERROR_CODES.contains(&s)) {
                p.push(format!("`expect.error` {e} is not one of {ERROR_CODES:?}"));
            }
        }
        (Some(cost), None) => match cost.as_object() {
            None => p.push("`expect.cost` must be an object".into()),
            Some(cost) => {
                let mut sum = Decimal::ZERO;
                for (k, v) in cost {
                    if !COST_LINES.contains(&k.as_str()) {
                        p.push(format!("unknown cost line `expect.cost.{k}`"));
                        continue;
                    }
                    match parse_decimal(v) {
                        Ok(d) if d.is_sign_negative() && !d.is_zero() => {
                            p.push(format!("`expect.cost.{k}` is negative"))
                        }
                        Ok(d) if d.normalize().scale() > MAX_SCALE => p.push(format!(
                            "`expect.cost.{k}` {d} has more than {MAX_SCALE} decimals"
                        )),
                        Ok(d) if k != "total" => sum += d,
                        Ok(_) => {}
                        Err(e) => p.push(format!("`expect.cost.{k}`: {e}")),
                    }
                }
                match cost.get("total").map(parse_decimal) {
                    None => p.push("`expect.cost.total` is required".into()),
                    Some(Ok(total)) if total != sum => p.push(format!(
                        "`expect.cost.total` {total} is not the sum of the expected lines ({sum})"
                    )),
                    _ => {}
                }
            }
        },
    }
    if let Some(u) = expect.get("usage")
        && let Err(e) = serde_json::from_value::<TokenUsage>(u.clone())
    {
        p.push(format!("`expect.usage`: {e}"));
    }
    for flag in ["complete", "billable"] {
        if expect.get(flag).is_some_and(|v| !v.is_boolean()) {
            p.push(format!("`expect.{flag}` must be a boolean"));
        }
    }
    if expect.get("records").is_some_and(|v| v.as_u64().is_none()) {
        p.push("`expect.records` must be a non-negative integer".into());
    }
    if expect
        .get("tier_above")
        .is_some_and(|v| !v.is_null() && v.as_u64().is_none())
    {
        p.push("`expect.tier_above` must be an integer or null".into());
    }
    if expect
        .get("modifiers")
        .is_some_and(|m| !m.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
    {
        p.push("`expect.modifiers` must be an array of strings".into());
    }
    if expect.get("model").is_some_and(|v| !v.is_string()) {
        p.push("`expect.model` must be a string".into());
    }
    let extracted = has("response") || has("stream");
    for key in ["usage", "complete", "billable", "records"] {
        if !extracted && expect.contains_key(key) {
            p.push(format!(
                "`expect.{key}` only applies to a `response` or `stream` case"
            ));
        }
    }
    if has("stream") && expect.contains_key("records") {
        p.push("`expect.records` only applies to a `response` case".into());
    }
    p
}

/// The record a case prices: extracted from a payload, accumulated from a stream, or given.
struct Built {
    model: String,
    usage: TokenUsage,
    context: PricingContext,
    complete: Option<bool>,
    billable: bool,
    records: Option<usize>,
}

impl Built {
    fn from_extracted(e: Extracted, records: Option<usize>) -> Self {
        Built {
            model: e.model,
            usage: e.usage,
            context: e.context,
            complete: Some(e.complete),
            billable: e.billable,
            records,
        }
    }
}

enum Outcome {
    /// Extraction returned no record at all.
    NoRecord,
    /// A record, and the result of pricing it (`None`: not billable, so not priced).
    Record(Box<Built>, Option<Box<Result<CostBreakdown, Error>>>),
}

/// Overlays the case's `context` fields on the extracted context: only the fields the case
/// names change.
fn merge_context(base: &PricingContext, over: Option<&Value>) -> Result<PricingContext, String> {
    let Some(over) = over.and_then(Value::as_object) else {
        return Ok(base.clone());
    };
    let mut v = serde_json::to_value(base).map_err(|e| e.to_string())?;
    let obj = v
        .as_object_mut()
        .ok_or("a PricingContext serialises to an object")?;
    for (k, x) in over {
        obj.insert(k.clone(), x.clone());
    }
    serde_json::from_value(v).map_err(|e| format!("`context`: {e}"))
}

/// The first record the case's input yields (`None`: extraction found no record).
fn build(c: &Case) -> Result<Result<Option<Built>, Error>, String> {
    let provider = c
        .get("provider")
        .and_then(Value::as_str)
        .map(str::parse::<Provider>);
    if let Some(response) = c.get("response") {
        let provider = provider.ok_or("no provider")?.map_err(|e| e.to_string())?;
        return Ok(extract(provider, response).map(|mut recs| {
            let n = recs.len();
            (n > 0).then(|| Built::from_extracted(recs.swap_remove(0), Some(n)))
        }));
    }
    if let Some(stream) = c.get("stream").and_then(Value::as_array) {
        let provider = provider.ok_or("no provider")?.map_err(|e| e.to_string())?;
        let run = || -> Result<Extracted, Error> {
            let mut acc = StreamAccumulator::new(provider);
            for event in stream {
                acc.push(event)?;
            }
            acc.finish()
        };
        return Ok(run().map(|e| Some(Built::from_extracted(e, None))));
    }
    let model = c
        .get("model")
        .and_then(Value::as_str)
        .ok_or("no model")?
        .to_owned();
    let usage: TokenUsage = serde_json::from_value(c.get("usage").cloned().unwrap_or_default())
        .map_err(|e| format!("`usage`: {e}"))?;
    Ok(Ok(Some(Built {
        model,
        usage,
        context: PricingContext::default(),
        complete: None,
        billable: true,
        records: None,
    })))
}

fn outcome(c: &Case, at: DateTime<Utc>) -> Result<Result<Outcome, Error>, String> {
    let mut built = match build(c)? {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(Ok(Outcome::NoRecord)),
        Err(e) => return Ok(Err(e)),
    };
    // A payload that does not name its model (a Bedrock Converse body: the model is in the
    // URL) gets it from the case.
    if (c.get("response").is_some() || c.get("stream").is_some())
        && let Some(m) = c.get("model").and_then(Value::as_str)
    {
        built.model = m.to_owned();
    }
    built.context = merge_context(&built.context, c.get("context"))?;
    if !built.billable {
        return Ok(Ok(Outcome::Record(Box::new(built), None)));
    }
    let priced = PriceCatalog::builtin().cost(&built.model, &built.usage, at, &built.context);
    Ok(Ok(Outcome::Record(Box::new(built), Some(Box::new(priced)))))
}

fn usd(d: Usd) -> Decimal {
    d.as_decimal()
}

fn breakdown_lines(b: &CostBreakdown) -> BTreeMap<&'static str, Decimal> {
    BTreeMap::from([
        ("input", usd(b.input)),
        ("cache_read", usd(b.cache_read)),
        ("cache_write_5m", usd(b.cache_write_5m)),
        ("cache_write_1h", usd(b.cache_write_1h)),
        ("output", usd(b.output)),
        ("web_search", usd(b.web_search)),
        ("total", usd(b.total)),
    ])
}

fn show_usage(u: &TokenUsage) -> String {
    let shown: Vec<String> = u
        .counts()
        .iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    format!("{{{}}}", shown.join(", "))
}

/// The differences between what a case expects and what the library did.
fn check(c: &Case) -> Vec<String> {
    let expect = c.expect();
    let mut diffs = Vec::new();
    let at = match parse_at(c.get("at")) {
        Ok(at) => at,
        Err(e) => return vec![e],
    };
    let result = match outcome(c, at) {
        Ok(r) => r,
        Err(e) => return vec![format!("cannot run the case: {e}")],
    };
    let want_error = expect.get("error").and_then(Value::as_str);
    let (built, priced) = match result {
        Err(e) => {
            match want_error {
                Some(code) if code == e.code() => {}
                Some(code) => diffs.push(format!("error: expected {code}, got {}: {e}", e.code())),
                None => diffs.push(format!("expected a cost, got error {}: {e}", e.code())),
            }
            return diffs;
        }
        Ok(Outcome::NoRecord) => {
            let want = expect.get("records").and_then(Value::as_u64).unwrap_or(1);
            if want != 0 {
                diffs.push(format!("records: expected {want}, got 0"));
            }
            if let Some(code) = want_error {
                diffs.push(format!(
                    "error: expected {code}, got no error and no record"
                ));
            }
            return diffs;
        }
        Ok(Outcome::Record(built, priced)) => (built, priced),
    };

    if let Some(n) = built.records {
        let want = expect.get("records").and_then(Value::as_u64).unwrap_or(1);
        if want != n as u64 {
            diffs.push(format!("records: expected {want}, got {n}"));
        }
    }
    if let Some(u) = expect.get("usage") {
        let want: TokenUsage = serde_json::from_value(u.clone()).unwrap_or_default();
        if want != built.usage {
            diffs.push(format!(
                "usage: expected {}, got {}",
                show_usage(&want),
                show_usage(&built.usage)
            ));
        }
    }
    for (flag, got) in [
        ("complete", built.complete),
        ("billable", Some(built.billable)),
    ] {
        if let (Some(want), Some(got)) = (expect.get(flag).and_then(Value::as_bool), got)
            && want != got
        {
            diffs.push(format!("{flag}: expected {want}, got {got}"));
        }
    }

    let priced = match priced {
        // Not billable: not priced, so every line is zero.
        None => {
            if let Some(code) = want_error {
                diffs.push(format!(
                    "error: expected {code}, got a non-billable record (not priced)"
                ));
            }
            if let Some(want) = expect.get("model").and_then(Value::as_str) {
                match PriceCatalog::builtin().resolve(&built.model) {
                    Ok(r) if &*r.id == want => {}
                    Ok(r) => diffs.push(format!("model: expected {want}, got {}", r.id)),
                    Err(e) => diffs.push(format!("model: expected {want}, got error {e}")),
                }
            }
            compare_cost(expect, &BTreeMap::new(), &mut diffs);
            return diffs;
        }
        Some(p) => *p,
    };
    let cost = match priced {
        Err(e) => {
            match want_error {
                Some(code) if code == e.code() => {}
                Some(code) => diffs.push(format!("error: expected {code}, got {}: {e}", e.code())),
                None => diffs.push(format!("expected a cost, got error {}: {e}", e.code())),
            }
            return diffs;
        }
        Ok(cost) => cost,
    };
    if let Some(code) = want_error {
        diffs.push(format!(
            "error: expected {code}, got a cost of {}",
            cost.total
        ));
        return diffs;
    }
    if let Some(want) = expect.get("model").and_then(Value::as_str)
        && &*cost.basis.model != want
    {
        diffs.push(format!("model: expected {want}, got {}", cost.basis.model));
    }
    compare_cost(expect, &breakdown_lines(&cost), &mut diffs);
    let want_tier = expect.get("tier_above").and_then(Value::as_u64);
    if want_tier != cost.basis.tier_above {
        diffs.push(format!(
            "tier_above: expected {}, got {}",
            want_tier.map_or("none".to_owned(), |t| t.to_string()),
            cost.basis
                .tier_above
                .map_or("none".to_owned(), |t| t.to_string())
        ));
    }
    if let Some(want) = expect.get("modifiers").and_then(Value::as_array) {
        let want: Vec<&str> = want.iter().filter_map(Value::as_str).collect();
        let got: Vec<&str> = cost
            .basis
            .modifiers
            .iter()
            .map(|m| m.kind.as_str())
            .collect();
        if want != got {
            diffs.push(format!("modifiers: expected {want:?}, got {got:?}"));
        }
    }
    if !diffs.is_empty() && !cost.basis.notes.is_empty() {
        diffs.push(format!("(pricing notes: {})", cost.basis.notes.join("; ")));
    }
    diffs
}

/// Compares every cost line; an absent expected line is `0`, an absent actual line too.
fn compare_cost(
    expect: &Map<String, Value>,
    got: &BTreeMap<&'static str, Decimal>,
    diffs: &mut Vec<String>,
) {
    let Some(want) = expect.get("cost").and_then(Value::as_object) else {
        return;
    };
    for line in COST_LINES {
        let w = want
            .get(*line)
            .map(parse_decimal)
            .transpose()
            .ok()
            .flatten()
            .unwrap_or_default();
        let g = got.get(line).copied().unwrap_or_default();
        if w != g {
            diffs.push(format!(
                "cost.{line}: expected {}, got {}",
                w.normalize(),
                g.normalize()
            ));
        }
    }
}

fn report(what: &str, total: usize, failures: &[(String, Vec<String>)]) -> String {
    let mut out = format!("{} of {total} {what}:\n", failures.len());
    for (label, lines) in failures {
        let _ = writeln!(out, "\n{label}");
        for l in lines {
            let _ = writeln!(out, "    {l}");
        }
    }
    out
}

#[test]
fn vector_files_are_well_formed() {
    let (cases, file_problems) = load();
    assert!(
        !cases.is_empty(),
        "no vector cases found in {}",
        vectors_dir().display()
    );
    let mut failures: Vec<(String, Vec<String>)> =
        file_problems.into_iter().map(|p| (p, Vec::new())).collect();
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for c in &cases {
        let mut p = format_problems(c);
        if let Some(first) = seen.insert(&c.name, &c.file) {
            p.push(format!("name `{}` is already used in {first}", c.name));
        }
        if !p.is_empty() {
            failures.push((c.label(), p));
        }
    }
    assert!(
        failures.is_empty(),
        "{}",
        report("vector cases are malformed", cases.len(), &failures)
    );
}

#[test]
fn vectors_match_hand_worked_expectations() {
    let (cases, _) = load();
    let mut failures = Vec::new();
    let mut skipped = 0;
    for c in &cases {
        if !format_problems(c).is_empty() {
            skipped += 1;
            continue;
        }
        let diffs = check(c);
        if !diffs.is_empty() {
            failures.push((c.label(), diffs));
        }
    }
    let mut msg = report("vector cases failed", cases.len(), &failures);
    if skipped > 0 {
        let _ = write!(
            msg,
            "\n({skipped} malformed cases skipped: see vector_files_are_well_formed)"
        );
    }
    assert!(failures.is_empty() && skipped == 0, "{msg}");
}

/// A provider's payload without the fields [`Provider::unread_fields`] names, top level only.
fn without_unread(provider: Provider, v: &Value) -> (Value, usize) {
    let mut v = v.clone();
    let mut removed = 0;
    if let Some(m) = v.as_object_mut() {
        for key in provider.unread_fields() {
            removed += usize::from(m.remove(*key).is_some());
        }
    }
    (v, removed)
}

/// The bindings leave a provider's unread fields out when they convert an SDK object: every
/// response and stream in the vectors must give the same records (or the same error) without
/// them.
#[test]
fn unread_fields_are_never_read() {
    let (cases, _) = load();
    let mut removed = 0;
    let mut failures = Vec::new();
    for c in &cases {
        let Some(Ok(provider)) = c
            .get("provider")
            .and_then(Value::as_str)
            .map(str::parse::<Provider>)
        else {
            continue;
        };
        let same = if let Some(response) = c.get("response") {
            let (stripped, n) = without_unread(provider, response);
            removed += n;
            format!("{:?}", extract(provider, response))
                == format!("{:?}", extract(provider, &stripped))
        } else if let Some(stream) = c.get("stream").and_then(Value::as_array) {
            let mut run = |strip: bool| -> Result<Extracted, Error> {
                let mut acc = StreamAccumulator::new(provider);
                for event in stream {
                    if strip {
                        let (stripped, n) = without_unread(provider, event);
                        removed += n;
                        acc.push(&stripped)?;
                    } else {
                        acc.push(event)?;
                    }
                }
                acc.finish()
            };
            let whole = format!("{:?}", run(false));
            whole == format!("{:?}", run(true))
        } else {
            continue;
        };
        if !same {
            failures.push(c.label());
        }
    }
    assert!(
        failures.is_empty(),
        "extraction read an unread field in: {failures:?}"
    );
    assert!(
        removed >= 10,
        "the vectors hold only {removed} unread fields"
    );
}
