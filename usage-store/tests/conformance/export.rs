//! Export round trip: CSV and JSON lines of every event, read back with the csv crate and
//! serde_json, equal the recorded events field for field (exact cost strings included).

use std::collections::BTreeMap;

use usage_core::event::UsageEvent;
use usage_core::query::Filter;
use usage_store::export::{CSV_COLUMNS, CSV_SCHEMA_VERSION, export_csv, export_jsonl};

use super::backend::Backend;
use super::check::Check;
use super::data::{scan_all, seed_standard, sorted};
use super::queries::ragged;

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// The CSV fields an event must produce, by column name, written out by hand.
fn expected_row(e: &UsageEvent) -> BTreeMap<&'static str, String> {
    let cost = |f: fn(&usage_core::EventCost) -> usage_core::Usd| {
        e.cost
            .as_ref()
            .map(|c| f(c).to_string())
            .unwrap_or_default()
    };
    let u = &e.usage;
    BTreeMap::from([
        ("schema_version", CSV_SCHEMA_VERSION.to_string()),
        ("id", e.id.to_string()),
        (
            "timestamp",
            e.timestamp.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        ),
        ("provider", e.provider.clone()),
        ("model", e.model.clone()),
        ("resolved_model", opt(&e.resolved_model)),
        ("user_id", opt(&e.user_id)),
        ("status", e.status.as_str().to_owned()),
        ("error_type", opt(&e.error_type)),
        ("input_tokens", u.input.to_string()),
        ("cache_read_tokens", u.cache_read.to_string()),
        ("cache_write_5m_tokens", u.cache_write_5m.to_string()),
        ("cache_write_1h_tokens", u.cache_write_1h.to_string()),
        ("output_tokens", u.output.to_string()),
        ("reasoning_tokens", u.reasoning.to_string()),
        ("web_search_requests", u.web_search_requests.to_string()),
        ("web_fetch_requests", u.web_fetch_requests.to_string()),
        ("cost_input", cost(|c| c.input)),
        ("cost_cache_read", cost(|c| c.cache_read)),
        ("cost_cache_write_5m", cost(|c| c.cache_write_5m)),
        ("cost_cache_write_1h", cost(|c| c.cache_write_1h)),
        ("cost_output", cost(|c| c.output)),
        ("cost_web_search", cost(|c| c.web_search)),
        ("cost_total", cost(|c| c.total)),
        ("cost_source", e.cost_source.as_str().to_owned()),
        ("catalog_version", opt(&e.catalog_version)),
        ("latency_ms", opt(&e.latency_ms)),
        ("duration_ms", opt(&e.duration_ms)),
        ("service_tier", e.context.service_tier.as_str().to_owned()),
        ("speed", e.context.speed.as_str().to_owned()),
        ("inference_geo", opt(&e.context.inference_geo)),
    ])
}

/// CSV and JSON lines of all events and of a filtered subset.
pub async fn csv_and_jsonl_round_trip(b: &Backend) {
    let mut c = Check::new(b.label(), "csv_and_jsonl_round_trip");
    let t = b.tracker();
    let recorded = sorted(seed_standard(&t).await);
    for (fl, filter) in [
        ("all events", Filter::default()),
        (
            "ragged range, user u2",
            Filter {
                range: Some(ragged()),
                user_id: Some("u2".into()),
                ..Default::default()
            },
        ),
    ] {
        let expected: Vec<UsageEvent> = recorded
            .iter()
            .filter(|e| super::oracle::passes(&filter, e))
            .cloned()
            .collect();
        c.eq(
            format!("{fl}: a scan returns the recorded events"),
            scan_all(&*b.store, &filter).await.len(),
            expected.len(),
        );

        let mut buf = Vec::new();
        let n = export_csv(&*b.store, &filter, &mut buf)
            .await
            .expect("export_csv");
        c.eq(format!("{fl}: csv rows reported"), n, expected.len() as u64);
        let mut rd = csv::Reader::from_reader(buf.as_slice());
        let header: Vec<String> = rd
            .headers()
            .expect("csv header")
            .iter()
            .map(str::to_owned)
            .collect();
        c.eq(
            format!("{fl}: csv header"),
            header.clone(),
            CSV_COLUMNS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        );
        let rows: Vec<csv::StringRecord> =
            rd.records().collect::<Result<_, _>>().expect("csv rows");
        c.eq(format!("{fl}: csv row count"), rows.len(), expected.len());
        let mut bad = 0;
        for (row, e) in rows.iter().zip(&expected) {
            let got: BTreeMap<&str, &str> =
                header.iter().map(String::as_str).zip(row.iter()).collect();
            for (col, want) in expected_row(e) {
                if got.get(col).copied() != Some(want.as_str()) && bad < 10 {
                    bad += 1;
                    c.fail(format!(
                        "{fl}: csv {} column {col}: {:?}, expected {want:?}",
                        e.id,
                        got.get(col)
                    ));
                }
            }
            let tags: BTreeMap<String, String> =
                serde_json::from_str(got.get("tags").copied().unwrap_or("")).unwrap_or_default();
            if tags != e.tags && bad < 10 {
                bad += 1;
                c.fail(format!(
                    "{fl}: csv {} tags {tags:?}, expected {:?}",
                    e.id, e.tags
                ));
            }
            if let (Some(total), Some(cost)) = (got.get("cost_total"), e.cost) {
                let parsed: Result<usage_core::Usd, _> = total.parse();
                if parsed.as_ref().ok() != Some(&cost.total) && bad < 10 {
                    bad += 1;
                    c.fail(format!(
                        "{fl}: csv {} cost_total {total} does not parse back to {}",
                        e.id, cost.total
                    ));
                }
            }
        }
        c.that(
            format!("{fl}: csv mismatches ({bad}, first 10 listed)"),
            bad == 0,
        );

        let mut buf = Vec::new();
        let n = export_jsonl(&*b.store, &filter, &mut buf)
            .await
            .expect("export_jsonl");
        c.eq(
            format!("{fl}: jsonl rows reported"),
            n,
            expected.len() as u64,
        );
        let text = String::from_utf8(buf).expect("utf-8");
        let parsed: Result<Vec<UsageEvent>, _> = text
            .lines()
            .map(serde_json::from_str::<UsageEvent>)
            .collect();
        match parsed {
            Ok(events) => c.events(format!("{fl}: jsonl events"), &events, &expected),
            Err(e) => c.fail(format!(
                "{fl}: a jsonl line does not parse as a UsageEvent: {e}"
            )),
        }
    }
    c.finish();
}
