//! Streaming export: CSV (a documented, versioned column set) and JSON lines, one row per
//! event, read page by page with keyset pagination so memory stays flat however many rows.
//!
//! CSV schema version 1 columns, in order: `schema_version, id, timestamp (RFC 3339, ms, UTC),
//! provider, model, resolved_model, user_id, status, error_type, input_tokens,
//! cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens,
//! reasoning_tokens, web_search_requests, web_fetch_requests, cost_input, cost_cache_read,
//! cost_cache_write_5m, cost_cache_write_1h, cost_output, cost_web_search, cost_total (exact
//! decimal USD strings; empty when unpriced), cost_source, catalog_version, latency_ms,
//! duration_ms, service_tier, speed, inference_geo, tags (a JSON object)`.

use std::io::Write;

use usage_core::event::UsageEvent;
use usage_core::query::Filter;
use usage_core::store::{Cursor, Store};
use usage_core::{Error, Result};

/// The CSV column set's version; bumped whenever columns change.
pub const CSV_SCHEMA_VERSION: u32 = 1;

/// The CSV header.
pub const CSV_COLUMNS: [&str; 32] = [
    "schema_version",
    "id",
    "timestamp",
    "provider",
    "model",
    "resolved_model",
    "user_id",
    "status",
    "error_type",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "web_search_requests",
    "web_fetch_requests",
    "cost_input",
    "cost_cache_read",
    "cost_cache_write_5m",
    "cost_cache_write_1h",
    "cost_output",
    "cost_web_search",
    "cost_total",
    "cost_source",
    "catalog_version",
    "latency_ms",
    "duration_ms",
    "service_tier",
    "speed",
    "inference_geo",
    "tags",
];

const PAGE: usize = 2_000;

fn io(op: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::store("export", op.to_owned(), e)
}

fn csv_row(e: &UsageEvent) -> Vec<String> {
    let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
    let cost = |f: fn(&usage_core::EventCost) -> usage_core::Usd| {
        e.cost
            .as_ref()
            .map(|c| f(c).to_string())
            .unwrap_or_default()
    };
    let u = &e.usage;
    vec![
        CSV_SCHEMA_VERSION.to_string(),
        e.id.to_string(),
        e.timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        e.provider.clone(),
        e.model.clone(),
        e.resolved_model.clone().unwrap_or_default(),
        e.user_id.clone().unwrap_or_default(),
        e.status.as_str().to_owned(),
        e.error_type.clone().unwrap_or_default(),
        u.input.to_string(),
        u.cache_read.to_string(),
        u.cache_write_5m.to_string(),
        u.cache_write_1h.to_string(),
        u.output.to_string(),
        u.reasoning.to_string(),
        u.web_search_requests.to_string(),
        u.web_fetch_requests.to_string(),
        cost(|c| c.input),
        cost(|c| c.cache_read),
        cost(|c| c.cache_write_5m),
        cost(|c| c.cache_write_1h),
        cost(|c| c.output),
        cost(|c| c.web_search),
        cost(|c| c.total),
        e.cost_source.as_str().to_owned(),
        e.catalog_version.clone().unwrap_or_default(),
        opt(e.latency_ms),
        opt(e.duration_ms),
        e.context.service_tier.as_str().to_owned(),
        e.context.speed.as_str().to_owned(),
        e.context.inference_geo.clone().unwrap_or_default(),
        serde_json::to_string(&e.tags).unwrap_or_default(),
    ]
}

async fn each_page(
    store: &dyn Store,
    filter: &Filter,
    mut f: impl FnMut(&[UsageEvent]) -> Result<()>,
) -> Result<u64> {
    let mut after: Option<Cursor> = None;
    let mut n = 0u64;
    loop {
        let page = store.scan(filter, after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(Cursor::after(last));
        f(&page)?;
        n += page.len() as u64;
        if page.len() < PAGE {
            break;
        }
    }
    Ok(n)
}

/// Writes the events passing `filter` as CSV (header first); returns the number of rows.
pub async fn export_csv<W: Write>(store: &dyn Store, filter: &Filter, out: W) -> Result<u64> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_COLUMNS).map_err(|e| io("csv", e))?;
    let n = each_page(store, filter, |page| {
        for e in page {
            w.write_record(csv_row(e)).map_err(|e| io("csv", e))?;
        }
        Ok(())
    })
    .await?;
    w.flush().map_err(|e| io("csv", e))?;
    Ok(n)
}

/// Writes the events passing `filter` as JSON lines (one `UsageEvent` per line).
pub async fn export_jsonl<W: Write>(store: &dyn Store, filter: &Filter, mut out: W) -> Result<u64> {
    let n = each_page(store, filter, |page| {
        for e in page {
            serde_json::to_writer(&mut out, e).map_err(|e| io("jsonl", e))?;
            out.write_all(b"\n").map_err(|e| io("jsonl", e))?;
        }
        Ok(())
    })
    .await?;
    out.flush().map_err(|e| io("jsonl", e))?;
    Ok(n)
}
