//! Reprice: a dry run reports exactly the difference a changed catalog makes and writes
//! nothing; the real run changes events and rollups together and leaves run records; runs
//! cancelled mid-way (reprice, rebuild, purge) roll back completely.

use std::sync::Arc;

use rust_decimal::Decimal;
use usage_core::Usd;
use usage_core::event::{CostSource, EventCost, UsageEvent};
use usage_core::pricing::PriceCatalog;
use usage_core::pricing::schema::Dec;
use usage_core::query::Filter;
use usage_core::store::{CancelToken, RepriceReport, RunKind, RunOptions, RunOutcome};

use super::backend::Backend;
use super::check::Check;
use super::data::{all_events, at, seed_standard};
use super::oracle;
use super::rollups::check_rollups_everywhere;

fn d(s: &str) -> Option<Dec> {
    Some(Dec(s.parse::<Decimal>().expect("decimal")))
}

/// The built-in catalog with Claude Haiku 4.5 at double price (so every calculated Haiku
/// event changes) under version `conformance-reprice`.
pub fn doubled_haiku() -> PriceCatalog {
    let mut cat = PriceCatalog::builtin().clone();
    let mut file = cat
        .model("claude-haiku-4-5")
        .expect("haiku in the catalog")
        .to_file()
        .clone();
    for p in &mut file.prices {
        p.input = d("2");
        p.cache_read = d("0.2");
        p.cache_write_5m = d("2.5");
        p.cache_write_1h = d("4");
        p.output = d("10");
    }
    cat.add_model(file).expect("override haiku");
    cat.set_version("conformance-reprice");
    cat
}

/// Haiku's cost by hand: per-million prices (input, cache read, 5m write, 1h write, output)
/// and $10 per 1,000 web searches (Anthropic's default).
fn haiku_cost(e: &UsageEvent, p: [&str; 5]) -> EventCost {
    let m = |tokens: u64, price: &str| {
        Usd::new(
            Decimal::from(tokens) * price.parse::<Decimal>().expect("price")
                / Decimal::from(1_000_000),
        )
    };
    let u = &e.usage;
    let (input, cache_read, cache_write_5m, cache_write_1h, output) = (
        m(u.input, p[0]),
        m(u.cache_read, p[1]),
        m(u.cache_write_5m, p[2]),
        m(u.cache_write_1h, p[3]),
        m(u.output, p[4]),
    );
    let web_search =
        Usd::new(Decimal::from(u.web_search_requests) * Decimal::from(10) / Decimal::from(1_000));
    EventCost {
        input,
        cache_read,
        cache_write_5m,
        cache_write_1h,
        output,
        web_search,
        total: input + cache_read + cache_write_5m + cache_write_1h + output + web_search,
    }
}

fn is_calculated_haiku(e: &UsageEvent) -> bool {
    e.resolved_model.as_deref() == Some("claude-haiku-4-5")
        && e.cost_source == CostSource::Calculated
}

/// Dry run, then the real thing: the report is exactly the expected difference, the dry run
/// writes nothing, the real run changes events and rollups together and leaves run records.
pub async fn reprice_dry_run_then_real(b: &Backend) {
    let mut c = Check::new(b.label(), "reprice_dry_run_then_real");
    let t = b.tracker();
    let recorded = seed_standard(&t).await;
    let before = all_events(&*b.store).await;
    // The test's own price arithmetic agrees with how the events were priced.
    let wrong = recorded
        .iter()
        .filter(|e| {
            is_calculated_haiku(e) && e.cost != Some(haiku_cost(e, ["1", "0.10", "1.25", "2", "5"]))
        })
        .count();
    c.eq("recorded Haiku costs follow the built-in prices", wrong, 0);

    let catalog = doubled_haiku();
    let mut after = before.clone();
    let mut expect = RepriceReport {
        examined: before.len() as u64,
        ..Default::default()
    };
    for e in &mut after {
        expect.old_total += e.total_cost();
        if is_calculated_haiku(e) {
            let new = haiku_cost(e, ["2", "0.2", "2.5", "4", "10"]);
            if Some(new) != e.cost {
                expect.changed += 1;
                e.cost = Some(new);
                e.catalog_version = Some("conformance-reprice".into());
            }
        }
        if e.cost.is_none() {
            expect.still_unpriced += 1;
        }
        expect.new_total += e.total_cost();
    }
    c.that(
        format!(
            "the case changes events ({}) and keeps unpriced ones ({})",
            expect.changed, expect.still_unpriced
        ),
        expect.changed > 100 && expect.still_unpriced > 10,
    );

    let (report, rec) = t
        .reprice(None, &catalog, true, &RunOptions::default())
        .await
        .expect("dry run");
    c.eq(
        "dry run report",
        report,
        RepriceReport {
            dry_run: true,
            ..expect.clone()
        },
    );
    c.eq(
        "dry run record",
        (rec.kind, rec.outcome),
        (RunKind::Reprice, RunOutcome::DryRun),
    );
    c.events(
        "events after the dry run (unchanged)",
        &all_events(&*b.store).await,
        &before,
    );
    c.totals(
        "summary after the dry run",
        &t.summary(&Filter::default(), &[])
            .await
            .expect("summary")
            .totals,
        &oracle::totals(&before),
    );

    let (report, rec) = t
        .reprice(
            None,
            &catalog,
            false,
            &RunOptions {
                batch_size: Some(128),
                ..Default::default()
            },
        )
        .await
        .expect("reprice");
    c.eq(
        "reprice report",
        report,
        RepriceReport {
            dry_run: false,
            ..expect.clone()
        },
    );
    c.eq(
        "reprice record",
        (rec.kind, rec.outcome),
        (RunKind::Reprice, RunOutcome::Succeeded),
    );
    c.events("events after reprice", &all_events(&*b.store).await, &after);
    c.verified("verify_rollups after reprice", t.verify_rollups(None).await);
    c.totals(
        "summary after reprice (rollups)",
        &t.summary(&Filter::default(), &[])
            .await
            .expect("summary")
            .totals,
        &oracle::totals(&after),
    );
    check_rollups_everywhere(&mut c, "repriced", &*b.store, &after, &[None]).await;
    let runs = t.runs(10).await.expect("runs");
    c.eq(
        "runs, newest first",
        runs.iter().map(|r| (r.kind, r.outcome)).collect::<Vec<_>>(),
        vec![
            (RunKind::Reprice, RunOutcome::Succeeded),
            (RunKind::Reprice, RunOutcome::DryRun),
        ],
    );

    // Repricing again under the same catalog changes nothing.
    let (report, _) = t
        .reprice(None, &catalog, false, &RunOptions::default())
        .await
        .expect("reprice again");
    c.eq(
        "second reprice changes nothing",
        (report.changed, report.old_total),
        (0, expect.new_total),
    );
    c.finish();
}

