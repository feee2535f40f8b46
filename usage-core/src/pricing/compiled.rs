//! The catalog as the cost engine uses it: file data checked once and turned into exact
//! decimals, merged modifiers and sorted tiers, so pricing does no parsing and no lookups
//! beyond picking a version.

use std::sync::Arc;

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::schema::{AdjustmentFile, Dec, Modifiers, PriceSetFile, PriceVersionFile, TierFile};
use crate::error::{Error, Result};

/// Prices per million tokens for every category, missing cache prices already filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriceSet {
    /// Uncached input.
    pub input: Decimal,
    /// Output.
    pub output: Decimal,
    /// Cache reads.
    pub cache_read: Decimal,
    /// 5-minute cache writes.
    pub cache_write_5m: Decimal,
    /// 1-hour cache writes.
    pub cache_write_1h: Decimal,
}

/// Base prices and prompt-size tiers (ascending by threshold).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Prices when no tier applies.
    pub base: PriceSet,
    /// `(above, prices)`, ascending.
    pub tiers: Vec<(u64, PriceSet)>,
}

impl Schedule {
    /// The prices for a request with `prompt_tokens`, and the threshold crossed if any.
    pub fn select(&self, prompt_tokens: u64) -> (&PriceSet, Option<u64>) {
        match self
            .tiers
            .iter()
            .rev()
            .find(|(above, _)| prompt_tokens > *above)
        {
            Some((above, p)) => (p, Some(*above)),
            None => (&self.base, None),
        }
    }
}

/// What a modifier does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Adjustment {
    /// Multiply every token price.
    Multiplier(Decimal),
    /// Replace the schedule.
    Prices(Arc<Schedule>),
}

/// Modifiers after merging version, model and provider levels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompiledModifiers {
    pub(crate) batch: Option<Adjustment>,
    pub(crate) flex: Option<Adjustment>,
    pub(crate) priority: Option<Adjustment>,
    pub(crate) fast: Option<Adjustment>,
    pub(crate) inference_geo_us: Option<Adjustment>,
    pub(crate) bedrock_regional: Option<Adjustment>,
    pub(crate) bedrock_gov_cloud: Option<Adjustment>,
    pub(crate) vertex_regional: Option<Adjustment>,
}

/// A daily window in a time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeWindow {
    pub(crate) start: NaiveTime,
    pub(crate) end: NaiveTime,
    pub(crate) tz: Tz,
    pub(crate) adjust: Adjustment,
}

impl TimeWindow {
    /// True when `at`, read in the window's zone, is in `[start, end)` (across midnight when
    /// `end <= start`).
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz).time();
        if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }
}

/// One dated price version, ready to price with.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceVersion {
    /// Start instant (absent: since the model existed).
    pub from: Option<DateTime<Utc>>,
    /// Base prices and tiers.
    pub schedule: Schedule,
    /// USD per 1,000 web searches.
    pub web_search_per_1k: Decimal,
    pub(crate) modifiers: CompiledModifiers,
    pub(crate) time_of_day: Vec<TimeWindow>,
}

fn price(model: &str, field: &str, d: Option<Dec>) -> Result<Option<Decimal>> {
    match d {
        Some(Dec(v)) if v.is_sign_negative() && !v.is_zero() => Err(Error::catalog(
            model,
            field,
            format!("is {v}; a price cannot be negative"),
        )),
        other => Ok(other.map(|d| d.0)),
    }
}

/// Turns file prices into a full set: input and output are required; a missing cache price
/// bills at the input price.
pub(crate) fn price_set(model: &str, at: &str, p: &PriceSetFile) -> Result<PriceSet> {
    let f = |name: &str| format!("{at}.{name}");
    let input = price(model, &f("input"), p.input)?
        .ok_or_else(|| Error::catalog(model, f("input"), "is missing"))?;
    let output = price(model, &f("output"), p.output)?
        .ok_or_else(|| Error::catalog(model, f("output"), "is missing"))?;
    Ok(PriceSet {
        input,
        output,
        cache_read: price(model, &f("cache_read"), p.cache_read)?.unwrap_or(input),
        cache_write_5m: price(model, &f("cache_write_5m"), p.cache_write_5m)?.unwrap_or(input),
        cache_write_1h: price(model, &f("cache_write_1h"), p.cache_write_1h)?.unwrap_or(input),
    })
}

pub(crate) fn schedule(
    model: &str,
    at: &str,
    base: &PriceSetFile,
    tiers: &[TierFile],
) -> Result<Schedule> {
    let base = price_set(model, at, base)?;
    let mut out = Vec::with_capacity(tiers.len());
    for (i, t) in tiers.iter().enumerate() {
        let here = format!("{at}.tiers[{i}]");
        if out.iter().any(|(a, _)| *a == t.above) {
            return Err(Error::catalog(
                model,
                here,
                format!("repeats the threshold {}", t.above),
            ));
        }
        out.push((t.above, price_set(model, &here, &t.price_set())?));
    }
    out.sort_by_key(|(a, _)| *a);
    Ok(Schedule { base, tiers: out })
}

