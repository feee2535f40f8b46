//! Quota status: usage against the limit, the levels reached, and the flags an app shows
//! ([`status`]); the read-only admission check over several quotas ([`decide`]); and the
//! thresholds usage has reached, from which alerts fire exactly once ([`reached`]).
//!
//! Every comparison with a threshold is exact decimal arithmetic: `used + held` reaches a
//! threshold at `p`% when `(used + held) × 100 ≥ p × limit`. Percentages shown to people are
//! floats; nothing is decided on them.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use super::window::WindowSpan;
use super::{Quota, Threshold, UPGRADE_SUGGESTED, WARNING};
use crate::forecast::Forecast;
use crate::store::QuotaUse;

/// Where a quota stands in its current window.
///
/// The flags follow the default level names when the quota uses them, and fall back to the
/// position of its thresholds when it does not:
///
/// - `is_warning`: the threshold named `warning` is reached; with no threshold of that name,
///   the lowest threshold is reached.
/// - `is_upgrade_suggested`: the threshold named `upgrade_suggested` is reached; with no
///   threshold of that name, the second-highest threshold is reached (so with custom levels
///   `[50, 75, 90, 100]` it is set from 90%; with a single custom level it is never set).
/// - `is_blocked`: the quota is hard and `used + held ≥ limit`, whatever the thresholds are
///   called. A soft quota never blocks, but still reports `level` and `reached`, a level named
///   `blocked` included.
///
/// ```
/// use rust_decimal::Decimal;
/// use usage_core::quota::{Quota, QuotaMetric, Subject, Window, status::status};
/// let q = Quota::new("alice-monthly", Subject::user("alice"), QuotaMetric::Cost, 100, Window::Month { anchor_day: 1 });
/// let span = q.window_at("2026-11-23T10:00:00Z".parse().unwrap()).unwrap();
/// let s = status(&q, span, Decimal::new(9500, 2), Decimal::ZERO, None);
/// assert_eq!(s.level.as_deref(), Some("upgrade_suggested"));
/// assert!(s.is_warning && s.is_upgrade_suggested && !s.is_blocked);
/// assert_eq!(s.remaining, Decimal::new(500, 2));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuotaStatus {
    /// The quota.
    pub quota: Quota,
    /// The window the figures are for.
    pub window: WindowSpan,
    /// Recorded usage in the window, in the quota's metric.
    pub used: Decimal,
    /// Outstanding holds of reservations not yet committed or released.
    pub held: Decimal,
    /// The limit.
    pub limit: Decimal,
    /// `limit − used − held`, never below zero.
    pub remaining: Decimal,
    /// `(used + held) / limit × 100`, for display (6 decimal places at most).
    pub percent: f64,
    /// The highest threshold reached, if any.
    pub level: Option<String>,
    /// Every threshold reached, lowest first.
    pub reached: Vec<String>,
    /// The warning level is reached (see the type's docs for custom level names).
    pub is_warning: bool,
    /// The upgrade-suggested level is reached (see the type's docs for custom level names).
    pub is_upgrade_suggested: bool,
    /// A hard quota whose usage and holds reached its limit: any further request is refused.
    pub is_blocked: bool,
    /// Where usage is heading by the end of the window, when the caller asked for it.
    pub forecast: Option<Forecast>,
}

/// True when `amount` is at or past `percent`% of `limit`, compared exactly.
pub(crate) fn reaches(amount: Decimal, limit: Decimal, percent: Decimal) -> bool {
    match (
        amount.checked_mul(Decimal::ONE_HUNDRED),
        percent.checked_mul(limit),
    ) {
        (Some(lhs), Some(rhs)) => lhs >= rhs,
        // Figures near Decimal's range: compare the ratio instead (28 significant digits).
        _ => match amount.checked_div(limit) {
            Some(ratio) => ratio
                .checked_mul(Decimal::ONE_HUNDRED)
                .is_none_or(|r| r >= percent),
            None => amount.is_sign_positive(),
        },
    }
}

