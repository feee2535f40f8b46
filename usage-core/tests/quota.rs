//! Quotas as a user meets them: definitions refused with an error naming the field, windows
//! that start and reset at local midnight in real zones (DST included), the levels and flags at
//! exactly 79.99/80/95/100%, the read-only check, the thresholds reached (from which alerts
//! fire), and the worst-case cost reserved before a request (prompt-size tiers and service
//! tiers included).

use chrono::{DateTime, Duration, Utc, Weekday};
use rust_decimal::Decimal;
use usage_core::quota::estimate::{Estimate, worst_case};
use usage_core::quota::status::{LevelNotice, QuotaStatus, decide, reached, status};
use usage_core::quota::window::WindowSpan;
use usage_core::quota::{Quota, QuotaMetric, Subject, Threshold, Window};
use usage_core::store::QuotaUse;
use usage_core::{
    Deployment, Error, Platform, PriceCatalog, PricingContext, ServiceTier, Speed, TokenUsage,
};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("bad instant {s}: {e}"))
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap_or_else(|e| panic!("bad decimal {s}: {e}"))
}

fn quota(limit: &str) -> Quota {
    Quota::new(
        "alice-monthly",
        Subject::user("alice"),
        QuotaMetric::Cost,
        dec(limit),
        Window::Month { anchor_day: 1 },
    )
}

// ---------------------------------------------------------------------------------------------
// Validation

fn field_of(q: &Quota) -> String {
    match q.validate() {
        Err(Error::InvalidArgument { field, reason }) => {
            assert!(!reason.is_empty());
            field
        }
        other => panic!("expected an InvalidArgument, got {other:?}"),
    }
}

#[test]
fn bad_definitions_name_the_field() {
    assert!(quota("100").validate().is_ok());
    let mut q = quota("-5");
    assert_eq!(field_of(&q), "limit");
    q.limit = Decimal::ZERO;
    assert_eq!(field_of(&q), "limit");
    let err = quota("-5").validate().unwrap_err().to_string();
    assert!(err.contains("-5"), "the error shows the value: {err}");

    let mut q = quota("100");
    q.subject = Subject::user("");
    assert_eq!(field_of(&q), "subject.id");
    q.subject = Subject::tag(" ", "ml");
    assert_eq!(field_of(&q), "subject.key");
    q.subject = Subject::Global;
    q.id = String::new();
    assert_eq!(field_of(&q), "id");

    let q = quota("100").in_tz("Mars/Olympus_Mons");
    assert_eq!(field_of(&q), "tz");
    assert!(
        q.validate()
            .unwrap_err()
            .to_string()
            .contains("Mars/Olympus_Mons")
    );

    let q = quota("100").with_thresholds(vec![Threshold::new("a", 90), Threshold::new("b", 80)]);
    assert_eq!(field_of(&q), "thresholds");
    let q = quota("100").with_thresholds(vec![Threshold::new("a", 80), Threshold::new("b", 80)]);
    assert_eq!(field_of(&q), "thresholds");
    let q = quota("100").with_thresholds(vec![Threshold::new("a", 50), Threshold::new("a", 80)]);
    assert_eq!(field_of(&q), "thresholds");
    assert!(q.validate().unwrap_err().to_string().contains("twice"));
    let q = quota("100").with_thresholds(vec![Threshold::new("zero", 0)]);
    assert_eq!(field_of(&q), "thresholds.zero");
    let q = quota("100").with_thresholds(vec![Threshold::new("", 10)]);
    assert_eq!(field_of(&q), "thresholds.name");

    for day in [0, 32] {
        let mut q = quota("100");
        q.window = Window::Month { anchor_day: day };
        assert_eq!(field_of(&q), "window.anchor_day");
        assert!(
            q.window_at(at("2026-11-23T00:00:00Z")).is_err(),
            "no span for a bad window"
        );
    }
    for seconds in [0, -60] {
        let mut q = quota("100");
        q.window = Window::Rolling { seconds };
        assert_eq!(field_of(&q), "window.seconds");
    }
}

