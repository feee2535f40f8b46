//! Forecasting where a quota's usage is heading: the burn rate of recent days, the projected
//! usage at the end of the window with a band around it, and when the limit would be reached.
//! Pure arithmetic over daily figures the caller fetched; `docs/forecasting.md` describes the
//! method and its backtest.
//!
//! A forecast is an estimate, so its statistics run in floating point; the only exact figure
//! in it is `used`, which every projection starts from.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde::{Deserialize, Serialize};

use crate::quota::window::WindowSpan;

const DAY_SECS: f64 = 86_400.0;
/// How far ahead rolling and lifetime windows are projected.
const OPEN_HORIZON_DAYS: f64 = 30.0;
/// Per-day damping of an extrapolated trend (Gardner–McKenzie damped trend): a trend adds at
/// most nine days' worth of slope beyond the last day seen, however long the horizon, so noise
/// mistaken for a trend cannot compound over a month.
const DAMPING: f64 = 0.9;
/// Prior odds against a trend. Two weeks of noisy days rarely prove a trend, so the trend model
/// is weighted by its approximate posterior probability rather than accepted or refused by a
/// test: with two weeks of history, a slope 2 standard errors from zero gets a weight of about
/// 1/3, one 3 standard errors away about 0.85.
const TREND_PRIOR_ODDS: f64 = 4.0;
/// A partial day counts as at least this much of a day when it is all there is, so an hour of
/// usage is not multiplied by 24.
const MIN_PARTIAL_DAY: f64 = 0.25;
/// Variance ratio above which a weekend is taken as real. F(1, 12) passes 12 about 0.5% of the
/// time; picking the best of seven pairs of days makes it a few percent, and a false weekend
/// costs little (its two means are each still estimated from four days).
const WEEKEND_F: f64 = 12.0;
/// Variance ratio above which separate means for every day of the week are taken as real
/// (about the 1% level of F(5, 14)).
const SEASONAL_F: f64 = 4.0;

/// How to forecast.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForecastOptions {
    /// Complete days of history to learn the burn rate from (at least 1; 14 by default: two
    /// full weeks, the least that shows a weekly pattern).
    pub lookback_days: u32,
    /// Two-sided probability that usage at the period end falls in `[low, high]` (0.5–0.999;
    /// 0.8 by default).
    pub confidence: f64,
}

impl Default for ForecastOptions {
    fn default() -> Self {
        ForecastOptions {
            lookback_days: 14,
            confidence: 0.8,
        }
    }
}

/// Where usage is heading by the end of the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// Expected usage per day over the rest of the period (`projected − used` over the days
    /// left, so weekends and trend are averaged in).
    pub burn_rate_per_day: Decimal,
    /// Expected usage at `period_end`.
    pub projected: Decimal,
    /// Lower end of the band (never below `used`, except for rolling windows, where usage
    /// ages out).
    pub low: Decimal,
    /// Upper end of the band.
    pub high: Decimal,
    /// The limit, when there is one.
    pub limit: Option<Decimal>,
    /// When cumulative usage is expected to reach the limit: `now` when it already has, `None`
    /// when it is not expected to before `period_end`.
    pub exhausted_at: Option<DateTime<Utc>>,
    /// Days from now to `exhausted_at`.
    pub days_remaining: Option<f64>,
    /// The end of the projection: the window's reset, or 30 days ahead for lifetime and
    /// rolling windows (the rolling window's length when shorter).
    pub period_end: Option<DateTime<Utc>>,
    /// Complete days of history the rate was learnt from.
    pub basis_days: u32,
    /// How the rate was estimated: `no_history` (rate 0), `partial_day` (today so far,
    /// scaled), `mean` (mean of recent whole weeks), `weekend` (separate means for a two-day
    /// weekend and the other days), `weekly` (a mean per day of the week, from three weeks of
    /// history); `+trend` when a damped trend carries more than half its weight.
    pub method: String,
}

/// The history as dense complete days (oldest first) and today's partial day.
struct History {
    complete: Vec<f64>,
    partial: f64,
    /// Fraction of today already gone, 0–1.
    elapsed: f64,
}

