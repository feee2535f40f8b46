//! A batch's rollup changes, summed per cell in memory before anything is written: the base
//! cells (`rollup_events`) and tag cells from each event, the derived tables' cells from the
//! base cells. Each backend writes them its own way, every cell once, in key order.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use usage_core::event::UsageEvent;

use super::{HOUR_MS, RollupTable, Sums, floor_to};

/// (hour, user or '', provider, model_key, status): `rollup_events`' primary key order.
pub(crate) type EventCell<'a> = (i64, &'a str, &'a str, &'a str, &'a str);
/// (hour, tag key, tag value, user or ''): `rollup_tags`' primary key order.
pub(crate) type TagCell<'a> = (i64, &'a str, &'a str, &'a str);
/// A derived table's cell: its period start, then its key values in the table's key order.
pub(crate) type DerivedCell<'a> = (i64, Vec<&'a str>);

/// Rollup changes not yet written, per cell. Summed in hash maps (Fx: the keys are this
/// process's own, and summing them was 7% of a SQLite batch with SipHash), then handed out
/// sorted by key, so that writes walk each b-tree from front to back.
#[derive(Default)]
pub(crate) struct Deltas<'a> {
    events: FxHashMap<EventCell<'a>, Sums>,
    tags: FxHashMap<TagCell<'a>, Sums>,
}

impl<'a> Deltas<'a> {
    /// Adds (`sign` 1) or removes (`sign` -1) an event's sums (stored at `ts_ms`) in its cells.
    pub(crate) fn add(&mut self, e: &'a UsageEvent, ts_ms: i64, sums: &Sums, sign: i64) {
        let hour = floor_to(ts_ms, HOUR_MS);
        let user = e.user_id.as_deref().unwrap_or("");
        self.events
            .entry((
                hour,
                user,
                e.provider.as_str(),
                e.model_key(),
                e.status.as_str(),
            ))
            .or_default()
            .add(sums, sign);
        for (k, v) in &e.tags {
            self.tags
                .entry((hour, k.as_str(), v.as_str(), user))
                .or_default()
                .add(sums, sign);
        }
    }

    /// The base cells, in key order.
    pub(crate) fn events(&self) -> BTreeMap<EventCell<'a>, Sums> {
        self.events.iter().map(|(k, s)| (*k, *s)).collect()
    }

    /// The tag cells, in key order.
    pub(crate) fn tags(&self) -> Vec<(TagCell<'a>, Sums)> {
        let mut tags: Vec<(TagCell<'a>, Sums)> = self.tags.iter().map(|(k, s)| (*k, *s)).collect();
        tags.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        tags
    }
}

/// A batch's rollup changes laid out for writing: every table's cells, each in key order.
pub(crate) struct BatchCells<'a> {
    /// `rollup_events`' cells.
    pub events: BTreeMap<EventCell<'a>, Sums>,
    /// The cells of each of [`DERIVED`](super::DERIVED), in its order.
    pub derived: Vec<BTreeMap<DerivedCell<'a>, Sums>>,
    /// `rollup_tags`' cells.
    pub tags: Vec<(TagCell<'a>, Sums)>,
}

impl<'a> Deltas<'a> {
    /// Every table's cells, the derived tables' summed from the base cells.
    pub(crate) fn cells(&self) -> BatchCells<'a> {
        let events = self.events();
        let derived = super::DERIVED
            .iter()
            .map(|table| derive(table, &events))
            .collect();
        BatchCells {
            events,
            derived,
            tags: self.tags(),
        }
    }
}

/// Sums base cells into `table`'s cells, in key order.
pub(crate) fn derive<'a>(
    table: &RollupTable,
    events: &BTreeMap<EventCell<'a>, Sums>,
) -> BTreeMap<DerivedCell<'a>, Sums> {
    let mut out: BTreeMap<DerivedCell<'a>, Sums> = BTreeMap::new();
    for (&(hour, user, provider, model, status), s) in events {
        let keys = table
            .keys
            .iter()
            .map(|k| match *k {
                "user_id" => user,
                "provider" => provider,
                "model_key" => model,
                _ => status,
            })
            .collect();
        out.entry((floor_to(hour, table.step_ms), keys))
            .or_default()
            .add(s, 1);
    }
    out
}
