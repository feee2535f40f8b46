//! The forecast, checked two ways: edge cases a user would notice (a new subject, a window that
//! just reset, an empty history, a burst), and a backtest over synthetic daily series
//! (constant, trending, weekly-seasonal, bursty) that forecasts every month-end from days 3,
//! 7, 14 and 21 of the month and scores the projection (MAPE) and the band (coverage). The
//! bounds fail the test if the method degrades; the table it prints is the one in
//! `docs/forecasting.md` (`cargo test -p usage-core --test forecast -- --nocapture`).

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use usage_core::forecast::{Forecast, ForecastOptions, forecast};
use usage_core::quota::window::WindowSpan;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("bad instant {s}: {e}"))
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap_or_else(|e| panic!("bad decimal {s}: {e}"))
}

fn month_span(now: DateTime<Utc>) -> WindowSpan {
    let d = now.date_naive();
    let start = NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap();
    let next = if d.month() == 12 {
        NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
    }
    .unwrap();
    WindowSpan {
        start: start.and_hms_opt(0, 0, 0).unwrap().and_utc(),
        resets_at: Some(next.and_hms_opt(0, 0, 0).unwrap().and_utc()),
        now,
    }
}

fn run(daily: &[(DateTime<Utc>, Decimal)], used: &str, limit: Option<&str>, now: &str) -> Forecast {
    forecast(
        daily,
        dec(used),
        limit.map(dec),
        &month_span(at(now)),
        &ForecastOptions::default(),
    )
}

/// Daily buckets ending the day before `now`, oldest first.
fn days_before(now: &str, values: &[i64]) -> Vec<(DateTime<Utc>, Decimal)> {
    let today = at(now).date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let n = values.len() as i64;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (today - Duration::days(n - i as i64), Decimal::from(*v)))
        .collect()
}

#[test]
fn empty_history_projects_what_is_used() {
    let f = run(&[], "12.5", Some("100"), "2026-11-10T12:00:00Z");
    assert_eq!(
        (f.projected, f.low, f.high),
        (dec("12.5"), dec("12.5"), dec("12.5"))
    );
    assert_eq!(f.burn_rate_per_day, Decimal::ZERO);
    assert_eq!((f.exhausted_at, f.days_remaining), (None, None));
    assert_eq!(f.method, "no_history");
    assert_eq!(f.period_end, Some(at("2026-12-01T00:00:00Z")));
    // Zero usage every day is a history too, with the same answer.
    let f = run(
        &days_before("2026-11-10T12:00:00Z", &[0; 14]),
        "0",
        Some("100"),
        "2026-11-10T12:00:00Z",
    );
    assert_eq!(
        (f.projected, f.high, f.exhausted_at),
        (Decimal::ZERO, Decimal::ZERO, None)
    );
}

#[test]
fn already_over_the_limit_is_exhausted_now() {
    let now = "2026-11-10T12:00:00Z";
    let f = run(&days_before(now, &[10; 14]), "100", Some("100"), now);
    assert_eq!(f.exhausted_at, Some(at(now)));
    assert_eq!(f.days_remaining, Some(0.0));
    let f = run(&[], "150", Some("100"), now);
    assert_eq!(f.exhausted_at, Some(at(now)));
}

#[test]
fn steady_usage_projects_and_exhausts_on_the_day() {
    // 10 a day for two weeks, 90 used by the end of 9 November; 21 days left.
    let now = "2026-11-10T00:00:00Z";
    let f = run(&days_before(now, &[10; 14]), "90", Some("250"), now);
    assert_eq!(f.burn_rate_per_day, Decimal::TEN);
    assert_eq!(f.projected, Decimal::from(300));
    assert_eq!(f.exhausted_at, Some(at("2026-11-26T00:00:00Z")));
    assert_eq!(f.days_remaining, Some(16.0));
    assert_eq!((f.basis_days, f.method.as_str()), (14, "mean"));
    // No limit, no exhaustion.
    let f = run(&days_before(now, &[10; 14]), "90", None, now);
    assert_eq!((f.exhausted_at, f.limit), (None, None));
}

