//! Measures a populated store (see `gen-dataset`) against the targets of issue 3 and prints
//! the median and 90th percentile of repeated runs, then a table with pass/fail.
//!
//! ```text
//! cargo run --release -p usage-benches --bin store-bench -- --backend sqlite --path /tmp/bench10m.db
//! cargo run --release -p usage-benches --bin store-bench -- --backend postgres \
//!     --url postgres://postgres@127.0.0.1:5432/test --schema bench10m
//! ```
//!
//! Options: `--only LIST` (comma-separated: summary, timeseries, breakdown, top, ratio, quota,
//! write, record, export; default all), `--budget-secs N` (time spent repeating one measurement,
//! default 10), `--batches N` (1,000-event batches written, default 40), `--records N` (single
//! records, default 400), `--cycles N` (reserve + commit cycles timed, default 100), `--now RFC3339` (the instant the 30- and 90-day reports end at; default
//! now: set it to the data set's end to measure a store generated earlier, or a partial one).
//!
//! Reads run first on a warm cache, then the writes (which add fresh events at the current
//! time, so the store grows by ~45,000 events per run), then the full CSV export.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use usage_benches::cli::{Args, Backend, Durability};
use usage_benches::dataset::{self, EventMaker};
use usage_benches::stats::{
    Row, Samples, Target, fmt_count, fmt_duration, machine, proc_status_kib, process_cpu_time,
    reset_peak_rss, table,
};
use usage_core::NewEvent;
use usage_core::query::{Bucket, Dimension, Filter, Metric, Period, TimeRange};
use usage_core::quota::estimate::Estimate;
use usage_core::quota::{Quota, QuotaMetric, Subject, Window};
use usage_core::store::{AggregateRequest, Source, Store};
use usage_store::{Tracker, TrackerOptions};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("store-bench: {e}");
        std::process::exit(1);
    }
}

/// Runs `f` once to warm up (twice when it is quick), then repeatedly: at least `min` times,
/// then until `max` runs or `budget` is spent.
async fn measure<T, F, Fut>(
    min: usize,
    max: usize,
    budget: Duration,
    mut f: F,
) -> usage_core::Result<Samples>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = usage_core::Result<T>>,
{
    let t = Instant::now();
    std::hint::black_box(f().await?);
    if t.elapsed() < budget / 20 {
        std::hint::black_box(f().await?);
    }
    let began = Instant::now();
    let mut s = Vec::new();
    while s.len() < max && (s.len() < min || began.elapsed() < budget) {
        let t = Instant::now();
        std::hint::black_box(f().await?);
        s.push(t.elapsed());
    }
    Ok(Samples(s))
}

struct Bench {
    backend: Backend,
    store: Arc<dyn Store>,
    tracker: Tracker,
    budget: Duration,
    month: TimeRange,
    quarter: TimeRange,
    rows: Vec<Row>,
}

impl Bench {
    fn push(
        &mut self,
        name: &str,
        target: Target,
        samples: Samples,
        units: Option<f64>,
        note: String,
    ) {
        let row = Row {
            name: name.to_owned(),
            target,
            samples,
            units,
            note,
        };
        // Echo each result as it comes, so a long run shows progress.
        print!(
            "{}",
            table(std::slice::from_ref(&row))
                .lines()
                .nth(2)
                .map(|l| format!("{l}\n"))
                .unwrap_or_default()
        );
        self.rows.push(row);
    }

    fn user_month(&self, user: &str) -> Filter {
        Filter {
            range: Some(self.month),
            user_id: Some(user.to_owned()),
            ..Default::default()
        }
    }

