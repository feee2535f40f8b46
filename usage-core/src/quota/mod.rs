//! Quotas and budgets: who a quota applies to ([`Subject`]), what it counts ([`QuotaMetric`]),
//! over which window ([`Window`]), and the staged thresholds it reports. The window arithmetic
//! lives in [`window`], usage levels in [`status`], worst-case estimates in [`estimate`], and the
//! atomic reservation contract in [`crate::store::QuotaStore`].

pub mod estimate;
pub mod status;
pub mod window;

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::UsageEvent;
use crate::query::{Filter, Totals};

pub use window::Window;

/// Who a quota applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Subject {
    /// One user.
    User {
        /// The user id.
        id: String,
    },
    /// Every event carrying a tag value (a team, an API key, a workflow…).
    Tag {
        /// The tag key.
        key: String,
        /// The tag value.
        value: String,
    },
    /// Every event.
    Global,
}

impl Subject {
    /// A user subject.
    pub fn user(id: impl Into<String>) -> Self {
        Subject::User { id: id.into() }
    }

    /// A tag subject.
    pub fn tag(key: impl Into<String>, value: impl Into<String>) -> Self {
        Subject::Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    /// The subjects whose quotas a call with this user and these tags counts against (global
    /// quotas always apply besides): the user's, then one per tag.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use usage_core::quota::Subject;
    /// let tags = BTreeMap::from([("team".to_owned(), "ml".to_owned())]);
    /// assert_eq!(
    ///     Subject::for_call(Some("alice"), &tags),
    ///     vec![Subject::user("alice"), Subject::tag("team", "ml")]
    /// );
    /// ```
    pub fn for_call(
        user_id: Option<&str>,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Vec<Subject> {
        user_id
            .map(Subject::user)
            .into_iter()
            .chain(tags.iter().map(|(k, v)| Subject::tag(k, v)))
            .collect()
    }

    /// The filter selecting this subject's events.
    pub fn filter(&self) -> Filter {
        match self {
            Subject::User { id } => Filter {
                user_id: Some(id.clone()),
                ..Default::default()
            },
            Subject::Tag { key, value } => Filter {
                tags: [(key.clone(), value.clone())].into(),
                ..Default::default()
            },
            Subject::Global => Filter::default(),
        }
    }

    /// True when `e` belongs to this subject.
    pub fn covers(&self, e: &UsageEvent) -> bool {
        self.filter().matches(e)
    }

    /// Checks ids are non-empty and printable.
    pub fn validate(&self) -> Result<()> {
        match self {
            Subject::User { id } => crate::event::check_text("subject.id", id),
            Subject::Tag { key, value } => {
                crate::event::check_text("subject.key", key)?;
                crate::event::check_text("subject.value", value)
            }
            Subject::Global => Ok(()),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User { id } => write!(f, "user:{id}"),
            Subject::Tag { key, value } => write!(f, "tag:{key}={value}"),
            Subject::Global => f.write_str("global"),
        }
    }
}

/// What a quota counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaMetric {
    /// Total cost in USD.
    Cost,
    /// Prompt + output tokens.
    TotalTokens,
    /// Uncached input tokens.
    InputTokens,
    /// Output tokens.
    OutputTokens,
    /// Cache-read tokens.
    CacheReadTokens,
    /// Cache-write tokens (both TTLs).
    CacheWriteTokens,
    /// Requests.
    Requests,
}

impl QuotaMetric {
    /// Every metric.
    pub const ALL: [QuotaMetric; 7] = [
        QuotaMetric::Cost,
        QuotaMetric::TotalTokens,
        QuotaMetric::InputTokens,
        QuotaMetric::OutputTokens,
        QuotaMetric::CacheReadTokens,
        QuotaMetric::CacheWriteTokens,
        QuotaMetric::Requests,
    ];

    /// The metric named `name` ([`QuotaMetric::as_str`]).
    pub fn from_name(name: &str) -> Option<QuotaMetric> {
        QuotaMetric::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The amount of this metric in `t`.
    pub fn amount(&self, t: &Totals) -> Decimal {
        match self {
            QuotaMetric::Cost => t.cost_total.as_decimal(),
            QuotaMetric::TotalTokens => t.total_tokens().into(),
            QuotaMetric::InputTokens => t.input.into(),
            QuotaMetric::OutputTokens => t.output.into(),
            QuotaMetric::CacheReadTokens => t.cache_read.into(),
            QuotaMetric::CacheWriteTokens => (t.cache_write_5m + t.cache_write_1h).into(),
            QuotaMetric::Requests => t.requests.into(),
        }
    }

    /// The amount of this metric in one event.
    pub fn of_event(&self, e: &UsageEvent) -> Decimal {
        self.amount(&Totals::of(e))
    }

    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            QuotaMetric::Cost => "cost",
            QuotaMetric::TotalTokens => "total_tokens",
            QuotaMetric::InputTokens => "input_tokens",
            QuotaMetric::OutputTokens => "output_tokens",
            QuotaMetric::CacheReadTokens => "cache_read_tokens",
            QuotaMetric::CacheWriteTokens => "cache_write_tokens",
            QuotaMetric::Requests => "requests",
        }
    }
}