#[test]
fn a_window_that_just_reset_uses_the_days_before_the_reset() {
    // Five minutes into December: nothing used yet, a steady 20 a day through November.
    let now = "2026-12-01T00:05:00Z";
    let mut daily = days_before(now, &[20; 14]);
    daily.push((at("2026-12-01T00:00:00Z"), Decimal::ZERO));
    let f = run(&daily, "0", Some("500"), now);
    assert_eq!(f.burn_rate_per_day, Decimal::from(20));
    let projected = f.projected.to_f64().unwrap();
    assert!((projected - 619.93).abs() < 0.01, "{projected}");
    let days = f.days_remaining.unwrap();
    assert!((days - 25.0).abs() < 1e-6, "{days}");
}

#[test]
fn the_first_day_of_a_new_subject_scales_the_partial_day_with_a_wide_band() {
    // No history at all; 30 used in the first 18 hours of the month.
    let now = "2026-11-01T18:00:00Z";
    let f = run(
        &[(at("2026-11-01T00:00:00Z"), dec("30"))],
        "30",
        Some("1000"),
        now,
    );
    assert_eq!(f.method, "partial_day");
    assert_eq!(f.burn_rate_per_day, Decimal::from(40));
    assert_eq!(f.projected, Decimal::from(30 + 40 * 29 + 10)); // 29¼ days left at 40 a day
    assert!(f.high > f.projected * Decimal::TWO, "{f:?}");
    assert_eq!(f.low, dec("30"));
    // One hour in: an hour of usage is not multiplied by 24.
    let f = run(
        &[(at("2026-11-01T00:00:00Z"), dec("5"))],
        "5",
        None,
        "2026-11-01T01:00:00Z",
    );
    assert_eq!(f.burn_rate_per_day, Decimal::from(20));
}

#[test]
fn one_burst_is_not_extrapolated_with_confidence() {
    // A subject idle for two weeks spends 1000 on 1 November.
    let now = "2026-11-02T00:00:00Z";
    let mut values = vec![0; 13];
    values.push(1000);
    let f = run(&days_before(now, &values), "1000", Some("10000"), now);
    let (p, hi) = (f.projected.to_f64().unwrap(), f.high.to_f64().unwrap());
    assert!(p < 5_000.0, "projected {p}: a burst is not a rate");
    assert!(
        hi > 2.0 * p,
        "high {hi} around {p}: the band must say how little is known"
    );
    assert_eq!(f.low, dec("1000"));
    assert_eq!(
        f.method, "mean",
        "no trend and no weekly pattern out of one day"
    );
    // A new subject with only that day: the projection follows it, but the band is very wide.
    let f = run(&days_before(now, &[1000]), "1000", None, now);
    let (p, lo, hi) = (
        f.projected.to_f64().unwrap(),
        f.low.to_f64().unwrap(),
        f.high.to_f64().unwrap(),
    );
    assert!(hi - lo > p, "{lo}..{hi} around {p}");
}

#[test]
fn sparse_usage_and_gaps_are_zero_days() {
    // 70 spent on two days of the last fortnight, with gaps between buckets.
    let now = "2026-11-15T00:00:00Z";
    let daily = vec![
        (at("2026-11-01T00:00:00Z"), Decimal::ZERO),
        (at("2026-11-04T00:00:00Z"), dec("35")),
        (at("2026-11-11T00:00:00Z"), dec("35")),
    ];
    let f = run(&daily, "70", None, now);
    assert_eq!(f.burn_rate_per_day, Decimal::from(5));
    assert_eq!(f.basis_days, 14);
    assert!(f.low >= dec("70"));
}