/// `amount / limit × 100` as a float for display; 100 when the limit is not positive.
fn percent_of(amount: Decimal, limit: Decimal) -> f64 {
    if limit <= Decimal::ZERO {
        return 100.0;
    }
    let ratio = amount
        .checked_mul(Decimal::ONE_HUNDRED)
        .and_then(|a| a.checked_div(limit))
        .or_else(|| {
            amount
                .checked_div(limit)
                .and_then(|r| r.checked_mul(Decimal::ONE_HUNDRED))
        });
    ratio
        .map(|r| r.round_dp(6).to_f64().unwrap_or(f64::MAX))
        .unwrap_or(f64::MAX)
}

/// The thresholds sorted by percent, whatever order the quota lists them in.
fn ascending(quota: &Quota) -> Vec<&Threshold> {
    let mut t: Vec<&Threshold> = quota.thresholds.iter().collect();
    t.sort_by_key(|t| t.percent);
    t
}

/// The flags for a set of reached threshold names (see [`QuotaStatus`]).
fn flags(quota: &Quota, amount: Decimal) -> (Vec<String>, bool, bool) {
    let sorted = ascending(quota);
    let reached: Vec<String> = reached(quota, amount).into_iter().map(|t| t.name).collect();
    let is = |name: &str, fallback: Option<&&Threshold>| {
        let named = sorted.iter().find(|t| t.name == name).or(fallback);
        named.is_some_and(|t| reached.contains(&t.name))
    };
    let second_highest = sorted.len().checked_sub(2).and_then(|i| sorted.get(i));
    (
        reached.clone(),
        is(WARNING, sorted.first()),
        is(UPGRADE_SUGGESTED, second_highest),
    )
}

/// The status of `quota` with `used` recorded and `held` reserved in `window`.
///
/// Pure arithmetic over figures the caller fetched (the tracker reads `used` and `held` from
/// its store); `forecast` is passed through.
pub fn status(
    quota: &Quota,
    window: WindowSpan,
    used: Decimal,
    held: Decimal,
    forecast: Option<Forecast>,
) -> QuotaStatus {
    let amount = used.saturating_add(held);
    let (reached, is_warning, is_upgrade_suggested) = flags(quota, amount);
    let remaining = quota.limit.saturating_sub(amount).max(Decimal::ZERO);
    QuotaStatus {
        quota: quota.clone(),
        window,
        used,
        held,
        limit: quota.limit,
        remaining,
        percent: percent_of(amount, quota.limit),
        level: reached.last().cloned(),
        reached,
        is_warning,
        is_upgrade_suggested,
        is_blocked: quota.hard && amount >= quota.limit,
        forecast,
    }
}

/// A level a request would reach.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LevelNotice {
    /// The quota's id.
    pub quota_id: String,
    /// The threshold's name.
    pub level: String,
    /// `(used + held + requested) / limit × 100`: where the quota would stand, for display.
    pub percent: f64,
}

/// The answer of a read-only check: would a request be admitted, and what would it reach.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// No hard quota would pass its limit.
    pub allowed: bool,
    /// Every level the request would reach, soft quotas included, in `statuses` order and
    /// lowest level first within a quota.
    pub warnings: Vec<LevelNotice>,
    /// The hard quotas the request would take past their limit, in `statuses` order.
    pub blocked_by: Vec<QuotaUse>,
}