fn cancel_after_first_batch() -> (RunOptions, Arc<std::sync::atomic::AtomicU64>) {
    let token = CancelToken::new();
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (tk, n) = (token.clone(), calls.clone());
    let opts = RunOptions {
        batch_size: Some(10),
        cancel: Some(token),
        progress: Some(Arc::new(move |_| {
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tk.cancel();
        })),
    };
    (opts, calls)
}

/// Rebuild, reprice and purge cancelled mid-way (or before they start) roll back completely.
pub async fn cancelled_runs_change_nothing(b: &Backend) {
    let mut c = Check::new(b.label(), "cancelled_runs_change_nothing");
    let t = b.tracker();
    seed_standard(&t).await;
    let before = all_events(&*b.store).await;

    let (opts, calls) = cancel_after_first_batch();
    match t.reprice(None, &doubled_haiku(), false, &opts).await {
        Ok((_, rec)) => c.eq(
            "cancelled reprice: outcome",
            (rec.kind, rec.outcome),
            (RunKind::Reprice, RunOutcome::Cancelled),
        ),
        Err(e) => c.fail(format!(
            "cancelled reprice: expected Ok(outcome Cancelled), got Err({e})"
        )),
    }
    c.that(
        "cancelled reprice: progress was reported",
        calls.load(std::sync::atomic::Ordering::SeqCst) >= 1,
    );
    c.events(
        "events after a cancelled reprice",
        &all_events(&*b.store).await,
        &before,
    );
    c.verified(
        "verify_rollups after a cancelled reprice",
        t.verify_rollups(None).await,
    );

    let (opts, _) = cancel_after_first_batch();
    match t.rebuild_rollups(None, &opts).await {
        Ok(rec) => c.eq(
            "cancelled rebuild: outcome",
            (rec.kind, rec.outcome),
            (RunKind::RebuildRollups, RunOutcome::Cancelled),
        ),
        Err(e) => c.fail(format!(
            "cancelled rebuild: expected Ok(outcome Cancelled), got Err({e})"
        )),
    }
    c.verified(
        "verify_rollups after a cancelled rebuild",
        t.verify_rollups(None).await,
    );
    check_rollups_everywhere(
        &mut c,
        "after a cancelled rebuild",
        &*b.store,
        &before,
        &[None],
    )
    .await;

    let token = CancelToken::new();
    token.cancel();
    let opts = RunOptions {
        cancel: Some(token),
        ..Default::default()
    };
    match t.purge(at("2026-11-01T00:00:00Z"), &opts).await {
        Ok(rec) => c.eq(
            "purge cancelled before it started: outcome",
            (rec.kind, rec.outcome),
            (RunKind::Purge, RunOutcome::Cancelled),
        ),
        Err(e) => c.fail(format!(
            "purge cancelled before it started: expected Ok(outcome Cancelled), got Err({e})"
        )),
    }
    c.events(
        "events after a cancelled purge",
        &all_events(&*b.store).await,
        &before,
    );
    c.eq(
        "purged_before after a cancelled purge",
        b.store.purged_before().await.expect("purged_before"),
        None,
    );

    let runs = t.runs(10).await.expect("runs");
    c.eq(
        "run records",
        runs.iter().map(|r| (r.kind, r.outcome)).collect::<Vec<_>>(),
        vec![
            (RunKind::Purge, RunOutcome::Cancelled),
            (RunKind::RebuildRollups, RunOutcome::Cancelled),
            (RunKind::Reprice, RunOutcome::Cancelled),
        ],
    );
    c.finish();
}