#[test]
fn weekends_are_learnt_from_two_weeks() {
    // Weekdays 100, weekends 20; forecast on Friday 13 November 2026 (midnight) for the rest
    // of November: 12 weekdays and 6 weekend days are left (13–30 Nov).
    let now = "2026-11-13T00:00:00Z";
    let mut values = Vec::new();
    let first = at(now) - Duration::days(14);
    for d in 0..14 {
        let wd = (first + Duration::days(d)).weekday().num_days_from_monday();
        values.push(if wd >= 5 { 20 } else { 100 });
    }
    let f = run(&days_before(now, &values), "1000", None, now);
    assert_eq!(f.method, "weekend");
    assert_eq!(f.projected, Decimal::from(1000 + 12 * 100 + 6 * 20));
}

#[test]
fn rolling_and_lifetime_windows_project_thirty_days() {
    let now = at("2026-11-20T00:00:00Z");
    let daily = days_before("2026-11-20T00:00:00Z", &[10; 14]);
    let lifetime = WindowSpan {
        start: DateTime::<Utc>::MIN_UTC,
        resets_at: None,
        now,
    };
    let f = forecast(
        &daily,
        dec("500"),
        Some("700".parse().unwrap()),
        &lifetime,
        &ForecastOptions::default(),
    );
    assert_eq!(f.period_end, Some(now + Duration::days(30)));
    assert_eq!(f.projected, Decimal::from(800));
    assert_eq!(f.exhausted_at, Some(now + Duration::days(20)));
    // A 7-day rolling window holding 70: in a week, the 70 has aged out and 70 more is in.
    let rolling = WindowSpan {
        start: now - Duration::days(7),
        resets_at: None,
        now,
    };
    let f = forecast(
        &daily,
        dec("70"),
        Some(dec("100")),
        &rolling,
        &ForecastOptions::default(),
    );
    assert_eq!(f.period_end, Some(now + Duration::days(7)));
    assert_eq!(f.projected, Decimal::from(70));
    assert_eq!(
        f.exhausted_at, None,
        "steady usage never fills a rolling window past its rate"
    );
    // At twice the pace it would: 70 + (20 − 10) × d = 100 after three days.
    let fast = days_before("2026-11-20T00:00:00Z", &[20; 14]);
    let f = forecast(
        &fast,
        dec("70"),
        Some(dec("100")),
        &rolling,
        &ForecastOptions::default(),
    );
    assert_eq!(f.exhausted_at, Some(now + Duration::days(3)));
}

#[test]
fn forecasts_serialise_with_exact_decimals() {
    let f = run(
        &days_before("2026-11-10T00:00:00Z", &[10; 14]),
        "90",
        Some("250"),
        "2026-11-10T00:00:00Z",
    );
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(json["projected"], "300");
    let back: Forecast = serde_json::from_value(json).unwrap();
    assert_eq!(back, f);
}

// ---------------------------------------------------------------------------------------------
// Backtest

/// SplitMix64: a tiny seeded generator, so every run sees the same series.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Box–Muller.
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// 100 a day, ±5% noise.
    Constant,
    /// 50 a day rising linearly to 200 over the 640 days (about 6% a month), ±10% noise.
    Trending,
    /// Weekdays 100, weekends 25, ±10% noise.
    Seasonal,
    /// About 20 a day with lognormal spread, and on 8% of days a burst of 5 to 25 times that
    /// (half the volume comes in bursts).
    Bursty,
    /// Growth of 1.5% a day (56% a month), ±10% noise: a launch.
    Ramp,
}

const KINDS: [Kind; 5] = [
    Kind::Constant,
    Kind::Trending,
    Kind::Seasonal,
    Kind::Bursty,
    Kind::Ramp,
];
const START: &str = "2025-01-01T00:00:00Z";
const DAYS: i64 = 640;
const SEEDS: u64 = 12;
const FROM_DAYS: [u32; 4] = [3, 7, 14, 21];

