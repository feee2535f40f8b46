//! Quota windows: calendar periods in the quota's time zone (day, week from a chosen weekday,
//! month from a chosen anchor day, year), rolling durations, or the whole lifetime.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::query::TimeRange;
use crate::query::time::{Bucket, local_to_utc};

/// The period a quota's usage is counted over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Window {
    /// Calendar day, reset at local midnight.
    Day,
    /// Calendar week starting on `start`, reset at local midnight of that weekday.
    Week {
        /// First day of the week.
        start: Weekday,
    },
    /// Month starting on `anchor_day` (1–31; in shorter months, the month's last day), reset
    /// at local midnight.
    Month {
        /// Day of the month the window starts on.
        anchor_day: u32,
    },
    /// Calendar year, reset at local midnight on 1 January.
    Year,
    /// The last `seconds` before now, sliding: never resets, usage ages out.
    Rolling {
        /// The window's length in seconds.
        seconds: i64,
    },
    /// Everything ever recorded.
    Lifetime,
}

/// The window in force at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpan {
    /// First instant counted.
    pub start: DateTime<Utc>,
    /// When usage resets (`None` for rolling and lifetime windows).
    pub resets_at: Option<DateTime<Utc>>,
    /// The instant the span was computed for.
    pub now: DateTime<Utc>,
}