    async fn summaries(&mut self) -> usage_core::Result<()> {
        let target = Target::Under(Duration::from_millis(2));
        for (who, user) in [
            ("heavy", dataset::heavy_user()),
            ("typical", dataset::typical_user()),
        ] {
            let f = self.user_month(&user);
            let n = self.tracker.summary(&f, &[]).await?.totals.requests;
            let t = self.tracker.clone();
            let s = measure(5, 200, self.budget, || t.summary(&f, &[])).await?;
            self.push(
                &format!("summary, 30 days, {who} user"),
                target,
                s,
                None,
                format!("{user}: {} events", fmt_count(n as f64)),
            );
            // Where the time goes: the totals come from the rollups. For scale, what a p95
            // latency would cost (every raw latency in the range; a summary leaves it out,
            // a `Query` with `latency_p95` asks for it).
            let req = |source| AggregateRequest {
                filter: f.clone(),
                group_by: Vec::new(),
                grain_secs: None,
                source,
            };
            let (store, rollup, raw) = (self.store.clone(), req(Source::Rollup), req(Source::Raw));
            let s = measure(5, 200, self.budget, || store.aggregate(&rollup)).await?;
            self.push(
                &format!("  the store call: totals from rollups ({who})"),
                Target::None,
                s,
                None,
                String::new(),
            );
            let s = measure(5, 200, self.budget, || store.latencies(&raw)).await?;
            self.push(
                &format!("  (not in summary) latencies for a p95, raw ({who})"),
                Target::None,
                s,
                None,
                String::new(),
            );
        }
        let f = self.user_month(&dataset::typical_user());
        let distinct = [
            Dimension::Tag("workflow".into()),
            Dimension::Tag("instance".into()),
        ];
        let t = self.tracker.clone();
        let s = measure(5, 100, self.budget, || t.summary(&f, &distinct)).await?;
        self.push(
            "summary + distinct workflows, instances (typical)",
            Target::None,
            s,
            None,
            String::new(),
        );
        Ok(())
    }

    async fn timeseries(&mut self) -> usage_core::Result<()> {
        for (who, user) in [
            ("heavy", dataset::heavy_user()),
            ("typical", dataset::typical_user()),
        ] {
            let f = Filter {
                range: Some(self.quarter),
                user_id: Some(user.clone()),
                ..Default::default()
            };
            let t = self.tracker.clone();
            let points = t.timeseries(&f, Bucket::Day, "UTC").await?.len();
            let s = measure(5, 200, self.budget, || t.timeseries(&f, Bucket::Day, "UTC")).await?;
            self.push(
                &format!("timeseries, 90 days daily, {who} user"),
                Target::Under(Duration::from_millis(5)),
                s,
                None,
                format!("{points} points"),
            );
        }
        let f = Filter {
            range: Some(self.quarter),
            user_id: Some(dataset::typical_user()),
            ..Default::default()
        };
        let t = self.tracker.clone();
        let s = measure(5, 200, self.budget, || {
            t.timeseries(&f, Bucket::Day, "America/New_York")
        })
        .await?;
        self.push(
            "timeseries, 90 days daily, typical, New York",
            Target::None,
            s,
            None,
            String::new(),
        );
        Ok(())
    }

    async fn breakdown(&mut self) -> usage_core::Result<()> {
        let f = Filter {
            range: Some(self.month),
            ..Default::default()
        };
        let t = self.tracker.clone();
        let page = t.breakdown(&f, &Dimension::Model).await?;
        let s = measure(5, 100, self.budget, || t.breakdown(&f, &Dimension::Model)).await?;
        self.push(
            "breakdown by model, 30 days, all users",
            Target::Under(Duration::from_millis(50)),
            s,
            None,
            format!(
                "{} models, {} events",
                page.total_rows,
                fmt_count(page.totals.requests as f64)
            ),
        );
        Ok(())
    }

    async fn top(&mut self) -> usage_core::Result<()> {
        let f = Filter {
            range: Some(self.month),
            ..Default::default()
        };
        let t = self.tracker.clone();
        let page = t.top(&f, &Dimension::User, Metric::Cost, 20, 0).await?;
        let s = measure(5, 100, self.budget, || {
            t.top(&f, &Dimension::User, Metric::Cost, 20, 0)
        })
        .await?;
        let first = page
            .rows
            .first()
            .and_then(|r| r.key.clone())
            .unwrap_or_default();
        self.push(
            "top 20 users by cost, 30 days",
            Target::Under(Duration::from_millis(100)),
            s,
            None,
            format!("{} users; first {first}", page.total_rows),
        );
        Ok(())
    }