fn series(kind: Kind, seed: u64) -> Vec<f64> {
    let mut r = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ kind as u64);
    let start = at(START);
    (0..DAYS)
        .map(|d| {
            let weekend = (start + Duration::days(d)).weekday().num_days_from_monday() >= 5;
            let v = match kind {
                Kind::Constant => 100.0 * (1.0 + 0.05 * r.normal()),
                Kind::Trending => {
                    (50.0 + 150.0 * d as f64 / DAYS as f64) * (1.0 + 0.1 * r.normal())
                }
                Kind::Seasonal => (if weekend { 25.0 } else { 100.0 }) * (1.0 + 0.1 * r.normal()),
                Kind::Bursty => {
                    let base = 20.0 * (0.5 * r.normal() - 0.125).exp();
                    if r.uniform() < 0.08 {
                        base * (5.0 + 20.0 * r.uniform())
                    } else {
                        base
                    }
                }
                Kind::Ramp => 20.0 * 1.015f64.powi(d as i32) * (1.0 + 0.1 * r.normal()),
            };
            (v.max(0.0) * 100.0).round() / 100.0
        })
        .collect()
}

#[derive(Default, Clone, Copy)]
struct Score {
    n: u32,
    ape: f64,
    naive_ape: f64,
    covered: u32,
    width: f64,
}

impl Score {
    fn mape(&self) -> f64 {
        100.0 * self.ape / f64::from(self.n)
    }
    fn naive(&self) -> f64 {
        100.0 * self.naive_ape / f64::from(self.n)
    }
    fn coverage(&self) -> f64 {
        100.0 * f64::from(self.covered) / f64::from(self.n)
    }
    fn width(&self) -> f64 {
        100.0 * self.width / f64::from(self.n)
    }
    fn add(&mut self, o: &Score) {
        self.n += o.n;
        self.ape += o.ape;
        self.naive_ape += o.naive_ape;
        self.covered += o.covered;
        self.width += o.width;
    }
}

/// Forecasts every calendar month-end (March 2025 to September 2026, 12 seeds) from the end of
/// days 3, 7, 14 and 21, with the history a tracker would pass: daily buckets reaching back
/// across the reset. Also scores the naive run-rate (`used / days so far × days in month`).
fn backtest(kind: Kind, options: &ForecastOptions) -> [Score; 4] {
    let start = at(START);
    let mut scores = [Score::default(); 4];
    let day_of = |t: DateTime<Utc>| (t - start).num_days() as usize;
    for seed in 0..SEEDS {
        let s = series(kind, seed);
        let mut month = NaiveDate::from_ymd_opt(2025, 3, 1).unwrap();
        loop {
            let span0 = month_span(month.and_hms_opt(0, 0, 0).unwrap().and_utc());
            let (m0, m1) = (day_of(span0.start), day_of(span0.resets_at.unwrap()));
            if m1 > DAYS as usize {
                break;
            }
            let actual: f64 = s[m0..m1].iter().sum();
            for (k, &d) in FROM_DAYS.iter().enumerate() {
                let now = span0.start + Duration::days(i64::from(d));
                let t = day_of(now);
                let first = t - options.lookback_days as usize - 3;
                let daily: Vec<_> = (first..t)
                    .map(|i| {
                        let v = Decimal::from_f64(s[i]).unwrap().round_dp(2);
                        (start + Duration::days(i as i64), v)
                    })
                    .collect();
                let used_f: f64 = s[m0..t].iter().sum();
                let used = Decimal::from_f64(used_f).unwrap().round_dp(2);
                let f = forecast(&daily, used, None, &WindowSpan { now, ..span0 }, options);
                let (p, lo, hi) = (
                    f.projected.to_f64().unwrap(),
                    f.low.to_f64().unwrap(),
                    f.high.to_f64().unwrap(),
                );
                assert!(lo <= p && p <= hi && f.low >= used, "{kind:?} {now}: {f:?}");
                let naive = used_f / f64::from(d) * (m1 - m0) as f64;
                let sc = &mut scores[k];
                sc.n += 1;
                sc.ape += (p - actual).abs() / actual;
                sc.naive_ape += (naive - actual).abs() / actual;
                sc.covered += u32::from(lo <= actual && actual <= hi);
                sc.width += (hi - lo) / actual;
            }
            month = month.checked_add_months(chrono::Months::new(1)).unwrap();
        }
    }
    scores
}

