//! Import of LiteLLM's `model_prices_and_context_window.json`: its per-token USD prices become
//! this crate's per-million decimals, read from each number's own text (never through `f64`),
//! with its tiers, service-tier prices and provider-specific multipliers mapped onto the schema.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use rust_decimal::Decimal;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::catalog::PriceCatalog;
use super::resolve::canonical;
use super::schema::{
    AdjustmentFile, Dec, ModelFile, Modifiers, PriceSetFile, PriceVersionFile, ScheduleFile,
    TierFile,
};
use crate::error::{Error, Result};

/// LiteLLM's documentation entry, not a model.
const SAMPLE_SPEC: &str = "sample_spec";

/// Key suffixes of LiteLLM's prompt-size tiers and their thresholds in prompt tokens.
const THRESHOLDS: [(&str, u64); 3] = [
    ("_above_128k_tokens", 128_000),
    ("_above_200k_tokens", 200_000),
    ("_above_272k_tokens", 272_000),
];

/// Key suffixes of LiteLLM's service-tier prices.
#[derive(Clone, Copy)]
enum ServiceKey {
    Batch,
    Flex,
    Priority,
}

impl ServiceKey {
    const ALL: [ServiceKey; 3] = [ServiceKey::Batch, ServiceKey::Flex, ServiceKey::Priority];

    fn suffix(self) -> &'static str {
        match self {
            ServiceKey::Batch => "_batches",
            ServiceKey::Flex => "_flex",
            ServiceKey::Priority => "_priority",
        }
    }
}

/// The LiteLLM key stem of each price category, in `PriceSetFile` order.
const INPUT: &str = "input_cost_per_token";
const OUTPUT: &str = "output_cost_per_token";
const CACHE_READ: &str = "cache_read_input_token_cost";
const CACHE_WRITE_5M: &str = "cache_creation_input_token_cost";
const CACHE_WRITE_1H: &str = "cache_creation_input_token_cost_above_1hr";

const MTOK: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
const THOUSAND: Decimal = Decimal::from_parts(1_000, 0, 0, false, 0);

/// A JSON object's members in file order, values left unparsed so numbers keep their text.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(
                self,
                mut m: M,
            ) -> std::result::Result<Members<'a>, M::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, &'a RawValue>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// One LiteLLM entry's fields, by name.
struct Fields<'a> {
    model: &'a str,
    /// Path of this object inside the entry (`provider_specific_entry.`), for error messages.
    path: &'static str,
    map: HashMap<String, &'a RawValue>,
}

impl<'a> Fields<'a> {
    fn raw(&self, key: &str) -> Option<&'a RawValue> {
        self.map
            .get(key)
            .copied()
            .filter(|v| v.get().trim() != "null")
    }

    fn field(&self, key: &str) -> String {
        format!("{}{key}", self.path)
    }

    /// A decimal from the number's own text (or a string holding one).
    fn decimal(&self, key: &str) -> Result<Option<Decimal>> {
        self.raw(key)
            .map(|raw| decimal(self.model, &self.field(key), raw))
            .transpose()
    }

    /// A positive multiplier.
    fn multiplier(&self, key: &str) -> Result<Option<AdjustmentFile>> {
        let Some(m) = self.decimal(key)? else {
            return Ok(None);
        };
        if m.is_sign_negative() || m.is_zero() {
            return Err(Error::catalog(
                self.model,
                self.field(key),
                format!("is {m}; a multiplier must be positive"),
            ));
        }
        Ok(Some(AdjustmentFile::Multiplier(Dec(m.normalize()))))
    }

    /// A per-token USD price as USD per million tokens.
    fn per_mtok(&self, key: &str) -> Result<Option<Dec>> {
        let Some(d) = self.decimal(key)? else {
            return Ok(None);
        };
        if d.is_sign_negative() && !d.is_zero() {
            return Err(Error::catalog(
                self.model,
                self.field(key),
                format!("is {d}; a price cannot be negative"),
            ));
        }
        let per = d.checked_mul(MTOK).ok_or_else(|| {
            Error::catalog(
                self.model,
                self.field(key),
                format!("{d} per token is out of range"),
            )
        })?;
        Ok(Some(Dec(per.normalize())))
    }

    /// The five prices written with `suffix` (a tier and/or service-tier suffix), as listed.
    fn prices(&self, suffix: &str) -> Result<PriceSetFile> {
        let key = |stem: &str| format!("{stem}{suffix}");
        Ok(PriceSetFile {
            input: self.per_mtok(&key(INPUT))?,
            output: self.per_mtok(&key(OUTPUT))?,
            cache_read: self.per_mtok(&key(CACHE_READ))?,
            cache_write_5m: self.per_mtok(&key(CACHE_WRITE_5M))?,
            cache_write_1h: self.per_mtok(&key(CACHE_WRITE_1H))?,
        })
    }

    fn string(&self, key: &str) -> Result<Option<String>> {
        self.raw(key)
            .map(|raw| {
                serde_json::from_str::<String>(raw.get()).map_err(|_| {
                    Error::catalog(
                        self.model,
                        key,
                        format!("is {}; expected a string", raw.get()),
                    )
                })
            })
            .transpose()
    }
}