// ---------------------------------------------------------------------------------------------
// Windows

fn span(window: Window, tz: &str, now: &str) -> WindowSpan {
    let mut q = quota("100").in_tz(tz);
    q.window = window;
    q.validate().unwrap();
    q.window_at(at(now)).unwrap()
}

fn bounds(window: Window, tz: &str, now: &str) -> (DateTime<Utc>, DateTime<Utc>) {
    let s = span(window, tz, now);
    assert_eq!(s.now, at(now));
    let r = s.resets_at.expect("a calendar window resets");
    assert!(
        s.start <= s.now && s.now < r,
        "{now} outside [{}, {r})",
        s.start
    );
    (s.start, r)
}

#[test]
fn days_in_new_york_are_23_and_25_hours_across_dst() {
    let ny = "America/New_York";
    // Spring forward on 8 March 2026, fall back on 1 November 2026.
    let (s, r) = bounds(Window::Day, ny, "2026-03-08T12:00:00Z");
    assert_eq!(
        (s, r),
        (at("2026-03-08T05:00:00Z"), at("2026-03-09T04:00:00Z"))
    );
    let (s, r) = bounds(Window::Day, ny, "2026-11-01T12:00:00Z");
    assert_eq!(
        (s, r),
        (at("2026-11-01T04:00:00Z"), at("2026-11-02T05:00:00Z"))
    );
    // 23:30 local on 31 October is still the 31st.
    let (s, _) = bounds(Window::Day, ny, "2026-11-01T03:30:00Z");
    assert_eq!(s, at("2026-10-31T04:00:00Z"));
    // A month spanning the spring change starts at EST midnight and resets at EDT midnight.
    let (s, r) = bounds(Window::Month { anchor_day: 1 }, ny, "2026-03-20T00:00:00Z");
    assert_eq!(
        (s, r),
        (at("2026-03-01T05:00:00Z"), at("2026-04-01T04:00:00Z"))
    );
}

#[test]
fn london_weeks_and_months_follow_bst() {
    let ldn = "Europe/London";
    // BST ends at 02:00 on Sunday 25 October 2026: the week from Monday 19 October is 7 days
    // and an hour long.
    let w = Window::Week {
        start: Weekday::Mon,
    };
    let (s, r) = bounds(w, ldn, "2026-10-25T12:00:00Z");
    assert_eq!(
        (s, r),
        (at("2026-10-18T23:00:00Z"), at("2026-10-26T00:00:00Z"))
    );
    assert_eq!(r - s, Duration::hours(7 * 24 + 1));
    // The first instant of the next week belongs to it.
    let (s, _) = bounds(w, ldn, "2026-10-26T00:00:00Z");
    assert_eq!(s, at("2026-10-26T00:00:00Z"));
    // BST starts on 29 March: March is 743 hours long, starting at GMT midnight.
    let (s, r) = bounds(Window::Month { anchor_day: 1 }, ldn, "2026-03-30T12:00:00Z");
    assert_eq!(
        (s, r),
        (at("2026-03-01T00:00:00Z"), at("2026-03-31T23:00:00Z"))
    );
}

#[test]
fn sydney_months_years_and_southern_dst() {
    let syd = "Australia/Sydney";
    // AEDT (+11) ends on 5 April 2026; a month anchored on the 15th spans it.
    let m = Window::Month { anchor_day: 15 };
    let (s, r) = bounds(m, syd, "2026-04-10T00:00:00Z");
    assert_eq!(
        (s, r),
        (at("2026-03-14T13:00:00Z"), at("2026-04-14T14:00:00Z"))
    );
    // 1 a.m. on New Year's Day in Sydney is already the next year.
    let (s, r) = bounds(Window::Year, syd, "2026-12-31T14:00:00Z");
    assert_eq!(
        (s, r),
        (at("2026-12-31T13:00:00Z"), at("2027-12-31T13:00:00Z"))
    );
    let (s, r) = bounds(Window::Year, syd, "2026-06-01T00:00:00Z");
    assert_eq!(
        (s, r),
        (at("2025-12-31T13:00:00Z"), at("2026-12-31T13:00:00Z"))
    );
    // AEDT starts on 4 October 2026: that day is 23 hours.
    let (s, r) = bounds(Window::Day, syd, "2026-10-04T06:00:00Z");
    assert_eq!(r - s, Duration::hours(23));
}