    /// The same request served from rollups and from raw events.
    async fn ratio(&mut self) -> usage_core::Result<()> {
        let shapes = [
            (
                "totals, 30 days, typical user",
                self.user_month(&dataset::typical_user()),
                vec![],
            ),
            (
                "totals, 30 days, heavy user",
                self.user_month(&dataset::heavy_user()),
                vec![],
            ),
            (
                "by model, 30 days, all users",
                Filter {
                    range: Some(self.month),
                    ..Default::default()
                },
                vec![Dimension::Model],
            ),
        ];
        for (name, filter, group_by) in shapes {
            let req = |source| AggregateRequest {
                filter: filter.clone(),
                group_by: group_by.clone(),
                grain_secs: None,
                source,
            };
            let (rollup, raw) = (req(Source::Rollup), req(Source::Raw));
            let store = self.store.clone();
            let a = measure(5, 100, self.budget, || store.aggregate(&rollup)).await?;
            let b = measure(3, 30, self.budget, || store.aggregate(&raw)).await?;
            let ratio = b.median().as_secs_f64() / a.median().as_secs_f64();
            self.push(
                &format!("{name}: rollups"),
                Target::None,
                a,
                None,
                String::new(),
            );
            self.push(
                &format!("{name}: raw events"),
                Target::None,
                b,
                None,
                format!("raw/rollup = {ratio:.2}×"),
            );
        }
        Ok(())
    }

    async fn write(&mut self, batches: usize) -> usage_core::Result<()> {
        let seed = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
        let mut maker = EventMaker::new(seed, "bench-write", Utc::now());
        let mut samples = Vec::new();
        let mut dup = Vec::new();
        for i in 0..batches + 2 {
            let now = Utc::now();
            let events: Vec<_> = (0..1_000).map(|_| maker.event(now)).collect();
            let t = Instant::now();
            let r = self.tracker.record_many(events.clone()).await?;
            let took = t.elapsed();
            let fresh = r.iter().filter(|x| !x.duplicate).count();
            if fresh != 1_000 {
                return Err(usage_core::Error::argument(
                    "bench",
                    format!("only {fresh} of 1,000 fresh events were new"),
                ));
            }
            if i >= 2 {
                samples.push(took);
            }
            if i % 4 == 3 {
                // The idempotent path: the same batch again stores nothing.
                let t = Instant::now();
                let r = self.tracker.record_many(events).await?;
                dup.push(t.elapsed());
                assert!(r.iter().all(|x| x.duplicate));
            }
        }
        let target = match self.backend {
            Backend::Sqlite { .. } => 100_000.0,
            Backend::Postgres { .. } => 50_000.0,
        };
        self.push(
            "record_many, 1,000 fresh events per batch",
            Target::None,
            Samples(samples),
            Some(1_000.0),
            "events at the current time".into(),
        );
        // The batched writer (`enqueue`, then `flush`), as an app recording in the background
        // does: 50,000 fresh events queued as fast as they come, timed until all are durable.
        let mut queued = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..3 {
            let now = Utc::now();
            let events: Vec<_> = (0..50_000).map(|_| maker.event(now)).collect();
            let cpu_before = process_cpu_time();
            let t = Instant::now();
            for e in events {
                self.tracker.enqueue(e).await?;
            }
            self.tracker.flush().await?;
            queued.push(t.elapsed());
            if let (Some(a), Some(b)) = (cpu_before, process_cpu_time()) {
                cpu.push((b - a) / 50_000);
            }
        }
        self.push(
            "enqueue 50,000 fresh events, then flush",
            Target::AtLeast(target),
            Samples(queued),
            Some(50_000.0),
            "batched writer, default options".into(),
        );
        if !cpu.is_empty() {
            // What the elapsed time is made of, steadier than it on a shared machine: the
            // writer's work is most of it (the enqueue loop runs beside it on the other core).
            self.push(
                "enqueue: CPU time of the process per event",
                Target::None,
                Samples(cpu),
                None,
                "all threads, user + system (10 ms ticks)".into(),
            );
        }
        self.push(
            "record_many, the same 1,000 again (all duplicates)",
            Target::None,
            Samples(dup),
            Some(1_000.0),
            String::new(),
        );
        Ok(())
    }