fn decimal(model: &str, key: &str, raw: &RawValue) -> Result<Decimal> {
    let text = raw.get().trim();
    let bad = || Error::catalog(model, key, format!("is {text}; expected a number"));
    let text: Cow<'_, str> = if text.starts_with('"') {
        Cow::Owned(serde_json::from_str::<String>(text).map_err(|_| bad())?)
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Cow::Borrowed(text)
    } else {
        return Err(bad());
    };
    let t = text.trim();
    Decimal::from_str_exact(t)
        .or_else(|_| Decimal::from_scientific(t))
        .map_err(|_| bad())
}

fn is_empty(p: &PriceSetFile) -> bool {
    *p == PriceSetFile::default()
}

/// Fills the prices LiteLLM leaves out of one schedule the way LiteLLM itself falls back: each
/// missing category takes `parent`'s price for it. A missing 1-hour write takes this schedule's
/// own 5-minute write when it lists one, since a 1-hour write never costs less.
fn fill(listed: &PriceSetFile, parent: Option<&PriceSetFile>) -> PriceSetFile {
    let up = |f: fn(&PriceSetFile) -> Option<Dec>| parent.and_then(f);
    PriceSetFile {
        input: listed.input.or_else(|| up(|p| p.input)),
        output: listed.output.or_else(|| up(|p| p.output)),
        cache_read: listed.cache_read.or_else(|| up(|p| p.cache_read)),
        cache_write_5m: listed.cache_write_5m.or_else(|| up(|p| p.cache_write_5m)),
        cache_write_1h: listed
            .cache_write_1h
            .or(listed.cache_write_5m)
            .or_else(|| up(|p| p.cache_write_1h)),
    }
}

/// Each category's effective price: a missing cache price bills at the input price.
fn effective(p: &PriceSetFile) -> [Option<Decimal>; 5] {
    let input = p.input.map(|d| d.0);
    let or_input = |d: Option<Dec>| d.map(|d| d.0).or(input);
    [
        input,
        p.output.map(|d| d.0),
        or_input(p.cache_read),
        or_input(p.cache_write_5m),
        or_input(p.cache_write_1h),
    ]
}

fn listed(p: &PriceSetFile) -> [Option<Decimal>; 5] {
    [
        p.input,
        p.output,
        p.cache_read,
        p.cache_write_5m,
        p.cache_write_1h,
    ]
    .map(|d| d.map(|d| d.0))
}

/// The single factor `r` with `listed = r × standard` for every listed price, if there is one.
fn common_ratio(pairs: &[(PriceSetFile, PriceSetFile)]) -> Option<Decimal> {
    let mut ratio = None;
    for (svc, std) in pairs {
        for (l, s) in listed(svc).into_iter().zip(effective(std)) {
            let Some(l) = l else { continue };
            let s = s?;
            let r = match ratio {
                Some(r) => r,
                None if s.is_zero() => return None,
                None => *ratio.insert(l.checked_div(s)?),
            };
            if s.checked_mul(r)? != l {
                return None;
            }
        }
    }
    ratio
        .filter(|r: &Decimal| r.is_sign_positive() && !r.is_zero())
        .map(|r| r.normalize())
}