#[test]
fn kolkata_half_hour_offsets() {
    let kol = "Asia/Kolkata";
    // 01:30 IST on 24 November.
    let (s, r) = bounds(Window::Day, kol, "2026-11-23T20:00:00Z");
    assert_eq!(
        (s, r),
        (at("2026-11-23T18:30:00Z"), at("2026-11-24T18:30:00Z"))
    );
    // Weeks from Sunday: Monday 23 November 15:30 IST is in the week of Sunday the 22nd.
    let (s, r) = bounds(
        Window::Week {
            start: Weekday::Sun,
        },
        kol,
        "2026-11-23T10:00:00Z",
    );
    assert_eq!(
        (s, r),
        (at("2026-11-21T18:30:00Z"), at("2026-11-28T18:30:00Z"))
    );
}

#[test]
fn week_start_days() {
    // Monday 23 November 2026, noon UTC.
    let now = "2026-11-23T12:00:00Z";
    for (start, from) in [
        (Weekday::Mon, "2026-11-23T00:00:00Z"),
        (Weekday::Sun, "2026-11-22T00:00:00Z"),
        (Weekday::Sat, "2026-11-21T00:00:00Z"),
        (Weekday::Tue, "2026-11-17T00:00:00Z"),
    ] {
        let (s, r) = bounds(Window::Week { start }, "UTC", now);
        assert_eq!((s, r - s), (at(from), Duration::days(7)), "{start:?}");
    }
}

#[test]
fn month_anchors_1_15_31() {
    let utc = "UTC";
    let cases = [
        (1, "2026-11-23T12:00:00Z", "2026-11-01", "2026-12-01"),
        (1, "2026-12-31T23:59:59Z", "2026-12-01", "2027-01-01"),
        (15, "2026-11-15T00:00:00Z", "2026-11-15", "2026-12-15"),
        (15, "2026-11-14T23:59:59Z", "2026-10-15", "2026-11-15"),
        (15, "2027-01-03T00:00:00Z", "2026-12-15", "2027-01-15"),
        // 31 clamps to the month's last day, and comes back to the 31st after.
        (31, "2026-04-15T00:00:00Z", "2026-03-31", "2026-04-30"),
        (31, "2026-04-30T00:00:00Z", "2026-04-30", "2026-05-31"),
        (31, "2026-02-28T10:00:00Z", "2026-02-28", "2026-03-31"),
        (31, "2026-12-31T05:00:00Z", "2026-12-31", "2027-01-31"),
        (31, "2028-02-29T05:00:00Z", "2028-02-29", "2028-03-31"),
    ];
    for (anchor, now, from, to) in cases {
        let (s, r) = bounds(Window::Month { anchor_day: anchor }, utc, now);
        let day = |d: &str| at(&format!("{d}T00:00:00Z"));
        assert_eq!((s, r), (day(from), day(to)), "anchor {anchor} at {now}");
    }
    // Consecutive windows tile time: each reset is the next window's start.
    let w = Window::Month { anchor_day: 31 };
    let mut t = at("2026-01-01T00:00:00Z");
    let z = usage_core::query::parse_tz("Europe/Paris").unwrap();
    for _ in 0..14 {
        let s = w.span_at(&z, t).unwrap();
        let r = s.resets_at.unwrap();
        assert_eq!(w.span_at(&z, r).unwrap().start, r);
        assert_eq!(
            w.span_at(&z, r - Duration::seconds(1)).unwrap().resets_at,
            Some(r)
        );
        t = r;
    }
}