    /// Quotas on the heavy user: `quota_status` with three applicable quotas (their usage
    /// and a forecast each), and a `reserve` + `commit` cycle against them. The quotas are
    /// deleted afterwards, so later writes are not slowed by alert checks.
    async fn quotas(&mut self, cycles: usize) -> usage_core::Result<()> {
        let user = dataset::heavy_user();
        let ids = ["bench-user-month", "bench-user-day", "bench-global-month"];
        let quotas = [
            Quota::new(
                ids[0],
                Subject::user(&user),
                QuotaMetric::Cost,
                Decimal::from(1_000_000),
                Window::Month { anchor_day: 1 },
            ),
            Quota::new(
                ids[1],
                Subject::user(&user),
                QuotaMetric::Requests,
                Decimal::from(100_000_000),
                Window::Day,
            ),
            Quota::new(
                ids[2],
                Subject::Global,
                QuotaMetric::Cost,
                Decimal::from(100_000_000),
                Window::Month { anchor_day: 1 },
            ),
        ];
        for q in quotas {
            self.tracker.set_quota(q).await?;
        }
        let subjects = [Subject::user(&user)];
        let t = self.tracker.clone();
        let s = measure(5, 200, self.budget, || t.quota_status(&subjects)).await?;
        let n = self.tracker.quota_status(&subjects).await?.len();
        let target = match self.backend {
            Backend::Sqlite { .. } => Target::Under(Duration::from_millis(2)),
            Backend::Postgres { .. } => Target::None,
        };
        self.push(
            "quota_status, heavy user, 3 quotas",
            target,
            s,
            None,
            format!("{n} quotas with forecasts"),
        );
        let seed = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
        let mut maker = EventMaker::new(seed, "bench-quota", Utc::now());
        let estimate = Estimate::new(Default::default(), "0.05".parse().expect("usd"));
        let (t, subjects, estimate) = (&self.tracker, &subjects, &estimate);
        let cycle = time_events(&mut maker, Some(&user), cycles, move |e| async move {
            let r = t.reserve(subjects, estimate, None).await?;
            t.commit(&r.id, vec![e]).await?;
            Ok(())
        })
        .await?;
        let target = match self.backend {
            Backend::Sqlite { .. } => Duration::from_micros(200),
            Backend::Postgres { .. } => Duration::from_millis(3),
        };
        self.push(
            "reserve + commit, heavy user, 3 quotas",
            Target::Under(target),
            cycle,
            None,
            "one durable event per commit".into(),
        );
        // The same user's calls recorded without a reservation: each record still checks the
        // three quotas' thresholds.
        let t = &self.tracker;
        let records = time_events(&mut maker, Some(&user), cycles, move |e| async move {
            t.record(e).await.map(|_| ())
        })
        .await?;
        self.push(
            "record, one event, heavy user, 3 quotas",
            Target::None,
            records,
            None,
            "with the alert check".into(),
        );
        for id in ids {
            self.tracker.delete_quota(id).await?;
        }
        Ok(())
    }

    async fn record(&mut self, n: usize) -> usage_core::Result<()> {
        let (target, alt, alt_name) = match self.backend {
            Backend::Sqlite { .. } => (
                Duration::from_micros(100),
                Durability {
                    strict: true,
                    relaxed: false,
                },
                "record, one event, synchronous=FULL",
            ),
            Backend::Postgres { .. } => (
                Duration::from_millis(1),
                Durability {
                    strict: false,
                    relaxed: true,
                },
                "record, one event, synchronous_commit=off",
            ),
        };
        let note = match self.backend {
            Backend::Sqlite { .. } => "WAL, synchronous=NORMAL (the default)",
            Backend::Postgres { .. } => "synchronous_commit=on (the default)",
        };
        let s = record_loop(&self.tracker, n).await?;
        self.push(
            "record, one event (durable)",
            Target::Under(target),
            s,
            None,
            note.into(),
        );
        let store = self.backend.open(alt, 2).await?;
        let tracker = Tracker::with_store(store, TrackerOptions::default());
        let s = record_loop(&tracker, n).await?;
        tracker.close().await?;
        self.push(alt_name, Target::None, s, None, String::new());
        Ok(())
    }

    async fn export(&mut self) -> usage_core::Result<()> {
        let before_hwm = proc_status_kib("VmHWM").unwrap_or(0);
        let before_rss = proc_status_kib("VmRSS").unwrap_or(0);
        let reset = reset_peak_rss();
        let file = std::fs::File::create("/dev/null")
            .map_err(|e| usage_core::Error::store("export", "open /dev/null", e))?;
        let t = Instant::now();
        let n = usage_store::export::export_csv(
            &*self.store,
            &Filter::default(),
            std::io::BufWriter::new(file),
        )
        .await?;
        let took = t.elapsed();
        let after_hwm = proc_status_kib("VmHWM").unwrap_or(0);
        let after_rss = proc_status_kib("VmRSS").unwrap_or(0);
        self.push(
            "CSV export, every event, to /dev/null",
            Target::None,
            Samples(vec![took]),
            None,
            format!(
                "{} rows, {}/s; RSS {} → {} MiB; peak {} MiB before, {} MiB during{}",
                fmt_count(n as f64),
                fmt_count(n as f64 / took.as_secs_f64()),
                before_rss / 1024,
                after_rss / 1024,
                before_hwm / 1024,
                after_hwm / 1024,
                if reset {
                    " (peak reset at start)"
                } else {
                    " (peak not resettable)"
                }
            ),
        );
        Ok(())
    }
}