/// The service tier's prices as a modifier: a multiplier when every listed price is one
/// multiple of the standard price (it then also covers the categories and tiers LiteLLM leaves
/// out, as providers bill them); otherwise an explicit schedule filled from the standard prices.
fn service_modifier(
    f: &Fields<'_>,
    svc: ServiceKey,
    base: &PriceSetFile,
    tiers: &[(u64, PriceSetFile)],
) -> Result<Option<AdjustmentFile>> {
    let s = svc.suffix();
    let svc_base = f.prices(s)?;
    let mut svc_tiers = Vec::new();
    for (suffix, above) in THRESHOLDS {
        let listed = f.prices(&format!("{suffix}{s}"))?;
        if !is_empty(&listed) {
            svc_tiers.push((above, listed));
        }
    }
    if is_empty(&svc_base) && svc_tiers.is_empty() {
        return Ok(None);
    }
    let std_tier = |above: u64| tiers.iter().find(|(a, _)| *a == above).map(|(_, p)| p);
    let mut pairs = vec![(svc_base.clone(), base.clone())];
    for (above, listed) in &svc_tiers {
        match std_tier(*above) {
            Some(std) => pairs.push((listed.clone(), std.clone())),
            None => pairs.push((listed.clone(), PriceSetFile::default())),
        }
    }
    if let Some(r) = common_ratio(&pairs) {
        return Ok(Some(AdjustmentFile::Multiplier(Dec(r))));
    }
    let filled_base = fill(&svc_base, Some(base));
    let mut out_tiers: Vec<TierFile> = Vec::new();
    let mut thresholds: Vec<u64> = tiers.iter().map(|(a, _)| *a).collect();
    thresholds.extend(svc_tiers.iter().map(|(a, _)| *a));
    thresholds.sort_unstable();
    thresholds.dedup();
    for above in thresholds {
        let listed = svc_tiers
            .iter()
            .find(|(a, _)| *a == above)
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        let p = fill(&listed, Some(std_tier(above).unwrap_or(&filled_base)));
        out_tiers.push(tier(above, p));
    }
    Ok(Some(AdjustmentFile::Prices(ScheduleFile {
        tiers: out_tiers,
        input: filled_base.input,
        output: filled_base.output,
        cache_read: filled_base.cache_read,
        cache_write_5m: filled_base.cache_write_5m,
        cache_write_1h: filled_base.cache_write_1h,
    })))
}

fn tier(above: u64, p: PriceSetFile) -> TierFile {
    TierFile {
        above,
        input: p.input,
        output: p.output,
        cache_read: p.cache_read,
        cache_write_5m: p.cache_write_5m,
        cache_write_1h: p.cache_write_1h,
    }
}

fn object<'a>(model: &'a str, path: &'static str, raw: &'a RawValue) -> Result<Fields<'a>> {
    let m: Members<'a> = serde_json::from_str(raw.get()).map_err(|_| {
        let field = path.strip_suffix('.').unwrap_or("<entry>");
        Error::catalog(
            model,
            field,
            format!("is {}; expected a JSON object", raw.get()),
        )
    })?;
    Ok(Fields {
        model,
        path,
        map: m.0.into_iter().collect(),
    })
}

/// One entry as a price version, or `None` when it has no input or no output token price
/// (images, audio, embeddings priced per character…).
fn entry_version(f: &Fields<'_>) -> Result<Option<(PriceVersionFile, Vec<String>)>> {
    let listed = f.prices("")?;
    if listed.input.is_none() || listed.output.is_none() {
        return Ok(None);
    }
    let base = fill(&listed, None);
    let mut tiers = Vec::new();
    for (suffix, above) in THRESHOLDS {
        let t = f.prices(suffix)?;
        if !is_empty(&t) {
            tiers.push((above, fill(&t, Some(&base))));
        }
    }
    let mut modifiers = Modifiers::default();
    for svc in ServiceKey::ALL {
        let m = service_modifier(f, svc, &base, &tiers)?;
        match svc {
            ServiceKey::Batch => modifiers.batch = m,
            ServiceKey::Flex => modifiers.flex = m,
            ServiceKey::Priority => modifiers.priority = m,
        }
    }
    if let Some(raw) = f.raw("provider_specific_entry") {
        let pse = object(f.model, "provider_specific_entry.", raw)?;
        modifiers.inference_geo_us = pse.multiplier("us")?;
        modifiers.fast = pse.multiplier("fast")?;
    }
    let web_search_per_1k = web_search(f)?;
    let mut notes = Vec::new();
    if let Some(d) = f.string("deprecation_date")? {
        notes.push(format!("LiteLLM deprecation_date {d}."));
    }
    let reasoning = f.per_mtok("output_cost_per_reasoning_token")?;
    if let Some(r) = reasoning.filter(|r| Some(*r) != base.output) {
        notes.push(format!(
            "LiteLLM lists reasoning output at {} per MTok; billed here at the output price.",
            r.0
        ));
    }
    let v = PriceVersionFile {
        from: None,
        tiers: tiers.into_iter().map(|(above, p)| tier(above, p)).collect(),
        web_search_per_1k,
        modifiers,
        time_of_day: Vec::new(),
        comment: None,
        input: base.input,
        output: base.output,
        cache_read: base.cache_read,
        cache_write_5m: base.cache_write_5m,
        cache_write_1h: base.cache_write_1h,
    };
    Ok(Some((v, notes)))
}