impl std::str::FromStr for QuotaMetric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        serde_json::from_value(serde_json::Value::String(s.trim().to_ascii_lowercase())).map_err(|_| {
            Error::argument(
                "metric",
                format!("`{s}` is not one of cost, total_tokens, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, requests"),
            )
        })
    }
}

/// A named level at a percentage of the limit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Threshold {
    /// The level's name (`warning`, `upgrade_suggested`, `blocked`).
    pub name: String,
    /// Percent of the limit at which it is reached (inclusive).
    pub percent: Decimal,
}

impl Threshold {
    /// A threshold.
    pub fn new(name: impl Into<String>, percent: impl Into<Decimal>) -> Self {
        Threshold {
            name: name.into(),
            percent: percent.into(),
        }
    }

    /// The defaults: warning at 80%, upgrade suggested at 95%, blocked at 100%.
    pub fn defaults() -> Vec<Threshold> {
        vec![
            Threshold::new(WARNING, 80),
            Threshold::new(UPGRADE_SUGGESTED, 95),
            Threshold::new(BLOCKED, 100),
        ]
    }
}

/// The default warning level's name.
pub const WARNING: &str = "warning";
/// The default upgrade-suggested level's name.
pub const UPGRADE_SUGGESTED: &str = "upgrade_suggested";
/// The default blocked level's name.
pub const BLOCKED: &str = "blocked";

/// A limit on what a subject may use in a window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Unique id (`alice-monthly`, `team-ml-daily`).
    pub id: String,
    /// Who it applies to.
    pub subject: Subject,
    /// What it counts.
    pub metric: QuotaMetric,
    /// The limit, in the metric's unit (USD for cost).
    pub limit: Decimal,
    /// The window usage is counted over.
    pub window: Window,
    /// IANA time zone of calendar windows.
    pub tz: String,
    /// Hard quotas block reservations that would pass the limit; soft ones only report.
    pub hard: bool,
    /// Levels, ascending by percent.
    pub thresholds: Vec<Threshold>,
}

impl Quota {
    /// A hard quota with the default thresholds, counted in UTC.
    pub fn new(
        id: impl Into<String>,
        subject: Subject,
        metric: QuotaMetric,
        limit: impl Into<Decimal>,
        window: Window,
    ) -> Self {
        Quota {
            id: id.into(),
            subject,
            metric,
            limit: limit.into(),
            window,
            tz: "UTC".to_owned(),
            hard: true,
            thresholds: Threshold::defaults(),
        }
    }

    /// Makes it soft: it reports levels and fires alerts but never blocks.
    pub fn soft(mut self) -> Self {
        self.hard = false;
        self
    }

    /// Sets the time zone of calendar windows.
    pub fn in_tz(mut self, tz: impl Into<String>) -> Self {
        self.tz = tz.into();
        self
    }

    /// Replaces the thresholds.
    pub fn with_thresholds(mut self, thresholds: Vec<Threshold>) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Checks everything: id, subject, a positive limit, a known time zone, a valid window,
    /// thresholds with names, positive and strictly ascending percentages.
    pub fn validate(&self) -> Result<()> {
        crate::event::check_text("id", &self.id)?;
        self.subject.validate()?;
        if self.limit.is_sign_negative() || self.limit.is_zero() {
            return Err(Error::argument(
                "limit",
                format!("is {}; a limit must be positive", self.limit),
            ));
        }
        crate::query::parse_tz(&self.tz)?;
        self.window.validate()?;
        let mut last: Option<&Threshold> = None;
        for t in &self.thresholds {
            crate::event::check_text("thresholds.name", &t.name)?;
            if t.percent.is_sign_negative() || t.percent.is_zero() {
                return Err(Error::argument(
                    format!("thresholds.{}", t.name),
                    format!("is {}%; a threshold must be above 0%", t.percent),
                ));
            }
            if let Some(p) = last
                && t.percent <= p.percent
            {
                return Err(Error::argument(
                    "thresholds",
                    format!(
                        "`{}` at {}% comes after `{}` at {}%: thresholds must be in ascending order",
                        t.name, t.percent, p.name, p.percent
                    ),
                ));
            }
            if self.thresholds.iter().filter(|x| x.name == t.name).count() > 1 {
                return Err(Error::argument(
                    "thresholds",
                    format!("`{}` appears twice", t.name),
                ));
            }
            last = Some(t);
        }
        Ok(())
    }

    /// The window in force at `now`.
    pub fn window_at(&self, now: DateTime<Utc>) -> Result<window::WindowSpan> {
        self.window.span_at(&crate::query::parse_tz(&self.tz)?, now)
    }

    /// True when this quota counts `e`.
    pub fn covers(&self, e: &UsageEvent) -> bool {
        self.subject.covers(e)
    }
}