fn to_f64(d: Decimal) -> f64 {
    d.to_f64().filter(|v| v.is_finite()).unwrap_or(0.0)
}

fn days_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / (DAY_SECS * 1000.0)
}

/// Lays the buckets out by local day. Day numbers come from the distance to the latest bucket,
/// rounded, so 23- and 25-hour DST days and any zone offset index correctly without the zone.
fn history(daily: &[(DateTime<Utc>, Decimal)], now: DateTime<Utc>, lookback: usize) -> History {
    let past = daily.iter().filter(|(s, _)| *s <= now);
    let Some(last) = past.clone().map(|(s, _)| *s).max() else {
        return History {
            complete: Vec::new(),
            partial: 0.0,
            elapsed: 0.0,
        };
    };
    // Whole days from the latest bucket to today (0 when the latest bucket is today's).
    let ahead = days_between(last, now).floor().max(0.0);
    let elapsed = (days_between(last, now) - ahead).clamp(0.0, 1.0);
    let mut partial = 0.0;
    let mut complete = vec![0.0; lookback];
    let mut oldest = 0usize; // how many days back the history reaches
    for (s, v) in past {
        let back = ahead - days_between(last, *s).round(); // days before today, ≥ 0
        let v = to_f64(*v).max(0.0);
        if back < 0.5 {
            partial += v;
        } else if back <= lookback as f64 {
            let b = back as usize;
            complete[lookback - b] += v;
            oldest = oldest.max(b);
        } else {
            oldest = lookback;
        }
    }
    complete.drain(..lookback - oldest);
    History {
        complete,
        partial,
        elapsed,
    }
}

/// The fitted daily model: expected usage on day `t` (history is `0..n`, today `n`) is
/// `level + slope × offset(t) + shift[class[t % 7]]`.
struct Model {
    level: f64,
    center: f64,
    slope: f64,
    /// Which class each day of the week (by `t % 7`) belongs to: all 0 without a weekly
    /// pattern, 1 for the two weekend days, or one class per day.
    class: [usize; 7],
    /// Additive offset of each class from the level.
    shift: Vec<f64>,
    /// Days of history behind each class's mean.
    count: Vec<f64>,
    /// Residual standard deviation of one day.
    sigma: f64,
    /// Degrees of freedom of `sigma` (0: a prior guess).
    df: f64,
    var_slope: f64,
    /// Weight of the trend model (its slope is `slope_full`, `slope` = weight × that).
    trust: f64,
    slope_full: f64,
    last: f64,
    basis: u32,
    method: &'static str,
}

impl Model {
    fn flat(level: f64, sigma: f64, weight: f64, method: &'static str) -> Self {
        Model {
            level,
            center: 0.0,
            slope: 0.0,
            class: [0; 7],
            shift: vec![0.0],
            count: vec![weight],
            sigma,
            df: 0.0,
            var_slope: 0.0,
            trust: 0.0,
            slope_full: 0.0,
            last: 0.0,
            basis: 0,
            method,
        }
    }

    /// Trend offset of day `t` from the level's centre, damped past the last observed day.
    fn offset(&self, t: f64) -> f64 {
        let ahead = t - self.last;
        if ahead <= 0.0 {
            return t - self.center;
        }
        (self.last - self.center) + DAMPING * (1.0 - DAMPING.powf(ahead)) / (1.0 - DAMPING)
    }

    fn class_of(&self, t: i64) -> usize {
        self.class[t.rem_euclid(7) as usize]
    }

    fn mean(&self, t: i64) -> f64 {
        let shift = self.shift.get(self.class_of(t)).copied().unwrap_or(0.0);
        (self.level + self.slope * self.offset(t as f64) + shift).max(0.0)
    }
}