/// `search_context_cost_per_query`: USD per search, as a number or per context size.
fn web_search(f: &Fields<'_>) -> Result<Option<Dec>> {
    const KEY: &str = "search_context_cost_per_query";
    let Some(raw) = f.raw(KEY) else {
        return Ok(None);
    };
    let per_query = if raw.get().trim_start().starts_with('{') {
        let sizes = object(f.model, "search_context_cost_per_query.", raw)?;
        let medium = sizes.decimal("search_context_size_medium")?;
        match medium.or(sizes.decimal("search_context_size_low")?) {
            Some(d) => d,
            None => {
                return Err(Error::catalog(
                    f.model,
                    KEY,
                    "has neither search_context_size_medium nor search_context_size_low",
                ));
            }
        }
    } else {
        decimal(f.model, KEY, raw)?
    };
    if per_query.is_sign_negative() && !per_query.is_zero() {
        return Err(Error::catalog(
            f.model,
            KEY,
            format!("is {per_query}; a price cannot be negative"),
        ));
    }
    let per_1k = per_query
        .checked_mul(THOUSAND)
        .ok_or_else(|| Error::catalog(f.model, KEY, format!("{per_query} is out of range")))?;
    Ok(Some(Dec(per_1k.normalize())))
}

/// Where a LiteLLM provider serves models, for keys that fold to the same catalog id
/// (`claude-3-5-haiku@20241022` on Vertex, `claude-3-5-haiku-20241022` on Anthropic's API).
fn platform_of(provider: &str) -> Option<&'static str> {
    let p = provider.to_ascii_lowercase();
    if p.contains("vertex") {
        Some("vertex")
    } else if p.starts_with("bedrock") {
        Some("bedrock")
    } else {
        None
    }
}

