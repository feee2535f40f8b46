//! [`Sums`]: the integer form of [`Totals`] that every SQL backend's rollup tables keep, and the
//! checked conversions of an event's counts and money into stored integers.

use usage_core::event::UsageEvent;
use usage_core::query::Totals;
use usage_core::{Error, Result, Usd};

/// A count as stored (a signed 64-bit integer), or an error naming the field.
pub(crate) fn int(field: &str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| {
        Error::argument(
            field,
            format!("{v} is larger than the store can hold ({})", i64::MAX),
        )
    })
}

/// Whole nano-USD as stored, or an error naming the field.
pub(crate) fn nanos(field: &str, v: Usd) -> Result<i64> {
    i64::try_from(v.to_nanos())
        .map_err(|_| Error::argument(field, format!("{v} USD is outside what the store can hold")))
}

/// [`Totals`] as integers: counts, tokens and milliseconds as they are, money in nano-USD.
/// Signed, so that a reprice can subtract an event's old sums from a rollup cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sums(pub [i64; 21]);

#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
impl Sums {
    pub(crate) fn requests(&self) -> i64 {
        self.0[0]
    }

    pub(crate) fn add(&mut self, o: &Sums, sign: i64) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += sign * b;
        }
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == 0)
    }

    /// The public form. Values are never negative in a consistent store; a negative one is
    /// shown as zero rather than wrapping around.
    pub(crate) fn to_totals(self) -> Totals {
        let u = |i: usize| u64::try_from(self.0[i]).unwrap_or(0);
        let usd = |i: usize| Usd::from_nanos(i128::from(self.0[i]));
        Totals {
            requests: u(0),
            errors: u(1),
            unpriced: u(2),
            input: u(3),
            cache_read: u(4),
            cache_write_5m: u(5),
            cache_write_1h: u(6),
            output: u(7),
            reasoning: u(8),
            web_search_requests: u(9),
            web_fetch_requests: u(10),
            cost_input: usd(11),
            cost_cache_read: usd(12),
            cost_cache_write_5m: usd(13),
            cost_cache_write_1h: usd(14),
            cost_output: usd(15),
            cost_web_search: usd(16),
            cost_total: usd(17),
            latency_sum_ms: u(18),
            latency_count: u(19),
            duration_sum_ms: u(20),
        }
    }
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
impl Sums {
    /// What `e` adds to its rollup cells (`Totals::of`), as stored integers.
    pub(crate) fn of_event(e: &UsageEvent) -> Result<Sums> {
        Sums::of_totals(&Totals::of(e))
    }

    /// `totals` as stored integers; an error names a field too large to store.
    pub(crate) fn of_totals(t: &Totals) -> Result<Sums> {
        let n = |field: &str, v: u64| int(field, v);
        let usd = |field: &str, v: Usd| nanos(field, v);
        Ok(Sums([
            n("requests", t.requests)?,
            n("errors", t.errors)?,
            n("unpriced", t.unpriced)?,
            n("input", t.input)?,
            n("cache_read", t.cache_read)?,
            n("cache_write_5m", t.cache_write_5m)?,
            n("cache_write_1h", t.cache_write_1h)?,
            n("output", t.output)?,
            n("reasoning", t.reasoning)?,
            n("web_search_requests", t.web_search_requests)?,
            n("web_fetch_requests", t.web_fetch_requests)?,
            usd("cost_input", t.cost_input)?,
            usd("cost_cache_read", t.cost_cache_read)?,
            usd("cost_cache_write_5m", t.cost_cache_write_5m)?,
            usd("cost_cache_write_1h", t.cost_cache_write_1h)?,
            usd("cost_output", t.cost_output)?,
            usd("cost_web_search", t.cost_web_search)?,
            usd("cost_total", t.cost_total)?,
            n("latency_sum_ms", t.latency_sum_ms)?,
            n("latency_count", t.latency_count)?,
            n("duration_sum_ms", t.duration_sum_ms)?,
        ]))
    }
}
