//! Time ranges, calendar buckets and periods in IANA time zones. Buckets are computed in local
//! time and converted back to UTC instants, so DST days are 23 or 25 hours long, not 24.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
    Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A half-open interval of instants, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeRange {
    /// First instant included.
    pub start: DateTime<Utc>,
    /// First instant excluded.
    pub end: DateTime<Utc>,
}

impl TimeRange {
    /// A range; `start` must be before `end`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self> {
        if start >= end {
            return Err(Error::argument(
                "range",
                format!("start {start} is not before end {end}"),
            ));
        }
        Ok(TimeRange { start, end })
    }

    /// True when `t` is inside.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    /// The length.
    pub fn duration(&self) -> Duration {
        self.end - self.start
    }
}

/// Parses an IANA time zone name (`Europe/Paris`, `UTC`), naming it in the error.
pub fn parse_tz(name: &str) -> Result<Tz> {
    name.trim()
        .parse::<Tz>()
        .map_err(|_| Error::argument("tz", format!("`{name}` is not an IANA time zone name")))
}

/// The UTC instant of a local wall-clock time; a time skipped by a DST jump moves forward to the
/// first valid instant, an ambiguous one takes the earlier instant.
pub fn local_to_utc(tz: &Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        LocalResult::None => {
            // In a gap: try each minute forward until a valid time (gaps are at most a few hours).
            let mut probe = local;
            for _ in 0..(24 * 60) {
                probe += Duration::minutes(1);
                if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) =
                    tz.from_local_datetime(&probe)
                {
                    return t.with_timezone(&Utc);
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

/// A calendar bucket size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "unit")]
pub enum Bucket {
    /// Clock hours.
    Hour,
    /// Calendar days.
    Day,
    /// Weeks starting on `start`.
    Week {
        /// The first day of the week.
        #[serde(with = "weekday_name")]
        start: Weekday,
    },
    /// Calendar months.
    Month,
}

mod weekday_name {
    use chrono::Weekday;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(w: &Weekday, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format!("{w:?}").to_lowercase())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Weekday, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_weekday(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses `monday`/`mon` … (any case).
pub fn parse_weekday(s: &str) -> Result<Weekday> {
    s.trim()
        .parse::<Weekday>()
        .map_err(|_| Error::argument("week_start", format!("`{s}` is not a day of the week")))
}

impl Bucket {
    /// Parses `hour`, `day`, `week` (Monday start), `week:sunday`, `month`.
    pub fn parse(s: &str) -> Result<Bucket> {
        let s = s.trim().to_ascii_lowercase();
        let (unit, arg) = s
            .split_once(':')
            .map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
        Ok(match (unit, arg) {
            ("hour", None) => Bucket::Hour,
            ("day", None) => Bucket::Day,
            ("week", None) => Bucket::Week {
                start: Weekday::Mon,
            },
            ("week", Some(d)) => Bucket::Week {
                start: parse_weekday(d)?,
            },
            ("month", None) => Bucket::Month,
            _ => {
                return Err(Error::argument(
                    "bucket",
                    format!("`{s}` is not one of hour, day, week, week:<weekday>, month"),
                ));
            }
        })
    }

    fn local_floor(&self, t: NaiveDateTime) -> NaiveDateTime {
        let date = t.date();
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default();
        match self {
            Bucket::Hour => date.and_hms_opt(t.hour(), 0, 0).unwrap_or(t),
            Bucket::Day => midnight(date),
            Bucket::Week { start } => {
                let back =
                    (7 + date.weekday().num_days_from_monday() - start.num_days_from_monday()) % 7;
                midnight(date - Duration::days(i64::from(back)))
            }
            Bucket::Month => midnight(date.with_day(1).unwrap_or(date)),
        }
    }

    fn local_next(&self, t: NaiveDateTime) -> NaiveDateTime {
        match self {
            Bucket::Hour => t + Duration::hours(1),
            Bucket::Day => t + Duration::days(1),
            Bucket::Week { .. } => t + Duration::days(7),
            Bucket::Month => {
                let d = t.date();
                let (y, m) = if d.month() == 12 {
                    (d.year() + 1, 1)
                } else {
                    (d.year(), d.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1)
                    .unwrap_or(d)
                    .and_hms_opt(0, 0, 0)
                    .unwrap_or(t)
            }
        }
    }

    /// The start (as a UTC instant) of the bucket containing `t`, in zone `tz`.
    pub fn floor(&self, tz: &Tz, t: DateTime<Utc>) -> DateTime<Utc> {
        if *self == Bucket::Hour {
            // Hours are measured in real time: across a DST fall-back both 01:00s are buckets.
            let local = t.with_timezone(tz);
            let offset_secs = i64::from(chrono::Offset::fix(local.offset()).local_minus_utc());
            let secs = t.timestamp() + offset_secs;
            let floored = secs - secs.rem_euclid(3600) - offset_secs;
            return DateTime::from_timestamp(floored, 0).unwrap_or(t);
        }
        let local = t.with_timezone(tz).naive_local();
        local_to_utc(tz, self.local_floor(local))
    }

    /// The start of the bucket after the one starting at `start`.
    pub fn next(&self, tz: &Tz, start: DateTime<Utc>) -> DateTime<Utc> {
        if *self == Bucket::Hour {
            return start + Duration::hours(1);
        }
        let local = start.with_timezone(tz).naive_local();
        let next = local_to_utc(tz, self.local_next(self.local_floor(local)));
        if next <= start {
            start + Duration::hours(1)
        } else {
            next
        }
    }

    /// Every bucket start overlapping `range`, in order.
    pub fn starts(&self, tz: &Tz, range: &TimeRange) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut b = self.floor(tz, range.start);
        while b < range.end {
            out.push(b);
            b = self.next(tz, b);
        }
        out
    }
}

/// A named period, resolved against "now" in a time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Period {
    /// Since local midnight.
    Today,
    /// Since the start of the week (weeks start on `start`).
    ThisWeek {
        /// First day of the week.
        #[serde(with = "weekday_name")]
        start: Weekday,
    },
    /// Since the first of the month.
    ThisMonth,
    /// The previous calendar month.
    LastMonth,
    /// The last `days` days: since local midnight `days - 1` days ago (today included).
    LastDays {
        /// How many days, today included.
        days: u32,
    },
    /// An explicit range.
    Custom {
        /// The range.
        range: TimeRange,
    },
}

impl Period {
    /// The range this period covers at `now` in `tz`. Open periods end at the end of the
    /// current bucket (so "this month" is the whole month, and a forecast can see its length).
    pub fn range(&self, tz: &Tz, now: DateTime<Utc>) -> Result<TimeRange> {
        let (b, back) = match *self {
            Period::Today => (Bucket::Day, 0),
            Period::ThisWeek { start } => (Bucket::Week { start }, 0),
            Period::ThisMonth => (Bucket::Month, 0),
            Period::LastMonth => (Bucket::Month, 1),
            Period::LastDays { days } => {
                if days == 0 {
                    return Err(Error::argument("days", "must be at least 1"));
                }
                let today = Bucket::Day.floor(tz, now);
                let mut start = today;
                for _ in 1..days {
                    start = Bucket::Day.floor(tz, start - Duration::hours(1));
                }
                return TimeRange::new(start, Bucket::Day.next(tz, today));
            }
            Period::Custom { range } => return Ok(range),
        };
        let mut start = b.floor(tz, now);
        for _ in 0..back {
            start = b.floor(tz, start - Duration::hours(1));
        }
        TimeRange::new(start, b.next(tz, start))
    }

    /// The period of the same length just before this one (last month for this month, the
    /// previous 30 days for the last 30 days), for comparisons.
    pub fn previous(&self, tz: &Tz, now: DateTime<Utc>) -> Result<TimeRange> {
        let r = self.range(tz, now)?;
        match self {
            Period::Today => {
                TimeRange::new(Bucket::Day.floor(tz, r.start - Duration::hours(1)), r.start)
            }
            Period::ThisWeek { start } => {
                let b = Bucket::Week { start: *start };
                TimeRange::new(b.floor(tz, r.start - Duration::hours(1)), r.start)
            }
            Period::ThisMonth | Period::LastMonth => TimeRange::new(
                Bucket::Month.floor(tz, r.start - Duration::hours(1)),
                r.start,
            ),
            Period::LastDays { days } => {
                let mut start = r.start;
                for _ in 0..*days {
                    start = Bucket::Day.floor(tz, start - Duration::hours(1));
                }
                TimeRange::new(start, r.start)
            }
            Period::Custom { range } => TimeRange::new(range.start - range.duration(), range.start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn days_across_dst_are_23_and_25_hours() {
        let tz = parse_tz("America/New_York").unwrap();
        // 2026-03-08 spring forward, 2026-11-01 fall back.
        let d = Bucket::Day.floor(&tz, utc("2026-03-08T12:00:00Z"));
        assert_eq!(d, utc("2026-03-08T05:00:00Z"));
        assert_eq!(Bucket::Day.next(&tz, d) - d, Duration::hours(23));
        let d = Bucket::Day.floor(&tz, utc("2026-11-01T12:00:00Z"));
        assert_eq!(Bucket::Day.next(&tz, d) - d, Duration::hours(25));
    }

    #[test]
    fn weeks_and_months() {
        let tz = parse_tz("Europe/Paris").unwrap();
        let w = Bucket::Week {
            start: Weekday::Sun,
        }
        .floor(&tz, utc("2026-11-25T10:00:00Z"));
        assert_eq!(w, utc("2026-11-21T23:00:00Z")); // Sunday 22 Nov 00:00 CET
        let m = Bucket::Month.floor(&tz, utc("2026-03-31T23:30:00Z"));
        assert_eq!(m, utc("2026-03-31T22:00:00Z")); // 1 April 00:00 CEST
        assert_eq!(
            Bucket::parse("week:sunday").unwrap(),
            Bucket::Week {
                start: Weekday::Sun
            }
        );
        assert!(Bucket::parse("fortnight").is_err());
        assert!(parse_tz("Mars/Olympus").is_err());
    }

    #[test]
    fn hour_buckets_in_half_hour_zones() {
        let tz = parse_tz("Asia/Kolkata").unwrap();
        assert_eq!(
            Bucket::Hour.floor(&tz, utc("2026-01-01T10:10:00Z")),
            utc("2026-01-01T09:30:00Z")
        );
    }

    #[test]
    fn periods() {
        let tz = parse_tz("UTC").unwrap();
        let now = utc("2026-11-23T08:00:00Z");
        let r = Period::LastDays { days: 30 }.range(&tz, now).unwrap();
        assert_eq!(
            (r.start, r.end),
            (utc("2026-10-25T00:00:00Z"), utc("2026-11-24T00:00:00Z"))
        );
        let p = Period::ThisMonth.previous(&tz, now).unwrap();
        assert_eq!(
            (p.start, p.end),
            (utc("2026-10-01T00:00:00Z"), utc("2026-11-01T00:00:00Z"))
        );
    }
}