#[test]
fn rolling_and_lifetime_windows_never_reset() {
    let now = at("2026-11-23T10:00:00Z");
    let z = usage_core::query::parse_tz("Asia/Kolkata").unwrap();
    let s = Window::Rolling { seconds: 5 * 3600 }
        .span_at(&z, now)
        .unwrap();
    assert_eq!(
        (s.start, s.resets_at, s.length()),
        (now - Duration::hours(5), None, None)
    );
    assert_eq!(
        s.range().end,
        DateTime::<Utc>::MAX_UTC,
        "events stamped ahead still count"
    );
    let s = Window::Lifetime.span_at(&z, now).unwrap();
    assert_eq!((s.start, s.resets_at), (DateTime::<Utc>::MIN_UTC, None));
}

// ---------------------------------------------------------------------------------------------
// Status

fn status_at(q: &Quota, used: &str, held: &str) -> QuotaStatus {
    let s = q.window_at(at("2026-11-23T10:00:00Z")).unwrap();
    status(q, s, dec(used), dec(held), None)
}

#[test]
fn levels_at_exactly_80_95_and_100_percent() {
    let q = quota("100");
    let s = status_at(&q, "79.99", "0");
    assert_eq!((s.level.as_deref(), s.is_warning), (None, false));
    assert_eq!((s.remaining, s.percent), (dec("20.01"), 79.99));
    let s = status_at(&q, "80", "0");
    assert_eq!(s.level.as_deref(), Some("warning"));
    assert!(s.is_warning && !s.is_upgrade_suggested && !s.is_blocked);
    let s = status_at(&q, "94.999999999", "0");
    assert_eq!(s.reached, ["warning"]);
    let s = status_at(&q, "95", "0");
    assert_eq!(s.reached, ["warning", "upgrade_suggested"]);
    assert!(s.is_upgrade_suggested && !s.is_blocked);
    let s = status_at(&q, "99.999999999", "0");
    assert!(!s.is_blocked);
    let s = status_at(&q, "100", "0");
    assert_eq!(s.level.as_deref(), Some("blocked"));
    assert!(s.is_blocked);
    assert_eq!((s.remaining, s.percent), (Decimal::ZERO, 100.0));
    // Past the limit: remaining stays at zero, the percentage shows how far past.
    let s = status_at(&q, "120", "0");
    assert_eq!((s.remaining, s.percent), (Decimal::ZERO, 120.0));
}

#[test]
fn holds_count_and_comparisons_are_exact() {
    // 80% of 33.33 is 26.664 exactly; floats would say 26.663999999999998.
    let q = quota("33.33");
    assert!(!status_at(&q, "26.663999999", "0").is_warning);
    assert!(status_at(&q, "26.664", "0").is_warning);
    // Reservations in flight count towards the level and the block.
    let q = quota("100");
    let s = status_at(&q, "70", "10");
    assert!(s.is_warning);
    assert_eq!(
        (s.used, s.held, s.remaining),
        (dec("70"), dec("10"), dec("20"))
    );
    assert!(status_at(&q, "60", "40").is_blocked);
}

#[test]
fn soft_quotas_report_but_never_block() {
    let q = quota("100").soft();
    let s = status_at(&q, "150", "0");
    assert_eq!(s.level.as_deref(), Some("blocked"));
    assert_eq!(s.reached.len(), 3);
    assert!(s.is_warning && s.is_upgrade_suggested && !s.is_blocked);
}