impl WindowSpan {
    /// The range to count usage over: `[start, resets_at)`, or up to the end of time for
    /// rolling and lifetime windows (so events stamped slightly ahead still count).
    pub fn range(&self) -> TimeRange {
        TimeRange {
            start: self.start,
            end: self.resets_at.unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// The window's full length when it has one.
    pub fn length(&self) -> Option<Duration> {
        self.resets_at.map(|r| r - self.start)
    }
}

fn anchored_month_start(tz: &Tz, year: i32, month: u32, anchor: u32) -> DateTime<Utc> {
    let last = NaiveDate::from_ymd_opt(
        if month == 12 { year + 1 } else { year },
        if month == 12 { 1 } else { month + 1 },
        1,
    )
    .and_then(|d| d.pred_opt())
    .map_or(28, |d| d.day());
    let day = anchor.min(last);
    let date = NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default();
    local_to_utc(tz, date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn add_months(year: i32, month: u32, delta: i32) -> (i32, u32) {
    let idx = year * 12 + month as i32 - 1 + delta;
    (idx.div_euclid(12), (idx.rem_euclid(12) + 1) as u32)
}

impl Window {
    /// Checks the parameters: an anchor day in 1–31, a positive rolling length.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Window::Month { anchor_day } if !(1..=31).contains(&anchor_day) => {
                Err(Error::argument(
                    "window.anchor_day",
                    format!("is {anchor_day}; it must be 1 to 31"),
                ))
            }
            Window::Rolling { seconds } if seconds <= 0 => Err(Error::argument(
                "window.seconds",
                format!("is {seconds}; a rolling window must be longer than zero"),
            )),
            Window::Rolling { seconds } if seconds > 10 * 366 * 86_400 => Err(Error::argument(
                "window.seconds",
                format!("is {seconds}; at most ten years"),
            )),
            _ => Ok(()),
        }
    }

    /// The window containing `now`, in zone `tz`.
    pub fn span_at(&self, tz: &Tz, now: DateTime<Utc>) -> Result<WindowSpan> {
        self.validate()?;
        let calendar = |b: Bucket| {
            let start = b.floor(tz, now);
            WindowSpan {
                start,
                resets_at: Some(b.next(tz, start)),
                now,
            }
        };
        Ok(match *self {
            Window::Day => calendar(Bucket::Day),
            Window::Week { start } => calendar(Bucket::Week { start }),
            Window::Year => {
                let local = now.with_timezone(tz).date_naive();
                let at = |y: i32| {
                    local_to_utc(
                        tz,
                        NaiveDate::from_ymd_opt(y, 1, 1)
                            .unwrap_or_default()
                            .and_hms_opt(0, 0, 0)
                            .unwrap_or_default(),
                    )
                };
                WindowSpan {
                    start: at(local.year()),
                    resets_at: Some(at(local.year() + 1)),
                    now,
                }
            }
            Window::Month { anchor_day } => {
                let local = now.with_timezone(tz).date_naive();
                let mut start = anchored_month_start(tz, local.year(), local.month(), anchor_day);
                let (mut y, mut m) = (local.year(), local.month());
                if start > now {
                    (y, m) = add_months(y, m, -1);
                    start = anchored_month_start(tz, y, m, anchor_day);
                }
                let (ny, nm) = add_months(y, m, 1);
                WindowSpan {
                    start,
                    resets_at: Some(anchored_month_start(tz, ny, nm, anchor_day)),
                    now,
                }
            }
            Window::Rolling { seconds } => WindowSpan {
                // Near the start of representable time, the window starts there.
                start: now
                    .checked_sub_signed(Duration::seconds(seconds))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
                resets_at: None,
                now,
            },
            Window::Lifetime => WindowSpan {
                start: DateTime::<Utc>::MIN_UTC,
                resets_at: None,
                now,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_tz;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn month_anchor_clamps_to_short_months() {
        let tz = parse_tz("UTC").unwrap();
        let w = Window::Month { anchor_day: 31 };
        let s = w.span_at(&tz, utc("2026-02-15T00:00:00Z")).unwrap();
        assert_eq!(s.start, utc("2026-01-31T00:00:00Z"));
        assert_eq!(s.resets_at, Some(utc("2026-02-28T00:00:00Z")));
        let s = w.span_at(&tz, utc("2026-02-28T00:00:00Z")).unwrap();
        assert_eq!(s.start, utc("2026-02-28T00:00:00Z"));
        assert_eq!(s.resets_at, Some(utc("2026-03-31T00:00:00Z")));
    }

    #[test]
    fn month_in_a_zone_across_dst() {
        let tz = parse_tz("America/New_York").unwrap();
        let s = Window::Month { anchor_day: 1 }
            .span_at(&tz, utc("2026-03-15T12:00:00Z"))
            .unwrap();
        assert_eq!(s.start, utc("2026-03-01T05:00:00Z"));
        assert_eq!(s.resets_at, Some(utc("2026-04-01T04:00:00Z")));
    }

    #[test]
    fn rolling_window_at_the_start_of_time_does_not_overflow() {
        let tz = parse_tz("UTC").unwrap();
        let now = DateTime::<Utc>::MIN_UTC + Duration::hours(1);
        let s = Window::Rolling { seconds: 86_400 }
            .span_at(&tz, now)
            .unwrap();
        assert_eq!(s.start, DateTime::<Utc>::MIN_UTC);
    }

    #[test]
    fn rolling_and_bad_input() {
        let tz = parse_tz("UTC").unwrap();
        let now = utc("2026-11-23T10:00:00Z");
        let s = Window::Rolling { seconds: 86_400 }
            .span_at(&tz, now)
            .unwrap();
        assert_eq!((s.start, s.resets_at), (utc("2026-11-22T10:00:00Z"), None));
        assert!(Window::Month { anchor_day: 0 }.validate().is_err());
        assert!(Window::Rolling { seconds: 0 }.validate().is_err());
    }

    /// Every instant lies in its window, windows tile time (a reset is the next window's start,
    /// the instant before it is still in the old one), in zones with DST at midnight
    /// (Santiago, Havana, Beirut), half-hour DST (Lord Howe), +13/+14 offsets (Apia, Kiritimati)
    /// and the zones users most often name.
    #[test]
    fn windows_contain_now_and_tile_time() {
        let zones = [
            "UTC",
            "America/New_York",
            "Europe/London",
            "Australia/Sydney",
            "Asia/Kolkata",
            "America/Santiago",
            "America/Havana",
            "Asia/Beirut",
            "Australia/Lord_Howe",
            "Pacific/Apia",
            "Pacific/Kiritimati",
            "Pacific/Chatham",
        ];
        let windows = [
            Window::Day,
            Window::Week {
                start: Weekday::Mon,
            },
            Window::Week {
                start: Weekday::Sun,
            },
            Window::Month { anchor_day: 1 },
            Window::Month { anchor_day: 15 },
            Window::Month { anchor_day: 31 },
            Window::Year,
        ];
        let from: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        for zone in zones {
            let tz = parse_tz(zone).unwrap();
            for w in windows {
                let mut now = from;
                while now < from + Duration::days(730) {
                    let s = w.span_at(&tz, now).unwrap();
                    let r = s.resets_at.unwrap();
                    assert!(
                        s.start <= now && now < r,
                        "{zone} {w:?} {now}: [{}, {r})",
                        s.start
                    );
                    assert_eq!(w.span_at(&tz, r).unwrap().start, r, "{zone} {w:?} {now}");
                    assert_eq!(
                        w.span_at(&tz, s.start).unwrap().start,
                        s.start,
                        "{zone} {w:?} {now}"
                    );
                    let before = w.span_at(&tz, s.start - Duration::seconds(1)).unwrap();
                    assert_eq!(before.resets_at, Some(s.start), "{zone} {w:?} {now}");
                    now += Duration::minutes(7 * 60 + 13);
                }
            }
        }
    }
}