fn adjustment(model: &str, at: &str, a: &AdjustmentFile) -> Result<Adjustment> {
    Ok(match a {
        AdjustmentFile::Multiplier(Dec(m)) => {
            if m.is_sign_negative() || m.is_zero() {
                return Err(Error::catalog(
                    model,
                    at,
                    format!("multiplier is {m}; it must be positive"),
                ));
            }
            Adjustment::Multiplier(*m)
        }
        AdjustmentFile::Prices(s) => {
            Adjustment::Prices(Arc::new(schedule(model, at, &s.price_set(), &s.tiers)?))
        }
    })
}

pub(crate) fn modifiers(model: &str, at: &str, m: &Modifiers) -> Result<CompiledModifiers> {
    let one = |name: &str, a: &Option<AdjustmentFile>| -> Result<Option<Adjustment>> {
        a.as_ref()
            .map(|a| adjustment(model, &format!("{at}.modifiers.{name}"), a))
            .transpose()
    };
    Ok(CompiledModifiers {
        batch: one("batch", &m.batch)?,
        flex: one("flex", &m.flex)?,
        priority: one("priority", &m.priority)?,
        fast: one("fast", &m.fast)?,
        inference_geo_us: one("inference_geo_us", &m.inference_geo_us)?,
        bedrock_regional: one("bedrock_regional", &m.bedrock_regional)?,
        bedrock_gov_cloud: one("bedrock_gov_cloud", &m.bedrock_gov_cloud)?,
        vertex_regional: one("vertex_regional", &m.vertex_regional)?,
    })
}

fn hhmm(model: &str, at: &str, s: &str) -> Result<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| Error::catalog(model, at, format!("`{s}` is not a time of day (HH:MM)")))
}

/// Compiles one version; `inherited` are the model's and provider's modifiers, already merged.
pub(crate) fn version(
    model: &str,
    at: &str,
    v: &PriceVersionFile,
    inherited: &Modifiers,
    inherited_web_search: Option<Dec>,
) -> Result<PriceVersion> {
    let schedule = schedule(model, at, &v.price_set(), &v.tiers)?;
    let mut windows = Vec::with_capacity(v.time_of_day.len());
    for (i, w) in v.time_of_day.iter().enumerate() {
        let here = format!("{at}.time_of_day[{i}]");
        let tz_name = w.tz.as_deref().unwrap_or("UTC");
        let tz: Tz = tz_name.parse().map_err(|_| {
            Error::catalog(
                model,
                format!("{here}.tz"),
                format!("`{tz_name}` is not an IANA time zone"),
            )
        })?;
        let start = hhmm(model, &format!("{here}.start"), &w.start)?;
        let end = hhmm(model, &format!("{here}.end"), &w.end)?;
        if start == end {
            return Err(Error::catalog(model, here, "start and end are equal"));
        }
        windows.push(TimeWindow {
            start,
            end,
            tz,
            adjust: adjustment(model, &format!("{here}.adjust"), &w.adjust)?,
        });
    }
    let web = price(
        model,
        &format!("{at}.web_search_per_1k"),
        v.web_search_per_1k.or(inherited_web_search),
    )?;
    Ok(PriceVersion {
        from: v.from.map(|i| i.0),
        schedule,
        web_search_per_1k: web.unwrap_or(Decimal::ZERO),
        modifiers: modifiers(model, at, &v.modifiers.or(inherited))?,
        time_of_day: windows,
    })
}

/// Compiles a price history and checks its dates increase.
pub(crate) fn history(
    model: &str,
    at: &str,
    versions: &[PriceVersionFile],
    inherited: &Modifiers,
    inherited_web_search: Option<Dec>,
) -> Result<Vec<PriceVersion>> {
    if versions.is_empty() {
        return Err(Error::catalog(model, at, "has no price version"));
    }
    let mut out: Vec<PriceVersion> = Vec::with_capacity(versions.len());
    for (i, v) in versions.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let c = version(model, &here, v, inherited, inherited_web_search)?;
        if let Some(prev) = out.last() {
            match (prev.from, c.from) {
                (_, None) => {
                    return Err(Error::catalog(
                        model,
                        format!("{here}.from"),
                        "is missing: only the first version may omit it",
                    ));
                }
                (Some(a), Some(b)) if b <= a => {
                    return Err(Error::catalog(
                        model,
                        format!("{here}.from"),
                        format!("{b} is not after the previous version's {a}"),
                    ));
                }
                _ => {}
            }
        }
        out.push(c);
    }
    Ok(out)
}

/// The version in force at `at`: the last one starting at or before it. Before the first
/// version's start, the first version (and the caller notes it).
pub(crate) fn in_force(versions: &[PriceVersion], at: DateTime<Utc>) -> (&PriceVersion, bool) {
    let idx = versions
        .iter()
        .rposition(|v| v.from.is_none_or(|f| f <= at));
    match idx {
        Some(i) => (&versions[i], true),
        None => (&versions[0], false),
    }
}