#[test]
fn custom_level_names_follow_their_position() {
    let q = quota("100").with_thresholds(vec![
        Threshold::new("notice", 50),
        Threshold::new("alert", 75),
        Threshold::new("stop", 90),
        Threshold::new("cap", 100),
    ]);
    let s = status_at(&q, "50", "0");
    assert_eq!(s.level.as_deref(), Some("notice"));
    assert!(
        s.is_warning && !s.is_upgrade_suggested,
        "warning: the lowest level"
    );
    assert!(!status_at(&q, "89", "0").is_upgrade_suggested);
    let s = status_at(&q, "90", "0");
    assert!(
        s.is_upgrade_suggested,
        "upgrade suggested: the second-highest level"
    );
    assert!(
        !s.is_blocked,
        "blocking is the limit itself, whatever the levels are called"
    );
    assert!(status_at(&q, "100", "0").is_blocked);
    // A named default wins over position; a single custom level never suggests an upgrade.
    let q = quota("100").with_thresholds(vec![
        Threshold::new("heads_up", 50),
        Threshold::new("warning", 70),
    ]);
    assert!(!status_at(&q, "60", "0").is_warning);
    assert!(status_at(&q, "70", "0").is_warning);
    let q = quota("100").with_thresholds(vec![Threshold::new("half", 50)]);
    let s = status_at(&q, "99", "0");
    assert!(s.is_warning && !s.is_upgrade_suggested);
    // No thresholds at all: no levels, but a hard limit still blocks.
    let s = status_at(&quota("100").with_thresholds(vec![]), "100", "0");
    assert_eq!((s.level, s.is_warning, s.is_blocked), (None, false, true));
}

#[test]
fn status_serialises_with_decimal_strings() {
    let s = status_at(&quota("100"), "80.5", "1");
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["used"], "80.5");
    assert_eq!(json["level"], "warning");
    assert_eq!(json["percent"], 81.5);
    let back: QuotaStatus = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
}

// ---------------------------------------------------------------------------------------------
// Check and crossings

#[test]
fn decide_blocks_only_hard_quotas_going_past_their_limit() {
    let cost = status_at(&quota("100"), "90", "5");
    let tokens = {
        let q = Quota::new(
            "team-tokens",
            Subject::tag("team", "ml"),
            QuotaMetric::TotalTokens,
            1000,
            Window::Day,
        )
        .soft();
        status_at(&q, "900", "0")
    };
    let statuses = [cost, tokens];
    let req = |c: &str, t: &str| {
        vec![
            ("alice-monthly".to_owned(), dec(c)),
            ("team-tokens".to_owned(), dec(t)),
        ]
    };

    // Landing exactly on the limit is allowed; the levels it reaches are reported.
    let d = decide(&statuses, &req("5", "200"));
    assert!(d.allowed && d.blocked_by.is_empty());
    let levels: Vec<(&str, &str)> = d
        .warnings
        .iter()
        .map(|w| (w.quota_id.as_str(), w.level.as_str()))
        .collect();
    assert_eq!(
        levels,
        [
            ("alice-monthly", "warning"),
            ("alice-monthly", "upgrade_suggested"),
            ("alice-monthly", "blocked"),
            ("team-tokens", "warning"),
            ("team-tokens", "upgrade_suggested"),
            ("team-tokens", "blocked"),
        ],
        "a soft quota past its limit warns but does not block"
    );
    assert_eq!(
        d.warnings[3],
        LevelNotice {
            quota_id: "team-tokens".into(),
            level: "warning".into(),
            percent: 110.0
        }
    );

    // A nano-dollar more is refused, with the figures a user needs.
    let d = decide(&statuses, &req("5.000000001", "0"));
    assert!(!d.allowed);
    assert_eq!(
        d.blocked_by,
        [QuotaUse {
            quota_id: "alice-monthly".into(),
            used: dec("90"),
            held: dec("5"),
            requested: dec("5.000000001"),
            limit: dec("100"),
        }]
    );
    // Amounts for one quota add up; ids with no status are ignored; a quota with no amount is
    // asked for nothing.
    let d = decide(
        &statuses,
        &[
            ("alice-monthly".into(), dec("3")),
            ("alice-monthly".into(), dec("3")),
            ("bob".into(), dec("1000")),
        ],
    );
    assert_eq!(d.blocked_by.len(), 1);
    assert_eq!(d.blocked_by[0].requested, dec("6"));
    let d = decide(&statuses, &[]);
    assert!(d.allowed);
    assert_eq!(
        d.warnings.len(),
        3,
        "90+5 of 100 and 900 of 1000 already reach levels"
    );
}

