//! Exact decimal helpers for the money strings the addon returns, so JS code never has to turn
//! `"0.012345678"` into a lossy `number` to add or compare amounts.

use std::cmp::Ordering;

use napi_derive::napi;
use rust_decimal::{Decimal, RoundingStrategy};
use usage_core::Error;

use crate::error::to_napi;

fn parse(field: &str, s: &str) -> napi::Result<Decimal> {
    let t = s.trim();
    t.parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(t))
        .map_err(|e| {
            to_napi(Error::argument(
                field,
                format!("`{s}` is not a decimal ({e})"),
            ))
        })
}

/// `a + b`, exactly, as a decimal string.
#[napi]
pub fn decimal_add(a: String, b: String) -> napi::Result<String> {
    Ok((parse("a", &a)? + parse("b", &b)?).normalize().to_string())
}

/// `a - b`, exactly, as a decimal string.
#[napi]
pub fn decimal_sub(a: String, b: String) -> napi::Result<String> {
    Ok((parse("a", &a)? - parse("b", &b)?).normalize().to_string())
}

/// The sum of decimal strings (`"0"` for none).
#[napi]
pub fn decimal_sum(values: Vec<String>) -> napi::Result<String> {
    let mut total = Decimal::ZERO;
    for (i, v) in values.iter().enumerate() {
        total += parse(&format!("values[{i}]"), v)?;
    }
    Ok(total.normalize().to_string())
}

/// -1, 0 or 1 as `a` is less than, equal to or greater than `b` (`"0.50"` equals `"0.5"`).
#[napi]
pub fn decimal_compare(a: String, b: String) -> napi::Result<i32> {
    Ok(match parse("a", &a)?.cmp(&parse("b", &b)?) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    })
}

/// Rounds to `places` decimals, half to even (banker's rounding, as the cost engine rounds).
#[napi]
pub fn decimal_round(value: String, places: u32) -> napi::Result<String> {
    let d = parse("value", &value)?;
    Ok(
        d.round_dp_with_strategy(places, RoundingStrategy::MidpointNearestEven)
            .to_string(),
    )
}

/// Whole US cents, rounded half to even, as a decimal string of an integer (`"1235"` for
/// `"12.345"`); pass it to `BigInt()` or `Number()` for display.
#[napi]
pub fn to_cents(usd: String) -> napi::Result<String> {
    let d = parse("usd", &usd)? * Decimal::ONE_HUNDRED;
    Ok(
        d.round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven)
            .normalize()
            .to_string(),
    )
}
