//! Fills a store with the issue-3 reference data set (see `usage_benches::dataset`), through
//! `Tracker::record_many` in batches of 1,000, printing progress and the rate achieved.
//!
//! ```text
//! cargo run --release -p usage-benches --bin gen-dataset -- --backend sqlite --path /tmp/bench10m.db --events 10000000
//! cargo run --release -p usage-benches --bin gen-dataset -- --backend postgres \
//!     --url postgres://postgres@127.0.0.1:5432/test --schema bench10m --events 10000000
//! ```
//!
//! Options: `--seed N` (default the data set's), `--end RFC3339` (default now; the data set
//! covers the 90 days before it), `--batch N` (1000), `--inflight N` (batches in flight at
//! once, default 2: one is priced while the other is written), `--force` (SQLite: delete an
//! existing file first), `--append` (add to a store that already holds events).
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use tokio::task::JoinSet;
use usage_benches::cli::{Args, Backend, Durability};
use usage_benches::dataset::{self, EventMaker};
use usage_benches::stats::{fmt_count, proc_status_kib};
use usage_core::NewEvent;
use usage_core::query::Filter;
use usage_core::store::{AggregateRequest, Source, Store};
use usage_store::{Tracker, TrackerOptions};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("gen-dataset: {e}");
        std::process::exit(1);
    }
}

async fn stored_events(store: &dyn Store) -> usage_core::Result<u64> {
    let rows = store
        .aggregate(&AggregateRequest {
            filter: Filter::default(),
            group_by: Vec::new(),
            grain_secs: None,
            source: Source::Rollup,
        })
        .await?;
    Ok(rows.iter().map(|r| r.totals.requests).sum())
}

fn sqlite_bytes(path: &std::path::Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .sum()
}

async fn run() -> Result<(), Box<dyn Error>> {
    let args = Args::parse(&["force", "append"])?;
    let backend = Backend::from_args(&args)?;
    let total: u64 = args.num("events", 10_000_000)?;
    let seed: u64 = args.num("seed", dataset::SEED)?;
    let batch: u64 = args.num("batch", 1_000)?;
    let inflight: usize = args.num::<usize>("inflight", 2)?.max(1);
    let end: DateTime<Utc> = match args.get("end") {
        Some(s) => s.parse()?,
        None => DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_else(Utc::now),
    };
    let start = end - Duration::days(dataset::DAYS);

    if let Backend::Sqlite { path } = &backend
        && args.flag("force")
    {
        for s in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{s}", path.display()));
        }
    }
    let store = backend
        .open(Durability::default(), inflight as u32 + 2)
        .await?;
    let already = stored_events(&*store).await?;
    if already > 0 && !args.flag("append") {
        let how = match &backend {
            Backend::Sqlite { .. } => "pass --force to delete the file first".to_owned(),
            Backend::Postgres { schema, .. } => {
                format!("drop it first (psql … -c 'DROP SCHEMA {schema} CASCADE')")
            }
        };
        return Err(format!(
            "{} already holds {} events; {how}, or pass --append",
            backend.describe(),
            fmt_count(already as f64)
        )
        .into());
    }
    println!(
        "gen-dataset: {} events, {} → {}, seed {seed:#x}, batches of {batch}, {inflight} in flight, into {}",
        fmt_count(total as f64),
        start.format("%Y-%m-%d %H:%M:%S"),
        end.format("%Y-%m-%d %H:%M:%S"),
        backend.describe()
    );
    println!(
        "  heavy user {}, typical user {}",
        dataset::heavy_user(),
        dataset::typical_user()
    );

    // Events are made on their own thread, in time order (as live traffic arrives), evenly
    // spread with a random offset inside each slot.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<NewEvent>>(8);
    let maker_thread = std::thread::spawn(move || {
        let mut maker = EventMaker::new(seed, "dataset", end);
        let span_ms = (end - start).num_milliseconds() as f64;
        let mut i = 0u64;
        while i < total {
            let n = batch.min(total - i);
            let mut events = Vec::with_capacity(n as usize);
            for j in i..i + n {
                let slot = (j as f64 + maker.rng().unit()) * span_ms / total as f64;
                let at = start + Duration::milliseconds(slot as i64);
                events.push(maker.event(at));
            }
            i += n;
            if tx.blocking_send(events).is_err() {
                break;
            }
        }
    });

    let tracker = Tracker::with_store(store.clone(), TrackerOptions::default());
    let began = Instant::now();
    let mut tasks: JoinSet<usage_core::Result<(u64, u64)>> = JoinSet::new();
    let (mut done, mut fresh) = (0u64, 0u64);
    let (mut last_done, mut last_at) = (0u64, Instant::now());
    let mut next_report = 0u64;
    let every = (total / 40).clamp(10_000, 500_000);
    let mut finish = |r: Option<Result<usage_core::Result<(u64, u64)>, tokio::task::JoinError>>| -> Result<(), Box<dyn Error>> {
        if let Some(r) = r {
            let (n, new) = r??;
            done += n;
            fresh += new;
        }
        if done >= next_report || done == total {
            let now = Instant::now();
            let secs = began.elapsed().as_secs_f64();
            let recent = (done - last_done) as f64 / now.duration_since(last_at).as_secs_f64();
            let overall = done as f64 / secs;
            let eta = (total - done) as f64 / overall.max(1.0);
            println!(
                "  {:>11} / {} events ({:5.1}%)  {:7.1} s  now {:>8}/s  overall {:>8}/s  eta {:.0} s",
                fmt_count(done as f64),
                fmt_count(total as f64),
                done as f64 * 100.0 / total as f64,
                secs,
                fmt_count(recent),
                fmt_count(overall),
                eta
            );
            (last_done, last_at) = (done, now);
            next_report = done + every;
        }
        Ok(())
    };
    while let Some(events) = rx.recv().await {
        while tasks.len() >= inflight {
            finish(tasks.join_next().await)?;
        }
        let t = tracker.clone();
        tasks.spawn(async move {
            let n = events.len() as u64;
            let recorded = t.record_many(events).await?;
            Ok((n, recorded.iter().filter(|r| !r.duplicate).count() as u64))
        });
    }
    while !tasks.is_empty() {
        finish(tasks.join_next().await)?;
    }
    let _ = maker_thread.join();
    let secs = began.elapsed().as_secs_f64();
    println!(
        "inserted {} new events ({} duplicates) in {secs:.1} s: {} events/s (record_many, batches of {batch})",
        fmt_count(fresh as f64),
        fmt_count((done - fresh) as f64),
        fmt_count(done as f64 / secs)
    );
    let closing = Instant::now();
    tracker.close().await?;
    println!(
        "closed in {:.1} s (SQLite: PRAGMA optimize and a WAL checkpoint)",
        closing.elapsed().as_secs_f64()
    );
    if let Backend::Sqlite { path } = &backend {
        println!(
            "database size: {:.2} GiB",
            sqlite_bytes(path) as f64 / (1u64 << 30) as f64
        );
    }
    if let Some(kib) = proc_status_kib("VmHWM") {
        println!("peak RSS of this process: {} MiB", kib / 1024);
    }
    Ok(())
}