#[test]
fn reached_lists_every_threshold_at_or_below_usage() {
    let q = quota("100");
    let names = |used: &str| -> Vec<String> {
        reached(&q, dec(used)).into_iter().map(|t| t.name).collect()
    };
    assert!(names("79.99").is_empty());
    assert_eq!(names("80"), ["warning"]);
    assert_eq!(names("94.99"), ["warning"]);
    assert_eq!(names("95"), ["warning", "upgrade_suggested"]);
    assert_eq!(names("100"), ["warning", "upgrade_suggested", "blocked"]);
    assert_eq!(names("1000"), ["warning", "upgrade_suggested", "blocked"]);
    // Listed out of order, still lowest first.
    let mut custom = quota("100");
    custom.thresholds = vec![
        Threshold::new("late", dec("90")),
        Threshold::new("early", dec("10")),
    ];
    let got: Vec<String> = reached(&custom, dec("95"))
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(got, ["early", "late"]);
}

// ---------------------------------------------------------------------------------------------
// Worst-case estimates

fn worst(model: &str, prompt: u64, max: u64, ctx: &PricingContext) -> Decimal {
    worst_case(
        PriceCatalog::builtin(),
        model,
        prompt,
        max,
        at("2026-06-01T00:00:00Z"),
        ctx,
    )
    .unwrap_or_else(|e| panic!("{model}: {e}"))
    .cost
    .as_decimal()
}

#[test]
fn worst_case_prices_the_prompt_size_tier() {
    let std = PricingContext::default();
    // GPT-5.4: $2.50 / $15 per million up to 272K prompt tokens, $5 / $22.50 for the whole
    // request above. At exactly 272K the base price still applies.
    assert_eq!(worst("gpt-5.4", 272_000, 10_000, &std), dec("0.83"));
    assert_eq!(worst("gpt-5.4", 272_001, 10_000, &std), dec("1.585005"));
    // A base-rate reservation (LiteLLM before PR #40002) would hold barely half of that.
    let base_rate = dec("272001") * dec("2.5") / dec("1000000") + dec("0.15");
    assert_eq!(base_rate, dec("0.8300025"));
    // Sonnet 4.5: $3 / $15 up to 200K, $6 / $22.50 above.
    assert_eq!(
        worst("claude-sonnet-4-5", 200_000, 8_000, &std),
        dec("0.72")
    );
    assert_eq!(
        worst("claude-sonnet-4-5-20250929", 250_000, 8_000, &std),
        dec("1.68")
    );
}

#[test]
fn worst_case_applies_service_tier_speed_and_deployment() {
    let batch = PricingContext {
        service_tier: ServiceTier::Batch,
        ..Default::default()
    };
    assert_eq!(
        worst("claude-sonnet-4-5", 250_000, 8_000, &batch),
        dec("0.84")
    );
    let priority = PricingContext {
        service_tier: ServiceTier::Priority,
        ..Default::default()
    };
    assert_eq!(worst("gpt-5.4", 300_000, 10_000, &priority), dec("3.45"));
    let flex = PricingContext {
        service_tier: ServiceTier::Flex,
        ..Default::default()
    };
    assert_eq!(worst("gpt-5.4", 300_000, 10_000, &flex), dec("0.8625"));
    let fast = PricingContext {
        speed: Speed::Fast,
        ..Default::default()
    };
    // Opus 4.6 fast mode: six times $5 / $25.
    assert_eq!(worst("claude-opus-4-6", 10_000, 2_000, &fast), dec("0.6"));
    let bedrock_regional = PricingContext {
        platform: Some(Platform::Bedrock),
        deployment: Some(Deployment::Regional),
        ..Default::default()
    };
    assert_eq!(
        worst("claude-sonnet-4-5", 250_000, 8_000, &bedrock_regional),
        dec("1.848")
    );
}