/// Every series' scores by starting day, and over all starting days.
fn scores(options: &ForecastOptions) -> Vec<(Kind, [Score; 4], Score)> {
    KINDS
        .into_iter()
        .map(|kind| {
            let by_day = backtest(kind, options);
            let mut all = Score::default();
            for s in &by_day {
                all.add(s);
            }
            (kind, by_day, all)
        })
        .collect()
}

/// [`scores`], printed as the Markdown table of `docs/forecasting.md`.
#[allow(clippy::print_stdout)] // the table is the point of `--nocapture`
fn table(options: &ForecastOptions) -> Vec<(Kind, [Score; 4], Score)> {
    let out = scores(options);
    println!(
        "\nlook-back {} days, {:.0}% band\n",
        options.lookback_days,
        options.confidence * 100.0
    );
    println!(
        "| series | from day | forecasts | MAPE % | run-rate MAPE % | coverage % | mean band width % |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (kind, by_day, all) in &out {
        let rows = FROM_DAYS
            .iter()
            .map(|d| d.to_string())
            .chain(["all".to_owned()]);
        for (d, s) in rows.zip(by_day.iter().chain([all])) {
            println!(
                "| {kind:?} | {d} | {} | {:.2} | {:.2} | {:.1} | {:.1} |",
                s.n,
                s.mape(),
                s.naive(),
                s.coverage(),
                s.width()
            );
        }
    }
    out
}

#[test]
fn backtest_month_end_forecasts() {
    for (kind, scores, all) in table(&ForecastOptions::default()) {
        let (mape, cov, naive) = (all.mape(), all.coverage(), all.naive());
        let (max_mape, min_cov) = match kind {
            Kind::Constant => (2.0, 75.0),
            // Two weeks cannot prove a 6%-a-month trend under ±10% noise: the lag of the mean
            // costs some coverage (see docs/forecasting.md).
            Kind::Trending => (4.0, 70.0),
            Kind::Seasonal => (3.5, 75.0),
            Kind::Bursty => (45.0, 60.0),
            Kind::Ramp => (13.0, 25.0),
        };
        assert!(
            mape < max_mape,
            "{kind:?}: MAPE {mape:.2}% (bound {max_mape}%)"
        );
        assert!(
            cov >= min_cov,
            "{kind:?}: coverage {cov:.1}% (bound {min_cov}%)"
        );
        if matches!(kind, Kind::Seasonal | Kind::Ramp | Kind::Bursty) {
            // Learning the weekly pattern, the trend or the burst rate beats extrapolating the
            // month so far.
            assert!(mape < naive, "{kind:?}: {mape:.2}% vs run-rate {naive:.2}%");
        }
        // Later forecasts know more of the month: never worse than the earliest, and the band
        // narrows.
        assert!(
            scores[3].mape() <= scores[0].mape(),
            "{kind:?}: day 21 worse than day 3"
        );
        assert!(
            scores[3].width() < scores[0].width(),
            "{kind:?}: band does not narrow"
        );
    }
}

#[test]
fn backtest_with_four_weeks_and_a_95_percent_band() {
    let options = ForecastOptions {
        lookback_days: 28,
        confidence: 0.95,
    };
    let default = scores(&ForecastOptions::default());
    for ((kind, _, all), (_, _, two_weeks)) in table(&options).into_iter().zip(default) {
        let cov = all.coverage();
        if matches!(kind, Kind::Constant | Kind::Seasonal) {
            // Steady series: a longer look-back is both steadier and still calibrated.
            assert!(cov >= 90.0, "{kind:?}: coverage {cov:.1}% of a 95% band");
            assert!(
                all.mape() < two_weeks.mape(),
                "{kind:?}: four weeks no better than two"
            );
        }
    }
}