async fn record_loop(tracker: &Tracker, n: usize) -> usage_core::Result<Samples> {
    let seed = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    let mut maker = EventMaker::new(seed, "bench-record", Utc::now());
    time_events(&mut maker, None, n, move |e| async move {
        let r = tracker.record(e).await?;
        assert!(!r.duplicate);
        Ok(())
    })
    .await
}

/// Times `call` on `n` fresh events at the current time (made by `maker`, given to `user` when
/// set), after 20 untimed ones; making an event is not timed.
async fn time_events<F, Fut>(
    maker: &mut EventMaker,
    user: Option<&str>,
    n: usize,
    mut call: F,
) -> usage_core::Result<Samples>
where
    F: FnMut(NewEvent) -> Fut,
    Fut: Future<Output = usage_core::Result<()>>,
{
    let mut s = Vec::with_capacity(n);
    for i in 0..n + 20 {
        let mut e = maker.event(Utc::now());
        if let Some(u) = user {
            e.user_id = Some(u.to_owned());
        }
        let t = Instant::now();
        call(e).await?;
        let took = t.elapsed();
        if i >= 20 {
            s.push(took);
        }
    }
    Ok(Samples(s))
}

async fn run() -> Result<(), Box<dyn Error>> {
    let args = Args::parse(&[])?;
    let backend = Backend::from_args(&args)?;
    let budget = Duration::from_secs(args.num("budget-secs", 10)?);
    let only: Vec<String> = args
        .get("only")
        .unwrap_or("summary,timeseries,breakdown,top,ratio,quota,write,record,export")
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let wants = |k: &str| only.iter().any(|o| o == k);

    // Opening applies any pending migration: on a store written by an older build, this is
    // how long the upgrade takes.
    let opening = Instant::now();
    let store = backend.open(Durability::default(), 4).await?;
    let opened = opening.elapsed();
    let tracker = Tracker::with_store(store.clone(), TrackerOptions::default());
    let now: DateTime<Utc> = match args.get("now") {
        Some(s) => s.parse()?,
        None => Utc::now(),
    };
    let utc = usage_core::query::parse_tz("UTC")?;
    let month = Period::LastDays { days: 30 }.range(&utc, now)?;
    let quarter = Period::LastDays { days: 90 }.range(&utc, now)?;
    let total = tracker
        .summary(&Filter::default(), &[])
        .await?
        .totals
        .requests;
    println!(
        "store-bench {} on {}: {} events stored; {}; {}",
        env!("CARGO_PKG_VERSION"),
        backend.describe(),
        fmt_count(total as f64),
        machine(),
        now.format("%Y-%m-%d %H:%M UTC"),
    );
    println!(
        "opened in {} (pending migrations included)",
        fmt_duration(opened)
    );
    println!(
        "30 days = {} → {}; 90 days = {} → {}; repeating each measurement up to {}",
        month.start.format("%m-%d"),
        month.end.format("%m-%d"),
        quarter.start.format("%m-%d"),
        quarter.end.format("%m-%d"),
        fmt_duration(budget)
    );
    let mut b = Bench {
        backend,
        store,
        tracker,
        budget,
        month,
        quarter,
        rows: Vec::new(),
    };
    if wants("summary") {
        b.summaries().await?;
    }
    if wants("timeseries") {
        b.timeseries().await?;
    }
    if wants("breakdown") {
        b.breakdown().await?;
    }
    if wants("top") {
        b.top().await?;
    }
    if wants("ratio") {
        b.ratio().await?;
    }
    if wants("quota") {
        b.quotas(args.num("cycles", 100)?).await?;
    }
    if wants("write") {
        b.write(args.num("batches", 40)?).await?;
    }
    if wants("record") {
        b.record(args.num("records", 400)?).await?;
    }
    if wants("export") {
        b.export().await?;
    }
    b.tracker.close().await?;
    println!("\n{}", table(&b.rows));
    Ok(())
}