#[test]
fn worst_case_refuses_unknown_models_and_absurd_counts() {
    let ctx = PricingContext::default();
    let now = at("2026-06-01T00:00:00Z");
    match worst_case(
        PriceCatalog::builtin(),
        "gpt-9-imaginary",
        10,
        10,
        now,
        &ctx,
    ) {
        Err(Error::UnknownModel { model }) => assert_eq!(model, "gpt-9-imaginary"),
        other => panic!("expected UnknownModel, got {other:?}"),
    }
    match worst_case(PriceCatalog::builtin(), "gpt-5.4", 10, u64::MAX, now, &ctx) {
        Err(Error::InvalidUsage { field, .. }) => assert_eq!(field, "max_tokens"),
        other => panic!("expected InvalidUsage, got {other:?}"),
    }
    match worst_case(PriceCatalog::builtin(), "gpt-5.4", u64::MAX, 10, now, &ctx) {
        Err(Error::InvalidUsage { field, .. }) => assert_eq!(field, "prompt_tokens"),
        other => panic!("expected InvalidUsage, got {other:?}"),
    }
}

#[test]
fn estimates_give_each_quota_its_own_amount() {
    let catalog = PriceCatalog::builtin();
    let now = at("2026-06-01T00:00:00Z");
    let e = worst_case(
        catalog,
        "claude-sonnet-4-5",
        250_000,
        8_000,
        now,
        &PricingContext::default(),
    )
    .unwrap();
    assert_eq!(e.usage.prompt_tokens(), 250_000);
    assert_eq!(e.amount(QuotaMetric::Requests), Decimal::ONE);
    assert_eq!(e.amount(QuotaMetric::TotalTokens), Decimal::from(258_000));
    assert_eq!(e.amount(QuotaMetric::InputTokens), Decimal::from(250_000));
    assert_eq!(e.amount(QuotaMetric::OutputTokens), Decimal::from(8_000));
    assert_eq!(e.amount(QuotaMetric::CacheReadTokens), Decimal::ZERO);
    assert_eq!(e.amount(QuotaMetric::Cost), dec("1.68"));

    let quotas = [
        quota("100"),
        Quota::new(
            "daily-tokens",
            Subject::Global,
            QuotaMetric::TotalTokens,
            1_000_000,
            Window::Day,
        ),
    ];
    assert_eq!(
        e.amounts(&quotas),
        [
            ("alice-monthly".to_owned(), dec("1.68")),
            ("daily-tokens".to_owned(), Decimal::from(258_000)),
        ]
    );

    // Cache writes cost more than plain input: a caller expecting them prices the usage.
    let with_writes = TokenUsage {
        input: 50_000,
        cache_write_1h: 200_000,
        output: 8_000,
        ..Default::default()
    };
    let priced = Estimate::priced(
        catalog,
        "claude-sonnet-4-5",
        with_writes,
        now,
        &PricingContext::default(),
    )
    .unwrap();
    // 50K × $6 + 200K × $12 + 8K × $22.50, per million (the >200K tier).
    assert_eq!(priced.cost.as_decimal(), dec("2.88"));
    assert!(priced.cost > e.cost);
    assert_eq!(
        priced.amount(QuotaMetric::CacheWriteTokens),
        Decimal::from(200_000)
    );
    // And cache reads only make a request cheaper than its worst case.
    let with_reads = TokenUsage {
        input: 50_000,
        cache_read: 200_000,
        output: 8_000,
        ..Default::default()
    };
    let cheaper = Estimate::priced(
        catalog,
        "claude-sonnet-4-5",
        with_reads,
        now,
        &PricingContext::default(),
    )
    .unwrap();
    assert!(cheaper.cost < e.cost);
    assert_eq!(Estimate::new(with_reads, cheaper.cost), cheaper);
}