fn mean_of(x: &[f64]) -> f64 {
    if x.is_empty() {
        0.0
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

/// Class means and the residual sum of squares of `x` (day `i` is in `class[slot(i)]`).
fn class_fit(
    x: &[f64],
    slot: impl Fn(usize) -> usize,
    class: &[usize; 7],
) -> (Vec<f64>, Vec<f64>, f64) {
    let k = class.iter().max().map_or(1, |m| m + 1);
    let (mut sum, mut count) = (vec![0.0; k], vec![0.0; k]);
    for (i, v) in x.iter().enumerate() {
        let c = class[slot(i)];
        sum[c] += v;
        count[c] += 1.0;
    }
    let means: Vec<f64> = sum
        .iter()
        .zip(&count)
        .map(|(s, c)| if *c > 0.0 { s / c } else { 0.0 })
        .collect();
    let ss = x
        .iter()
        .enumerate()
        .map(|(i, v)| (v - means[class[slot(i)]]).powi(2))
        .sum();
    (means, count, ss)
}

/// The F statistic of a richer fit (`ss1`, `extra` more parameters) against a simpler one.
fn f_stat(ss0: f64, ss1: f64, extra: f64, df1: f64) -> f64 {
    if df1 < 1.0 {
        0.0
    } else if ss1 > 0.0 {
        ((ss0 - ss1) / extra) / (ss1 / df1)
    } else if ss0 > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// The weekly structure of detrended history `x` (whole weeks, day `i` at `t % 7 = slot(i)`):
/// none, a weekend (the two adjacent days of the week that differ most from the rest, so a
/// Friday–Saturday weekend is found as readily as Saturday–Sunday, and no time zone is
/// needed), or, with three weeks or more, each day of the week on its own.
fn weekly(x: &[f64], slot: impl Fn(usize) -> usize + Copy, params: f64) -> ([usize; 7], f64, f64) {
    let m = x.len() as f64;
    let flat = [0; 7];
    let (_, _, ss_flat) = class_fit(x, slot, &flat);
    let mut best = (flat, ss_flat, params);
    if x.len() < 14 {
        return best;
    }
    let pair = (0..7)
        .map(|k| {
            let mut c = [0; 7];
            c[k] = 1;
            c[(k + 1) % 7] = 1;
            let (_, _, ss) = class_fit(x, slot, &c);
            (c, ss)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((c, ss)) = pair
        && f_stat(ss_flat, ss, 1.0, m - params - 1.0) > WEEKEND_F
    {
        best = (c, ss, params + 1.0);
    }
    if x.len() >= 21 {
        let days = [0, 1, 2, 3, 4, 5, 6];
        let (_, _, ss) = class_fit(x, slot, &days);
        if f_stat(best.1, ss, params + 6.0 - best.2, m - params - 6.0) > SEASONAL_F {
            best = (days, ss, params + 6.0);
        }
    }
    best
}

fn fit(h: &History) -> Model {
    let n = h.complete.len();
    if n == 0 {
        if h.partial <= 0.0 {
            return Model::flat(0.0, 0.0, 1.0, "no_history");
        }
        // Nothing but part of today: scale it up, with a wide prior band (one day's usage
        // varies by as much as its mean).
        let days = h.elapsed.max(MIN_PARTIAL_DAY);
        let level = h.partial / days;
        return Model::flat(level, level, days, "partial_day");
    }
    // Whole weeks when there are any, so every day of the week weighs the same in the level.
    let m = if n >= 7 { n - n % 7 } else { n };
    let x = &h.complete[n - m..];
    let first = n - m;
    let center = first as f64 + (m as f64 - 1.0) / 2.0;
    let slot = |i: usize| (first + i) % 7;
    let mut level = mean_of(x);
    let mut weight = m as f64;
    if n < 7 && h.elapsed > 0.0 {
        // Little history: today's partial day is worth having.
        level = (x.iter().sum::<f64>() + h.partial) / (m as f64 + h.elapsed);
        weight += h.elapsed;
    }
    // Candidate trend: the slope of weekly means (free of any weekly pattern).
    let weeks = m / 7;
    let (slope0, slope_unit) = if weeks >= 2 {
        let wm: Vec<f64> = x.chunks(7).map(mean_of).collect();
        let wbar = (weeks as f64 - 1.0) / 2.0;
        let sxx: f64 = (0..weeks).map(|w| (w as f64 - wbar).powi(2)).sum();
        let sxy: f64 = wm
            .iter()
            .enumerate()
            .map(|(w, v)| (w as f64 - wbar) * (v - level))
            .sum();
        // A weekly mean has 1/7 of a day's variance; the slope is per week, so /7 again.
        (sxy / sxx / 7.0, 1.0 / (7.0 * sxx * 49.0))
    } else {
        (0.0, 0.0)
    };
    let detrend = |slope: f64| -> Vec<f64> {
        x.iter()
            .enumerate()
            .map(|(i, v)| v - slope * ((first + i) as f64 - center))
            .collect()
    };
    let sigma_of = |ss: f64, params: f64| {
        let df = m as f64 - params;
        (if df >= 1.0 { (ss / df).sqrt() } else { 0.0 }, df)
    };
    // Trend or no trend: average the two models by their approximate posterior odds (BIC,
    // with prior odds against a trend), instead of a hard test that either ignores a real
    // ramp or extrapolates noise.
    let (_, ss1, params1) = weekly(&detrend(slope0), slot, 2.0);
    let (s1, _) = sigma_of(ss1, params1);
    let se = s1 * slope_unit.sqrt();
    let trust = if weeks >= 2 && slope0 != 0.0 {
        let t2 = if se > 0.0 {
            (slope0 / se).powi(2)
        } else {
            f64::INFINITY
        };
        1.0 / (1.0 + TREND_PRIOR_ODDS * (-(t2 - (m as f64).ln()) / 2.0).exp())
    } else {
        0.0
    };
    let slope = slope0 * trust;
    let trend = trust >= 0.5;
    let (class, ss, params) = weekly(&detrend(slope), slot, 1.0 + trust);
    let detrended = detrend(slope);
    let (means, count, _) = class_fit(&detrended, slot, &class);
    let (mut sigma, mut df) = sigma_of(ss, params);
    if df < 1.0 {
        // One day of history: no spread to measure, so assume a day varies by its mean.
        (sigma, df) = (level, 0.0);
    }
    let classes = count.len();
    let method = match (classes, trend) {
        (1, false) => "mean",
        (1, true) => "mean+trend",
        (2, false) => "weekend",
        (2, true) => "weekend+trend",
        (_, false) => "weekly",
        (_, true) => "weekly+trend",
    };
    Model {
        level,
        center,
        slope,
        class,
        shift: if classes == 1 {
            vec![0.0]
        } else {
            means.iter().map(|v| v - level).collect()
        },
        count: if classes == 1 { vec![weight] } else { count },
        sigma,
        df,
        var_slope: sigma * sigma * slope_unit,
        trust,
        slope_full: slope0,
        last: n as f64 - 1.0,
        basis: m as u32,
        method,
    }
}

/// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Student's t quantile with `df` degrees of freedom: exact for 1 and 2, the Cornish–Fisher
/// expansion (Abramowitz & Stegun 26.7.5) above, the normal quantile when `df` is 0 (a prior).
fn t_quantile(p: f64, df: f64) -> f64 {
    let z = normal_quantile(p);
    if df < 0.5 {
        return z;
    }
    if df < 1.5 {
        return (std::f64::consts::PI * (p - 0.5)).tan();
    }
    if df < 2.5 {
        return (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
    }
    let (z2, v) = (z * z, df);
    let g1 = (z2 + 1.0) * z / 4.0;
    let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
    let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
    let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92_160.0;
    z + g1 / v + g2 / (v * v) + g3 / (v * v * v) + g4 / (v * v * v * v)
}

/// A float as a decimal rounded to `scale` places (0 for anything not finite).
fn decimal(v: f64, scale: u32) -> Decimal {
    Decimal::from_f64(v)
        .unwrap_or_default()
        .round_dp(scale)
        .normalize()
}

/// Forecasts usage at the end of `window` from `used` so far and recent daily usage.
///
/// `daily` is usage per local day of the quota's zone, as `(bucket start, amount)`: gaps are
/// days with no usage, today's bucket may be included (it is partial), and history may reach
/// back across the window's last reset (that is how a window that just reset, or its first
/// day, still gets a rate). Days before the first bucket are not known, not zero: pass
/// zero-filled buckets from the look-back start for a subject known to have been idle.
/// Negative amounts count as zero.
///
/// The rate is the mean of the last whole weeks of history (all of it when shorter than a
/// week, today's partial day included then), plus a weekend or day-of-week pattern when it is
/// statistically clear and a damped trend weighted by how clear it is; the band is the spread
/// of daily usage around that model summed over the days left, plus the error of the means and
/// of the trend, at `options.confidence` (Student's t on the residual degrees of freedom).
/// Calendar windows are projected to their reset; lifetime windows 30 days ahead; rolling
/// windows 30 days or their length ahead, with the usage counted now ageing out evenly.
///
/// ```
/// use chrono::{DateTime, Duration, Utc};
/// use rust_decimal::Decimal;
/// use usage_core::forecast::{forecast, ForecastOptions};
/// use usage_core::quota::window::WindowSpan;
/// let start: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
/// let now = start + Duration::days(10);
/// let span = WindowSpan { start, resets_at: Some(start + Duration::days(30)), now };
/// // $10 a day for the last two weeks, across the reset.
/// let daily: Vec<_> = (1..=14).map(|d| (now - Duration::days(d), Decimal::TEN)).collect();
/// let f = forecast(&daily, Decimal::from(100), Some(Decimal::from(250)), &span, &ForecastOptions::default());
/// assert_eq!(f.projected, Decimal::from(300));
/// assert_eq!(f.exhausted_at, Some(now + Duration::days(15)));
/// ```
pub fn forecast(
    daily: &[(DateTime<Utc>, Decimal)],
    used: Decimal,
    limit: Option<Decimal>,
    window: &WindowSpan,
    options: &ForecastOptions,
) -> Forecast {
    let now = window.now;
    let lookback = options.lookback_days.clamp(1, 3660) as usize;
    let confidence = if options.confidence.is_finite() {
        options.confidence.clamp(0.5, 0.999)
    } else {
        ForecastOptions::default().confidence
    };
    let scale = daily
        .iter()
        .map(|(_, v)| v.scale())
        .chain([used.scale()])
        .max()
        .unwrap_or(0)
        .clamp(2, 9);

    // The horizon, and for rolling windows the length over which today's usage ages out.
    let (period_end, rolling) = match window.resets_at {
        Some(r) => (r.max(now), None),
        None if window.start == DateTime::<Utc>::MIN_UTC => {
            (now + Duration::days(OPEN_HORIZON_DAYS as i64), None)
        }
        None => {
            let len = days_between(window.start, now).max(1e-9);
            let ahead = len.min(OPEN_HORIZON_DAYS);
            let end = now + Duration::milliseconds((ahead * DAY_SECS * 1000.0) as i64);
            (end, Some(len))
        }
    };
    let horizon = days_between(now, period_end).max(0.0);

    let h = history(daily, now, lookback);
    let model = fit(&h);
    let n = h.complete.len() as i64;

    // The days left, as (day number, fraction of it): the rest of today, whole days, and a
    // last part-day.
    let mut slots: Vec<(i64, f64)> = Vec::new();
    let mut left = horizon;
    let mut t = n;
    let mut first = (1.0 - h.elapsed).max(0.0);
    while left > 1e-9 {
        let w = first.min(left);
        if w > 0.0 {
            slots.push((t, w));
        }
        left -= w;
        t += 1;
        first = 1.0;
    }

    let used_f = to_f64(used);
    let age = |days: f64| rolling.map_or(0.0, |len| used_f * (days / len).min(1.0));
    let expected: f64 = slots.iter().map(|&(t, w)| w * model.mean(t)).sum();
    let projected_f = used_f - age(horizon) + expected;

    // Spread: daily noise over the days left, the error of the weekday means (or of the level),
    // and of the slope.
    let var_noise = model.sigma.powi(2) * horizon;
    let mut per_class = vec![0.0; model.count.len()];
    for &(t, w) in &slots {
        per_class[model.class_of(t)] += w;
    }
    let var_level: f64 = per_class
        .iter()
        .zip(&model.count)
        .map(|(w, c)| w * w * model.sigma.powi(2) / c.max(MIN_PARTIAL_DAY))
        .sum();
    let lever: f64 = slots.iter().map(|&(t, w)| w * model.offset(t as f64)).sum();
    let var_trend = model.trust * model.var_slope * lever * lever
        + model.trust * (1.0 - model.trust) * (model.slope_full * lever).powi(2);
    let sd = (var_noise + var_level + var_trend).sqrt();
    let q = t_quantile((1.0 + confidence) / 2.0, model.df);
    let floor_f = used_f - age(horizon);

    let (projected, low, high) = if expected == 0.0 && sd == 0.0 {
        // Nothing to go on: the projection is what is used (and still counted) now, exactly.
        let p = if rolling.is_some() {
            decimal(projected_f, scale)
        } else {
            used
        };
        (p, p, p)
    } else {
        let floor = if rolling.is_some() {
            decimal(floor_f.max(0.0), scale)
        } else {
            used
        };
        let projected = if rolling.is_some() {
            decimal(projected_f, scale)
        } else {
            used + decimal(expected, scale)
        };
        (
            projected,
            decimal(projected_f - q * sd, scale)
                .max(floor)
                .min(projected),
            decimal(projected_f + q * sd, scale).max(projected),
        )
    };

    let rate = if horizon > 0.0 {
        expected / horizon
    } else {
        model.mean(n)
    };

    // When the cumulative expectation meets the limit, day by day.
    let exhausted_at = limit.and_then(|limit| {
        if used >= limit {
            return Some(now);
        }
        let target = to_f64(limit);
        let mut at = 0.0;
        let mut level = used_f;
        for &(t, w) in &slots {
            let speed = model.mean(t) - rolling.map_or(0.0, |len| used_f / len);
            let next = level + speed * w;
            if speed > 0.0 && next >= target {
                let days = at + (target - level) / speed;
                return Some(
                    now + Duration::milliseconds((days * DAY_SECS * 1000.0).round() as i64),
                );
            }
            level = next;
            at += w;
        }
        None
    });
    let days_remaining = exhausted_at.map(|e| days_between(now, e).max(0.0));

    Forecast {
        burn_rate_per_day: decimal(rate, scale),
        projected,
        low,
        high,
        limit,
        exhausted_at,
        days_remaining,
        period_end: Some(period_end),
        basis_days: model.basis,
        method: model.method.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_tables() {
        assert!((normal_quantile(0.9) - 1.281_551_6).abs() < 1e-6);
        assert!((normal_quantile(0.025) + 1.959_964).abs() < 1e-6);
        // Student's t, two-sided 80% (p = 0.9): 1: 3.078, 2: 1.886, 5: 1.476, 13: 1.350.
        for (df, want) in [(1.0, 3.078), (2.0, 1.886), (5.0, 1.476), (13.0, 1.350)] {
            assert!((t_quantile(0.9, df) - want).abs() < 2e-3, "df {df}");
        }
    }

    #[test]
    fn dst_days_index_without_the_zone() {
        // New York buckets around the 2026-11-01 fall-back (a 25-hour day).
        let b = |s: &str, v: i64| {
            (
                s.parse::<DateTime<Utc>>().unwrap_or_default(),
                Decimal::from(v),
            )
        };
        let daily = [
            b("2026-10-31T04:00:00Z", 1),
            b("2026-11-01T04:00:00Z", 2),
            b("2026-11-02T05:00:00Z", 3),
            b("2026-11-03T05:00:00Z", 4),
        ];
        let h = history(
            &daily,
            "2026-11-03T17:00:00Z".parse().unwrap_or_default(),
            14,
        );
        assert_eq!(h.complete, [1.0, 2.0, 3.0]);
        assert_eq!(h.partial, 4.0);
        assert!((h.elapsed - 0.5).abs() < 1e-9);
    }
}