/// Checks a request against quotas without changing anything (the tracker's `check`).
///
/// `requested` gives the request's amount per quota id, in each quota's metric; amounts for the
/// same id add up, a quota with no entry is asked for zero, and ids with no status are ignored.
/// A hard quota blocks when `used + held + requested > limit` (the same rule
/// [`crate::store::QuotaStore::reserve`] enforces atomically; this check is only advisory,
/// since others may reserve in between).
///
/// ```
/// use rust_decimal::Decimal;
/// use usage_core::quota::{Quota, QuotaMetric, Subject, Window, status::{decide, status}};
/// let q = Quota::new("daily", Subject::Global, QuotaMetric::Requests, 10, Window::Day);
/// let span = q.window_at("2026-11-23T10:00:00Z".parse().unwrap()).unwrap();
/// let s = status(&q, span, Decimal::from(8), Decimal::ONE, None);
/// let d = decide(&[s.clone()], &[("daily".into(), Decimal::ONE)]);
/// assert!(d.allowed);
/// assert_eq!(d.warnings.last().map(|w| w.level.as_str()), Some("blocked"));
/// let d = decide(&[s], &[("daily".into(), Decimal::TWO)]);
/// assert!(!d.allowed && d.blocked_by[0].quota_id == "daily");
/// ```
pub fn decide(statuses: &[QuotaStatus], requested: &[(String, Decimal)]) -> Decision {
    let mut warnings = Vec::new();
    let mut blocked_by = Vec::new();
    for s in statuses {
        let asked: Decimal = requested
            .iter()
            .filter(|(id, _)| *id == s.quota.id)
            .fold(Decimal::ZERO, |a, (_, v)| a.saturating_add(*v));
        let total = s.used.saturating_add(s.held).saturating_add(asked);
        let percent = percent_of(total, s.limit);
        for t in ascending(&s.quota) {
            if reaches(total, s.limit, t.percent) {
                warnings.push(LevelNotice {
                    quota_id: s.quota.id.clone(),
                    level: t.name.clone(),
                    percent,
                });
            }
        }
        if s.quota.hard && total > s.limit {
            blocked_by.push(QuotaUse {
                quota_id: s.quota.id.clone(),
                used: s.used,
                held: s.held,
                requested: asked,
                limit: s.limit,
            });
        }
    }
    Decision {
        allowed: blocked_by.is_empty(),
        warnings,
        blocked_by,
    }
}

/// The thresholds `used` has reached (`used × 100 ≥ percent × limit`), lowest first.
///
/// Alerts are raised from this rather than from what one write added: two processes that each
/// add half of the way past a threshold both read the usage after both writes, and neither
/// would see it crossed by its own part. The first to see the threshold reached stores its
/// alert; the store's uniqueness (per quota, window and threshold) makes it fire exactly once.
///
/// ```
/// use rust_decimal::Decimal;
/// use usage_core::quota::{Quota, QuotaMetric, Subject, Window, status::reached};
/// let q = Quota::new("q", Subject::Global, QuotaMetric::Cost, 100, Window::Day);
/// let names: Vec<_> = reached(&q, Decimal::from(96)).into_iter().map(|t| t.name).collect();
/// assert_eq!(names, ["warning", "upgrade_suggested"]);
/// assert!(reached(&q, Decimal::new(7999, 2)).is_empty());
/// ```
pub fn reached(quota: &Quota, used: Decimal) -> Vec<Threshold> {
    ascending(quota)
        .into_iter()
        .filter(|t| reaches(used, quota.limit, t.percent))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{QuotaMetric, Subject, Window};

    fn quota() -> Quota {
        Quota::new("q", Subject::Global, QuotaMetric::Cost, 100, Window::Day)
    }

    fn span() -> WindowSpan {
        let now = "2026-11-23T10:00:00Z".parse().unwrap_or_default();
        WindowSpan {
            start: now,
            resets_at: None,
            now,
        }
    }

    #[test]
    fn reaches_is_exact_even_near_the_decimal_range() {
        let p = Decimal::from(80);
        assert!(reaches(Decimal::from(80), Decimal::from(100), p));
        assert!(!reaches(Decimal::new(7_999_999, 5), Decimal::from(100), p));
        // 80% of the largest decimal: the products overflow, the ratio does not.
        let big = Decimal::MAX;
        assert!(reaches(big, big, Decimal::from(100)));
        assert!(!reaches(big / Decimal::TWO, big, Decimal::from(80)));
    }

    #[test]
    fn zero_limit_is_full_not_a_panic() {
        let mut q = quota();
        q.limit = Decimal::ZERO;
        let s = status(&q, span(), Decimal::ZERO, Decimal::ZERO, None);
        assert!(s.is_blocked);
        assert_eq!(s.percent, 100.0);
        assert_eq!(s.remaining, Decimal::ZERO);
    }

    #[test]
    fn thresholds_listed_out_of_order_still_report_the_highest() {
        let q = quota().with_thresholds(vec![Threshold::new("b", 90), Threshold::new("a", 50)]);
        let s = status(&q, span(), Decimal::from(95), Decimal::ZERO, None);
        assert_eq!(s.reached, ["a", "b"]);
        assert_eq!(s.level.as_deref(), Some("b"));
        assert!(s.is_warning && s.is_upgrade_suggested);
    }
}