/// Entries that fold to one catalog id: the direct one prices the model, platform ones become
/// its platform histories.
struct Group {
    id: String,
    provider: String,
    direct: Option<PriceVersionFile>,
    platforms: Vec<(&'static str, PriceVersionFile)>,
    notes: Vec<String>,
}

impl PriceCatalog {
    /// Reads LiteLLM's `model_prices_and_context_window.json` into a catalog stamped `version`.
    ///
    /// Each entry becomes a model whose id is the entry's key and whose provider is its
    /// `litellm_provider`. Per-token USD prices become USD per million tokens, computed exactly
    /// from each number's text. `*_above_{128,200,272}k_tokens` become prompt-size tiers;
    /// `*_batches`, `*_flex` and `*_priority` become the batch, flex and priority modifiers (a
    /// multiplier when the listed prices are one multiple of the standard ones, else an explicit
    /// schedule); `cache_creation_input_token_cost_above_1hr` is the 1-hour cache write;
    /// `search_context_cost_per_query` the web search fee; `provider_specific_entry.us` and
    /// `.fast` the US-only inference and fast-mode multipliers. `sample_spec` and entries without
    /// both an input and an output token price are skipped.
    ///
    /// A price LiteLLM leaves out falls back as LiteLLM does: a tier's to the base price of the
    /// same category, a service tier's to the standard price; a missing 1-hour cache write
    /// takes the 5-minute write price. Keys that fold to the same id (`…@20241022` and
    /// `…-20241022`) make one model: the entry of a Vertex or Bedrock provider becomes that
    /// platform's price history; of two entries for the same platform the first is kept.
    ///
    /// ```
    /// use usage_core::PriceCatalog;
    /// let json = r#"{"claude-sonnet-4-5": {"litellm_provider": "anthropic",
    ///     "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05}}"#;
    /// let catalog = PriceCatalog::from_litellm_json(json, "litellm-2026-07-24").unwrap();
    /// let v = catalog.price_at("claude-sonnet-4-5", "2026-01-01T00:00:00Z".parse().unwrap(), None).unwrap();
    /// assert_eq!(v.schedule.base.output.to_string(), "15");
    /// ```
    ///
    /// Bad data (a price that is not a number or is negative, an entry that is not an object,
    /// a missing `litellm_provider`) is an [`Error::InvalidCatalog`] naming the entry and field.
    pub fn from_litellm_json(json: &str, version: impl Into<String>) -> Result<PriceCatalog> {
        let top: Members<'_> = serde_json::from_str(json).map_err(|e| {
            Error::catalog(
                "<litellm>",
                "<json>",
                format!("must be a JSON object of models: {e}"),
            )
        })?;
        let mut groups: Vec<Group> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for (key, raw) in &top.0 {
            if key == SAMPLE_SPEC {
                continue;
            }
            let f = object(key, "", raw)?;
            let Some((v, notes)) = entry_version(&f)? else {
                continue;
            };
            let provider = f
                .string("litellm_provider")?
                .filter(|p| !p.trim().is_empty())
                .ok_or_else(|| Error::catalog(key.as_str(), "litellm_provider", "is missing"))?;
            let platform = platform_of(&provider);
            let folded = canonical(key);
            let i = *by_key.entry(folded).or_insert_with(|| {
                groups.push(Group {
                    id: key.clone(),
                    provider: provider.clone(),
                    direct: None,
                    platforms: Vec::new(),
                    notes: Vec::new(),
                });
                groups.len() - 1
            });
            let g = &mut groups[i];
            match platform {
                None if g.direct.is_none() => {
                    g.id = key.clone();
                    g.provider = provider;
                    g.direct = Some(v);
                    g.notes.extend(notes);
                }
                Some(p) if !g.platforms.iter().any(|(q, _)| *q == p) => {
                    g.platforms.push((p, v));
                    g.notes.extend(notes);
                }
                _ => {} // a second entry for the same place: the first is kept
            }
        }
        let mut catalog = PriceCatalog::empty(version);
        for g in groups {
            let prices = match g.direct {
                Some(v) => v,
                None => g.platforms[0].1.clone(),
            };
            let mut notes = g.notes;
            notes.dedup();
            let model = ModelFile {
                id: g.id,
                provider: g.provider,
                name: None,
                aliases: Vec::new(),
                released: None,
                retired: None,
                comment: (!notes.is_empty()).then(|| notes.join(" ")),
                modifiers: Modifiers::default(),
                prices: vec![prices],
                platforms: g
                    .platforms
                    .into_iter()
                    .map(|(p, v)| (p.to_owned(), vec![v]))
                    .collect(),
            };
            catalog.add_model(model)?;
        }
        Ok(catalog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn reads_numbers_from_their_text() {
        for (text, want) in [
            ("3e-06", "3"),
            ("1.5e-05", "15"),
            ("0.00000125", "1.25"),
            ("3.75E-6", "3.75"),
        ] {
            let raw = RawValue::from_string(text.to_owned()).unwrap();
            let got = decimal("m", "k", &raw).unwrap() * MTOK;
            assert_eq!(got.normalize(), d(want), "{text}");
        }
        let raw = RawValue::from_string("true".to_owned()).unwrap();
        assert!(decimal("m", "k", &raw).is_err());
    }

    #[test]
    fn common_ratio_needs_one_factor() {
        let p = |i: &str, o: &str| PriceSetFile {
            input: Some(Dec(d(i))),
            output: Some(Dec(d(o))),
            ..Default::default()
        };
        assert_eq!(
            common_ratio(&[(p("1.5", "7.5"), p("3", "15"))]),
            Some(d("0.5"))
        );
        assert_eq!(common_ratio(&[(p("2.5", "7.5"), p("3", "15"))]), None);
    }
}
